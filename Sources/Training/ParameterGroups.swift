// Parameter groups for FFT and pretraining (torch's param_groups, as every fine-tuning library offers them):
// the RAda head, the image tower, the text tower and the logit scale, each with its own learning rate, weight
// decay and an optional freeze (config keys optim.groups.head.lr, optim.groups.image.frozen, ...). An unset lr or
// weight decay is optim.lr / optim.weightDecay. The schedule multiplies every group's base lr (torch LambdaLR per
// group), so warm-up and cosine keep the groups' ratios (dassl_cosine's constant warm-up lr is the same for every
// group, as Dassl's ConstantWarmupScheduler sets it). Weight decay never applies to tensors with fewer than two
// dimensions (biases, layer norms, class embedding, logit scale), as open_clip's trainer excludes them.
// EFT trains only the head, with optim.lr / optim.weightDecay, and refuses group settings.
import Foundation
import Tensor

extension TrainConfig {
  /// A group of matrices and vectors (a tower or the head).
  public struct TensorGroup: Codable, Equatable {
    /// Base learning rate (nil: optim.lr).
    public var lr: Double?
    /// Weight decay of the group's matrices (nil: optim.weightDecay); its vectors never decay.
    public var weightDecay: Double?
    /// Frozen: no update, and for a tower no backward pass through it.
    public var frozen = false

    public init(lr: Double? = nil, weightDecay: Double? = nil, frozen: Bool = false) {
      self.lr = lr; self.weightDecay = weightDecay; self.frozen = frozen
    }
  }

  /// The logit scale: one scalar, never decayed.
  public struct ScalarGroup: Codable, Equatable {
    /// Base learning rate (nil: optim.lr).
    public var lr: Double?
    public var frozen = false

    public init(lr: Double? = nil, frozen: Bool = false) { self.lr = lr; self.frozen = frozen }
  }

  public struct ParameterGroups: Codable, Equatable {
    /// The head at the rate EFT trains it (the demo's EFT: AdamW 2e-3; the reference's EFT config: Adam 3.5e-3).
    /// At the towers' rate (FLYP's 1e-5, the demo's 1e-4) its zero-initialised out_proj hardly moves and the head
    /// stays zero-shot CLIP (README, "Why FFT uses parameter groups").
    public var head = TensorGroup(lr: 2e-3)
    /// Image and text towers: optim.lr (FLYP's 1e-5 by default for FFT).
    public var image = TensorGroup()
    public var text = TensorGroup()
    public var logitScale = ScalarGroup()

    public init() {}
  }
}

/// The groups of a tower model's table, resolved: names, base learning rates, weight decays, frozen flags.
public struct ResolvedParameterGroups: Equatable {
  public enum Member: String, CaseIterable, Sendable {
    case head, image, text, logitScale
  }

  public struct Group: Equatable {
    public var member: Member
    public var lr: Double
    public var weightDecay: Double
    public var frozen: Bool
  }

  /// One per Member, in Member order.
  public private(set) var groups: [Group]

  public init(_ config: TrainConfig) {
    let g = config.optim.groups, optim = config.optim
    func tensor(_ member: Member, _ group: TrainConfig.TensorGroup) -> Group {
      Group(member: member, lr: group.lr ?? optim.lr, weightDecay: group.weightDecay ?? optim.weightDecay, frozen: group.frozen)
    }
    groups = [tensor(.head, g.head), tensor(.image, g.image), tensor(.text, g.text),
              Group(member: .logitScale, lr: g.logitScale.lr ?? optim.lr, weightDecay: 0, frozen: g.logitScale.frozen)]
  }

  /// `init` makes one group per Member, so the lookup always finds one.
  public subscript(member: Member) -> Group { groups.first { $0.member == member }! }

  /// Which group a tensor of the FFT/pretraining table belongs to (our names: visual.* image tower, logit_scale,
  /// mha.* the head, everything else the text tower).
  public static func member(of name: String) -> Member {
    if name == "logit_scale" { return .logitScale }
    if name.hasPrefix("visual.") { return .image }
    if name.hasPrefix("mha.") { return .head }
    return .text
  }

