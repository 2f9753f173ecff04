// A CLIP model: its config, the parameter table (open_clip / OpenAI names are ours) and one flat parameter
// buffer, plus the two towers that read it. Matches open_clip `CLIP` (model.py): encode_image, encode_text,
// logit_scale in log space. Gradients live in a caller-owned buffer with the same layout (`table`).
// Shape letters: N images or texts, C width, L layers, P patches + 1, T tokens, V vocab, M MLP width,
// D joint embedding dim.
import Foundation
import Kernels
import Tensor

public final class CLIPModel {
  public let config: CLIPConfig
  public let table: ParameterTable
  /// All parameters, laid out by `table`.
  public private(set) var parameters: FloatBuffer
  public let vision: VisionTower
  public let text: TextTower
  let logitScaleOffset: Int

  /// A model with all parameters zero (fill them by loading or `initializeRandomly`).
  public init(config: CLIPConfig) {
    let problems = config.problems
    precondition(problems.isEmpty, "CLIPModel: invalid config: \(problems.joined(separator: "; "))")
    self.config = config
    table = Self.parameterTable(config)
    parameters = FloatBuffer(count: table.totalCount)
    vision = VisionTower(config: config, table: table)
    text = TextTower(config: config, table: table)
    logitScaleOffset = table["logit_scale"]!.offset
  }

  /// Moves the parameters into `storage` (same count; typically a view into a trainer's buffer that also holds
  /// other tensors), so the trainer updates the model in place instead of keeping a second copy. The current
  /// values are copied over first; the previous buffer is released once nothing else holds it.
  public func moveParameters(into storage: FloatBuffer) {
    precondition(storage.count == parameters.count,
                 "CLIPModel.moveParameters: \(storage.count) floats for \(parameters.count) parameters")
    if storage.pointer != parameters.pointer { storage.pointer.update(from: parameters.readOnly, count: parameters.count) }
    parameters = storage
  }

  /// Offset of each block's first tensor (its ln_1.weight) in `table`, vision and text, in layer order: when
  /// backward reports block l done (`afterLayer(l)`), every gradient at or after that offset of its tower is
  /// complete. `table` is `parameterTable(config)` or a table that starts with it.
  public static func blockStartOffsets(_ config: CLIPConfig, in table: ParameterTable) -> (vision: [Int], text: [Int]) {
    ((0..<config.vision.layers).map { table["visual.transformer.resblocks.\($0).ln_1.weight"]!.offset },
     (0..<config.text.layers).map { table["transformer.resblocks.\($0).ln_1.weight"]!.offset })
  }

  /// Our tensor names and shapes, in forward order (vision, text, logit_scale).
  public static func parameterTable(_ config: CLIPConfig) -> ParameterTable {
    var table = ParameterTable()
    func addBlocks(_ prefix: String, layers: Int, width c: Int, mlp m: Int) {
      for l in 0..<layers {
        let p = "\(prefix)\(l)."
        table.add(p + "ln_1.weight", [c]); table.add(p + "ln_1.bias", [c])
        table.add(p + "attn.in_proj_weight", [3 * c, c]); table.add(p + "attn.in_proj_bias", [3 * c])
        table.add(p + "attn.out_proj.weight", [c, c]); table.add(p + "attn.out_proj.bias", [c])
        table.add(p + "ln_2.weight", [c]); table.add(p + "ln_2.bias", [c])
        table.add(p + "mlp.c_fc.weight", [m, c]); table.add(p + "mlp.c_fc.bias", [m])
        table.add(p + "mlp.c_proj.weight", [c, m]); table.add(p + "mlp.c_proj.bias", [c])
      }
    }
    let v = config.vision, t = config.text, e = config.embedDim
    table.add("visual.conv1.weight", [v.width, 3, v.patchSize, v.patchSize])
    table.add("visual.class_embedding", [v.width])
    table.add("visual.positional_embedding", [v.tokens, v.width])
    table.add("visual.ln_pre.weight", [v.width]); table.add("visual.ln_pre.bias", [v.width])
    addBlocks("visual.transformer.resblocks.", layers: v.layers, width: v.width, mlp: v.mlpWidth)
    table.add("visual.ln_post.weight", [v.width]); table.add("visual.ln_post.bias", [v.width])
    table.add("visual.proj", [v.width, e])
    table.add("token_embedding.weight", [t.vocabSize, t.width])
    table.add("positional_embedding", [t.contextLength, t.width])
    addBlocks("transformer.resblocks.", layers: t.layers, width: t.width, mlp: t.mlpWidth)
    table.add("ln_final.weight", [t.width]); table.add("ln_final.bias", [t.width])
    table.add("text_projection", [t.width, e])
    table.add("logit_scale", [])
    return table
  }

