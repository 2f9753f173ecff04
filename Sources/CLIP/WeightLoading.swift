// Loading CLIP weights into our layout. `--model PATH` may be an HF folder (config.json + model.safetensors,
// transformers CLIPModel names), an open_clip folder (open_clip_config.json + open_clip_model.safetensors, our
// names) or a bare .safetensors with OpenAI/open_clip names (a file rada wrote carries its config in the metadata;
// otherwise the architecture comes from the shapes: head width 64 and QuickGELU, as OpenAI's weights).
// HF names map onto ours in ONE table (`CLIPWeightNames`): q/k/v_proj packed into in_proj, HF's (D, C)
// projections transposed into OpenAI's (C, D) `visual.proj` / `text_projection`. Letters: C width, D joint dim.
import Foundation
import Tensor

public enum CLIPWeightError: Error, CustomStringConvertible {
  case notFound(path: String)
  case unrecognizedFolder(path: String, contents: [String])
  case badConfig(path: String, key: String, reason: String)
  case cannotInferArchitecture(path: String, reason: String)
  case missingTensor(file: String, tensor: String, expectedShape: [Int])
  case unexpectedTensor(file: String, tensor: String, shape: [Int])
  case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
  case nonFinite(file: String, tensor: String, index: Int, value: Float)

  public var description: String {
    switch self {
    case let .notFound(path):
      return "model path \(path) does not exist. Pass an HF folder, an open_clip folder or a .safetensors file."
    case let .unrecognizedFolder(path, contents):
      return "\(path) holds neither config.json + model.safetensors (HF) nor open_clip_config.json + "
        + "open_clip_model.safetensors (open_clip); found: \(contents.prefix(12).joined(separator: ", ")). "
        + "Download the model with its config, or pass the .safetensors file itself."
    case let .badConfig(path, key, reason):
      return "\(path): '\(key)' \(reason). Fix the config file or let rada infer the architecture from the weights."
    case let .cannotInferArchitecture(path, reason):
      return "cannot infer the CLIP architecture of \(path): \(reason). "
        + "Pass the folder with its config.json, or set the head width (--head-width)."
    case let .missingTensor(file, tensor, shape):
      return "\(file) lacks tensor '\(tensor)' (expected shape \(shapeString(shape))). "
        + "The checkpoint is incomplete or of another architecture; check it was saved from a CLIP model."
    case let .unexpectedTensor(file, tensor, shape):
      return "\(file) has tensor '\(tensor)' \(shapeString(shape)) that this CLIP architecture does not use. "
        + "Check the model config (layers, pooling) matches the checkpoint."
    case let .shapeMismatch(file, tensor, expected, found):
      return "tensor '\(tensor)' in \(file) has shape \(shapeString(found)), expected \(shapeString(expected)). "
        + "The checkpoint and its config disagree; fix the config or pass matching weights."
    case let .nonFinite(file, tensor, index, value):
      return "tensor '\(tensor)' in \(file) holds \(value) at element \(index). The weights are damaged (or were saved "
        + "from a diverged run); load an earlier checkpoint or fetch the file again."
    }
  }
}

/// Settings for weights that do not say everything about their architecture.
public struct CLIPLoadOptions: Equatable {
  /// Dh used to derive head counts when no config gives them (64 for every OpenAI CLIP).
  public var headWidth: Int?
  /// Overrides the activation from the config (OpenAI names without config: QuickGELU).
  public var activation: CLIPActivation?
  public init(headWidth: Int? = nil, activation: CLIPActivation? = nil) {
    self.headWidth = headWidth; self.activation = activation
  }
}

/// The naming schemes a checkpoint can use.
public enum CLIPNaming: Equatable { case openCLIP, huggingFace }

/// One tensor as a checkpoint stores it, and where it goes in our layout.
public struct SourceTensor: Equatable {
  public enum Transform: Equatable {
    case copy
    /// (D, C) in the file -> (C, D) ours
    case transpose
    /// rows part·C ..< (part+1)·C of our packed in_proj (3C, ·)
    case packedPart(Int)
  }
  public let name: String
  public let shape: [Int]
  public let target: String
  public let transform: Transform
}

