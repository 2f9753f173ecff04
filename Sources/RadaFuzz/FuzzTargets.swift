// The fuzz targets of `rada-fuzz`: one per parser of untrusted input (README "Input safety"). Each takes raw
// bytes, runs them through the same code `rada` uses (errors are expected and ignored; only a crash, a trap or
// a hang is a finding), and for inputs that parse, uses the result the way rada would next (read the tensors,
// render the report, expand the sweep). Targets that read files write the bytes into a scratch folder first.
import CLIP
import Data
import Foundation
import Imaging
import Tensor
import Reports
import Sweeps
import Training

enum FuzzTargets {
  /// A per-process scratch folder for targets that read files (removed at exit by the driver).
  static let scratch: String = {
    let path = NSTemporaryDirectory() + "rada-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path + "/coop/oxford_pets/images", withIntermediateDirectories: true)
    try? FileManager.default.createDirectory(atPath: path + "/run", withIntermediateDirectories: true)
    try? FileManager.default.createDirectory(atPath: path + "/checkpoints/step_00000001", withIntermediateDirectories: true)
    return path
  }()

  static func write(_ data: Data, _ relative: String) -> String {
    let path = scratch + "/" + relative
    try? data.write(to: URL(fileURLWithPath: path))
    return path
  }

  static let tokenizer = try? CLIPTokenizer()

  /// name -> (what it covers, the target).
  static let all: [(name: String, about: String, run: (Data) -> Void)] = [
    ("safetensors", "safetensors header and tensor reads (Tensor/Safetensors.swift)", { data in
      guard let file = try? SafetensorsFile(data: data, path: "fuzz.safetensors") else { return }
      for info in file.tensors.prefix(8) where info.count <= 1 << 20 {
        _ = try? file.floats(info.name)
        _ = try? file.ints(info.name)
      }
    }),
    ("npy", ".npy header and conversions (Tensor/NPY.swift)", { data in
      guard let array = try? NPYArray.parse(data, path: "fuzz.npy"), array.count <= 1 << 20 else { return }
      _ = array.floats(); _ = array.ints()
    }),
    ("pickle", "Dassl few-shot split pickle (Data/DasslPickle.swift)", { data in
      _ = try? DasslPickle.readSplits(write(data, "split.pkl"))
    }),
    ("manifest", "CSV manifest with labels (Data/Manifest.swift)", { data in
      _ = try? Manifest.load(write(data, "manifest.csv"), checkFiles: false)
    }),
    ("split-json", "CoOp split JSON (Data/CoOp.swift)", { data in
      _ = write(data, "coop/oxford_pets/split_zhou_OxfordPets.json")
      _ = try? DatasetSpec.load("coop:\(scratch)/coop:oxford_pets", options: DatasetOptions(checkFiles: false))
    }),
    ("yaml-config", "training config YAML and validation (Training/TrainConfig.swift)", { data in
      var config = TrainConfig()
      guard (try? config.merge(yaml: String(decoding: data, as: UTF8.self), source: "fuzz.yaml")) != nil else { return }
      _ = try? config.validate(ranks: 2)
    }),
    ("sweep-spec", "sweep spec YAML and its expansion (Training/SweepSpec.swift)", { data in
      guard let spec = try? SweepSpec.parse(yaml: String(decoding: data, as: UTF8.self)) else { return }
      _ = spec.configurations().map(\.runName)
    }),
    ("state-json", "checkpoint state.json (Training/Checkpoint.swift)", { data in
      let directory = scratch + "/checkpoints/step_00000001"
      _ = write(data, "checkpoints/step_00000001/state.json")
      _ = try? Checkpointer(directory: scratch + "/checkpoints", keepLast: 2).verify(directory)
    }),
    ("image", "PNG/JPEG decode through the C helpers, then preprocessing (Imaging/Image.swift, CSupport/image.c)", { data in
      guard let image = try? ImageDecoder.decode(data: data, name: "fuzz") else { return }
      var pixels = [Float](repeating: 0, count: 3 * 32 * 32)
      pixels.withUnsafeMutableBufferPointer { CLIPPreprocessor(size: 32)(image, into: $0.baseAddress!) }
    }),
    ("tokenizer", "text cleaning and BPE (CLIP/Tokenizer.swift)", { data in
      _ = tokenizer?.tokenize([String(decoding: data, as: UTF8.self)], contextLength: 77)
    }),
    ("metrics", "metrics.jsonl through the report page (Training/ReportData.swift, ReportChart.swift)", { data in
      _ = write(data, "run/metrics.jsonl")
      guard let run = try? ReportRun.load(path: scratch + "/run") else { return }
      _ = ReportPage.run(run)
    }),
    ("canary", "crashes on input starting CANARY: proves a crash fails the run (launch/tests/fuzz.sh)", { data in
      if data.starts(with: Array("CANARY".utf8)) { fatalError("canary input: the fuzz driver must report this crash") }
    }),
  ]

  static func named(_ name: String) -> ((Data) -> Void)? { all.first { $0.name == name }?.run }
}

/// libFuzzer's entry point, used when built with -sanitize=fuzzer (launch/fuzz/libfuzzer.sh); the target is
/// chosen by $RADA_FUZZ_TARGET.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
  let target = ProcessInfo.processInfo.environment["RADA_FUZZ_TARGET"] ?? ""
  guard let run = FuzzTargets.named(target) else {
    fatalError("set RADA_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: ", "))")
  }
  run(Data(bytes: bytes, count: count))
  return 0
}