  /// Pointer to tensor `name` in the parameter buffer (nil if no such tensor).
  public func parameter(_ name: String) -> MutableFloats? {
    table[name].map { parameters.pointer + $0.offset }
  }

  /// log of the temperature multiplier; logits = exp(logitScale) · cosine similarities.
  public var logitScale: Float {
    get { parameters[logitScaleOffset] }
    set { parameters[logitScaleOffset] = newValue }
  }
  /// Where logit_scale's gradient sits in a gradient buffer laid out by `table`.
  public var logitScaleIndex: Int { logitScaleOffset }

  /// OpenAI CLIP's initialisation (CLIP.initialize_parameters in open_clip's model.py): embeddings
  /// N(0, 0.02) / N(0, 0.01), attention in-proj N(0, C^-½), out-proj and c_proj N(0, C^-½·(2L)^-½),
  /// c_fc N(0, (2C)^-½), projections N(0, C^-½), class/positional embeddings of the ViT N(0, C^-½),
  /// conv1 N(0, (3·patchSize²)^-½), LayerNorm 1/0, biases 0, logit_scale log(1/0.07). Same seed, same model.
  public func initializeRandomly(seed: UInt64) {
    var rng = SeededRNG(seed: seed)
    parameters.zero()
    func fill(_ name: String, std: Double) {
      guard let entry = table[name] else { preconditionFailure("no parameter \(name)") }
      let p = parameters.pointer + entry.offset
      for i in 0..<entry.count { p[i] = Float(rng.normal() * std) }
    }
    func ones(_ name: String) {
      let entry = table[name]!
      (parameters.pointer + entry.offset).update(repeating: 1, count: entry.count)
    }
    func blocks(_ prefix: String, layers: Int, width: Int) {
      let c = Double(width)
      let attentionStd = 1 / c.squareRoot(), projStd = attentionStd / (2 * Double(layers)).squareRoot()
      let fcStd = 1 / (2 * c).squareRoot()
      for l in 0..<layers {
        let p = "\(prefix)\(l)."
        ones(p + "ln_1.weight"); ones(p + "ln_2.weight")
        fill(p + "attn.in_proj_weight", std: attentionStd)
        fill(p + "attn.out_proj.weight", std: projStd)
        fill(p + "mlp.c_fc.weight", std: fcStd)
        fill(p + "mlp.c_proj.weight", std: projStd)
      }
    }
    let v = config.vision, t = config.text
    let visionScale = 1 / Double(v.width).squareRoot()
    fill("visual.conv1.weight", std: 1 / Double(3 * v.patchSize * v.patchSize).squareRoot())
    fill("visual.class_embedding", std: visionScale)
    fill("visual.positional_embedding", std: visionScale)
    ones("visual.ln_pre.weight")
    blocks("visual.transformer.resblocks.", layers: v.layers, width: v.width)
    ones("visual.ln_post.weight")
    fill("visual.proj", std: visionScale)
    fill("token_embedding.weight", std: 0.02)
    fill("positional_embedding", std: 0.01)
    blocks("transformer.resblocks.", layers: t.layers, width: t.width)
    ones("ln_final.weight")
    fill("text_projection", std: 1 / Double(t.width).squareRoot())
    logitScale = Float(log(1 / 0.07))
  }

