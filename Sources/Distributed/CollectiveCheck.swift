// A self-check of every collective on known values, run by `rada selftest collectives` under mpirun
// (2 and 3 ranks in launch/test) and by the unit tests on one rank. Each rank contributes values that
// depend on its rank, so the expected result is known in closed form; every rank checks its own copy, and
// the coordinator also checks that all ranks ended with bit-identical buffers.
// Shape letters: none (buffer sizes are counts: 0, 1, 2 and 2^20 + 3 floats).
import Foundation
import Tensor

public enum CollectiveCheck {
  /// Runs every check and returns a list of failures (empty when all pass).
  public static func run(_ c: Collective, sizes: [Int] = [0, 1, 2, 1 << 20 + 3]) throws -> [String] {
    var failures: [String] = []
    let n = Double(c.size), r = Double(c.rank)
    func fail(_ what: String) { failures.append("rank \(c.rank): \(what)") }

    try c.barrier()

    for count in sizes {
      // allreduce sum: element i of rank r is (r + 1) + i mod 7  ->  n(n+1)/2 + n·(i mod 7)
      let buffer = FloatBuffer(count: count)
      for i in 0..<count { buffer[i] = Float(r + 1) + Float(i % 7) }
      try c.allReduceSum(buffer.pointer, count: count)
      for i in 0..<count where buffer[i] != Float(n * (n + 1) / 2 + n * Double(i % 7)) {
        fail("allReduceSum size \(count) index \(i): \(buffer[i])"); break
      }
      // identical on every rank: compare a checksum through a max and a sum
      var checksum = 0.0
      for i in 0..<count { checksum += Double(buffer[i]) * Double(i % 13 + 1) }
      var both = [checksum, -checksum]
      try c.allReduceMax(&both)
      if both[0] != checksum || -both[1] != checksum { fail("allReduceSum size \(count): ranks disagree") }

      // allreduce mean: rank r contributes r  ->  (n-1)/2
      for i in 0..<count { buffer[i] = Float(r) }
      try c.allReduceMean(buffer.pointer, count: count)
      let mean = Float((n - 1) / 2)
      for i in 0..<count where abs(buffer[i] - mean) > 1e-6 { fail("allReduceMean size \(count): \(buffer[i]) != \(mean)"); break }

      // broadcast from the last rank
      let root = c.size - 1
      for i in 0..<count { buffer[i] = c.rank == root ? Float(i % 1000) * 0.5 : -1 }
      try c.broadcast(buffer.pointer, count: count, root: root)
      for i in 0..<count where buffer[i] != Float(i % 1000) * 0.5 { fail("broadcast size \(count) index \(i)"); break }

      // non-blocking allreduce, completed by test polling then wait
      for i in 0..<count { buffer[i] = 1 }
      let pending = try c.startAllReduceSum(buffer.pointer, count: count)
      var polls = 0
      while try !c.test(pending), polls < 1000 { polls += 1 }
      try c.wait(pending)
      for i in 0..<count where buffer[i] != Float(n) { fail("startAllReduceSum size \(count) index \(i): \(buffer[i])"); break }
    }

    // Double scalars
    let sum = try c.allReduceSum(r + 0.25)
    if sum != n * (n - 1) / 2 + 0.25 * n { fail("allReduceSum(Double) = \(sum)") }
    let maximum = try c.allReduceMax(r)
    if maximum != n - 1 { fail("allReduceMax(Double) = \(maximum)") }

    // allgather: rank r sends [r, r+0.5, r+0.25]
    let send: [Float] = [Float(r), Float(r) + 0.5, Float(r) + 0.25]
    var recv = [Float](repeating: -1, count: 3 * c.size)
    try recv.withUnsafeMutableBufferPointer { out in try c.allGather(send, count: 3, into: out.baseAddress!) }
    for q in 0..<c.size where Array(recv[3 * q..<3 * q + 3]) != [Float(q), Float(q) + 0.5, Float(q) + 0.25] {
      fail("allGather block \(q): \(Array(recv[3 * q..<3 * q + 3]))")
    }

    // allgatherv: rank r sends r+1 copies of r (uneven), rank 0 also tests an empty-looking pattern via counts
    let counts = (0..<c.size).map { $0 + 1 }
    let mine = [Float](repeating: Float(r), count: c.rank + 1)
    var gathered = [Float](repeating: -1, count: counts.reduce(0, +))
    try gathered.withUnsafeMutableBufferPointer { out in try c.allGatherV(mine, counts: counts, into: out.baseAddress!) }
    let expected = (0..<c.size).flatMap { q in [Float](repeating: Float(q), count: q + 1) }
    if gathered != expected { fail("allGatherV: \(gathered) != \(expected)") }

    // strings / bytes
    let names = try c.allGather(string: "rank-\(c.rank)" + String(repeating: "x", count: c.rank))
    if names != (0..<c.size).map({ "rank-\($0)" + String(repeating: "x", count: $0) }) { fail("allGather(string:) = \(names)") }
    let decided = try c.broadcast(string: c.isCoordinator ? "run-dir/été" : "", root: 0)
    if decided != "run-dir/été" { fail("broadcast(string:) = \(decided)") }

    try c.barrier()
    return failures
  }
}
