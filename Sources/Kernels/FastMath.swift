// Shared fast math for the hot loops: a polynomial exp and erf that vectorise (no libm calls, no branches the
// compiler cannot turn into selects), and SIMD reductions over raw float rows (libm expf / erff cost several ns
// per element and block vectorisation, notes/swift-mpi-openblas.md). Accuracy (FastMathTests, against Double
// libm): fastExp relative error < 2e-7 on [-87, 88]; fastErf relative error < 1e-6 everywhere.
// Shape letters: none (rows of `count` floats).
import Tensor

// Coefficients were fitted by weighted least squares (Lawson iteration to near-minimax) in Double with numpy;
// the fit ranges are stated beside each polynomial.

// MARK: - exp

/// exp(x) for Float, |relative error| < 2e-7 on [-87, 88]; returns 0 below -87 and exp(88) above 88.
/// Range reduction exp(x) = 2ⁿ·exp(r), n = round(x·log2 e), r = x − n·ln 2 ∈ [−ln2/2, ln2/2] (Cody–Waite
/// split of ln 2 so r is exact), then a degree-6 polynomial for exp(r) (fit error 1.9e-9 on that interval).
@inlinable
public func fastExp(_ x: Float) -> Float {
  let clamped: Float = x < -87 ? -87 : (x > 88 ? 88 : x)
  // Adding 1.5·2²³ rounds to an integer held in the low mantissa bits: k.bitPattern = 0x4B40_0000 + n.
  let shifted = clamped * 1.442_695_04 + 12_582_912
  let n = shifted - 12_582_912
  let r = (clamped - n * 0.693_145_751_953_125) - n * 1.428_606_765_330_187e-6
  var p: Float = 1.383_674_463_132_542_4e-3
  p = p * r + 8.374_898_489_055_248e-3
  p = p * r + 4.166_823_176_161_056e-2
  p = p * r + 0.166_664_191_887_843_93
  p = p * r + 0.499_999_920_324_641_63
  p = p * r + 1.000_000_036_539_484_3
  p = p * r + 1.000_000_000_558_587_4
  // 2ⁿ built from the exponent bits: (n + 127) << 23, with n read back from the shifted bits.
  let scale = Float(bitPattern: (shifted.bitPattern &+ (127 &- 0x4B40_0000)) &<< 23)
  return x < -87 ? 0 : p * scale
}

/// fastExp on 16 lanes at once (the same range reduction and polynomial, so every lane equals the scalar
/// result); used by the softmax loops. Always inlined: as a call, the 64-byte vector goes through memory and
/// the body was compiled to 128-bit operations (measured 3x slower in the attention softmax).
@inlinable @inline(__always)
public func fastExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
  var clamped = x
  clamped.replace(with: -87, where: x .< -87)
  clamped.replace(with: 88, where: x .> 88)
  let shifted = clamped * 1.442_695_04 + 12_582_912
  let n = shifted - 12_582_912
  let r = (clamped - n * 0.693_145_751_953_125) - n * 1.428_606_765_330_187e-6
  var p = SIMD16<Float>(repeating: 1.383_674_463_132_542_4e-3)
  p = p * r + 8.374_898_489_055_248e-3
  p = p * r + 4.166_823_176_161_056e-2
  p = p * r + 0.166_664_191_887_843_93
  p = p * r + 0.499_999_920_324_641_63
  p = p * r + 1.000_000_036_539_484_3
  p = p * r + 1.000_000_000_558_587_4
  let bits = (unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &+ (127 &- 0x4B40_0000)) &<< 23
  var result = p * unsafeBitCast(bits, to: SIMD16<Float>.self)
  result.replace(with: 0, where: x .< -87)
  return result
}

/// out[i] = fastExp(x[i] − shift), i < count (out may alias x): SIMD16 lanes, then the scalar tail (the same values).
/// Written out because the scalar loop does not vectorise (fastExp's clamps).
@inlinable
public func expShifted(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, count: Int, shift: Float) {
  let vectorEnd = count & ~15
  var i = 0
  while i < vectorEnd { store16(fastExp(load16(x + i) - shift), out + i); i += 16 }
  while i < count { out[i] = fastExp(x[i] - shift); i += 1 }
}

/// 16 floats from a possibly unaligned address, and back.
@inlinable @inline(__always)
public func load16(_ pointer: UnsafePointer<Float>) -> SIMD16<Float> {
  UnsafeRawPointer(pointer).loadUnaligned(as: SIMD16<Float>.self)
}

