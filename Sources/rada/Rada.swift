// The `rada` executable: thin ArgumentParser commands that call into the library modules.
// Errors are printed here (stderr) with a non-zero exit; library code never exits on a user error.
import ArgumentParser

@main
struct Rada: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rada",
    abstract: "Fine-tune CLIP with RAda (rational adaptation), data-parallel over MPI.",
    subcommands: [Info.self, SelfTest.self, Tokenize.self, Train.self, Pretrain.self, Synth.self, Preprocess.self, Embed.self, CreateModel.self, ConvertModel.self, Bench.self, Report.self, TTT.self, Eval.self, Zeroshot.self, Sweep.self, Features.self])
}

/// Options every computing command shares.
struct RuntimeOptions: ParsableArguments {
  @Option(help: "Compute threads per rank (default: the cores on this node divided by the ranks on it).")
  var threads: Int?

  func validate() throws {
    if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads)).") }
  }
}
