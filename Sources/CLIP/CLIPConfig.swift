// The CLIP architecture as data: vision ViT + causal text transformer + projections into a joint space,
// as in OpenAI CLIP / open_clip `CLIP(embed_dim, vision_cfg, text_cfg)` and HF `CLIPConfig`.
// Read from the weights (and config.json / open_clip_config.json when present), or written for a random init.
// Shape letters: C width, L layers, H heads, Dh head dim, M MLP width, P patches + 1, T tokens, V vocab,
// D joint embedding dim (`embedDim`); the image side and patch side are spelt out (`imageSize`, `patchSize`).

/// The MLP nonlinearity: QuickGELU x·σ(1.702x) (OpenAI weights, HF "quick_gelu") or exact erf GELU
/// (open_clip LAION models, HF "gelu").
public enum CLIPActivation: String, Codable, Equatable, Sendable {
  case quickGELU = "quick_gelu"
  case gelu
}

public struct CLIPVisionConfig: Codable, Equatable, Sendable {
  /// C
  public var width: Int
  /// L
  public var layers: Int
  /// H (C = H · Dh)
  public var heads: Int
  /// M: MLP hidden width (4C for every released CLIP)
  public var mlpWidth: Int
  /// The conv1 kernel and stride (pixels per patch side)
  public var patchSize: Int
  /// The square input side in pixels
  public var imageSize: Int

  public init(width: Int, layers: Int, heads: Int, mlpWidth: Int? = nil, patchSize: Int, imageSize: Int) {
    self.width = width; self.layers = layers; self.heads = heads; self.mlpWidth = mlpWidth ?? 4 * width
    self.patchSize = patchSize; self.imageSize = imageSize
  }

  /// imageSize / patchSize patches per side.
  public var grid: Int { imageSize / patchSize }
  /// P = grid² + 1 tokens including the class token.
  public var tokens: Int { grid * grid + 1 }
  public var headDim: Int { width / heads }
}

public struct CLIPTextConfig: Codable, Equatable, Sendable {
  public var width: Int
  public var layers: Int
  public var heads: Int
  public var mlpWidth: Int
  /// T (77 for every released CLIP)
  public var contextLength: Int
  /// V (49408 for the OpenAI BPE vocabulary)
  public var vocabSize: Int
  /// The end-of-text id the text is pooled at (first occurrence): 49407 for the OpenAI vocabulary.
  public var endOfTextId: Int

  public init(width: Int, layers: Int, heads: Int, mlpWidth: Int? = nil, contextLength: Int = 77,
              vocabSize: Int = 49408, endOfTextId: Int? = nil) {
    self.width = width; self.layers = layers; self.heads = heads; self.mlpWidth = mlpWidth ?? 4 * width
    self.contextLength = contextLength; self.vocabSize = vocabSize; self.endOfTextId = endOfTextId ?? vocabSize - 1
  }

  public var headDim: Int { width / heads }
}

public struct CLIPConfig: Codable, Equatable, Sendable {
  /// D: the joint embedding dimension (open_clip's embed_dim).
  public var embedDim: Int
  public var vision: CLIPVisionConfig
  public var text: CLIPTextConfig
  public var activation: CLIPActivation
  public var layerNormEps: Float

  public init(embedDim: Int, vision: CLIPVisionConfig, text: CLIPTextConfig,
              activation: CLIPActivation = .quickGELU, layerNormEps: Float = 1e-5) {
    self.embedDim = embedDim; self.vision = vision; self.text = text
    self.activation = activation; self.layerNormEps = layerNormEps
  }

  /// OpenAI ViT-B/32 (QuickGELU): what `rada` fine-tunes by default.
  public static let vitB32 = CLIPConfig(
    embedDim: 512, vision: CLIPVisionConfig(width: 768, layers: 12, heads: 12, patchSize: 32, imageSize: 224),
    text: CLIPTextConfig(width: 512, layers: 12, heads: 8))
  /// OpenAI ViT-B/16 (QuickGELU).
  public static let vitB16 = CLIPConfig(
    embedDim: 512, vision: CLIPVisionConfig(width: 768, layers: 12, heads: 12, patchSize: 16, imageSize: 224),
    text: CLIPTextConfig(width: 512, layers: 12, heads: 8))
  /// OpenAI ViT-L/14 (QuickGELU).
  public static let vitL14 = CLIPConfig(
    embedDim: 768, vision: CLIPVisionConfig(width: 1024, layers: 24, heads: 16, patchSize: 14, imageSize: 224),
    text: CLIPTextConfig(width: 768, layers: 12, heads: 12))

