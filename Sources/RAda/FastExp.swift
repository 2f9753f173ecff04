// exp(x) for the attention softmax without libm: Cody-Waite range reduction x = n·ln2 + r, |r| <= ln2/2, a
// degree-6 Taylor polynomial for e^r (relative error about 2e-7), and 2^n built in the exponent bits.
// Inputs below -87 are clamped (e^-87 ≈ 1.6e-38, the smallest normal range); softmax inputs are <= 0 after the
// max is subtracted, so no upper clamp is needed (x up to 88 still works).

@usableFromInline let expMagic: Float = 12_582_912  // 1.5·2^23: adding it rounds to an integer in the low bits

@inline(__always) @usableFromInline
func fastExp(_ input: SIMD16<Float>) -> SIMD16<Float> {
  var x = input
  x.replace(with: -87, where: x .< -87)
  let shifted = x * 1.442_695_04 + expMagic            // n + magic, n = round(x / ln2)
  let n = shifted - expMagic
  let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6   // ln2 split in a high and a low part
  var p = r * (1.0 / 720) + (1.0 / 120)
  p = p * r + (1.0 / 24)
  p = p * r + (1.0 / 6)
  p = p * r + 0.5
  p = p * r + 1
  p = p * r + 1
  let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
  return p * unsafeBitCast(bits, to: SIMD16<Float>.self)
}

@inline(__always) @usableFromInline
func fastExp(_ input: Float) -> Float {
  let x = max(input, -87)
  let shifted = x * 1.442_695_04 + expMagic
  let n = shifted - expMagic
  let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6
  var p = r * (1.0 / 720) + (1.0 / 120)
  p = p * r + (1.0 / 24)
  p = p * r + (1.0 / 6)
  p = p * r + 0.5
  p = p * r + 1
  p = p * r + 1
  let bits = (Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000 &+ 127) &<< 23
  return p * Float(bitPattern: UInt32(bitPattern: bits))
}

@inline(__always) @usableFromInline
func load16(_ pointer: UnsafePointer<Float>) -> SIMD16<Float> {
  UnsafeRawPointer(pointer).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always) @usableFromInline
func store16(_ value: SIMD16<Float>, _ pointer: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD16<Float>.self)
}
