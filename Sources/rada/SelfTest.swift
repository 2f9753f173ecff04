// `rada selftest`: checks that launch/test runs under mpirun. `collectives` verifies every collective on
// known values on all ranks; `fail` injects an error on one rank to show that the whole job ends quickly
// with a message naming the rank instead of hanging in the next collective.
import ArgumentParser
import Distributed
import Foundation
import Tensor
import Training

struct SelfTest: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "selftest", abstract: "Checks for a new installation (run under mpirun).",
    subcommands: [Collectives.self, Fail.self, Compare.self, CompareMetrics.self])

  struct Collectives: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check every collective on known values.")
    @Flag(help: "Use MPI even without mpirun (singleton).") var mpi = false
    func run() throws {
      try Runtime.start(requestedThreads: 1)
      let world = try makeCollective(forceMPI: mpi)
      let failures = try CollectiveCheck.run(world)
      let counts = try world.allGather(string: failures.joined(separator: "\n"))
      guard world.isCoordinator else { if !failures.isEmpty { throw ExitCode(1) }; return }
      let all = counts.filter { !$0.isEmpty }
      for f in all { print(f) }
      print("collectives on \(world.size) rank(s): \(all.isEmpty ? "all checks passed" : "FAILED")")
      if !all.isEmpty { throw ExitCode(1) }
    }
  }

  struct Fail: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Raise an error on one rank while the others wait in a collective.")
    @Option(help: "The rank that fails.") var rank = 1
    @Flag(help: "Die by SIGKILL instead of raising an error (a lost process).") var kill = false
    func run() throws {
      let world = try makeCollective()
      if world.rank == rank {
        Thread.sleep(forTimeInterval: 0.2)
        if kill { Foundation.kill(getpid(), SIGKILL) }
        world.abort(code: 3, message: "injected failure on rank \(rank) (rada selftest fail); all ranks stop now")
      }
      // The other ranks block here; MPI_Abort from the failing rank must end them.
      try world.barrier()
      try world.barrier()
    }
  }

  struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Compare two safetensors files tensor by tensor (used by launch/tests).")
    @Argument(help: "First file.") var first: String
    @Argument(help: "Second file.") var second: String
    @Option(help: "Allowed max |a - b| relative to max(1, max |a|) per tensor (0 = bit-identical).") var tolerance: Double = 0

    func run() throws {
      let a = try SafetensorsFile(path: first), b = try SafetensorsFile(path: second)
      guard Set(a.names) == Set(b.names) else {
        print("tensor names differ: \(Set(a.names).symmetricDifference(Set(b.names)).sorted())")
        throw ExitCode(1)
      }
      var worst = 0.0, worstName = ""
      for name in a.names.sorted() {
        let x = try a.floats(name), y = try b.floats(name)
        guard x.count == y.count else { print("\(name): sizes \(x.count) and \(y.count)"); throw ExitCode(1) }
        let scale = max(1, x.map { Double(abs($0)) }.max() ?? 0)
        for i in x.indices {
          let d = Double(abs(x[i] - y[i])) / scale
          if d > worst || (d.isNaN && !worst.isNaN) { worst = d; worstName = "\(name)[\(i)]" }
        }
      }
      print(String(format: "max relative difference %.3e", worst) + (worstName.isEmpty ? "" : " at \(worstName)"))
      if !(worst <= tolerance) { throw ExitCode(1) }
    }
  }

  struct CompareMetrics: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "compare-metrics",
      abstract: "Compare one metric per step between two metrics.jsonl files (the last line of a step wins).")
    @Argument(help: "First metrics.jsonl.") var first: String
    @Argument(help: "Second metrics.jsonl.") var second: String
    @Option(help: "Metric key.") var key = "train/loss"
    @Option(help: "Allowed relative difference.") var tolerance: Double = 0

    func run() throws {
      func series(_ path: String) -> [Int: Double] {
        var out: [Int: Double] = [:]
        for line in MetricsLog.read(path: path) {
          if let step = line["step"] as? Int, let value = line[key] as? Double { out[step] = value }
        }
        return out
      }
      let a = series(first), b = series(second)
      guard !a.isEmpty, Set(a.keys) == Set(b.keys) else {
        print("steps with \(key) differ: \(a.keys.sorted()) vs \(b.keys.sorted())")
        throw ExitCode(1)
      }
      var worst = 0.0, at = 0
      for (step, x) in a {
        let d = abs(x - b[step]!) / max(1e-12, abs(x))
        if !(d <= worst) { worst = d; at = step }
      }
      print(String(format: "\(key): \(a.count) steps, max relative difference %.3e at step \(at)", worst))
      if !(worst <= tolerance) { throw ExitCode(1) }
    }
  }
}
