// Seeded, reproducible random numbers. `SeededRNG` is xoshiro256** seeded through SplitMix64; `derivedSeed`
// hashes (seed, a, b, c) so that a random choice can depend only on (seed, epoch, sample index) and never on
// rank count or thread timing.
// Shape letters: none.

public struct SeededRNG: RandomNumberGenerator, Codable, Equatable {
  public var state: [UInt64]

  public init(seed: UInt64) {
    var sm = seed
    state = (0..<4).map { _ in splitMix64(&sm) }
  }

  public mutating func next() -> UInt64 {
    let result = rotl(state[1] &* 5, 7) &* 9
    let t = state[1] << 17
    state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3]
    state[2] ^= t
    state[3] = rotl(state[3], 45)
    return result
  }

  /// Uniform in [0, 1) with 24 random bits (exactly representable as Float).
  public mutating func uniformFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
  /// Uniform in [0, 1) with 53 random bits.
  public mutating func uniformDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
  /// Standard normal by Box-Muller (one value per call; simple and reproducible).
  public mutating func normal() -> Double {
    var u1 = uniformDouble()
    while u1 <= 0 { u1 = uniformDouble() }
    let u2 = uniformDouble()
    return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
  }
  /// Uniform integer in 0..<bound.
  public mutating func int(below bound: Int) -> Int { Int.random(in: 0..<bound, using: &self) }
}

private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

private func splitMix64(_ x: inout UInt64) -> UInt64 {
  x &+= 0x9E37_79B9_7F4A_7C15
  var z = x
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}

/// A seed that depends only on its inputs: hash of (seed, a, b, c).
public func derivedSeed(_ seed: UInt64, _ a: UInt64 = 0, _ b: UInt64 = 0, _ c: UInt64 = 0) -> UInt64 {
  var x = seed
  var h = splitMix64(&x)
  for v in [a, b, c] {
    var y = h ^ (v &* 0x9E37_79B9_7F4A_7C15)
    h = splitMix64(&y)
  }
  return h
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