  /// The optimiser's groups over `table` (every group, even an empty or frozen one, so the order is fixed).
  public func optimizerGroups(table: ParameterTable) -> [OptimizerGroup] {
    groups.map { group in
      OptimizerGroup(name: group.member.rawValue, weightDecay: Float(group.weightDecay),
                     entries: table.entries.indices.filter { Self.member(of: table.entries[$0].name) == group.member })
    }
  }

  /// Learning rate of every group at `step`: the schedule built on each group's base lr.
  public func learningRates(_ config: TrainConfig, totalSteps: Int, stepsPerEpoch: Int) -> (Int) -> [Float] {
    let schedules = groups.map { learningRateSchedule(config, baseLR: $0.lr, totalSteps: totalSteps, stepsPerEpoch: stepsPerEpoch) }
    return { step in schedules.map { Float($0.lr(step: step)) } }
  }

  /// Checkpoint scalars ("group/head/lr", ".../weight_decay", ".../frozen"), so a resume can check them.
  public var checkpointScalars: [String: Double] {
    var scalars: [String: Double] = [:]
    for group in groups {
      scalars["group/\(group.member.rawValue)/lr"] = group.lr
      scalars["group/\(group.member.rawValue)/weight_decay"] = group.weightDecay
      scalars["group/\(group.member.rawValue)/frozen"] = group.frozen ? 1 : 0
    }
    return scalars
  }

  /// Refuses to resume a checkpoint written with other group settings (a frozen tower unfrozen, another lr):
  /// the run would silently continue as a different experiment. Checkpoints without group scalars pass.
  public func checkResume(scalars: [String: Double], checkpoint: String) throws {
    for (key, value) in checkpointScalars.sorted(by: { $0.key < $1.key }) {
      guard let saved = scalars[key], saved != value else { continue }
      throw ConfigError.invalid("checkpoint \(checkpoint) was written with \(key) = \(saved), the config now gives "
        + "\(value). Resume with the same optim.groups settings (the checkpoint's state.json records them under "
        + "scalars and config) or start a new run from the checkpoint's model.safetensors.")
    }
  }

  /// One line for the console: "head lr 0.002 wd 0.1 (24960 values) | image lr 1e-05 wd 0.1 (117760 values) |
  /// text frozen | logitScale lr 1e-05 (1 values)"; groups without tensors (the head in pretraining) are left out.
  public func summary(table: ParameterTable) -> String {
    groups.compactMap { group -> String? in
      let count = table.entries.filter { Self.member(of: $0.name) == group.member }.reduce(0) { $0 + $1.count }
      guard count > 0 else { return nil }
      if group.frozen { return "\(group.member.rawValue) frozen" }
      let decay = group.member == .logitScale ? "" : " wd \(group.weightDecay)"
      return "\(group.member.rawValue) lr \(group.lr)\(decay) (\(count) values)"
    }.joined(separator: " | ")
  }
}

extension TrainConfig {
  /// Group settings that cannot work: negative rates, or EFT (whose only trainable tensors are the head, trained
  /// with optim.lr / optim.weightDecay) given groups.
  func validateGroups() throws {
    let g = optim.groups
    let rates: [(String, Double?)] = [("head.lr", g.head.lr), ("image.lr", g.image.lr), ("text.lr", g.text.lr),
                                      ("logitScale.lr", g.logitScale.lr), ("head.weightDecay", g.head.weightDecay),
                                      ("image.weightDecay", g.image.weightDecay), ("text.weightDecay", g.text.weightDecay)]
    for (key, value) in rates {
      if let value, !(value >= 0 && value.isFinite) {
        throw ConfigError.badValue(key: "optim.groups." + key, value: "\(value)", reason: "must be a finite number >= 0")
      }
    }
    if setting == .eft && g != ParameterGroups() {
      throw ConfigError.badValue(key: "optim.groups", value: "set", reason: "parameter groups are for FFT and pretraining; "
        + "EFT trains only the head, with optim.lr and optim.weightDecay: set those instead")
    }
  }
}
