// `rada embed`: CLIP embeddings of images or texts into a float32 .npy of shape (N, D), rows in input order,
// L2-normalised unless --no-normalize (then the projected features, open_clip encode_* without normalize).
// Inputs: image files (open_clip's eval preprocessing), a float32 NCHW .npy of preprocessed pixels, texts
// (open_clip's tokenizer) or an int32/int64 (n, T) .npy of token ids. One process; no MPI.
import ArgumentParser
import CLIP
import Foundation
import Imaging
import Tensor
import Training

enum EmbedError: Error, CustomStringConvertible {
  case badInput(path: String, reason: String, hint: String)

  var description: String {
    switch self {
    case let .badInput(path, reason, hint): return "\(path): \(reason). \(hint)"
    }
  }
}

struct Embed: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write CLIP embeddings (N, D) of images or texts to a float32 .npy, in input order.")

  @OptionGroup var runtime: RuntimeOptions
  @Option(help: "Model: HF folder, open_clip folder or .safetensors with OpenAI/open_clip names.") var model: String
  @Option(parsing: .upToNextOption, help: "Image files (JPEG/PNG), preprocessed as open_clip's eval transform.")
  var images: [String] = []
  @Option(help: "Preprocessed pixels: float32 .npy of shape (n, 3, S, S).") var pixels: String?
  @Option(parsing: .upToNextOption, help: "Texts, tokenized with the CLIP BPE tokenizer.") var texts: [String] = []
  @Option(name: .customLong("token-ids"), help: "Token ids: int32 or int64 .npy of shape (n, T), T the context length.")
  var tokenIds: String?
  @Option(help: "Output .npy path.") var out: String
  @Flag(name: .customLong("no-normalize"), help: "Write the projected features without L2 normalisation.")
  var noNormalize = false
  @Option(name: .customLong("head-width"), help: "Attention head width for weights without a config (OpenAI: 64).")
  var headWidth: Int?
  @Option(help: "MLP activation override: quick_gelu or gelu (weights without a config default to quick_gelu).")
  var activation: String?
  @Option(name: .customLong("batch-size"), help: "Inputs per forward pass.") var batchSize = 32

  func validate() throws {
    let given = [!images.isEmpty, pixels != nil, !texts.isEmpty, tokenIds != nil].filter { $0 }.count
    if given != 1 {
      throw ValidationError("Give exactly one of --images, --pixels, --texts, --token-ids (got \(given)).")
    }
    if batchSize < 1 { throw ValidationError("--batch-size must be at least 1 (got \(batchSize)).") }
    if let headWidth, headWidth < 1 { throw ValidationError("--head-width must be positive (got \(headWidth)).") }
    if let activation, CLIPActivation(rawValue: activation) == nil {
      throw ValidationError("--activation must be quick_gelu or gelu (got '\(activation)').")
    }
  }

  func run() throws {
    try Runtime.start(requestedThreads: runtime.threads)
    let options = CLIPLoadOptions(headWidth: headWidth, activation: activation.flatMap(CLIPActivation.init(rawValue:)))
    let clip = try CLIPModel.load(path: model, options: options)
    let embeddings: [Float]
    let count: Int
    if !images.isEmpty {
      count = images.count
      embeddings = try embedImageFiles(clip)
    } else if let pixels {
      let array = try NPYArray.read(path: pixels)
      let s = clip.config.vision.imageSize
      guard array.shape.count == 4, array.shape[1] == 3, array.shape[2] == s, array.shape[3] == s,
            array.dtype == .float32 || array.dtype == .float64 else {
        throw EmbedError.badInput(path: pixels, reason: "holds \(array.dtype.rawValue) \(shapeString(array.shape)), "
                                    + "the model needs float32 (n, 3, \(s), \(s))",
                                  hint: "Save preprocessed images with np.save(path, x.astype(np.float32)) in NCHW order.")
      }
      count = array.shape[0]
      embeddings = clip.encodeImages(pixels: array.floats(), count: count, normalize: !noNormalize, chunk: batchSize)
    } else {
      let ids: [Int32]
      if let tokenIds {
        ids = try readTokenIds(tokenIds, config: clip.config.text)
      } else {
        let tokenizer = try CLIPTokenizer()
        guard CLIPTokenizer.vocabularySize <= clip.config.text.vocabSize else {
          throw EmbedError.badInput(path: model, reason: "the model's vocabulary has \(clip.config.text.vocabSize) "
                                      + "tokens, the CLIP tokenizer \(CLIPTokenizer.vocabularySize)",
                                    hint: "Use --token-ids with ids of this model's own tokenizer.")
        }
        ids = tokenizer.tokenize(texts, contextLength: clip.config.text.contextLength).flatMap { $0 }
      }
      count = ids.count / clip.config.text.contextLength
      embeddings = clip.encodeTexts(ids: ids, count: count, normalize: !noNormalize, chunk: batchSize)
    }
    try NPYArray(shape: [count, clip.config.embedDim], floats: embeddings).write(path: out)
    FileHandle.standardError.write("wrote \(count) x \(clip.config.embedDim) embeddings to \(out)\n".data(using: .utf8)!)
  }

  /// Decodes and preprocesses images one batch at a time, so memory stays at one batch of pixels.
  func embedImageFiles(_ clip: CLIPModel) throws -> [Float] {
    let s = clip.config.vision.imageSize, perImage = 3 * s * s
    let preprocess = CLIPPreprocessor(size: s)
    var result: [Float] = []
    result.reserveCapacity(images.count * clip.config.embedDim)
    var start = 0
    while start < images.count {
      let paths = images[start..<min(images.count, start + batchSize)]
      var batch = [Float](repeating: 0, count: paths.count * perImage)
      try batch.withUnsafeMutableBufferPointer { buffer in
        for (i, path) in paths.enumerated() {
          preprocess(try ImageDecoder.decode(path: path), into: buffer.baseAddress! + i * perImage)
        }
      }
      result += clip.encodeImages(pixels: batch, count: paths.count, normalize: !noNormalize, chunk: batchSize)
      start += paths.count
    }
    return result
  }

  func readTokenIds(_ path: String, config: CLIPTextConfig) throws -> [Int32] {
    let array = try NPYArray.read(path: path)
    guard array.dtype == .int32 || array.dtype == .int64, array.shape.count == 2,
          array.shape[1] == config.contextLength else {
      throw EmbedError.badInput(path: path, reason: "holds \(array.dtype.rawValue) \(shapeString(array.shape)), "
                                  + "the model needs int32 or int64 (n, \(config.contextLength))",
                                hint: "Write the ids of open_clip.tokenize(texts) with np.save(path, ids.numpy()).")
    }
    let ids = array.ints()
    if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= config.vocabSize }) {
      throw EmbedError.badInput(path: path, reason: "id \(ids[bad]) at row \(bad / config.contextLength), position "
                                  + "\(bad % config.contextLength) is outside the vocabulary 0..<\(config.vocabSize)",
                                hint: "Tokenize with the model's own tokenizer.")
    }
    return ids.map { Int32($0) }
  }
}
