// `rada create-model`: writes a randomly initialised CLIP (OpenAI-style init) for tests, benchmarks and as the
// starting point of `rada pretrain`. Presets name the architectures used in this repo.
import ArgumentParser
import CLIP

struct CreateModel: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "create-model",
    abstract: "Write a randomly initialised CLIP model (.safetensors, our open_clip names).",
    discussion: """
      Presets: tiny (32 px, patch 8, width 32, 1 layer; tests), demo (32 px, patch 8, width 64, 2 layers; the demo),
      small (64 px, patch 8, width 256, 6 layers; text context 32; the benchmark's small config),
      vit-b-32, vit-b-16, vit-l-14 (OpenAI shapes, random weights).
      """)

  @Option(help: "tiny, demo, small, vit-b-32, vit-b-16 or vit-l-14.") var preset = "tiny"
  @Option(help: "Output .safetensors file.") var out: String
  @Option(help: "Seed.") var seed = 1
  @Option(help: "gelu or quick_gelu.") var activation = "quick_gelu"

  static func config(preset: String, activation: CLIPActivation) -> CLIPConfig? {
    var c: CLIPConfig
    switch preset {
    case "tiny":
      c = CLIPConfig(embedDim: 32, vision: CLIPVisionConfig(width: 32, layers: 1, heads: 2, patchSize: 8, imageSize: 32),
                     text: CLIPTextConfig(width: 32, layers: 1, heads: 2, contextLength: 16))
    case "demo":
      c = CLIPConfig(embedDim: 64, vision: CLIPVisionConfig(width: 64, layers: 2, heads: 4, patchSize: 8, imageSize: 32),
                     text: CLIPTextConfig(width: 64, layers: 2, heads: 4, contextLength: 16))
    case "small":
      c = CLIPConfig(embedDim: 256, vision: CLIPVisionConfig(width: 256, layers: 6, heads: 4, patchSize: 8, imageSize: 64),
                     text: CLIPTextConfig(width: 256, layers: 6, heads: 4, contextLength: 32))
    case "vit-b-32": c = .vitB32
    case "vit-b-16": c = .vitB16
    case "vit-l-14": c = .vitL14
    default: return nil
    }
    c.activation = activation
    return c
  }

  func validate() throws {
    guard seed >= 0 else { throw ValidationError("--seed must be >= 0 (got \(seed)).") }
  }

  func run() throws {
    guard let act = CLIPActivation(rawValue: activation) else {
      throw ValidationError("--activation must be gelu or quick_gelu (got \(activation)).")
    }
    guard let config = Self.config(preset: preset, activation: act) else {
      throw ValidationError("unknown --preset \(preset); use tiny, demo, small, vit-b-32, vit-b-16 or vit-l-14.")
    }
    let model = CLIPModel.random(config: config, seed: UInt64(seed))
    try model.save(path: out)
    print("rada create-model: \(preset) (\(model.table.totalCount) parameters) -> \(out)")
  }
}
