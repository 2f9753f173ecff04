// `rada pretrain`: contrastive image-caption pretraining (CLIP's objective) with the FFT machinery and no head:
// captions come from the manifest's caption column, the loss is open_clip's ClipLoss with features gathered
// over the ranks (see FFTModel), and the run writes RUN/model.safetensors for `rada train` / `rada zeroshot`.
// With --eval DATA (a labelled set) it reports zero-shot top-1 with the prompts "a photo of a {}.".
import Distributed
import Foundation

public enum PretrainSession {
  /// Defaults for pretraining a small model from scratch (open_clip-like): AdamW, lr 1e-3, weight decay 0.1,
  /// cosine schedule, no augmentation (synthetic captions name sizes and positions, which crops and flips
  /// would contradict), checkpoints only at the end.
  public static func defaultConfig() -> TrainConfig {
    var c = TrainConfig()
    c.setting = .fft  // the tower machinery (pretraining is FFT without the head)
    c.optim.name = .adamw
    c.optim.lr = 1e-3
    c.optim.weightDecay = 0.1
    c.optim.beta2 = 0.98
    c.optim.eps = 1e-6
    c.schedule.name = .cosine
    c.data.augment = false
    c.run.batchSize = 64
    c.run.logEvery = 20
    return c
  }

  public static func run(config: TrainConfig, world: Collective, options: SessionOptions,
                         gradientDumpPath: String? = nil) throws -> TrainSummary {
    try Session.run(TowerSetting(config: config, withHead: false, gradientDumpPath: gradientDumpPath), world: world,
                    options: options)
  }
}