public enum CLIPWeightNames {
  /// Top-level tensors: (ours, HF name, transform).
  static let topLevel: [(String, String, SourceTensor.Transform)] = [
    ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight", .copy),
    ("visual.class_embedding", "vision_model.embeddings.class_embedding", .copy),
    ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight", .copy),
    ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight", .copy),
    ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias", .copy),
    ("visual.ln_post.weight", "vision_model.post_layernorm.weight", .copy),
    ("visual.ln_post.bias", "vision_model.post_layernorm.bias", .copy),
    ("visual.proj", "visual_projection.weight", .transpose),
    ("token_embedding.weight", "text_model.embeddings.token_embedding.weight", .copy),
    ("positional_embedding", "text_model.embeddings.position_embedding.weight", .copy),
    ("ln_final.weight", "text_model.final_layer_norm.weight", .copy),
    ("ln_final.bias", "text_model.final_layer_norm.bias", .copy),
    ("text_projection", "text_projection.weight", .transpose),
    ("logit_scale", "logit_scale", .copy),
  ]
  /// Block prefixes: (ours, HF).
  static let blockPrefixes: [(String, String)] = [
    ("visual.transformer.resblocks.", "vision_model.encoder.layers."),
    ("transformer.resblocks.", "text_model.encoder.layers."),
  ]
  /// Block tensors: (our suffix, HF suffixes, packed). A packed entry takes q, k, v in that order.
  static let blockTensors: [(String, [String])] = [
    ("ln_1.weight", ["layer_norm1.weight"]), ("ln_1.bias", ["layer_norm1.bias"]),
    ("attn.in_proj_weight", ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"]),
    ("attn.in_proj_bias", ["self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"]),
    ("attn.out_proj.weight", ["self_attn.out_proj.weight"]), ("attn.out_proj.bias", ["self_attn.out_proj.bias"]),
    ("ln_2.weight", ["layer_norm2.weight"]), ("ln_2.bias", ["layer_norm2.bias"]),
    ("mlp.c_fc.weight", ["mlp.fc1.weight"]), ("mlp.c_fc.bias", ["mlp.fc1.bias"]),
    ("mlp.c_proj.weight", ["mlp.fc2.weight"]), ("mlp.c_proj.bias", ["mlp.fc2.bias"]),
  ]
  /// Buffers some checkpoints carry that are not parameters (HF position_ids, open_clip attn_mask).
  static func isIgnorable(_ name: String) -> Bool {
    name.hasSuffix("position_ids") || name == "attn_mask" || name.hasSuffix(".attn_mask")
  }

  /// The HF source tensor(s) for one of our tensors.
  static func huggingFace(for entry: ParameterEntry) -> [SourceTensor] {
    if let (_, hf, transform) = topLevel.first(where: { $0.0 == entry.name }) {
      let shape = transform == .transpose ? entry.shape.reversed() : entry.shape
      return [SourceTensor(name: hf, shape: shape, target: entry.name, transform: transform)]
    }
    for (ours, hf) in blockPrefixes where entry.name.hasPrefix(ours) {
      let rest = entry.name.dropFirst(ours.count)
      guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { break }
      let suffix = String(rest[rest.index(after: dot)...])
      guard let (_, hfSuffixes) = blockTensors.first(where: { $0.0 == suffix }) else { break }
      let prefix = "\(hf)\(layer)."
      if hfSuffixes.count == 1 {
        return [SourceTensor(name: prefix + hfSuffixes[0], shape: entry.shape, target: entry.name, transform: .copy)]
      }
      var partShape = entry.shape
      partShape[0] /= 3
      return hfSuffixes.enumerated().map {
        SourceTensor(name: prefix + $0.element, shape: partShape, target: entry.name, transform: .packedPart($0.offset))
      }
    }
    preconditionFailure("CLIPWeightNames: no HF name for \(entry.name)")
  }

  /// Every tensor a checkpoint with this naming must hold for `config`, in our table's order.
  public static func sources(for config: CLIPConfig, naming: CLIPNaming) -> [SourceTensor] {
    let table = CLIPModel.parameterTable(config)
    switch naming {
    case .openCLIP:
      return table.entries.map { SourceTensor(name: $0.name, shape: $0.shape, target: $0.name, transform: .copy) }
    case .huggingFace:
      return table.entries.flatMap(huggingFace(for:))
    }
  }

  /// Copies `values` (laid out as `source.shape`) into our tensor in `parameters`.
  public static func store(_ values: Floats, as source: SourceTensor, into parameters: MutableFloats, table: ParameterTable) {
    let entry = table[source.target]!
    let destination = parameters + entry.offset
    switch source.transform {
    case .copy: destination.update(from: values, count: entry.count)
    case let .packedPart(part):
      let count = entry.count / 3
      (destination + part * count).update(from: values, count: count)
    case .transpose:
      let rows = entry.shape[0], cols = entry.shape[1]  // ours (C, D); source (D, C)
      for r in 0..<rows { for c in 0..<cols { destination[r * cols + c] = values[c * rows + r] } }
    }
  }

  /// Our tensor (from a parameter or gradient buffer) as the checkpoint would store it (tests, export).
  public static func extract(_ source: SourceTensor, from buffer: Floats, table: ParameterTable) -> [Float] {
    let entry = table[source.target]!
    let base = buffer + entry.offset
    switch source.transform {
    case .copy: return Array(UnsafeBufferPointer(start: base, count: entry.count))
    case let .packedPart(part):
      let count = entry.count / 3
      return Array(UnsafeBufferPointer(start: base + part * count, count: count))
    case .transpose:
      let rows = entry.shape[0], cols = entry.shape[1]
      var out = [Float](repeating: 0, count: entry.count)
      for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = base[r * cols + c] } }
      return out
    }
  }
}

