// Multi-head self-attention core of torch.nn.MultiheadAttention, between its in-projection and out-projection:
//   per batch b and head h:  scores = q·kᵀ / √Dh (+ causal mask),  probs = softmax(scores),  out = probs·v
// Shapes: qkv (B, T, 3C) packed [q | k | v] per token as torch's in_proj output; out (B, T, C) heads
// concatenated (head h owns columns h·Dh ..< (h+1)·Dh); probs (B, H, T, T) saved for backward; C = H·Dh.
// Every product is one sgemm on the packed layout (leading dimension 3C or C), so nothing is copied.
// Shape letters: B batch, T tokens (P in the vision tower), C width, H heads, Dh head dim.
import Foundation
import Tensor

public enum Attention {
  /// Floats of scratch `backward` needs when the caller passes one: one (T, T) matrix per worker thread.
  public static func scratchCount(tokens: Int, workers: Int = Parallel.threads) -> Int { tokens * tokens * max(1, workers) }

  /// out (B, T, C) = heads-concatenated softmax(q·kᵀ/√Dh [+ causal mask]) · v; writes probs (B, H, T, T).
  /// With `causal`, token i attends to j ≤ i and probs above the diagonal are exactly 0 (torch adds −inf).
  public static func forward(out: MutableFloats, probs: MutableFloats, qkv: Floats,
                             batch: Int, tokens: Int, heads: Int, headDim: Int, causal: Bool) {
    let width = heads * headDim, packed = 3 * width
    let scale = 1 / Float(headDim).squareRoot()
    // one item per (batch, head); items write disjoint probs and disjoint column blocks of out
    Parallel.forEachItem(batch * heads) { item, _ in
      let b = item / heads, h = item % heads
      let base = qkv + b * tokens * packed
      let q = base + h * headDim, k = base + width + h * headDim, v = base + 2 * width + h * headDim
      let p = probs + item * tokens * tokens
      // scores (T, T) = scale · q (T, Dh) · kᵀ (Dh, T)      rows of q and k are `packed` apart
      gemm(.noTranspose, .transpose, m: tokens, n: tokens, k: headDim, alpha: scale,
           a: q, lda: packed, b: k, ldb: packed, c: p, ldc: tokens)
      for i in 0..<tokens {
        let row = p + i * tokens
        let visible = causal ? i + 1 : tokens
        Softmax.row(out: row, x: Floats(row), cols: visible)
        if visible < tokens { (row + visible).update(repeating: 0, count: tokens - visible) }
      }
      // out[b, :, h·Dh ..< (h+1)·Dh] (T, Dh) = probs (T, T) · v (T, Dh)
      gemm(.noTranspose, .noTranspose, m: tokens, n: headDim, k: tokens,
           a: p, lda: tokens, b: v, ldb: packed, c: out + b * tokens * width + h * headDim, ldc: width)
    }
  }

  /// Adds into dQKV (B, T, 3C) (writes it with `overwrite`), reading probs from `forward`. scratch:
  /// `scratchCount(tokens:)` floats (one (T, T) matrix per worker; fewer matrices mean fewer workers), or nil to
  /// use a shared buffer kept by this enum (grown once, guarded by a lock).
  /// forward was out = probs·v, probs = softmax(scores), scores = scale·q·kᵀ, so (dProbs, dScores (T, T))
  ///   dv = probsᵀ·dOut,  dProbs = dOut·vᵀ,  dScores = probs ⊙ (dProbs − rowsum(dProbs ⊙ probs)),
  ///   dq = scale·dScores·k,  dk = scale·dScoresᵀ·q.
  /// Masked entries have probs = 0, hence dScores = 0: the causal mask needs no extra work here.
  public static func backward(dQKV: MutableFloats, dOut: Floats, qkv: Floats, probs: Floats,
                              batch: Int, tokens: Int, heads: Int, headDim: Int, causal: Bool,
                              scratch: UnsafeMutableBufferPointer<Float>? = nil, overwrite: Bool = false) {
    if let scratch {
      backward(dQKV: dQKV, dOut: dOut, qkv: qkv, probs: probs, batch: batch, tokens: tokens, heads: heads,
               headDim: headDim, causal: causal, dScores: scratch, overwrite: overwrite)
      return
    }
    SharedScratch.lock.lock()
    defer { SharedScratch.lock.unlock() }
    let needed = scratchCount(tokens: tokens)
    if SharedScratch.buffer.count < needed { SharedScratch.buffer = FloatBuffer(count: needed) }
    backward(dQKV: dQKV, dOut: dOut, qkv: qkv, probs: probs, batch: batch, tokens: tokens, heads: heads,
             headDim: headDim, causal: causal,
             dScores: UnsafeMutableBufferPointer(start: SharedScratch.buffer.pointer, count: SharedScratch.buffer.count),
             overwrite: overwrite)
  }