@inlinable @inline(__always)
public func store16(_ value: SIMD16<Float>, _ pointer: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD16<Float>.self)
}

// MARK: - erf

/// erfc(t) for t ≥ 1 as exp(−t² + g(t)); g(t) = log erfc(t) + t² is smooth and fitted on t ∈ [1, 5.5] by a
/// degree-9 polynomial in (t − 1) (fit error 3.4e-8, Float evaluation error 6e-7 in g, i.e. relative in erfc).
/// Beyond 5.5 the polynomial is held at its end value: erfc(5.5) = 7e-15, so the absolute error stays < 1e-14.
@inlinable
public func fastErfcTail(_ t: Float) -> Float {
  let tc: Float = t < 1 ? 1 : (t > 5.5 ? 5.5 : t)
  let z = tc - 1
  var g: Float = -9.789_839_452_316_999e-8
  g = g * z + 2.881_517_970_234_55e-6
  g = g * z - 3.936_804_031_691_160_6e-5
  g = g * z + 3.372_171_716_990_512e-4
  g = g * z - 2.078_333_583_884e-3
  g = g * z + 1.009_411_469_904_329_7e-2
  g = g * z - 4.157_807_954_037_662e-2
  g = g * z + 0.156_892_844_763_391_96
  g = g * z - 0.638_966_868_812_633_3
  g = g * z - 0.849_605_543_809_387
  return fastExp(g - t * t)
}

/// erf(x) / x for |x| ≤ 1 as a degree-6 polynomial in s = x² (fit error 1.4e-9 relative).
@inlinable
public func fastErfSmallRatio(_ s: Float) -> Float {
  var p: Float = 7.889_123_080_847_746e-5
  p = p * s - 8.020_842_594_802_043e-4
  p = p * s + 5.189_535_521_682_264_6e-3
  p = p * s - 2.685_444_471_031_793_8e-2
  p = p * s + 0.112_836_001_799_032_62
  p = p * s - 0.376_126_271_364_332_5
  p = p * s + 1.128_379_165_913_915_5
  return p
}

/// erf(x) with relative error < 1e-6 against Double erf (odd polynomial for |x| ≤ 1, 1 − erfc tail beyond).
@inlinable
public func fastErf(_ x: Float) -> Float {
  let t = abs(x)
  let small = x * fastErfSmallRatio(x * x)
  let tail = Float(signOf: x, magnitudeOf: 1 - fastErfcTail(t))
  return t <= 1 ? small : tail
}

/// 1 + erf(x) = erfc(−x), computed without cancellation for negative x (the GELU tail needs it).
@inlinable
public func fastOnePlusErf(_ x: Float) -> Float {
  let t = abs(x)
  let small = 1 + x * fastErfSmallRatio(x * x)
  let erfcT = fastErfcTail(t)
  let tail = x > 0 ? 2 - erfcT : erfcT
  return t <= 1 ? small : tail
}

/// 1 / (1 + exp(−x)), vectorisable.
@inlinable
public func fastSigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

// MARK: - Row reductions (SIMD16 accumulators; plain Float loops would not vectorise under strict FP)

/// Σ x[i], i < count.
@inlinable
public func rowSum(_ x: Floats, _ count: Int) -> Float {
  var acc = SIMD16<Float>(repeating: 0)
  var i = 0
  while i + 16 <= count {
    acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
    i += 16
  }
  var sum = acc.sum()
  while i < count { sum += x[i]; i += 1 }
  return sum
}

/// Σ x[i]·y[i], i < count.
@inlinable
public func rowDot(_ x: Floats, _ y: Floats, _ count: Int) -> Float {
  var acc = SIMD16<Float>(repeating: 0)
  var i = 0
  while i + 16 <= count {
    acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
      * UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
    i += 16
  }
  var sum = acc.sum()
  while i < count { sum += x[i] * y[i]; i += 1 }
  return sum
}

/// max x[i], i < count (count ≥ 1). Uses masked replace, not SIMD .max() (scalar per lane, see notes).
@inlinable
public func rowMax(_ x: Floats, _ count: Int) -> Float {
  var best = -Float.infinity
  var i = 0
  if count >= 16 {
    var acc = SIMD16<Float>(repeating: -.infinity)
    while i + 16 <= count {
      let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
      acc.replace(with: v, where: v .> acc)
      i += 16
    }
    for lane in 0..<16 where acc[lane] > best { best = acc[lane] }
  }
  while i < count { if x[i] > best { best = x[i] }; i += 1 }
  return best
}
