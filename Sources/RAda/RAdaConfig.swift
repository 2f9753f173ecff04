// Configuration and errors of the RAda mask head (Sec. 3 of the RAda paper; eft/trainers/rada.py
// SimpleMultiheadAttention + CustomCLIP).
// Shape letters: B batch, K classes, D joint embedding dim (the head's width), H heads, Dh = D / H.

/// The regulariser that keeps the mask near 1: the authors' LInfLoss (mean over samples of the largest
/// |mask - 1|), or the MSE variant they tried (mean over all B·K·D entries of (mask - 1)²).
public enum MaskLossKind: String, Codable, CaseIterable, Equatable, Sendable {
  case linf, mse

  /// A wrong name is refused naming the choices (as every config choice: Training's ConfigChoice).
  public init(from decoder: Decoder) throws {
    let name = try decoder.singleValueContainer().decode(String.self)
    guard let kind = MaskLossKind(rawValue: name) else {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "use linf, mse"))
    }
    self = kind
  }
}

public struct RAdaConfig: Codable, Equatable, Sendable {
  /// D: width of the image/text features (512 for ViT-B/16).
  public var dim: Int
  /// H: attention heads; the reference hard-codes 8.
  public var heads: Int
  /// cfg.TEMP: divides the attention logits before the flattened K·K softmax.
  public var temperature: Float
  /// cfg.ALPHA: weight of the mask regulariser in the total loss.
  public var alpha: Float
  public var loss: MaskLossKind

  public init(dim: Int, heads: Int = 8, temperature: Float = 1, alpha: Float = 1, loss: MaskLossKind = .linf) {
    self.dim = dim; self.heads = heads; self.temperature = temperature; self.alpha = alpha; self.loss = loss
  }

  public var headDim: Int { dim / heads }

  public func validate() throws {
    guard dim > 0, heads > 0, dim % heads == 0 else { throw RAdaError.badDimension(dim: dim, heads: heads) }
    guard temperature > 0, temperature.isFinite else { throw RAdaError.badTemperature(temperature) }
  }
}

public enum RAdaError: Error, CustomStringConvertible, Equatable {
  case badDimension(dim: Int, heads: Int)
  case badTemperature(Float)
  case workspaceMismatch(what: String, asked: Int, planned: Int)
  case labelOutOfRange(index: Int, label: Int, classes: Int)

  public var description: String {
    switch self {
    case let .badDimension(dim, heads):
      return "RAda head: dim \(dim) is not a positive multiple of heads \(heads). Use the CLIP embedding width "
        + "(512 for ViT-B/16, 768 for ViT-L/14) and heads = 8."
    case let .badTemperature(t):
      return "RAda head: temperature \(t) must be a positive finite number. Set rada.temperature (the reference uses cfg.TEMP)."
    case let .workspaceMismatch(what, asked, planned):
      return "RAda workspace: \(what) \(asked) does not fit the planned \(planned). Build the workspace with "
        + "RAdaWorkspace(config:maxBatch:classes:) for these sizes."
    case let .labelOutOfRange(index, label, classes):
      return "RAda loss: label \(label) of sample \(index) is outside 0..<\(classes). Check the dataset's class list."
    }
  }
}
