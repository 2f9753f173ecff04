// The single-process Collective has MPI's semantics for one rank; the same CollectiveCheck that launch/test
// runs under mpirun with 2 and 3 ranks runs here on one.
// Shape letters: none.
import Distributed
import Tensor
import XCTest

final class LocalCollectiveTests: XCTestCase {
  func testEveryCollectiveOnKnownValues() throws {
    let failures = try CollectiveCheck.run(LocalCollective())
    XCTAssertEqual(failures, [])
  }

  func testMeanOfOneRankIsIdentityAndGatherCopies() throws {
    let c = LocalCollective()
    let buffer = FloatBuffer([1.5, -2, 3])
    try c.allReduceMean(buffer.pointer, count: 3)
    XCTAssertEqual(buffer.array, [1.5, -2, 3])
    let out = FloatBuffer(count: 3)
    try c.allGatherV(buffer.readOnly, counts: [3], into: out.pointer)
    XCTAssertEqual(out.array, [1.5, -2, 3])
    XCTAssertThrowsError(try c.allGatherV(buffer.readOnly, counts: [1, 2], into: out.pointer))
    XCTAssertThrowsError(try c.broadcast(buffer.pointer, count: 3, root: 1))
  }

  func testLaunchLayoutFromEnvironmentAndThreads() {
    let ompi = LaunchLayout.fromEnvironment(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3",
                                             "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"])
    XCTAssertEqual(ompi, LaunchLayout(rank: 3, size: 4, localRank: 1, localSize: 2, launcher: "mpirun"))
    let slurm = LaunchLayout.fromEnvironment(["SLURM_NTASKS": "6", "SLURM_PROCID": "5", "SLURM_LOCALID": "2",
                                              "SLURM_TASKS_PER_NODE": "3(x2)"])
    XCTAssertEqual(slurm.localSize, 3)
    XCTAssertEqual(slurm.launcher, "slurm")
    XCTAssertEqual(LaunchLayout.fromEnvironment([:]).size, 1)
    // 8 cores shared by 2 unbound ranks -> 4 each; bound to 1 core -> 1; explicit request wins.
    XCTAssertEqual(ompi.threadsPerRank(allowedCPUs: 8, onlineCPUs: 8, requested: nil), 4)
    XCTAssertEqual(ompi.threadsPerRank(allowedCPUs: 1, onlineCPUs: 8, requested: nil), 1)
    XCTAssertEqual(ompi.threadsPerRank(allowedCPUs: 8, onlineCPUs: 8, requested: 3), 3)
  }
}
