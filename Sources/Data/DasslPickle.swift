// A restricted reader for Dassl few-shot split pickles (`split_fewshot/shot_<shots>-seed_<seed>.pkl`, written by
// pickle.dump({"train": [Datum...], "val": [Datum...]}, protocol=HIGHEST)). It interprets only the opcodes such
// a file uses (protocols 2-5, pickletools' opcode table) and builds plain values; it never calls anything. The only
// globals it accepts are dassl.data.datasets.base_dataset.Datum (plus copyreg._reconstructor / builtins.object,
// the protocol 0-1 way to rebuild an object); any other global, e.g. os.system, is refused with its name.
// Shape letters: none.
import Foundation

// Hostile nesting: tuples, lists and dicts nested deeper than `maximumDepth` are refused, and everything the
// machine built is taken apart iteratively afterwards (`dismantle`), so releasing a deep chain never recurses.

/// One Dassl `Datum` as stored in the pickle (impath is the absolute path on the machine that wrote it).
public struct DasslDatum: Equatable, Sendable {
  public var impath: String
  public var label: Int
  public var domain: Int
  public var classname: String
}

public enum DasslPickle {
  static let datumModule = "dassl.data.datasets.base_dataset"
  static let allowedGlobals: Set<String> = [
    datumModule + ".Datum", "copyreg._reconstructor", "copy_reg._reconstructor", "builtins.object",
    "__builtin__.object",
  ]

  /// Deepest nesting of containers accepted (a Dassl split nests 4 deep: dict, list, Datum, state dict).
  static let maximumDepth = 100

  /// Reads {"train": [Datum], "val": [Datum]} (either key may be absent, e.g. Dassl's ImageNet stores only train).
  public static func readSplits(_ file: String) throws -> (train: [DasslDatum], val: [DasslDatum]) {
    let data = try DataPaths.readBounded(file)
    var machine = Machine(bytes: [UInt8](data), file: file)
    defer { machine.dismantle() }
    let root = try machine.run()
    guard case let .dict(dict) = root else {
      throw DataError.badPickle(file: file, offset: 0, reason: "the top object is not a dict")
    }
    func datums(_ key: String) throws -> [DasslDatum] {
      guard let value = dict.pairs.first(where: { $0.0 == .string(key) })?.1 else { return [] }
      guard case let .list(list) = value else {
        throw DataError.badPickle(file: file, offset: 0, reason: "\"\(key)\" is not a list")
      }
      return try list.items.enumerated().map { index, item in
        guard case let .instance(object) = item, let state = object.state else {
          throw DataError.badPickle(file: file, offset: 0, reason: "\(key)[\(index)] is not a Datum with a state dict")
        }
        func field(_ name: String) -> Value? {
          state.pairs.first(where: { $0.0 == .string("_" + name) || $0.0 == .string(name) })?.1
        }
        guard case let .string(impath)? = field("impath"), case let .int(label)? = field("label") else {
          throw DataError.badPickle(file: file, offset: 0, reason: "\(key)[\(index)] lacks impath or label")
        }
        var domain = 0
        if case let .int(d)? = field("domain") { domain = d }
        var classname = ""
        if case let .string(c)? = field("classname") { classname = c }
        return DasslDatum(impath: impath, label: label, domain: domain, classname: classname)
      }
    }
    return (try datums("train"), try datums("val"))
  }

  // MARK: - The pickle machine

  /// Containers record their nesting depth (1 + their deepest item when it was added).
  final class List { var items: [Value] = []; var depth = 1 }
  final class Dict { var pairs: [(Value, Value)] = []; var depth = 1 }
  final class Instance {
    let className: String
    var state: Dict?
    init(className: String) { self.className = className }
  }

  indirect enum Value: Equatable {
    case none, bool(Bool), int(Int), float(Double), string(String), tuple([Value], depth: Int)
    case list(List), dict(Dict), instance(Instance), global(String), mark

    /// Nesting depth: 0 for scalars, as recorded for containers (tuples are immutable, so theirs is exact).
    var depth: Int {
      switch self {
      case let .tuple(_, depth): return depth
      case let .list(list): return list.depth
      case let .dict(dict): return dict.depth
      case let .instance(object): return 1 + (object.state?.depth ?? 0)
      default: return 0
      }
    }

    var isEmptyTuple: Bool { if case let .tuple(items, _) = self { return items.isEmpty } else { return false } }

    static func == (a: Value, b: Value) -> Bool {
      switch (a, b) {
      case (.none, .none), (.mark, .mark): return true
      case let (.bool(x), .bool(y)): return x == y
      case let (.int(x), .int(y)): return x == y
      case let (.float(x), .float(y)): return x == y
      case let (.string(x), .string(y)): return x == y
      case let (.global(x), .global(y)): return x == y
      case let (.tuple(x, _), .tuple(y, _)): return x == y
      case let (.list(x), .list(y)): return x === y
      case let (.dict(x), .dict(y)): return x === y
      case let (.instance(x), .instance(y)): return x === y
      default: return false
      }
    }
  }

