// Class text features for RAda and zero-shot CLIP: every class name (underscores as spaces) is put into each
// prompt template ("a photo of a {}."), encoded by the text tower and L2-normalised; with several templates the
// normalised embeddings are averaged and normalised again (CLIP's prompt ensembling). t (K, D): K classes, D joint embedding dim.
import CLIP
import Tensor

public enum ClassPrompts {
  public static func prompts(classNames: [String], template: String) -> [String] {
    classNames.map { template.replacingOccurrences(of: "{}", with: $0.replacingOccurrences(of: "_", with: " ")) }
  }

  /// t (K, D), rows L2-normalised.
  public static func features(model: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String],
                              templates: [String]) -> FloatBuffer {
    let k = classNames.count, e = model.config.embedDim, context = model.config.text.contextLength
    let out = FloatBuffer(count: k * e)
    for template in templates {
      if StopSignal.skipsRemainingWork() { break }  // a stop during a mid-run evaluation (TrainLoop discards it)
      let rows = tokenizer.tokenize(prompts(classNames: classNames, template: template), contextLength: context)
      let embeds = model.encodeTexts(ids: rows.flatMap { $0 }, count: k, normalize: true)
      for i in 0..<(k * e) { out[i] += embeds[i] }
    }
    normalizeRows(out.pointer, rows: k, dim: e)
    return out
  }
}