  /// The fallback scratch: allocated on first use and whenever a longer sequence appears, never per call.
  private enum SharedScratch {
    nonisolated(unsafe) static var buffer = FloatBuffer(count: 0)
    static let lock = NSLock()
  }

  private static func backward(dQKV: MutableFloats, dOut: Floats, qkv: Floats, probs: Floats,
                               batch: Int, tokens: Int, heads: Int, headDim: Int, causal: Bool,
                               dScores scratch: UnsafeMutableBufferPointer<Float>, overwrite: Bool) {
    let width = heads * headDim, packed = 3 * width
    let beta: Float = overwrite ? 0 : 1  // every (batch, head) writes its dq, dk, dv blocks exactly once
    let scale = 1 / Float(headDim).squareRoot()
    let workers = scratch.count / (tokens * tokens)
    precondition(workers >= 1, "Attention.backward: scratch of \(scratch.count) floats is less than one (T, T) matrix")
    // one item per (batch, head); items write disjoint column blocks of dQKV; worker w uses scratch matrix w
    Parallel.forEachItem(batch * heads, workers: workers) { item, worker in
      let b = item / heads, h = item % heads, offset = h * headDim
      let dScores = scratch.baseAddress! + worker * tokens * tokens
      let base = qkv + b * tokens * packed, dBase = dQKV + b * tokens * packed
      let q = base + offset, k = base + width + offset, v = base + 2 * width + offset
      let dq = dBase + offset, dk = dBase + width + offset, dv = dBase + 2 * width + offset
      let p = probs + item * tokens * tokens
      let dO = dOut + b * tokens * width + offset
      // dv (T, Dh) (+)= probsᵀ (T, T) · dOut_h (T, Dh)
      gemm(.transpose, .noTranspose, m: tokens, n: headDim, k: tokens,
           a: p, lda: tokens, b: dO, ldb: width, beta: beta, c: dv, ldc: packed)
      // dProbs (T, T) = dOut_h (T, Dh) · vᵀ (Dh, T), into the dScores scratch
      gemm(.noTranspose, .transpose, m: tokens, n: tokens, k: headDim,
           a: dO, lda: width, b: v, ldb: packed, c: dScores, ldc: tokens)
      // dScores = probs ⊙ (dProbs − Σ_j dProbs·probs), row by row; with the causal mask only j ≤ i can be nonzero.
      for i in 0..<tokens {
        let dRow = dScores + i * tokens, pRow = p + i * tokens
        let visible = causal ? i + 1 : tokens
        let dotDP = rowDot(Floats(dRow), pRow, visible)
        for j in 0..<visible { dRow[j] = pRow[j] * (dRow[j] - dotDP) }
        if visible < tokens { (dRow + visible).update(repeating: 0, count: tokens - visible) }
      }
      // dq (T, Dh) (+)= scale · dScores (T, T) · k (T, Dh)
      gemm(.noTranspose, .noTranspose, m: tokens, n: headDim, k: tokens, alpha: scale,
           a: dScores, lda: tokens, b: k, ldb: packed, beta: beta, c: dq, ldc: packed)
      // dk (T, Dh) (+)= scale · dScoresᵀ (T, T) · q (T, Dh)
      gemm(.transpose, .noTranspose, m: tokens, n: headDim, k: tokens, alpha: scale,
           a: dScores, lda: tokens, b: q, ldb: packed, beta: beta, c: dk, ldc: packed)
    }
  }
}
