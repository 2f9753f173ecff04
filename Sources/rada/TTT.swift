// `rada ttt`: test-time training of the RAda head on each test image alone (TPT's confidence-selected
// entropy minimisation over augmented views; see Training/TTTSession.swift). Runs with or without mpirun:
// the test set is split into contiguous slices over the ranks and the coordinator writes the results.
import ArgumentParser
import Distributed
import Foundation
import Training

struct TTT: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ttt",
    abstract: "Test-time training: adapt the RAda head per test image on its confident views, then predict.",
    discussion: """
      Example: rada ttt --model clip/ --data imagefolder:data/shifted --run-dir runs/ttt
               (zero-initialised head: 'zeroshot/top1' is zero-shot CLIP, 'ttt/top1' after adaptation)
      Writes RUN/metrics.jsonl ({"ttt/top1", "zeroshot/top1", ...}) and RUN/predictions.csv
      (index,label,before,after). Defaults follow TPT: 64 views, keep 10%, 1 AdamW step at lr 5e-3.
      """)

  @Option(help: "CLIP weights: HF folder, open_clip folder or .safetensors.") var model: String
  @Option(help: "Start from this head (.safetensors, reference names); default: out_proj = 0 (mask ≡ 1).") var head: String?
  @Option(help: "Test data spec: imagefolder:PATH, manifest:FILE.csv, coop:ROOT:NAME[:SPLIT].") var data: String
  @Option(help: "Views per image (view 0 the plain image, the rest random resized crops + flips).") var views = 64
  @Option(help: "Fraction of the views kept by lowest entropy (ceil(keep·views) views).") var keep = 0.1
  @Option(help: "AdamW steps per image.") var steps = 1
  @Option(help: "AdamW learning rate.") var lr = 5e-3
  @Option(name: .customLong("weight-decay"), help: "AdamW weight decay (torch's default, as TPT).") var weightDecay = 0.01
  @Option(name: .customLong("run-dir"), help: "Output folder (refused if it holds a metrics.jsonl).") var runDir: String
  @Option(help: "Seed of the views' random crops and flips (and of the head's unused projections).") var seed = 1
  @Option(help: ArgumentHelp("Refused: the test-time loss has no mask term, so rada.alpha has no effect in TTT.",
                              visibility: .hidden)) var alpha: Double?
  @OptionGroup var scoring: HeadScoringOptions
  @OptionGroup var runtime: RuntimeOptions

  func options() -> TTTOptions {
    TTTOptions(views: views, keepFraction: keep, steps: steps, lr: Float(lr), weightDecay: Float(weightDecay), seed: seed)
  }

  func validate() throws {
    if alpha != nil {
      throw ValidationError("--alpha has no effect in TTT (the test-time loss is the entropy of the averaged views, "
                            + "without the mask term); remove it.")
    }
    do { try options().validate() } catch { throw ValidationError("\(error)") }
  }

  func config() -> TrainConfig {
    var c = TrainConfig()
    c.model.path = model
    c.data.eval = data
    c.run.dir = runDir
    c.run.seed = seed
    c.rada.headInit = head
    scoring.apply(to: &c)
    return c
  }

  func run() throws {
    try Runtime.start(requestedThreads: runtime.threads)
    let config = config(), options = options()
    let world = try makeCollective(watchdogSeconds: config.run.collectiveTimeout)  // the default limit, as in train
    try runOnAllRanks(world) {
      _ = try TTTSession.run(config: config, options: options, world: world)
    }
  }
}