  struct Machine {
    let bytes: [UInt8]
    let file: String
    var position = 0
    var stack: [Value] = []
    var memo: [Int: Value] = [:]

    /// Results returned by STOP, kept so that `dismantle` can take them apart.
    var results: [Value] = []

    init(bytes: [UInt8], file: String) { self.bytes = bytes; self.file = file }

    /// Empties every container reachable from the stack, the memo and the results with an explicit work list,
    /// so that no release recurses through a deep (or cyclic) chain.
    mutating func dismantle() {
      var work = stack + Array(memo.values) + results
      stack = []; memo = [:]; results = []
      while let value = work.popLast() {
        switch value {
        case let .tuple(items, _): work += items
        case let .list(list): work += list.items; list.items = []
        case let .dict(dict):
          for (key, item) in dict.pairs { work.append(key); work.append(item) }
          dict.pairs = []
        case let .instance(object):
          if let state = object.state { work.append(.dict(state)); object.state = nil }
        default: break
        }
      }
    }

    /// A container `depth` deep, refused past `maximumDepth`.
    func checkDepth(_ depth: Int) throws {
      guard depth <= DasslPickle.maximumDepth else {
        throw fail("containers nested more than \(DasslPickle.maximumDepth) deep")
      }
    }

    func tuple(_ items: [Value]) throws -> Value {
      let depth = 1 + (items.map(\.depth).max() ?? 0)
      try checkDepth(depth)
      return .tuple(items, depth: depth)
    }

    func fail(_ reason: String) -> DataError { .badPickle(file: file, offset: position, reason: reason) }

    mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
      guard count >= 0, count <= bytes.count - position else { throw fail("truncated (needs \(count) more bytes)") }
      defer { position += count }
      return bytes[position..<position + count]
    }

    /// Little-endian unsigned integer of `count` bytes.
    mutating func unsigned(_ count: Int) throws -> Int {
      var value: UInt64 = 0
      for (shift, byte) in try take(count).enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
      guard value <= UInt64(Int.max) else { throw fail("length \(value) too large") }
      return Int(value)
    }

    mutating func utf8(_ count: Int) throws -> String {
      guard let text = String(bytes: try take(count), encoding: .utf8) else { throw fail("string is not UTF-8") }
      return text
    }

