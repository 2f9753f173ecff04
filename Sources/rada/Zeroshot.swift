// `rada zeroshot`: zero-shot CLIP classification of a few images: softmax over s·f·tᵀ with the class prompts
// (CLIP's prompt ensembling when several templates are given), top-5 classes with probabilities per image.
// One process; no MPI.
import ArgumentParser
import CLIP
import Foundation
import Imaging
import Tensor
import Training

struct Zeroshot: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Zero-shot CLIP: the top-5 classes with probabilities for each image.",
    discussion: """
      Example: rada zeroshot --model clip/ --classes cat,dog,car --template "a photo of a {}." cat.jpg dog.png
      --classes is a comma-separated list, or a file with one class name per line.
      """)

  @Option(help: "CLIP weights: HF folder, open_clip folder or .safetensors.") var model: String
  @Option(help: "Class names: comma-separated, or a file with one per line.") var classes: String
  @Option(help: "Prompt template with {} for the class name (repeatable; averaged).") var template: [String] = []
  @Option(name: .customLong("logit-scale"), help: "Fixed logit scale s (linear, e.g. 100); default: the model's.") var logitScale: Double?
  @OptionGroup var runtime: RuntimeOptions
  @Argument(help: "Image files (JPEG/PNG).") var images: [String]

  func validate() throws {
    if images.isEmpty { throw ValidationError("give at least one image file.") }
    if let logitScale, !(logitScale > 0 && logitScale <= 1e6) {
      throw ValidationError("--logit-scale must be in (0, 1e6] (got \(logitScale)); CLIP's is 100.")
    }
    for t in template where !t.contains("{}") {
      throw ValidationError("--template '\(t)' has no {} where the class name goes.")
    }
  }

  func classNames() throws -> [String] {
    if FileManager.default.fileExists(atPath: classes) { return try readClassNames(file: classes) }
    let names = classes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !names.isEmpty else { throw ValidationError("--classes holds no class names (got '\(classes)').") }
    return names
  }

  func run() throws {
    let names = try classNames()
    try Runtime.start(requestedThreads: runtime.threads)
    let clip = try CLIPModel.load(path: model)
    let templates = template.isEmpty ? ["a photo of a {}."] : template
    let k = names.count, e = clip.config.embedDim, s = clip.config.vision.imageSize, perImage = 3 * s * s
    let text = ClassPrompts.features(model: clip, tokenizer: try CLIPTokenizer(), classNames: names, templates: templates)
    let preprocess = CLIPPreprocessor(size: s)
    var pixels = [Float](repeating: 0, count: images.count * perImage)
    try pixels.withUnsafeMutableBufferPointer { out in
      for (i, path) in images.enumerated() { preprocess(try ImageDecoder.decode(path: path), into: out.baseAddress! + i * perImage) }
    }
    let features = clip.encodeImages(pixels: pixels, count: images.count, normalize: true)
    let scale = Float(logitScale ?? exp(Double(clip.logitScale)))
    let logits = FloatBuffer(count: max(1, images.count * k))
    let f = FloatBuffer(features)
    withExtendedLifetime((f, text)) {
      zeroShotLogits(features: f.readOnly, count: images.count, classFeatures: text.readOnly, classes: k, dim: e,
                     scale: scale, into: logits.pointer)
    }
    for (i, path) in images.enumerated() {
      let row = (0..<k).map { Double(logits[i * k + $0]) }
      let best = row.max()!
      let exps = row.map { exp($0 - best) }
      let total = exps.reduce(0, +)
      let ranked = (0..<k).sorted { exps[$0] > exps[$1] || (exps[$0] == exps[$1] && $0 < $1) }
      print(path)
      for j in ranked.prefix(5) {
        print(String(format: "  %6.2f%%  ", 100 * exps[j] / total) + names[j])
      }
    }
  }
}
