// Symmetric CLIP contrastive loss with a learnable temperature, open_clip `ClipLoss` (loss.py):
//   logits_per_image = exp(logit_scale) · image_local · text_globalᵀ  (B, N);  logits_per_text likewise (B, N)
//   loss = (CE(logits_per_image, labels) + CE(logits_per_text, labels)) / 2,   labels_i = labelOffset + i
// This rank's B rows against the N gathered rows of all ranks (open_clip's local_loss; one process: B = N).
// Features are the L2-normalised embeddings (D wide). The gathering is the caller's business (DESIGN.md).
// Shape letters: B local rows (`rows`, n in the code), N gathered rows (`columns`), D joint embedding dim.
import Foundation
import Kernels
import Tensor

public final class ContrastiveLoss {
  public let localRows: Int, globalRows: Int, dim: Int
  /// (B, N) logits and softmax probabilities of both directions; (B, N) gradient scratch; (B) labels
  let logitsPerImage, logitsPerText, probsPerImage, probsPerText, dLogits: FloatBuffer
  let labels: UnsafeMutablePointer<Int32>

  /// Scratch for up to `localRows` rows against `globalRows` columns of `dim`-wide features.
  public init(localRows: Int, globalRows: Int, dim: Int) {
    precondition(localRows <= globalRows, "ContrastiveLoss: \(localRows) local rows > \(globalRows) global")
    self.localRows = localRows; self.globalRows = globalRows; self.dim = dim
    let size = localRows * globalRows
    logitsPerImage = FloatBuffer(count: size); logitsPerText = FloatBuffer(count: size)
    probsPerImage = FloatBuffer(count: size); probsPerText = FloatBuffer(count: size)
    dLogits = FloatBuffer(count: size)
    labels = .allocate(capacity: max(localRows, 1))
    labels.initialize(repeating: 0, count: max(localRows, 1))
  }

  deinit { labels.deallocate() }

  public struct Result: Equatable {
    public var loss: Float
    /// d loss / d logit_scale (the log-space parameter)
    public var dLogitScale: Float
    /// Fraction of local images whose highest logit is their own text (top-1, for logging)
    public var accuracy: Float
  }

  /// Loss and gradients. Gradients ADD into the given buffers:
  ///   dImageLocal, dTextLocal (B, D): from this call's rows;
  ///   dImageGlobal, dTextGlobal (N, D): from its columns. When nil, the columns that are this call's own
  ///   rows (labelOffset ..< labelOffset + B) are added into dImageLocal / dTextLocal instead and the rest is
  ///   dropped; with one process (B = N) that is the exact gradient, with several it is open_clip's
  ///   local_loss without gather_with_grad. For the exact distributed gradient pass the global buffers and
  ///   sum them over ranks.
  /// imageLocal, textLocal (B, D); imageGlobal, textGlobal (N, D); rows ≤ localRows, columns ≤ globalRows.
  @discardableResult
  public func compute(imageLocal: Floats, textLocal: Floats, imageGlobal: Floats, textGlobal: Floats,
                      rows n: Int, columns N: Int, labelOffset: Int, logitScale: Float,
                      dImageLocal: MutableFloats?, dTextLocal: MutableFloats?,
                      dImageGlobal: MutableFloats? = nil, dTextGlobal: MutableFloats? = nil) -> Result {
    precondition(n <= localRows && N <= globalRows && labelOffset >= 0 && labelOffset + n <= N,
                 "ContrastiveLoss.compute: rows \(n), columns \(N), offset \(labelOffset) do not fit")
    let e = dim, scale = Float(exp(Double(logitScale)))
    for i in 0..<n { labels[i] = Int32(labelOffset + i) }
    // logitsPerImage (B, N) = s · imageLocal (B, D) · textGlobalᵀ (D, N); logitsPerText likewise
    gemm(.noTranspose, .transpose, m: n, n: N, k: e, alpha: scale, a: imageLocal, b: textGlobal,
         c: logitsPerImage.pointer)
    gemm(.noTranspose, .transpose, m: n, n: N, k: e, alpha: scale, a: textLocal, b: imageGlobal,
         c: logitsPerText.pointer)
    let lossImage = CrossEntropy.forward(probs: probsPerImage.pointer, logits: logitsPerImage.pointer,
                                         labels: labels, rows: n, classes: N)
    let lossText = CrossEntropy.forward(probs: probsPerText.pointer, logits: logitsPerText.pointer,
                                        labels: labels, rows: n, classes: N)
    var correct = 0
    for i in 0..<n {
      let row = logitsPerImage.pointer + i * N
      var best = 0
      for j in 1..<max(N, 1) where row[j] > row[best] { best = j }
      if best == labelOffset + i { correct += 1 }
    }
    var dLogitScale = 0.0
    // Each direction: dLogits = 0.5 · (probs − onehot) / n. logits = s · cos, so d/d logit_scale = Σ dLogits ⊙ logits.
    for direction in 0..<2 {
      let probs = direction == 0 ? probsPerImage : probsPerText
      let logits = direction == 0 ? logitsPerImage : logitsPerText
      let rowsLocal = direction == 0 ? imageLocal : textLocal        // the features of the rows
      let columnsGlobal = direction == 0 ? textGlobal : imageGlobal  // the features of the columns
      let dRows = direction == 0 ? dImageLocal : dTextLocal
      let dColumnsGlobal = direction == 0 ? dTextGlobal : dImageGlobal
      let dColumnsLocal = direction == 0 ? dTextLocal : dImageLocal
      let d = dLogits.pointer
      d.update(repeating: 0, count: n * N)
      CrossEntropy.backward(dLogits: d, probs: probs.pointer, labels: labels, rows: n, classes: N, dLoss: 0.5)
      for i in 0..<(n * N) { dLogitScale += Double(d[i]) * Double(logits[i]) }
      if let dRows {
        // dRows (B, D) += s · dLogits (B, N) · columnsGlobal (N, D)
        gemm(.noTranspose, .noTranspose, m: n, n: e, k: N, alpha: scale, a: d, b: columnsGlobal, beta: 1, c: dRows)
      }
      if let dColumnsGlobal {
        // dColumnsGlobal (N, D) += s · dLogitsᵀ (N, B) · rowsLocal (B, D)
        gemm(.transpose, .noTranspose, m: N, n: e, k: n, alpha: scale, a: d, b: rowsLocal, beta: 1, c: dColumnsGlobal)
      } else if let dColumnsLocal {
        // Own columns only: dColumnsLocal (B, D) += s · dLogits[:, offset..<offset+B]ᵀ (B, B) · rowsLocal (B, D)
        gemm(.transpose, .noTranspose, m: n, n: e, k: n, alpha: scale, a: d + labelOffset, lda: N,
             b: rowsLocal, beta: 1, c: dColumnsLocal)
      }
    }
    return Result(loss: (lossImage + lossText) / 2, dLogitScale: Float(dLogitScale),
                  accuracy: n > 0 ? Float(correct) / Float(n) : 0)
  }

  /// The (B, N) image-to-text logits of the last `compute` (row-major).
  public func lastLogitsPerImage(rows n: Int, columns N: Int) -> [Float] {
    Array(UnsafeBufferPointer(start: logitsPerImage.pointer, count: n * N))
  }
}