  /// The architectures used in this repo by name (`rada create-model --preset`, `rada bench --model`), with
  /// random-weight uses: tiny (32 px, patch 8, width 32, 1 layer: tests), demo (32 px, patch 8, width 64, 2 layers:
  /// the demo's model), small (64 px, patch 8, width 256, 6 layers, text context 32: the benchmarks' small config),
  /// and the OpenAI shapes.
  public static let presets: [(name: String, config: CLIPConfig)] = [
    ("tiny", CLIPConfig(embedDim: 32, vision: CLIPVisionConfig(width: 32, layers: 1, heads: 2, patchSize: 8, imageSize: 32),
                        text: CLIPTextConfig(width: 32, layers: 1, heads: 2, contextLength: 16))),
    ("demo", CLIPConfig(embedDim: 64, vision: CLIPVisionConfig(width: 64, layers: 2, heads: 4, patchSize: 8, imageSize: 32),
                        text: CLIPTextConfig(width: 64, layers: 2, heads: 4, contextLength: 16))),
    ("small", CLIPConfig(embedDim: 256, vision: CLIPVisionConfig(width: 256, layers: 6, heads: 4, patchSize: 8, imageSize: 64),
                         text: CLIPTextConfig(width: 256, layers: 6, heads: 4, contextLength: 32))),
    ("vit-b-32", vitB32), ("vit-b-16", vitB16), ("vit-l-14", vitL14),
  ]

  /// A preset by name with the given activation; nil for an unknown name (`presetNames` lists them).
  public static func preset(_ name: String, activation: CLIPActivation = .quickGELU) -> CLIPConfig? {
    guard var config = presets.first(where: { $0.name == name })?.config else { return nil }
    config.activation = activation
    return config
  }

  /// "tiny, demo, small, vit-b-32, vit-b-16 or vit-l-14"
  public static var presetNames: String {
    let names = presets.map(\.name)
    return names.dropLast().joined(separator: ", ") + " or " + names[names.count - 1]
  }

  /// Bounds on every size, far above any released CLIP (ViT-bigG: width 1664, 48 layers, MLP 8192; T 77,
  /// V 49408) and low enough that products of them cannot overflow: a config read from a file or the metadata
  /// of a checkpoint is checked against these before anything is allocated.
  public enum Limits {
    public static let width = 1 << 16
    public static let mlpWidth = 1 << 18
    public static let layers = 1 << 10
    public static let imageSize = 1 << 13
    public static let contextLength = 1 << 13
    public static let vocabSize = 1 << 24
    /// 2^34 floats = 64 GiB of parameters.
    public static let parameters = 1 << 34
  }

  /// Every way this config is unusable, as "key: reason" lines; empty when it is valid. Checked for configs read
  /// from files (typed errors naming the file) and, as a precondition, for configs built in code. Heads and the
  /// patch size are checked before anything divides by them.
  public var problems: [String] {
    var found: [String] = []
    func bound(_ name: String, _ value: Int, _ limit: Int, minimum: Int = 1) {
      if value < minimum || value > limit { found.append("\(name) is \(value), outside \(minimum)...\(limit)") }
    }
    bound("embedDim", embedDim, Limits.width)
    bound("vision.width", vision.width, Limits.width); bound("text.width", text.width, Limits.width)
    bound("vision.mlpWidth", vision.mlpWidth, Limits.mlpWidth); bound("text.mlpWidth", text.mlpWidth, Limits.mlpWidth)
    bound("vision.layers", vision.layers, Limits.layers); bound("text.layers", text.layers, Limits.layers)
    bound("vision.heads", vision.heads, max(1, vision.width)); bound("text.heads", text.heads, max(1, text.width))
    bound("vision.imageSize", vision.imageSize, Limits.imageSize)
    bound("vision.patchSize", vision.patchSize, max(1, vision.imageSize))
    bound("text.contextLength", text.contextLength, Limits.contextLength)
    bound("text.vocabSize", text.vocabSize, Limits.vocabSize)
    if !(layerNormEps.isFinite && layerNormEps > 0 && layerNormEps < 1) {
      found.append("layerNormEps is \(layerNormEps), outside (0, 1)")
    }
    if !found.isEmpty { return found }
    if vision.width % vision.heads != 0 { found.append("vision width \(vision.width) not divisible by \(vision.heads) heads") }
    if text.width % text.heads != 0 { found.append("text width \(text.width) not divisible by \(text.heads) heads") }
    if vision.imageSize % vision.patchSize != 0 {
      found.append("image size \(vision.imageSize) not a multiple of patch size \(vision.patchSize)")
    }
    if text.endOfTextId < 0 || text.endOfTextId >= text.vocabSize {
      found.append("end-of-text id \(text.endOfTextId) outside the vocabulary of \(text.vocabSize)")
    }
    if found.isEmpty, parameterCount > Limits.parameters {
      found.append("\(parameterCount) parameters, more than the \(Limits.parameters) rada allocates")
    }
    return found
  }

  /// Number of parameters (the parameter table's total); only meaningful once the sizes are inside `Limits`,
  /// where it cannot overflow (each term is below 2^40, their sum far below 2^63).
  public var parameterCount: Int {
    func blocks(_ layers: Int, _ c: Int, _ m: Int) -> Int { layers * (4 * c * c + 2 * c * m + 9 * c + m) }
    let v = vision, t = text
    return v.width * 3 * v.patchSize * v.patchSize + v.width + v.tokens * v.width + 4 * v.width
      + blocks(v.layers, v.width, v.mlpWidth) + v.width * embedDim
      + t.vocabSize * t.width + t.contextLength * t.width + blocks(t.layers, t.width, t.mlpWidth) + 2 * t.width
      + t.width * embedDim + 1
  }
}
