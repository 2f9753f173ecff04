// The parameter table: one row per tensor (name, shape, offset). Parameters, gradients and optimiser
// moments are flat buffers that share this layout, so allreduce, checkpoints and the optimiser see one
// contiguous range per tensor. Names are the checkpoint keys.
// Shape letters: none (each row carries its own shape).

public struct ParameterEntry: Equatable {
  public let name: String
  public let shape: [Int]
  public let offset: Int
  public var count: Int { shape.reduce(1, *) }
  /// Whether weight decay applies (matrices yes; biases, norms, embeddings-by-convention no).
  public var decays: Bool
  /// Frozen entries keep their values and get no optimiser update.
  public var isTrainable: Bool
}

public struct ParameterTable {
  public private(set) var entries: [ParameterEntry] = []
  public private(set) var totalCount = 0
  private var indexByName: [String: Int] = [:]

  public init() {}

  /// Appends a tensor; offsets are assigned in insertion order. Returns its entry.
  @discardableResult
  public mutating func add(_ name: String, _ shape: [Int], decays: Bool? = nil, trainable: Bool = true) -> ParameterEntry {
    precondition(indexByName[name] == nil, "duplicate parameter name \(name)")
    let entry = ParameterEntry(name: name, shape: shape, offset: totalCount,
                               decays: decays ?? (shape.count >= 2), isTrainable: trainable)
    indexByName[name] = entries.count
    entries.append(entry)
    totalCount += entry.count
    return entry
  }

  public subscript(name: String) -> ParameterEntry? {
    indexByName[name].map { entries[$0] }
  }

  public mutating func setTrainable(_ isTrainable: Bool, where predicate: (ParameterEntry) -> Bool) {
    for i in entries.indices where predicate(entries[i]) { entries[i].isTrainable = isTrainable }
  }

  public var trainableCount: Int { entries.filter(\.isTrainable).reduce(0) { $0 + $1.count } }
}

public func shapeString(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
