// `rada create-model`: writes a randomly initialised CLIP (OpenAI-style init) for tests, benchmarks and as the
// starting point of `rada pretrain`. Presets name the architectures used in this repo.
import ArgumentParser
import CLIP

struct CreateModel: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "create-model",
    abstract: "Write a randomly initialised CLIP model (.safetensors, our open_clip names).",
    discussion: """
      Presets (CLIPConfig.presets): tiny (32 px, patch 8, width 32, 1 layer; tests), demo (32 px, patch 8, width 64,
      2 layers; the demo), small (64 px, patch 8, width 256, 6 layers; text context 32; the benchmark's small
      config), vit-b-32, vit-b-16, vit-l-14 (OpenAI shapes, random weights).
      """)

  @Option(help: "tiny, demo, small, vit-b-32, vit-b-16 or vit-l-14.") var preset = "tiny"
  @Option(help: "Output .safetensors file.") var out: String
  @Option(help: "Seed.") var seed = 1
  @Option(help: "gelu or quick_gelu.") var activation = "quick_gelu"

  func validate() throws {
    guard seed >= 0 else { throw ValidationError("--seed must be >= 0 (got \(seed)).") }
  }

  func run() throws {
    guard let act = CLIPActivation(rawValue: activation) else {
      throw ValidationError("--activation must be gelu or quick_gelu (got \(activation)).")
    }
    guard let config = CLIPConfig.preset(preset, activation: act) else {
      throw ValidationError("unknown --preset \(preset); use \(CLIPConfig.presetNames).")
    }
    let model = CLIPModel.random(config: config, seed: UInt64(seed))
    try model.save(path: out)
    print("rada create-model: \(preset) (\(model.table.totalCount) parameters) -> \(out)")
  }
}
