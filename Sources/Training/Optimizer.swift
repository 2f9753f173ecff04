// Optimisers with PyTorch's exact update rules (torch.optim.SGD / Adam / AdamW, single-tensor code path) on
// flat buffers laid out by a ParameterTable: frozen entries are skipped, entries with `decays == false` get no
// weight decay (torch param group with weight_decay 0). Parameter groups (torch's param_groups) give sets of
// entries their own weight decay and, per step, their own learning rate; without groups every entry is in one.
// State (step count, moment buffers) is public so that checkpoints can save and restore it; groups do not change
// its layout or meaning. Buffers: parameters, gradients, firstMoment, secondMoment all one float per
// parameter of the table.
import Foundation
import Kernels
import Tensor

public enum OptimizerKind: String, Codable, CaseIterable, Equatable, Sendable {
  case sgd, adam, adamw
}

public struct OptimizerConfig: Codable, Equatable, Sendable {
  public var kind: OptimizerKind
  /// SGD momentum (0: plain SGD). Dampening is 0, as in Dassl and torch's default.
  public var momentum: Float
  public var nesterov: Bool
  /// SGD/Adam: L2 added to the gradient (g += wd·p). AdamW: decoupled (p *= 1 - lr·wd).
  public var weightDecay: Float
  public var beta1: Float
  public var beta2: Float
  /// Adam epsilon, added after the square root: p -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps).
  public var epsilon: Float

  public init(kind: OptimizerKind, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0,
              beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
    self.kind = kind; self.momentum = momentum; self.nesterov = nesterov; self.weightDecay = weightDecay
    self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
  }
}

public enum OptimizerError: Error, CustomStringConvertible, Equatable {
  case stateSizeMismatch(buffer: String, count: Int, expected: Int)
  case badConfig(String)

  public var description: String {
    switch self {
    case let .stateSizeMismatch(buffer, count, expected):
      return "optimizer state '\(buffer)' has \(count) values, the parameter table needs \(expected). The checkpoint "
        + "was written for a different model or optimizer; resume with the matching config or start fresh."
    case let .badConfig(reason):
      return "optimizer config: \(reason). Fix the optim section of the config."
    }
  }
}

/// One torch param group: the table entries it holds share a weight decay and a learning rate (given per step
/// to `step(parameters:gradients:lrs:)`, in the order of `Optimizer.groups`).
public struct OptimizerGroup: Equatable, Sendable {
  public var name: String
  /// Applies to the group's entries with `decays == true` (SGD/Adam: L2; AdamW: decoupled).
  public var weightDecay: Float
  /// Indices into `ParameterTable.entries`.
  public var entries: [Int]

  public init(name: String, weightDecay: Float, entries: [Int]) {
    self.name = name; self.weightDecay = weightDecay; self.entries = entries
  }
}

public final class Optimizer {
  public let config: OptimizerConfig
  public let table: ParameterTable
  /// Every entry of the table is in exactly one group; one group "all" (config.weightDecay) when none are given.
  public let groups: [OptimizerGroup]
  /// Steps taken so far (torch's `state['step']`, the same for every tensor here).
  public private(set) var stepCount = 0
  /// SGD momentum buffer or Adam exp_avg (one per parameter); empty for plain SGD.
  public let firstMoment: FloatBuffer
  /// Adam exp_avg_sq (one per parameter); empty for SGD.
  public let secondMoment: FloatBuffer

  public init(config: OptimizerConfig, table: ParameterTable, groups: [OptimizerGroup]? = nil) throws {
    if config.nesterov && (config.kind != .sgd || config.momentum <= 0) {
      throw OptimizerError.badConfig("nesterov needs SGD with momentum > 0 (torch rejects it otherwise)")
    }
    guard config.momentum >= 0, config.weightDecay >= 0, config.epsilon > 0,
          (0..<1).contains(config.beta1), (0..<1).contains(config.beta2) else {
      throw OptimizerError.badConfig("momentum, weight decay >= 0, 0 <= betas < 1 and eps > 0 are required")
    }
    let groups = groups ?? [OptimizerGroup(name: "all", weightDecay: config.weightDecay, entries: Array(table.entries.indices))]
    let grouped = groups.flatMap(\.entries).sorted()
    guard grouped == Array(table.entries.indices) else {
      throw OptimizerError.badConfig("the parameter groups must hold every tensor exactly once")
    }
    guard groups.allSatisfy({ $0.weightDecay >= 0 && $0.weightDecay.isFinite }) else {
      throw OptimizerError.badConfig("a group's weight decay must be a finite number >= 0")
    }
    self.config = config
    self.table = table
    self.groups = groups
    let usesFirst = config.kind != .sgd || config.momentum != 0
    firstMoment = FloatBuffer(count: usesFirst ? table.totalCount : 0)
    secondMoment = FloatBuffer(count: config.kind == .sgd ? 0 : table.totalCount)
  }

