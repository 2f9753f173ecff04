// What every rank of a training job must agree on before it branches on anything it loaded (issue 15): the
// resolved config key by key, the model (tensor shapes and a digest of the weights as loaded, before any
// broadcast), the training and evaluation dataset listings and the rada binary. `StartAgreement.check` compares
// the lists across ranks; the model part is also recorded in checkpoints (foreign checkpoints are refused) and
// keys the feature cache (replacing model.safetensors inside a model folder changes it).
import CLIP
import Data
import Distributed
import Foundation
import Tensor

public struct ModelFingerprint: Codable, Equatable {
  /// Digest of "name:shape" for every tensor, in table order.
  public var shapes: String
  /// Digest of the weights' bytes as loaded (the frozen starting point of every setting).
  public var weights: String

  public init(shapes: String, weights: String) { self.shapes = shapes; self.weights = weights }

  public init(model: CLIPModel) {
    self.init(table: model.table, parameters: model.parameters)
  }

  public init(table: ParameterTable, parameters: FloatBuffer) {
    shapes = StartAgreement.digest(of: ModelFingerprint.shapeList(table))
    weights = StartAgreement.hex(StartAgreement.digest(UnsafeRawBufferPointer(
      start: UnsafeRawPointer(parameters.readOnly), count: parameters.count * MemoryLayout<Float>.size)))
  }

  /// "name:d0xd1;..." for every tensor of a table.
  public static func shapeList(_ table: ParameterTable) -> String {
    table.entries.map { $0.name + ":" + $0.shape.map(String.init).joined(separator: "x") }.joined(separator: ";")
  }
}

public enum RunFingerprint {
  /// The resolved config as ("config.optim.lr", "0.5"), ... in sorted key order.
  public static func configEntries(_ config: TrainConfig) throws -> [FingerprintEntry] {
    let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(config))
    return StartAgreement.flatten(json, prefix: "config")
  }

  /// A dataset listing: sample count, class names and a digest of every (path, label).
  public static func datasetEntries(_ dataset: Dataset, role: String) -> [FingerprintEntry] {
    let listing = dataset.samples.map { "\($0.path)|\($0.label)" }.joined(separator: "\n")
    return [("data.\(role).samples", "\(dataset.count)"),
            ("data.\(role).classes", StartAgreement.digest(of: dataset.classNames.joined(separator: "\n"))
              + " (\(dataset.classNames.count) classes)"),
            ("data.\(role).listing", StartAgreement.digest(of: listing))]
  }

  public static func modelEntries(_ model: ModelFingerprint, parameterCount: Int) -> [FingerprintEntry] {
    [("model.shapes", model.shapes + " (\(parameterCount) floats)"), ("model.weights", model.weights)]
  }

  /// Checks, across ranks, config + model + datasets + binary. Call on every rank before the first broadcast
  /// of parameters and before any decision taken from local files.
  public static func agree(world: Collective, config: TrainConfig, model: CLIPModel, fingerprint: ModelFingerprint,
                           datasets: [(Dataset, String)]) throws {
    guard world.size > 1 else { return }
    var entries: [FingerprintEntry] = [("binary", StartAgreement.executableDigest() ?? "unreadable")]
    entries += try configEntries(config)
    entries += modelEntries(fingerprint, parameterCount: model.parameters.count)
    for (dataset, role) in datasets { entries += datasetEntries(dataset, role: role) }
    try StartAgreement.check(world, entries: entries)
  }
}
