// `rada synth`: writes the procedural vision-language dataset used by the demo (see Data/Synthetic.swift).
import ArgumentParser
import Data

struct Synth: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write the synthetic shapes-and-colours dataset (pretrain/train/test/shifted splits).",
    discussion: "Example: rada synth --out data/synth  (about 3000 PNGs of 32x32, a few seconds)")

  @Option(help: "Output folder.") var out: String
  @Option(help: "Image size in pixels.") var size = 32
  @Option(name: .customLong("pretrain-per-class"), help: "Captioned pretraining images per class.") var pretrainPerClass = 160
  @Option(name: .customLong("train-per-class"), help: "Few-shot pool images per class.") var trainPerClass = 16
  @Option(name: .customLong("test-per-class"), help: "Test images per class (clean and shifted each).") var testPerClass = 24
  @Option(help: "Seed.") var seed = 1

  func validate() throws {
    guard size >= 16 && size <= 512 else { throw ValidationError("--size must be between 16 and 512 (got \(size)).") }
    guard pretrainPerClass >= 0, trainPerClass >= 1, testPerClass >= 1 else {
      throw ValidationError("per-class counts must be positive (pretrain may be 0).")
    }
    guard max(pretrainPerClass, trainPerClass, testPerClass) <= 100_000 else {
      throw ValidationError("per-class counts must be at most 100000 (a synthetic set of that size is already 10^6 files).")
    }
    guard seed >= 0 else { throw ValidationError("--seed must be >= 0 (got \(seed)).") }
  }

  func run() throws {
    var spec = SyntheticSpec()
    spec.size = size; spec.pretrainPerClass = pretrainPerClass; spec.trainPerClass = trainPerClass
    spec.testPerClass = testPerClass; spec.shiftedPerClass = testPerClass; spec.seed = seed
    let count = try Synthetic.generate(spec, into: out)
    print("rada synth: wrote \(count) images of \(spec.classNames.count) classes to \(out)")
  }
}
