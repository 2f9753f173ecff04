// `rada convert-model`: reads a CLIP in any supported layout (HF folder, open_clip folder, .safetensors with
// OpenAI/open_clip names) and writes it as one .safetensors in our names with the architecture in the metadata,
// in F32 or F16 (half the size; how the demo model is shipped).
import ArgumentParser
import CLIP
import Tensor

struct ConvertModel: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "convert-model",
    abstract: "Rewrite a CLIP model as one .safetensors in rada's (open_clip) names, F32 or F16.",
    discussion: "Example: rada convert-model --model hf-clip/ --out clip.safetensors --f16")

  @Option(help: "Input model: HF folder, open_clip folder or .safetensors.") var model: String
  @Option(help: "Output .safetensors file.") var out: String
  @Flag(help: "Store F16 (values rounded to nearest half; read back as f32).") var f16 = false

  func run() throws {
    let clip = try CLIPModel.load(path: model)
    try clip.save(path: out, storage: f16 ? .f16 : .f32)
    print("rada convert-model: \(clip.table.totalCount) parameters -> \(out) (\(f16 ? "F16" : "F32"))")
  }
}
