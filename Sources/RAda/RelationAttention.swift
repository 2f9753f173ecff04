// The attention inside RAda's mask head for ONE sample (eft/trainers/rada.py SimpleMultiheadAttention with
// query1 = √s·f repeated K times, query2 = √s·t, query3 = key = value = s·f⊙t). Per head h, with c = 1/(√Dh·τ):
//   A_m = K · softmax over the flattened K·K map of c·Q_m·key_hᵀ        m = 1, 2, 3
//   attended_h = ((A1 + A2 + A3) / 3) · value_h
// Shape letters: K classes, D joint dim (the head's width), H heads, Dh = D / H. Per-sample matrices are (K, D)
// row-major; head h is the column block [h·Dh, (h+1)·Dh) (leading dimension D).
import Foundation
import Kernels
import Tensor

// Q1's K rows are identical, so A1[i, j] = p_j with p = softmax_j(c·q1·key_j): it costs O(K·Dh), not O(K²·Dh).
// Maps 2 and 3 live in per-thread K·K scratch; backward recomputes them from the saved log-sum-exps.

struct AttentionSizes {
  let classes: Int, dim: Int, heads: Int
  var headDim: Int { dim / heads }
  /// c = 1 / (√Dh · temperature): applied to Q·keyᵀ before the softmax.
  let logitScale: Float
}

enum RelationAttention {
  /// x (count) := exp(x - max(x)); returns (log Σ exp(x), 1 / Σ exp(x - max)).
  @inline(__always)
  static func exponentiate(_ x: MutableFloats, count: Int) -> (logSumExp: Float, inverseSum: Float) {
    let vectorEnd = count & ~15
    var best16 = SIMD16<Float>(repeating: -.greatestFiniteMagnitude)
    var i = 0
    while i < vectorEnd { let v = load16(x + i); best16.replace(with: v, where: v .> best16); i += 16 }
    var best = -Float.greatestFiniteMagnitude
    for lane in 0..<16 where best16[lane] > best { best = best16[lane] }
    for j in vectorEnd..<count where x[j] > best { best = x[j] }
    var sum16 = SIMD16<Float>(repeating: 0)
    i = 0
    while i < vectorEnd {
      let e = fastExp(load16(x + i) - best); store16(e, x + i); sum16 += e; i += 16
    }
    var sum = Double(sum16.sum())
    for j in vectorEnd..<count { let e = fastExp(x[j] - best); x[j] = e; sum += Double(e) }
    return (best + Float(log(sum)), Float(1 / sum))
  }

  /// p (K) = softmax_j(c · q1·key_j): the one distinct row of map 1 for head h.
  @inline(__always)
  static func mapOneRow(_ p: MutableFloats, query1: Floats, key: Floats, sizes: AttentionSizes) {
    let k = sizes.classes, d = sizes.dim, dh = sizes.headDim
    for j in 0..<k {
      var dot: Float = 0
      let row = key + j * d
      for e in 0..<dh { dot += query1[e] * row[e] }
      p[j] = sizes.logitScale * dot
    }
    let (_, inverse) = exponentiate(p, count: k)
    for j in 0..<k { p[j] *= inverse }
  }

  /// mix (K, K) = (p_j + K·(map2·a2 + map3·a3)) / 3 with map2·a2, map3·a3 the normalised maps.
  @inline(__always)
  static func mix(_ mix: MutableFloats, map2: Floats, scale2: Float, map3: Floats, scale3: Float, p: Floats, classes k: Int) {
    let third: Float = 1.0 / 3.0
    let a2 = Float(k) * scale2 * third, a3 = Float(k) * scale3 * third
    let vectorEnd = k & ~15
    for i in 0..<k {
      let m2 = map2 + i * k, m3 = map3 + i * k, out = mix + i * k
      var j = 0
      while j < vectorEnd {
        store16(load16(p + j) * third + load16(m2 + j) * a2 + load16(m3 + j) * a3, out + j); j += 16
      }
      while j < k { out[j] = p[j] * third + m2[j] * a2 + m3[j] * a3; j += 1 }
    }
  }

