// Learning-rate schedules as pure functions lr(step), step counted from 0 (the lr used by the step-th update).
// constant; cosine with linear warmup (torch SequentialLR(LinearLR(1/W → 1 over W - 1 steps),
// CosineAnnealingLR(T_max = total - W)) = lr·(s + 1)/W, then the closed-form cosine); and Dassl's
// build_lr_scheduler("cosine") with a constant warmup (WARMUP_TYPE constant, WARMUP_CONS_LR, WARMUP_RECOUNT True),
// which changes the lr once per epoch.
import Foundation

public enum LearningRateSchedule: Codable, Equatable, Sendable {
  case constant(lr: Double)
  /// warmupSteps may be 0; past totalSteps the cosine continues (rises again), like torch's CosineAnnealingLR.
  case cosine(baseLR: Double, warmupSteps: Int, totalSteps: Int, minLR: Double)
  /// Epoch e = step / stepsPerEpoch: warmupLR while e < warmupEpochs, then
  /// baseLR·(1 + cos(π·(e - warmupEpochs)/maxEpochs))/2 (Dassl's CosineAnnealingLR(T_max = MAX_EPOCH), recounted).
  case dasslCosine(baseLR: Double, maxEpochs: Int, warmupEpochs: Int, warmupLR: Double, stepsPerEpoch: Int)

  public func lr(step: Int) -> Double {
    switch self {
    case let .constant(lr):
      return lr
    case let .cosine(base, warmup, total, minLR):
      if step < warmup { return base * Double(step + 1) / Double(warmup) }
      let span = max(total - warmup, 1)
      return minLR + (base - minLR) * (1 + cos(Double.pi * Double(step - warmup) / Double(span))) / 2
    case let .dasslCosine(base, maxEpochs, warmupEpochs, warmupLR, stepsPerEpoch):
      let epoch = step / max(stepsPerEpoch, 1)
      if epoch < warmupEpochs { return warmupLR }
      return base * (1 + cos(Double.pi * Double(epoch - warmupEpochs) / Double(max(maxEpochs, 1)))) / 2
    }
  }
}
