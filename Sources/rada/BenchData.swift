// `rada bench data`: the input pipeline alone. Decode (libjpeg-turbo / libpng) + RandomResizedCrop(224, bicubic)
// + flip + normalise of ~500x375 images through BatchLoader with 1 and N worker threads, batches of 32, as
// torchvision's RandomResizedCrop + DataLoader(num_workers) in torch_bench.py. Items are images.
// Images: --images DIR (files *.jpg / *.png, e.g. written by launch/bench/compare with Pillow), or generated
// here (PNG via libpng; JPEG via ImageMagick's `convert` when it is installed).
import ArgumentParser
import CLIP
import CSupport
import Data
import Foundation
import Imaging
import Kernels
import Tensor

struct BenchData: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "data", abstract: "Decode + RandomResizedCrop to 224 throughput (JPEG and PNG, 1 and N loader threads).")

  @OptionGroup var options: BenchOptions
  @Option(help: "Folder of test images (*.jpg, *.png); default: generate them in a temporary folder.") var images: String?
  @Option(help: "Images generated per format.") var count = 64

  func validate() throws {
    try checkRange("--count", count, 1...100_000)
    if let loaderThreads { try checkRange("--loader-threads", loaderThreads, 1...1024) }
  }
  @Option(help: "Loader threads of the parallel measurement (default: the cores this process may use).")
  var loaderThreads: Int?

  func run() throws {
    let runner = try BenchRunner(options: options)
    let folder = try images ?? Self.generate(count: count)
    let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted().map { folder + "/" + $0 }
    let parallel = loaderThreads ?? CPUInfo.allowedCPUs
    let augmentation = Augmentation(preprocessor: CLIPPreprocessor(size: 224))
    for (format, suffixes) in [("jpeg", [".jpg", ".jpeg"]), ("png", [".png"])] {
      let paths = files.filter { path in suffixes.contains { path.lowercased().hasSuffix($0) } }
      if paths.isEmpty {
        FileHandle.standardError.write("rada bench data: no \(format) images in \(folder); skipped.\n".data(using: .utf8)!)
        continue
      }
      for workers in Array(Set([1, parallel])).sorted() {
        try runner.measure("data/decode_augment", "\(format) 224 w\(workers)", items: Double(paths.count),
                           flops: nil, threads: workers, setup: { () }, step: { _ in
          try Self.loadAll(paths, workers: workers, augmentation: augmentation)
        })
      }
    }
  }

  /// Every path once through a BatchLoader, in batches of 32; the (3, 224, 224) results are dropped.
  static func loadAll(_ paths: [String], workers: Int, augmentation: Augmentation) throws {
    let side = augmentation.size
    let loader = BatchLoader<[Float]>(workers: workers, prefetchDepth: 2, pathOf: { paths[$0] }) { request in
      let image = try ImageDecoder.decode(path: paths[request.position])
      var pixels = [Float](repeating: 0, count: 3 * side * side)
      pixels.withUnsafeMutableBufferPointer {
        augmentation(image, seed: 1, epoch: 0, sampleIndex: request.position, into: $0.baseAddress!)
      }
      return pixels
    }
    var step = 0
    for start in stride(from: 0, to: paths.count, by: 32) {
      loader.submit(step: step, positions: Array(start..<min(paths.count, start + 32)))
      step += 1
    }
    while let batch = try loader.next() { precondition(!batch.items.isEmpty) }
    loader.stop()
  }

  /// Writes `count` 500x375 PNGs (and JPEGs when `convert` exists) of smooth gradients, discs and mild noise
  /// (photo-like compressibility) into a temporary folder; returns it.
  static func generate(count: Int) throws -> String {
    let folder = NSTemporaryDirectory() + "rada-bench-images-\(getpid())"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let width = 500, height = 375
    var hasConvert = false
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    where FileManager.default.isExecutableFile(atPath: "\(dir)/convert") { hasConvert = true }
    for index in 0..<count {
      let pixels = syntheticPhoto(width: width, height: height, seed: UInt64(index))
      let png = "\(folder)/\(String(format: "%04d", index)).png"
      var message = [CChar](repeating: 0, count: 256)
      guard rada_png_write(png, pixels, Int32(width), Int32(height), 3, &message, 256) == 0 else {
        throw ValidationError("cannot write \(png): \(String(cString: message)). Pass --images DIR instead.")
      }
      if hasConvert {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["convert", png, "-quality", "90", png.replacingOccurrences(of: ".png", with: ".jpg")]
        try process.run()
        process.waitUntilExit()
      }
    }
    if !hasConvert {
      FileHandle.standardError.write("rada bench data: ImageMagick `convert` not found, JPEG skipped; pass --images DIR with .jpg files.\n".data(using: .utf8)!)
    }
    return folder
  }

  /// (H, W, 3) bytes: a two-colour gradient, five soft discs and ±6 noise.
  static func syntheticPhoto(width: Int, height: Int, seed: UInt64) -> [UInt8] {
    var rng = SeededRNG(seed: seed)
    let a = (0..<3).map { _ in 255 * rng.uniformFloat() }, b = (0..<3).map { _ in 255 * rng.uniformFloat() }
    let discs = (0..<5).map { _ in
      (Float(width) * rng.uniformFloat(), Float(height) * rng.uniformFloat(), 20 + 80 * rng.uniformFloat(),
       (0..<3).map { _ in 255 * rng.uniformFloat() })
    }
    var out = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
      for x in 0..<width {
        let t = (Float(x) + Float(y)) / Float(width + height)
        for c in 0..<3 {
          var v = a[c] * (1 - t) + b[c] * t
          for (cx, cy, r, colour) in discs {
            let dx = Float(x) - cx, dy = Float(y) - cy
            if dx * dx + dy * dy < r * r { v = colour[c] }
          }
          v += 12 * (rng.uniformFloat() - 0.5)
          out[(y * width + x) * 3 + c] = UInt8(max(0, min(255, v)))
        }
      }
    }
    return out
  }
}