    mutating func line() throws -> String {
      guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw fail("unterminated GLOBAL line") }
      return try utf8(end - position + 1).trimmingCharacters(in: .newlines)
    }

    mutating func pop() throws -> Value {
      guard let top = stack.popLast() else { throw fail("stack underflow") }
      if top == .mark { throw fail("unexpected MARK") }
      return top
    }

    /// Pops everything above the topmost MARK (and the MARK).
    mutating func popToMark() throws -> [Value] {
      guard let markIndex = stack.lastIndex(of: .mark) else { throw fail("no MARK on the stack") }
      let items = Array(stack[(markIndex + 1)...])
      stack.removeSubrange(markIndex...)
      return items
    }

    mutating func global(module: String, name: String) throws -> Value {
      let full = module + "." + name
      guard DasslPickle.allowedGlobals.contains(full) else {
        throw DataError.unsafePickle(file: file, reason: "it references the global \(full)")
      }
      return .global(full)
    }

    mutating func setItems(_ items: [Value]) throws {
      guard items.count % 2 == 0, case let .dict(dict) = try pop() else { throw fail("SETITEMS needs a dict") }
      stack.append(.dict(dict))
      for i in stride(from: 0, to: items.count, by: 2) {
        dict.depth = max(dict.depth, 1 + max(items[i].depth, items[i + 1].depth))
        try checkDepth(dict.depth)
        dict.pairs.append((items[i], items[i + 1]))
      }
    }

    mutating func appendItems(_ items: [Value]) throws {
      guard case let .list(list) = try pop() else { throw fail("APPEND(S) needs a list") }
      stack.append(.list(list))
      list.depth = max(list.depth, 1 + (items.map(\.depth).max() ?? 0))
      try checkDepth(list.depth)
      list.items += items
    }

    mutating func memoize(_ index: Int) throws {
      guard let top = stack.last, top != .mark else { throw fail("nothing to memoize") }
      memo[index] = top
    }

    mutating func recall(_ index: Int) throws {
      guard let value = memo[index] else { throw fail("memo entry \(index) is not set") }
      stack.append(value)
    }

    mutating func run() throws -> Value {
      while true {
        let opcodeOffset = position
        let opcode = try take(1).first!
        switch opcode {
        case 0x80: _ = try take(1)                                        // PROTO
        case 0x95: _ = try take(8)                                        // FRAME (length; frames are inline)
        case 0x2E:                                                        // STOP
          let result = try pop()
          results.append(result)
          return result
        case 0x28: stack.append(.mark)                                    // MARK
        case 0x4E: stack.append(.none)                                    // NONE
        case 0x88: stack.append(.bool(true))                              // NEWTRUE
        case 0x89: stack.append(.bool(false))                             // NEWFALSE
        case 0x7D: stack.append(.dict(Dict()))                            // EMPTY_DICT
        case 0x5D: stack.append(.list(List()))                            // EMPTY_LIST
        case 0x29: stack.append(.tuple([], depth: 1))                     // EMPTY_TUPLE
        case 0x4B: stack.append(.int(try unsigned(1)))                    // BININT1
        case 0x4D: stack.append(.int(try unsigned(2)))                    // BININT2
        case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try unsigned(4)))))  // BININT (signed)
        case 0x8A:                                                        // LONG1
          let count = try unsigned(1)
          guard count <= 8 else { throw fail("integer of \(count) bytes is too large") }
          let raw = try take(count)
          var value: Int64 = 0
          for (shift, byte) in raw.enumerated() { value |= Int64(byte) << (8 * Int64(shift)) }
          if count > 0 && count < 8 && raw.last! & 0x80 != 0 { value -= Int64(1) << (8 * Int64(count)) }
          stack.append(.int(Int(value)))
        case 0x47:                                                        // BINFLOAT (big endian)
          let bits = try take(8).reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
          stack.append(.float(Double(bitPattern: bits)))
        case 0x8C: stack.append(.string(try utf8(try unsigned(1))))       // SHORT_BINUNICODE
        case 0x58: stack.append(.string(try utf8(try unsigned(4))))       // BINUNICODE
        case 0x8D: stack.append(.string(try utf8(try unsigned(8))))       // BINUNICODE8
        case 0x74: stack.append(try tuple(try popToMark()))               // TUPLE
        case 0x85: stack.append(try tuple([try pop()]))                   // TUPLE1
        case 0x86:                                                        // TUPLE2
          let b = try pop(), a = try pop()
          stack.append(try tuple([a, b]))
        case 0x87:                                                        // TUPLE3
          let c = try pop(), b = try pop(), a = try pop()
          stack.append(try tuple([a, b, c]))
        case 0x73:                                                        // SETITEM
          let value = try pop(), key = try pop()
          try setItems([key, value])
        case 0x75: try setItems(try popToMark())                          // SETITEMS
        case 0x61: try appendItems([try pop()])                           // APPEND
        case 0x65: try appendItems(try popToMark())                       // APPENDS
        case 0x94: try memoize(memo.count)                                // MEMOIZE
        case 0x71: try memoize(try unsigned(1))                           // BINPUT
        case 0x72: try memoize(try unsigned(4))                           // LONG_BINPUT
        case 0x68: try recall(try unsigned(1))                            // BINGET
        case 0x6A: try recall(try unsigned(4))                            // LONG_BINGET
        case 0x63:                                                        // GLOBAL "module\nname\n"
          let module = try line(), name = try line()
          stack.append(try global(module: module, name: name))
        case 0x93:                                                        // STACK_GLOBAL
          guard case let .string(name) = try pop(), case let .string(module) = try pop() else {
            throw fail("STACK_GLOBAL needs two strings")
          }
          stack.append(try global(module: module, name: name))
        case 0x81:                                                        // NEWOBJ cls.__new__(cls, *args)
          let args = try pop(), cls = try pop()
          guard cls == .global(DasslPickle.datumModule + ".Datum"), args.isEmptyTuple else {
            throw DataError.unsafePickle(file: file, reason: "NEWOBJ of \(describe(cls)) is not allowed")
          }
          stack.append(.instance(Instance(className: "Datum")))
        case 0x52:                                                        // REDUCE f(*args)
          let args = try pop(), function = try pop()
          // Protocol 0-1 objects: copyreg._reconstructor(Datum, object, None). Nothing else is called.
          guard case let .global(name) = function, name.hasSuffix("._reconstructor"),
                case let .tuple(parts, _) = args, parts.count == 3,
                parts[0] == .global(DasslPickle.datumModule + ".Datum"), parts[1] == .global("builtins.object")
                  || parts[1] == .global("__builtin__.object"), parts[2] == .none else {
            throw DataError.unsafePickle(file: file, reason: "REDUCE of \(describe(function)) is not allowed")
          }
          stack.append(.instance(Instance(className: "Datum")))
        case 0x62:                                                        // BUILD obj.__dict__.update(state)
          var state = try pop()
          if case let .tuple(parts, _) = state, parts.count == 2, parts[1] == .none { state = parts[0] }
          guard case let .dict(dict) = state, case let .instance(object) = try pop() else {
            throw fail("BUILD needs a Datum and a state dict")
          }
          object.state = dict
          stack.append(.instance(object))
        default:
          position = opcodeOffset
          throw fail(String(format: "opcode 0x%02X is not supported by the restricted reader", opcode))
        }
      }
    }

    func describe(_ value: Value) -> String {
      if case let .global(name) = value { return name }
      return "a non-global value"
    }
  }
}