  /// A randomly initialised model (tiny test models, the demo's small model).
  public static func random(config: CLIPConfig, seed: UInt64) -> CLIPModel {
    let model = CLIPModel(config: config)
    model.initializeRandomly(seed: seed)
    return model
  }

  /// Metadata key holding the config as JSON in the safetensors files we write.
  public static let configMetadataKey = "rada.clip_config"

  /// Writes every parameter under our (open_clip) names, F32, with the config in the metadata, atomically.
  public func save(path: String, storage: SafetensorsWriter.StorageType = .f32) throws {
    let tensors = table.entries.map {
      SafetensorsWriter.Tensor(name: $0.name, shape: $0.shape, values: Floats(parameters.pointer + $0.offset))
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let configJSON = String(decoding: try encoder.encode(config), as: UTF8.self)
    try SafetensorsWriter.write(tensors, metadata: ["format": "pt", Self.configMetadataKey: configJSON], storage: storage,
                                to: path)
  }

  // MARK: Convenience for commands and tests (allocate per call; training uses the towers with its own arenas).

  /// Embeddings (N, D) of pixels (N, 3, imageSize, imageSize), N = count, in chunks of `chunk` images, forward only.
  public func encodeImages(pixels: [Float], count: Int, normalize: Bool = true, chunk: Int = 32) -> [Float] {
    let perImage = 3 * config.vision.imageSize * config.vision.imageSize
    precondition(pixels.count == count * perImage, "encodeImages: \(pixels.count) floats for \(count) images of \(perImage)")
    let activations = VisionActivations(config: config, batch: min(max(count, 1), chunk), saving: false)
    var out = [Float](repeating: 0, count: count * config.embedDim)
    pixels.withUnsafeBufferPointer { px in
      out.withUnsafeMutableBufferPointer { o in
        encodeImages(pixels: px.baseAddress!, count: count, normalize: normalize, into: o.baseAddress!,
                     activations: activations)
      }
    }
    return out
  }

  /// The same into caller-owned buffers, for a loop that encodes every step (nothing allocated): pixels
  /// (N, 3, S, S), out (N, D); images go through the tower in chunks of `activations.batch`.
  public func encodeImages(pixels: Floats, count: Int, normalize: Bool, into out: MutableFloats,
                           activations: VisionActivations) {
    let s = config.vision.imageSize, e = config.embedDim, perImage = 3 * s * s
    var start = 0
    while start < count {
      let n = min(activations.batch, count - start)
      vision.forward(pixels: pixels + start * perImage, batch: n, parameters: parameters.readOnly, activations: activations)
      let source = normalize ? activations.embeds : activations.features
      (out + start * e).update(from: source.pointer, count: n * e)
      start += n
    }
  }

  /// Embeddings (N, D) of token rows (N, T), N = count, in chunks, forward only.
  public func encodeTexts(ids: [Int32], count: Int, normalize: Bool = true, chunk: Int = 64) -> [Float] {
    let tokens = config.text.contextLength, e = config.embedDim
    precondition(ids.count == count * tokens, "encodeTexts: \(ids.count) ids for \(count) rows of \(tokens)")
    let activations = TextActivations(config: config, batch: min(max(count, 1), chunk), saving: false)
    var out = [Float](repeating: 0, count: count * e)
    ids.withUnsafeBufferPointer { idp in
      var start = 0
      while start < count {
        let n = min(chunk, count - start)
        text.forward(ids: idp.baseAddress! + start * tokens, batch: n, parameters: parameters.readOnly,
                     activations: activations)
        let source = normalize ? activations.embeds : activations.features
        for i in 0..<(n * e) { out[start * e + i] = source[i] }
        start += n
      }
    }
    return out
  }
}