  /// Forward for one sample. Writes attended (K, D), logSumExp2/3 (H), rowSoftmax1 (H, K).
  /// query1 (D) this sample, query2 (K, D) shared, query3/key/value (K, D) this sample,
  /// scratch: 3·K·K + 2·K floats owned by the calling thread.
  static func forward(attended: MutableFloats, logSumExp2: MutableFloats, logSumExp3: MutableFloats,
                      rowSoftmax1: MutableFloats, query1: Floats, query2: Floats, query3: Floats, key: Floats,
                      value: Floats, scratch: MutableFloats, sizes: AttentionSizes) {
    let k = sizes.classes, d = sizes.dim, dh = sizes.headDim
    let map2 = scratch, map3 = scratch + k * k, mixed = scratch + 2 * k * k
    for h in 0..<sizes.heads {
      let column = h * dh
      // map2 (K, K) = c · Q2_h (K, Dh) · key_h (K, Dh)ᵀ ; map3 likewise with Q3_h
      gemm(.noTranspose, .transpose, m: k, n: k, k: dh, alpha: sizes.logitScale, a: query2 + column, lda: d,
           b: key + column, ldb: d, c: map2)
      gemm(.noTranspose, .transpose, m: k, n: k, k: dh, alpha: sizes.logitScale, a: query3 + column, lda: d,
           b: key + column, ldb: d, c: map3)
      let p = rowSoftmax1 + h * k
      mapOneRow(p, query1: query1 + column, key: key + column, sizes: sizes)
      let (lse2, inverse2) = exponentiate(map2, count: k * k)
      let (lse3, inverse3) = exponentiate(map3, count: k * k)
      logSumExp2[h] = lse2; logSumExp3[h] = lse3
      mix(mixed, map2: map2, scale2: inverse2, map3: map3, scale3: inverse3, p: p, classes: k)
      // attended_h (K, Dh) = mix (K, K) · value_h (K, Dh)
      gemm(.noTranspose, .noTranspose, m: k, n: dh, k: k, a: mixed, b: value + column, ldb: d,
           c: attended + column, ldc: d)
    }
  }

