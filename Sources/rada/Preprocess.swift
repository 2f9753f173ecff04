// `rada preprocess`: runs the CLIP eval transform (Resize(N, bicubic) -> CenterCrop(N) -> RGB -> ToTensor ->
// Normalize, bit-exact with open_clip + Pillow) on each IMAGE and writes one float32 .npy of shape
// (n, 3, N, N) in argument order. Runs in one process; no MPI.
import ArgumentParser
import CLIP
import Foundation
import Imaging
import Tensor

struct Preprocess: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Preprocess IMAGEs like open_clip's eval transform and write float32 (n, 3, N, N) to OUT.npy.")

  @Option(help: "Output side length N (224 for ViT-B/16).") var size = 224
  @Option(help: "Output .npy file.") var out: String
  @Argument(help: "JPEG or PNG files (format from the file's bytes, not its extension).") var images: [String]

  func validate() throws {
    if size < 1 || size > CLIPConfig.Limits.imageSize {
      throw ValidationError("--size must be in 1...\(CLIPConfig.Limits.imageSize) (got \(size)); CLIP ViT-B models use 224.")
    }
    // The output holds every image: (n, 3, S, S) floats, at most 2^32 (16 GiB).
    if images.count > (1 << 32) / (3 * size * size) {
      throw ValidationError("\(images.count) images of \(size)x\(size) need more than 16 GiB of output; preprocess them in parts.")
    }
    if images.isEmpty { throw ValidationError("Give at least one IMAGE, e.g. rada preprocess --out x.npy cat.jpg") }
  }

  func run() throws {
    let preprocessor = CLIPPreprocessor(size: size)
    let plane = 3 * size * size
    let output = FloatBuffer(count: images.count * plane)
    for (index, path) in images.enumerated() {
      preprocessor(try ImageDecoder.decode(path: path), into: output.pointer + index * plane)
    }
    try NPYArray(shape: [images.count, 3, size, size], floats: output.array).write(path: out)
  }
}
