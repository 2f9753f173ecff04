// `rada tokenize`: prints the CLIP token ids of each text, one line per text with N space-separated ids
// (the same rows as open_clip.tokenize(texts, context_length=N)). Runs in one process; no MPI.
import ArgumentParser
import CLIP

struct Tokenize: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the CLIP token ids of each TEXT (one line of N ids per text, like open_clip.tokenize).")

  @Option(name: .customLong("context-length"), help: "Ids per line (N): <start_of_text>, text, <end_of_text>, zeros.")
  var contextLength = 77

  @Argument(help: "Texts to tokenize; quote each one.")
  var texts: [String]

  func validate() throws {
    if contextLength < 1 || contextLength > CLIPConfig.Limits.contextLength {
      throw ValidationError("--context-length must be in 1...\(CLIPConfig.Limits.contextLength) (got \(contextLength)); "
                            + "CLIP models use 77.")
    }
    if texts.isEmpty { throw ValidationError("Give at least one TEXT, e.g. rada tokenize \"a photo of a dog.\"") }
  }

  func run() throws {
    let tokenizer = try CLIPTokenizer()
    for row in tokenizer.tokenize(texts, contextLength: contextLength) {
      print(row.map(String.init).joined(separator: " "))
    }
  }
}
