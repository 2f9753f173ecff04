// Every buffer one RAda head step needs, planned once for (maxBatch B, classes K, dim D) so that forward, loss
// and backward allocate nothing. The three K·K attention maps are never stored for the whole batch: each
// worker thread owns three K·K scratch maps and processes one sample at a time; backward recomputes them from
// the saved log-sum-exps. Row-major shapes below; "(B·K, D)" rows are sample-major (row = b·K + k).
// Shape letters: B batch (up to maxBatch), K classes, D joint dim, H heads.
import Kernels
import Tensor

public final class RAdaWorkspace {
  public let config: RAdaConfig
  public let maxBatch: Int
  /// K: fixed for the workspace (the class features are a fixed set).
  public let classes: Int
  /// Worker threads planned for (each owns K·K scratch maps and a dQ2 accumulator).
  public let workers: Int
  public let hasInputGradients: Bool
  /// False for evaluation-only workspaces: no backward buffers (about half the memory).
  public let isTraining: Bool

  // Set by forward / loss.
  public internal(set) var batch = 0
  public internal(set) var logitScale: Float = 1

  // Inputs kept for backward.
  let image: FloatBuffer         // f (B, D)
  let text: FloatBuffer          // t (K, D)
  let scaledImage: FloatBuffer   // √s·f (B, D): input of q_proj1
  let scaledText: FloatBuffer    // √s·t (K, D): input of q_proj2
  let relation: FloatBuffer      // x = s·f⊙t (B·K, D): input of q_proj3, k_proj, v_proj
  // Projections and attention.
  let query1: FloatBuffer        // (B, D)
  let query2: FloatBuffer        // (K, D)
  let query3: FloatBuffer        // (B·K, D)
  let key: FloatBuffer           // (B·K, D)
  let value: FloatBuffer         // (B·K, D)
  let attended: FloatBuffer      // (B·K, D): ((A1 + A2 + A3) / 3)·V per head, heads side by side
  let logSumExp2: FloatBuffer    // (B, H): log Σ exp over the flattened K·K logits of map 2
  let logSumExp3: FloatBuffer    // (B, H): same for map 3
  let rowSoftmax1: FloatBuffer   // (B, H, K): map 1 has K identical rows; this is one of them
  /// mask = relu(1 + out_proj(attended)) (B·K, D).
  public let mask: FloatBuffer
  /// logits = s·Σ_d mask·f⊙t (B, K).
  public let logits: FloatBuffer
  /// d loss / d logits (B, K): written by `loss`, or by the caller for other losses (test-time entropy, ...).
  public let dLogits: FloatBuffer
  /// First index (k·D + d) of max |mask - 1| per sample (LInf backward routes there, like torch.max).
  var maxIndex: [Int]
  /// True when `loss` has run on the current forward (maxIndex belongs to it); forward clears it.
  var hasMaskLossState = false

  // Backward.
  let dOut: FloatBuffer          // (B·K, D): d loss / d out_proj output (mask gradient gated by the relu)
  let dAttended: FloatBuffer     // (B·K, D)
  let dQuery1: FloatBuffer       // (B, D)
  let dQuery2: FloatBuffer       // (K, D)
  let dQuery3: FloatBuffer       // (B·K, D)
  let dKey: FloatBuffer          // (B·K, D)
  let dValue: FloatBuffer        // (B·K, D)
  let dRelation: FloatBuffer     // (B·K, D) only with input gradients, else empty
  let dScaledImage: FloatBuffer  // (B, D) only with input gradients
  let dScaledText: FloatBuffer   // (K, D) only with input gradients
  // Per worker: maps 2 and 3 and the mixed map (3·K·K), column sums and map-1 weights (2·K), dQ2 (K·D).
  let scratch: FloatBuffer
  let dQuery2PerWorker: FloatBuffer

  var scratchStride: Int { 3 * classes * classes + 2 * classes }

  /// - Parameters:
  ///   - inputGradients: plan dF/dT (needed when the towers are trained through the head, FFT).
  ///   - training: false plans forward buffers only (evaluation); backward then throws.
  ///   - workers: threads for the per-sample attention (default `Parallel.threads`).
  public init(config: RAdaConfig, maxBatch: Int, classes: Int, inputGradients: Bool = false, training: Bool = true,
              workers: Int? = nil) throws {
    try config.validate()
    guard maxBatch > 0 else { throw RAdaError.workspaceMismatch(what: "maxBatch", asked: maxBatch, planned: 1) }
    guard classes > 0 else { throw RAdaError.workspaceMismatch(what: "classes", asked: classes, planned: 1) }
    self.config = config
    self.maxBatch = maxBatch
    self.classes = classes
    self.workers = max(1, min(workers ?? Parallel.threads, maxBatch))
    self.hasInputGradients = inputGradients && training
    self.isTraining = training
    let d = config.dim, h = config.heads, rows = maxBatch * classes
    image = FloatBuffer(count: maxBatch * d); text = FloatBuffer(count: classes * d)
    scaledImage = FloatBuffer(count: maxBatch * d); scaledText = FloatBuffer(count: classes * d)
    relation = FloatBuffer(count: rows * d)
    query1 = FloatBuffer(count: maxBatch * d); query2 = FloatBuffer(count: classes * d)
    query3 = FloatBuffer(count: rows * d); key = FloatBuffer(count: rows * d); value = FloatBuffer(count: rows * d)
    attended = FloatBuffer(count: rows * d)
    logSumExp2 = FloatBuffer(count: maxBatch * h); logSumExp3 = FloatBuffer(count: maxBatch * h)
    rowSoftmax1 = FloatBuffer(count: maxBatch * h * classes)
    mask = FloatBuffer(count: rows * d); logits = FloatBuffer(count: rows); dLogits = FloatBuffer(count: rows)
    maxIndex = Array(repeating: 0, count: maxBatch)
    let t = training ? 1 : 0, i = hasInputGradients ? 1 : 0
    dOut = FloatBuffer(count: t * rows * d); dAttended = FloatBuffer(count: t * rows * d)
    dQuery1 = FloatBuffer(count: t * maxBatch * d); dQuery2 = FloatBuffer(count: t * classes * d)
    dQuery3 = FloatBuffer(count: t * rows * d); dKey = FloatBuffer(count: t * rows * d)
    dValue = FloatBuffer(count: t * rows * d)
    dRelation = FloatBuffer(count: i * rows * d)
    dScaledImage = FloatBuffer(count: i * maxBatch * d)
    dScaledText = FloatBuffer(count: i * classes * d)
    scratch = FloatBuffer(count: self.workers * (3 * classes * classes + 2 * classes))
    dQuery2PerWorker = FloatBuffer(count: t * self.workers * classes * d)
  }

  /// Bytes held by this workspace (for the memory report).
  public var byteCount: Int {
    [image, text, scaledImage, scaledText, relation, query1, query2, query3, key, value, attended, logSumExp2,
     logSumExp3, rowSoftmax1, mask, logits, dLogits, dOut, dAttended, dQuery1, dQuery2, dQuery3, dKey, dValue,
     dRelation, dScaledImage, dScaledText, scratch, dQuery2PerWorker].reduce(0) { $0 + $1.count * 4 }
  }
}