/// Where a model's files are and how they are named.
public struct CLIPCheckpoint {
  public let weightsPath: String
  public let configPath: String?
  public let naming: CLIPNaming
  public let file: SafetensorsFile

  /// Resolves `--model PATH` (folder or file) and opens the weights.
  public init(path: String) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw CLIPWeightError.notFound(path: path)
    }
    var configPath: String?
    if isDirectory.boolValue {
      let folder = URL(fileURLWithPath: path)
      func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path) }
      if exists("open_clip_config.json") && exists("open_clip_model.safetensors") {
        weightsPath = folder.appendingPathComponent("open_clip_model.safetensors").path
        configPath = folder.appendingPathComponent("open_clip_config.json").path
      } else if exists("config.json") && exists("model.safetensors") {
        weightsPath = folder.appendingPathComponent("model.safetensors").path
        configPath = folder.appendingPathComponent("config.json").path
      } else {
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? []
        throw CLIPWeightError.unrecognizedFolder(path: path, contents: contents)
      }
    } else {
      weightsPath = path
    }
    self.configPath = configPath
    file = try SafetensorsFile(path: weightsPath)
    naming = file.names.contains { $0.hasPrefix("vision_model.") || $0.hasPrefix("text_model.") } ? .huggingFace : .openCLIP
  }

  // MARK: Architecture

  /// The architecture: from rada's metadata, else sizes from the weight shapes and the rest (heads,
  /// activation, eps, end-of-text id) from the config file; sizes the config states must agree.
  public func config(options: CLIPLoadOptions = CLIPLoadOptions()) throws -> CLIPConfig {
    var config: CLIPConfig
    if configPath == nil, let json = file.metadata[CLIPModel.configMetadataKey] {
      do { config = try JSONDecoder().decode(CLIPConfig.self, from: Data(json.utf8)) } catch {
        throw CLIPWeightError.badConfig(path: weightsPath, key: CLIPModel.configMetadataKey, reason: "is not a valid config (\(error))")
      }
    } else {
      config = try inferredFromShapes(headWidth: options.headWidth ?? 64)
      if let configPath {
        let json = try Self.readJSON(configPath)
        switch naming {
        case .huggingFace: try applyHuggingFaceConfig(json, to: &config, path: configPath, options: options)
        case .openCLIP: try applyOpenCLIPConfig(json, to: &config, path: configPath, options: options)
        }
      }
    }
    if let activation = options.activation { config.activation = activation }
    if let headWidth = options.headWidth {
      guard headWidth >= 1 && headWidth <= CLIPConfig.Limits.width else {
        throw CLIPWeightError.cannotInferArchitecture(path: weightsPath, reason: "head width \(headWidth) is not in 1...\(CLIPConfig.Limits.width)")
      }
      for (width, name) in [(config.vision.width, "vision"), (config.text.width, "text")] where width % headWidth != 0 {
        throw CLIPWeightError.cannotInferArchitecture(
          path: weightsPath, reason: "\(name) width \(width) is not a multiple of head width \(headWidth)")
      }
      config.vision.heads = config.vision.width / headWidth
      config.text.heads = config.text.width / headWidth
    }
    let problems = config.problems
    if !problems.isEmpty {
      throw CLIPWeightError.cannotInferArchitecture(path: weightsPath, reason: problems.joined(separator: "; "))
    }
    return config
  }

  private func shape(_ ours: String, _ hf: String) throws -> [Int] {
    let name = naming == .huggingFace ? hf : ours
    guard let info = file[name] else {
      throw CLIPWeightError.cannotInferArchitecture(path: weightsPath, reason: "tensor '\(name)' is missing")
    }
    return info.shape
  }

  /// Layers 0..<L present under `prefix` (one pass over the names; L stops at the first missing index).
  private func countLayers(_ ours: String, _ hf: String) -> Int {
    let prefix = naming == .huggingFace ? hf : ours
    var present = Set<Int>()
    for name in file.names where name.hasPrefix(prefix) {
      let rest = name.dropFirst(prefix.count)
      if let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0 { present.insert(layer) }
    }
    var layers = 0
    while present.contains(layers) { layers += 1 }
    return layers
  }

  private func inferredFromShapes(headWidth: Int) throws -> CLIPConfig {
    guard headWidth >= 1 else {
      throw CLIPWeightError.cannotInferArchitecture(path: weightsPath, reason: "head width \(headWidth) is not positive")
    }
    let conv = try shape("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight")
    let visionPositions = try shape("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight")
    let tokenTable = try shape("token_embedding.weight", "text_model.embeddings.token_embedding.weight")
    let textPositions = try shape("positional_embedding", "text_model.embeddings.position_embedding.weight")
    let projection = try shape("text_projection", "text_projection.weight")
    let visionFC = try shape("visual.transformer.resblocks.0.mlp.c_fc.weight", "vision_model.encoder.layers.0.mlp.fc1.weight")
    let textFC = try shape("transformer.resblocks.0.mlp.c_fc.weight", "text_model.encoder.layers.0.mlp.fc1.weight")
    guard conv.count == 4, visionPositions.count == 2, tokenTable.count == 2, textPositions.count == 2,
          projection.count == 2, visionFC.count == 2, textFC.count == 2 else {
      throw CLIPWeightError.cannotInferArchitecture(path: weightsPath, reason: "embedding or projection tensors have unexpected ranks")
    }
    // Bounded before any arithmetic: a shape with a zero dimension can state any other size.
    let maximumPositions = CLIPConfig.Limits.imageSize * CLIPConfig.Limits.imageSize + 1
    guard visionPositions[0] >= 2, visionPositions[0] <= maximumPositions,
          conv[3] >= 1, conv[3] <= CLIPConfig.Limits.imageSize else {
      throw CLIPWeightError.cannotInferArchitecture(
        path: weightsPath, reason: "vision positions \(visionPositions[0]) / patch size \(conv[3]) are out of range")
    }
    let grid = Int(Double(visionPositions[0] - 1).squareRoot().rounded())
    guard grid * grid + 1 == visionPositions[0] else {
      throw CLIPWeightError.cannotInferArchitecture(
        path: weightsPath, reason: "\(visionPositions[0]) vision positions is not a square grid plus a class token")
    }
    let embedDim = naming == .huggingFace ? projection[0] : projection[1]
    let visionWidth = conv[0], textWidth = tokenTable[1]
    let vision = CLIPVisionConfig(width: visionWidth, layers: countLayers("visual.transformer.resblocks.", "vision_model.encoder.layers."),
                                  heads: max(1, visionWidth / headWidth), mlpWidth: visionFC[0], patchSize: conv[3],
                                  imageSize: grid * conv[3])
    let text = CLIPTextConfig(width: textWidth, layers: countLayers("transformer.resblocks.", "text_model.encoder.layers."),
                              heads: max(1, textWidth / headWidth), mlpWidth: textFC[0], contextLength: textPositions[0],
                              vocabSize: tokenTable[0])
    // Without a config file the head count comes from the head width alone (a config sets it later).
    if configPath == nil && (visionWidth % headWidth != 0 || textWidth % headWidth != 0) {
      throw CLIPWeightError.cannotInferArchitecture(
        path: weightsPath, reason: "widths \(visionWidth) (vision) / \(textWidth) (text) are not multiples of head width \(headWidth)")
    }
    return CLIPConfig(embedDim: embedDim, vision: vision, text: text, activation: .quickGELU)
  }

  static func readJSON(_ path: String) throws -> [String: Any] {
    let data: Data
    do { data = try BoundedFile.read(path, limit: BoundedFile.configLimit, what: "a model config") } catch {
      throw CLIPWeightError.badConfig(path: path, key: "(file)", reason: "cannot be read (\(error))")
    }
    guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw CLIPWeightError.badConfig(path: path, key: "(file)", reason: "is not a JSON object")
    }
    return object
  }

  /// A numeric config value, checked against what the weights say when both exist.
  private static func number(_ dict: [String: Any], _ key: String, path: String, section: String) throws -> Double? {
    guard let value = dict[key], !(value is NSNull) else { return nil }
    if let n = value as? NSNumber, !Checked.isJSONBoolean(n) { return n.doubleValue }
    if let n = value as? Double { return n }
    if let n = value as? Int { return Double(n) }
    throw CLIPWeightError.badConfig(path: path, key: section + key, reason: "is not a number")
  }

  /// An integer config value in `range` (nil when absent); 1e300, NaN-like strings, 2.5 and negatives are refused.
  private static func integer(_ dict: [String: Any], _ key: String, path: String, section: String,
                              in range: ClosedRange<Int> = 1...CLIPConfig.Limits.vocabSize) throws -> Int? {
    guard let value = dict[key], !(value is NSNull) else { return nil }
    guard let int = Checked.integer(json: value, in: range) else {
      throw CLIPWeightError.badConfig(path: path, key: section + key,
                                      reason: "is \(String(describing: value).prefix(40)), not an integer in \(range.lowerBound)...\(range.upperBound)")
    }
    return int
  }

  private static func agree(_ dict: [String: Any], _ key: String, _ inferred: Int, path: String, section: String) throws {
    if let stated = try integer(dict, key, path: path, section: section), stated != inferred {
      throw CLIPWeightError.badConfig(path: path, key: section + key,
                                      reason: "says \(stated) but the weights have \(inferred)")
    }
  }

  private static func activation(_ value: Any?, path: String, key: String) throws -> CLIPActivation? {
    guard let value else { return nil }
    guard let name = value as? String else { throw CLIPWeightError.badConfig(path: path, key: key, reason: "is not a string") }
    switch name {
    case "quick_gelu": return .quickGELU
    case "gelu": return .gelu
    default: throw CLIPWeightError.badConfig(path: path, key: key, reason: "is '\(name)'; rada supports quick_gelu and gelu")
    }
  }

  private func applyHuggingFaceConfig(_ json: [String: Any], to config: inout CLIPConfig, path: String,
                                      options: CLIPLoadOptions) throws {
    let visionJSON = json["vision_config"] as? [String: Any] ?? [:]
    let textJSON = json["text_config"] as? [String: Any] ?? [:]
    try Self.agree(json, "projection_dim", config.embedDim, path: path, section: "")
    try Self.agree(visionJSON, "hidden_size", config.vision.width, path: path, section: "vision_config.")
    try Self.agree(visionJSON, "num_hidden_layers", config.vision.layers, path: path, section: "vision_config.")
    try Self.agree(visionJSON, "intermediate_size", config.vision.mlpWidth, path: path, section: "vision_config.")
    try Self.agree(visionJSON, "patch_size", config.vision.patchSize, path: path, section: "vision_config.")
    try Self.agree(visionJSON, "image_size", config.vision.imageSize, path: path, section: "vision_config.")
    try Self.agree(textJSON, "hidden_size", config.text.width, path: path, section: "text_config.")
    try Self.agree(textJSON, "num_hidden_layers", config.text.layers, path: path, section: "text_config.")
    try Self.agree(textJSON, "intermediate_size", config.text.mlpWidth, path: path, section: "text_config.")
    try Self.agree(textJSON, "vocab_size", config.text.vocabSize, path: path, section: "text_config.")
    try Self.agree(textJSON, "max_position_embeddings", config.text.contextLength, path: path, section: "text_config.")
    // transformers' defaults where the file is silent: 12 vision heads, 8 text heads, quick_gelu, eps 1e-5.
    config.vision.heads = try Self.integer(visionJSON, "num_attention_heads", path: path, section: "vision_config.") ?? 12
    config.text.heads = try Self.integer(textJSON, "num_attention_heads", path: path, section: "text_config.") ?? 8
    let visionActivation = try Self.activation(visionJSON["hidden_act"], path: path, key: "vision_config.hidden_act") ?? .quickGELU
    let textActivation = try Self.activation(textJSON["hidden_act"], path: path, key: "text_config.hidden_act") ?? .quickGELU
    if visionActivation != textActivation && options.activation == nil {
      throw CLIPWeightError.badConfig(path: path, key: "hidden_act",
                                      reason: "differs between towers (\(visionActivation.rawValue) / \(textActivation.rawValue)); rada uses one activation")
    }
    config.activation = visionActivation
    if let eps = try Self.number(visionJSON, "layer_norm_eps", path: path, section: "vision_config.") {
      guard eps.isFinite, eps > 0, eps < 1 else {
        throw CLIPWeightError.badConfig(path: path, key: "vision_config.layer_norm_eps", reason: "is \(eps), outside (0, 1)")
      }
      config.layerNormEps = Float(eps)
    }
    // eos_token_id 2 is the pre-2023 placeholder: HF then pools at the largest id, which is our fallback
    // with end-of-text V - 1.
    if let eos = try Self.integer(textJSON, "eos_token_id", path: path, section: "text_config.", in: 0...CLIPConfig.Limits.vocabSize),
       eos != 2 {
      config.text.endOfTextId = eos
    }
    for (heads, width, section) in [(config.vision.heads, config.vision.width, "vision_config."),
                                    (config.text.heads, config.text.width, "text_config.")]
    where heads <= 0 || width % heads != 0 {
      throw CLIPWeightError.badConfig(path: path, key: section + "num_attention_heads",
                                      reason: "is \(heads), which does not divide the width \(width)")
    }
  }

  private func applyOpenCLIPConfig(_ json: [String: Any], to config: inout CLIPConfig, path: String,
                                   options: CLIPLoadOptions) throws {
    let model = json["model_cfg"] as? [String: Any] ?? json
    let visionJSON = model["vision_cfg"] as? [String: Any] ?? [:]
    let textJSON = model["text_cfg"] as? [String: Any] ?? [:]
    try Self.agree(model, "embed_dim", config.embedDim, path: path, section: "model_cfg.")
    try Self.agree(visionJSON, "width", config.vision.width, path: path, section: "model_cfg.vision_cfg.")
    try Self.agree(visionJSON, "layers", config.vision.layers, path: path, section: "model_cfg.vision_cfg.")
    try Self.agree(visionJSON, "patch_size", config.vision.patchSize, path: path, section: "model_cfg.vision_cfg.")
    try Self.agree(visionJSON, "image_size", config.vision.imageSize, path: path, section: "model_cfg.vision_cfg.")
    try Self.agree(textJSON, "width", config.text.width, path: path, section: "model_cfg.text_cfg.")
    try Self.agree(textJSON, "layers", config.text.layers, path: path, section: "model_cfg.text_cfg.")
    try Self.agree(textJSON, "context_length", config.text.contextLength, path: path, section: "model_cfg.text_cfg.")
    try Self.agree(textJSON, "vocab_size", config.text.vocabSize, path: path, section: "model_cfg.text_cfg.")
    // open_clip's defaults (CLIPVisionCfg / CLIPTextCfg): head_width 64, text heads 8, quick_gelu false.
    let headWidth = try Self.integer(visionJSON, "head_width", path: path, section: "model_cfg.vision_cfg.") ?? 64
    guard headWidth > 0, config.vision.width % headWidth == 0 else {
      throw CLIPWeightError.badConfig(path: path, key: "model_cfg.vision_cfg.head_width",
                                      reason: "is \(headWidth), which does not divide the width \(config.vision.width)")
    }
    config.vision.heads = config.vision.width / headWidth
    config.text.heads = try Self.integer(textJSON, "heads", path: path, section: "model_cfg.text_cfg.") ?? 8
    guard config.text.heads > 0, config.text.width % config.text.heads == 0 else {
      throw CLIPWeightError.badConfig(path: path, key: "model_cfg.text_cfg.heads",
                                      reason: "is \(config.text.heads), which does not divide the width \(config.text.width)")
    }
    config.activation = (model["quick_gelu"] as? Bool ?? false) ? .quickGELU : .gelu
  }

  // MARK: Tensors

  /// Checks every tensor name and shape against `config` (before a model of that size is allocated: a model
  /// whose every tensor the file holds is bounded by the file's size).
  public func checkTensors(for config: CLIPConfig) throws {
    let sources = CLIPWeightNames.sources(for: config, naming: naming)
    let expected = Set(sources.map(\.name))
    for source in sources {
      guard let info = file[source.name] else {
        throw CLIPWeightError.missingTensor(file: weightsPath, tensor: source.name, expectedShape: source.shape)
      }
      // A 0-d scalar and a 1-element vector are the same logit_scale.
      let same = info.shape == source.shape || (info.count == 1 && source.shape.reduce(1, *) == 1)
      guard same else {
        throw CLIPWeightError.shapeMismatch(file: weightsPath, tensor: source.name, expected: source.shape, found: info.shape)
      }
    }
    for info in file.tensors where !expected.contains(info.name) && !CLIPWeightNames.isIgnorable(info.name) {
      throw CLIPWeightError.unexpectedTensor(file: weightsPath, tensor: info.name, shape: info.shape)
    }
  }

  /// Checks the tensors (`checkTensors`), then copies the weights into `model`; NaN or ±Inf in any tensor is
  /// reported with its name and first bad element.
  public func load(into model: CLIPModel) throws {
    try checkTensors(for: model.config)
    let sources = CLIPWeightNames.sources(for: model.config, naming: naming)
    let largest = sources.map { $0.shape.reduce(1, *) }.max() ?? 0
    let staging = FloatBuffer(count: largest)
    for source in sources {
      try file.read(source.name, into: staging.pointer)
      if let (index, value) = firstNonFinite(staging.readOnly, count: source.shape.reduce(1, *)) {
        throw CLIPWeightError.nonFinite(file: weightsPath, tensor: source.name, index: index, value: value)
      }
      CLIPWeightNames.store(staging.readOnly, as: source, into: model.parameters.pointer, table: model.table)
    }
  }
}

extension CLIPModel {
  /// Loads `--model PATH` (HF folder, open_clip folder or .safetensors; see the file header).
  public static func load(path: String, options: CLIPLoadOptions = CLIPLoadOptions()) throws -> CLIPModel {
    let checkpoint = try CLIPCheckpoint(path: path)
    let config = try checkpoint.config(options: options)
    try checkpoint.checkTensors(for: config)
    let model = CLIPModel(config: config)
    try checkpoint.load(into: model)
    return model
  }
}
