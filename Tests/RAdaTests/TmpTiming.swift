import Foundation
import Kernels
import RAda
import Tensor
import XCTest

final class TmpTiming: XCTestCase {
  func testTiming() throws {
    for (workers, threads) in [(1, 1), (2, 2), (2, 2)] {
      Parallel.threads = threads
      let config = RAdaConfig(dim: 32, heads: 8, temperature: 1, alpha: 1)
      let head = try RAdaHead(config: config, seed: 1)
      let ws = try RAdaWorkspace(config: config, maxBatch: 4, classes: 5, workers: workers)
      let f = [Float](repeating: 0.1, count: 4 * 32), t = [Float](repeating: 0.1, count: 5 * 32)
      let start = Date()
      for _ in 0..<10 {
        try head.forward(imageFeatures: f, textFeatures: t, batch: 4, classes: 5, logitScale: 1, workspace: ws)
      }
      print("workers \(workers): \(Date().timeIntervalSince(start) / 10 * 1000) ms per forward; blas \(BLASRuntime.threads)")
    }
  }
}