  /// Restores a checkpointed state (moments are copied).
  public func load(stepCount: Int, firstMoment first: [Float], secondMoment second: [Float]) throws {
    guard first.count == firstMoment.count else {
      throw OptimizerError.stateSizeMismatch(buffer: "firstMoment", count: first.count, expected: firstMoment.count)
    }
    guard second.count == secondMoment.count else {
      throw OptimizerError.stateSizeMismatch(buffer: "secondMoment", count: second.count, expected: secondMoment.count)
    }
    self.stepCount = stepCount
    first.withUnsafeBufferPointer { if let b = $0.baseAddress { firstMoment.pointer.update(from: b, count: first.count) } }
    second.withUnsafeBufferPointer { if let b = $0.baseAddress { secondMoment.pointer.update(from: b, count: second.count) } }
  }

  /// One update of every trainable entry with learning rate `lr` (from the schedule) in every group.
  public func step(parameters: FloatBuffer, gradients: FloatBuffer, lr: Float) {
    step(parameters: parameters, gradients: gradients, lrs: Array(repeating: lr, count: groups.count))
  }

  /// One update of every trainable entry; `lrs[i]` is the learning rate of `groups[i]` at this step.
  public func step(parameters: FloatBuffer, gradients: FloatBuffer, lrs: [Float]) {
    precondition(parameters.count == table.totalCount && gradients.count == table.totalCount,
                 "optimizer: buffers do not match the parameter table")
    precondition(lrs.count == groups.count, "optimizer: one learning rate per group")
    let isFirstStep = stepCount == 0
    stepCount += 1
    for (group, lr) in zip(groups, lrs) {
      for index in group.entries where table.entries[index].isTrainable {
        let entry = table.entries[index]
        let p = parameters.pointer + entry.offset, g = gradients.readOnly + entry.offset, n = entry.count
        let wd = entry.decays ? group.weightDecay : 0
        switch config.kind {
        case .sgd:
          sgd(p: p, g: g, buffer: firstMoment.count > 0 ? firstMoment.pointer + entry.offset : nil,
              count: n, lr: lr, weightDecay: wd, isFirstStep: isFirstStep)
        case .adam, .adamw:
          adam(p: p, g: g, m: firstMoment.pointer + entry.offset, v: secondMoment.pointer + entry.offset,
               count: n, lr: lr, weightDecay: wd)
        }
      }
    }
  }

  /// torch.optim.SGD: d = g + wd·p; buf = d (first step) or momentum·buf + d; d = nesterov ? d + momentum·buf : buf;
  /// p -= lr·d.
  private func sgd(p: MutableFloats, g: Floats, buffer: MutableFloats?, count: Int, lr: Float, weightDecay: Float,
                   isFirstStep: Bool) {
    let momentum = config.momentum, nesterov = config.nesterov
    Parallel.forChunks(count) { start, end in
      for i in start..<end {
        var d = g[i] + weightDecay * p[i]
        if let buffer {
          let b = isFirstStep ? d : momentum * buffer[i] + d
          buffer[i] = b
          d = nesterov ? d + momentum * b : b
        }
        p[i] -= lr * d
      }
    }
  }

  /// torch.optim.Adam / AdamW: (AdamW: p *= 1 - lr·wd; Adam: g += wd·p); m = lerp(m, g, 1 - β1);
  /// v = β2·v + (1 - β2)·g²; p -= lr/(1 - β1^t) · m / (sqrt(v)/sqrt(1 - β2^t) + eps).
  private func adam(p: MutableFloats, g: Floats, m: MutableFloats, v: MutableFloats, count: Int, lr: Float,
                    weightDecay: Float) {
    let beta1 = config.beta1, beta2 = config.beta2, eps = config.epsilon
    let t = Double(stepCount)
    // Bias corrections in Double, as torch computes them in Python floats.
    let stepSize = Float(Double(lr) / (1 - pow(Double(beta1), t)))
    let correction2Root = Float((1 - pow(Double(beta2), t)).squareRoot())
    let decoupled = config.kind == .adamw
    let decayFactor = 1 - lr * weightDecay
    let w1 = 1 - beta1, w2 = 1 - beta2
    // element-wise: large tensors are split over the threads, the result does not depend on the split
    Parallel.forChunks(count) { start, end in
      for i in start..<end {
        var grad = g[i]
        if decoupled { p[i] *= decayFactor } else { grad += weightDecay * p[i] }
        // torch lerp: weight < 0.5 ? m + w·(g - m) : g - (g - m)·(1 - w)
        let mi = w1 < 0.5 ? m[i] + w1 * (grad - m[i]) : grad - (grad - m[i]) * beta1
        let vi = beta2 * v[i] + w2 * grad * grad
        m[i] = mi; v[i] = vi
        p[i] -= stepSize * (mi / (vi.squareRoot() / correction2Root + eps))
      }
    }
  }
}
