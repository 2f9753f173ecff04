// swift-tools-version:5.9
// rada: RAda fine-tuning of CLIP in Swift, data-parallel over MPI.
// Module layout (dependencies point down only, see README "Architecture"):
//   rada (CLI) -> {Sweeps, Reports} -> Training -> {CLIP, RAda, Data, Distributed}
//     -> {Kernels, Tensor, TextCleaning, Imaging} -> {COpenBLAS, CMPI, CSupport}
import PackageDescription

// Hot loops need FMA/AVX code and no errno on sqrt; see README "Performance" for the portable build.
// x86-64 builds emit AVX2+FMA code (-target-cpu haswell: runs on x86-64 CPUs since Intel Haswell / AMD
// Excavator; 1.3-1.7x on GELU, softmax and LayerNorm over the SSE2 baseline). Override at build time with
// RADA_TARGET_CPU=native (tuned to the build machine, e.g. AVX-512) or RADA_TARGET_CPU=x86-64 (CPUs without AVX2).
#if arch(x86_64)
let targetCPU = ["-target-cpu", Context.environment["RADA_TARGET_CPU"] ?? "haswell"]
#else
let targetCPU: [String] = []
#endif
let fastMath: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-fno-math-errno"] + targetCPU)]

let package = Package(
  name: "rada",
  platforms: [.macOS(.v13)],
  products: [.executable(name: "rada", targets: ["rada"])],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
  ],
  targets: [
    // C system libraries and shims.
    .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                   providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
    .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                   providers: [.apt(["libopenblas-dev"])]),
    .target(name: "CSupport", linkerSettings: [.linkedLibrary("openblas"), .linkedLibrary("png16"),
                                               .linkedLibrary("jpeg"), .linkedLibrary("z")]),

    // Swift modules, lowest first.
    .target(name: "Tensor", dependencies: ["CSupport"], swiftSettings: fastMath),
    .target(name: "Kernels", dependencies: ["Tensor", "COpenBLAS", "CSupport"], swiftSettings: fastMath),
    .target(name: "Distributed", dependencies: ["Tensor", "CMPI", "CSupport"], swiftSettings: fastMath),
    .target(name: "TextCleaning", swiftSettings: fastMath),
    // Image decoding (Pillow-exact) and CLIP's preprocessing, below both CLIP and Data.
    .target(name: "Imaging", dependencies: ["Tensor", "CSupport"], swiftSettings: fastMath),
    .target(name: "CLIP", dependencies: ["Tensor", "Kernels", "CSupport", "TextCleaning"],
            resources: [.copy("Resources/bpe_simple_vocab_16e6.txt.gz")], swiftSettings: fastMath),
    .target(name: "RAda", dependencies: ["Tensor", "Kernels"], swiftSettings: fastMath),
    .target(name: "Data", dependencies: ["Tensor", "Imaging", "CSupport"], swiftSettings: fastMath),
    .target(name: "Training", dependencies: ["Tensor", "Kernels", "CLIP", "Imaging", "RAda", "Data", "Distributed",
                                             .product(name: "Yams", package: "Yams")],
            swiftSettings: fastMath),
    // Above Training: sweeps launch `rada train` runs and read their run directories; reports draw them.
    .target(name: "Reports", dependencies: ["Training", "Imaging", "Tensor"], swiftSettings: fastMath),
    .target(name: "Sweeps", dependencies: ["Training", "Tensor", .product(name: "Yams", package: "Yams")],
            swiftSettings: fastMath),
    .executableTarget(name: "rada", dependencies: ["Sweeps", "Reports", "Training", "Distributed", "Kernels", "CLIP", "Imaging", "RAda", "Data",
                                                   "Tensor", "CSupport",
                                                   .product(name: "ArgumentParser", package: "swift-argument-parser")],
                      swiftSettings: fastMath),
    // Fuzz targets for every parser of untrusted input (README "Input safety"; launch/tests/fuzz.sh).
    .executableTarget(name: "rada-fuzz", dependencies: ["Tensor", "CLIP", "Imaging", "Data", "Training", "Sweeps", "Reports"],
                      path: "Sources/RadaFuzz"),

    // One test target per module. Fixtures live beside the tests that read them.
    .testTarget(name: "TensorTests", dependencies: ["Tensor"], resources: [.copy("Fixtures")]),
    .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Tensor"], exclude: ["make_torch_reference.py", "fit_fast_math.py"]),
    .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Tensor"]),
    .testTarget(name: "CLIPTests", dependencies: ["CLIP", "Kernels", "Tensor"], resources: [.copy("Fixtures")]),
    // Decoding, preprocessing and image bombs against Pillow/torchvision; DataTests' augmentation reads its fixtures too.
    .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Tensor"], resources: [.copy("Fixtures")]),
    .testTarget(name: "RAdaTests", dependencies: ["RAda", "Kernels", "Tensor"], resources: [.copy("Fixtures")]),
    .testTarget(name: "DataTests", dependencies: ["Data", "Imaging", "Tensor"], resources: [.copy("Fixtures")]),
    .testTarget(name: "TrainingTests", dependencies: ["Training", "RAda", "CLIP", "Imaging", "Data", "Distributed", "Tensor", "Sweeps", "Reports"]),
    .testTarget(name: "SweepsTests", dependencies: ["Sweeps", "Training"]),
    .testTarget(name: "ReportsTests", dependencies: ["Reports", "Training"]),
  ]
)