  /// Backward for one sample: adds into dQuery1 (D), dQuery3, dKey, dValue (K, D) of this sample (writes them with
  /// `overwrite`) and always adds the sample's share of dQuery2 (K, D) into the calling thread's accumulator
  /// (shared by the samples a thread processes, so it is never written).
  ///
  /// With P_m = A_m / K the normalised map and g = d loss / d mix: since mix = (A1 + A2 + A3) / 3,
  /// d loss / d A_m = g / 3, and through the flattened softmax d loss / d(c·S_m) = (K/3)·P_m ⊙ (g - <P_m, g>).
  /// For map 1 (rows identical, P1[i, j] = p_j / K) the column sums suffice: with m_j = Σ_i g[i, j],
  /// u_j = d loss / d(q1·key_j) = c · (p_j / 3) · (m_j - Σ_l p_l m_l).
  static func backward(dQuery1: MutableFloats, dQuery2: MutableFloats, dQuery3: MutableFloats, dKey: MutableFloats,
                       dValue: MutableFloats, dAttended: Floats, query1: Floats, query2: Floats, query3: Floats,
                       key: Floats, value: Floats, logSumExp2: Floats, logSumExp3: Floats, rowSoftmax1: Floats,
                       scratch: MutableFloats, sizes: AttentionSizes, overwrite: Bool = false) {
    let k = sizes.classes, d = sizes.dim, dh = sizes.headDim, c = sizes.logitScale
    let beta: Float = overwrite ? 0 : 1  // for this sample's own outputs; each head owns its column block
    let map2 = scratch, map3 = scratch + k * k, mixed = scratch + 2 * k * k
    let columnSums = scratch + 3 * k * k, u = columnSums + k
    let vectorEnd = k & ~15
    for h in 0..<sizes.heads {
      let column = h * dh
      let p = rowSoftmax1 + h * k
      // Recompute the normalised maps P2, P3 and the mix exactly as forward did.
      gemm(.noTranspose, .transpose, m: k, n: k, k: dh, alpha: c, a: query2 + column, lda: d,
           b: key + column, ldb: d, c: map2)
      gemm(.noTranspose, .transpose, m: k, n: k, k: dh, alpha: c, a: query3 + column, lda: d,
           b: key + column, ldb: d, c: map3)
      expShifted(out: map2, x: map2, count: k * k, shift: logSumExp2[h])
      expShifted(out: map3, x: map3, count: k * k, shift: logSumExp3[h])
      mix(mixed, map2: map2, scale2: 1, map3: map3, scale3: 1, p: p, classes: k)
      // dValue_h (K, Dh) (+)= mixᵀ (K, K) · dAttended_h (K, Dh)
      gemm(.transpose, .noTranspose, m: k, n: dh, k: k, a: mixed, b: dAttended + column, ldb: d,
           beta: beta, c: dValue + column, ldc: d)
      // g = dMix (K, K) = dAttended_h (K, Dh) · value_h (K, Dh)ᵀ, overwriting the mix
      gemm(.noTranspose, .transpose, m: k, n: k, k: dh, a: dAttended + column, lda: d, b: value + column, ldb: d,
           c: mixed)
      // <P2, g>, <P3, g> and the column sums m_j of g.
      var dot2 = SIMD16<Float>(repeating: 0), dot3 = SIMD16<Float>(repeating: 0)
      var tail2: Float = 0, tail3: Float = 0
      columnSums.update(repeating: 0, count: k)
      for i in 0..<k {
        let g = mixed + i * k, m2 = map2 + i * k, m3 = map3 + i * k
        var j = 0
        while j < vectorEnd {
          let gv = load16(g + j)
          dot2 += load16(m2 + j) * gv; dot3 += load16(m3 + j) * gv
          store16(load16(columnSums + j) + gv, columnSums + j)
          j += 16
        }
        while j < k { tail2 += m2[j] * g[j]; tail3 += m3[j] * g[j]; columnSums[j] += g[j]; j += 1 }
      }
      let inner2 = dot2.sum() + tail2, inner3 = dot3.sum() + tail3
      // dS_m = c·(K/3)·P_m ⊙ (g - <P_m, g>), in place of P_m (S_m = raw Q_m·key_hᵀ).
      let factor = c * Float(k) / 3
      for i in 0..<k {
        let g = mixed + i * k, m2 = map2 + i * k, m3 = map3 + i * k
        var j = 0
        while j < vectorEnd {
          let gv = load16(g + j)
          store16(load16(m2 + j) * (gv - inner2) * factor, m2 + j)
          store16(load16(m3 + j) * (gv - inner3) * factor, m3 + j)
          j += 16
        }
        while j < k { m2[j] = m2[j] * (g[j] - inner2) * factor; m3[j] = m3[j] * (g[j] - inner3) * factor; j += 1 }
      }
      var weighted: Float = 0
      for j in 0..<k { weighted += p[j] * columnSums[j] }
      for j in 0..<k { u[j] = c * p[j] / 3 * (columnSums[j] - weighted) }
      // dQuery3_h (K, Dh) (+)= dS3 (K, K) · key_h (K, Dh);  dQuery2_h (K, Dh) += dS2 (K, K) · key_h (K, Dh)
      gemm(.noTranspose, .noTranspose, m: k, n: dh, k: k, a: map3, b: key + column, ldb: d,
           beta: beta, c: dQuery3 + column, ldc: d)
      gemm(.noTranspose, .noTranspose, m: k, n: dh, k: k, a: map2, b: key + column, ldb: d,
           beta: 1, c: dQuery2 + column, ldc: d)
      // dKey_h (K, Dh) (+)= dS2ᵀ · Q2_h + dS3ᵀ · Q3_h + u ⊗ q1_h
      gemm(.transpose, .noTranspose, m: k, n: dh, k: k, a: map2, b: query2 + column, ldb: d,
           beta: beta, c: dKey + column, ldc: d)
      gemm(.transpose, .noTranspose, m: k, n: dh, k: k, a: map3, b: query3 + column, ldb: d,
           beta: 1, c: dKey + column, ldc: d)
      let q1 = query1 + column, dq1 = dQuery1 + column
      // dQuery1_h (Dh) (+)= Σ_j u_j · key_j,h
      if overwrite { for e in 0..<dh { dq1[e] = 0 } }
      for j in 0..<k {
        let uj = u[j], keyRow = key + j * d + column, dKeyRow = dKey + j * d + column
        for e in 0..<dh { dKeyRow[e] += uj * q1[e]; dq1[e] += uj * keyRow[e] }
      }
    }
  }
}
