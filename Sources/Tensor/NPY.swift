// NumPy .npy files, format version 1.0, little endian, C order: float32, float64, int32, int64 and uint8
// arrays. Used for `rada preprocess/embed/eval` outputs and test fixtures. Reading converts to the element
// type asked for; writing always emits a valid v1 header padded to 64 bytes.
// Shape letters: none (an array's shape is whatever its header says).
import Foundation

public enum NPYError: Error, CustomStringConvertible {
  case unreadable(path: String, reason: String)
  case badHeader(path: String, reason: String)
  case unsupportedType(path: String, descr: String)

  public var description: String {
    switch self {
    case let .unreadable(path, reason): return "cannot read \(path): \(reason). Check the path and permissions."
    case let .badHeader(path, reason):
      return "\(path) is not a valid .npy file (\(reason)). Write it with numpy.save (format 1.0, C order)."
    case let .unsupportedType(path, descr):
      return "\(path) holds dtype '\(descr)'; rada reads <f4, <f8, <i4, <i8 and |u1. Convert with arr.astype(np.float32)."
    }
  }
}

public struct NPYArray {
  public enum DType: String { case float32 = "<f4", float64 = "<f8", int32 = "<i4", int64 = "<i8", uint8 = "|u1" }
  public var shape: [Int]
  public var dtype: DType
  /// Raw little-endian element bytes.
  public var data: Data

  public var count: Int { shape.reduce(1, *) }

  public init(shape: [Int], dtype: DType, data: Data) {
    self.shape = shape; self.dtype = dtype; self.data = data
  }

  public init(shape: [Int], floats: [Float]) {
    precondition(shape.reduce(1, *) == floats.count, "NPYArray: shape \(shape) does not hold \(floats.count) values")
    self.init(shape: shape, dtype: .float32, data: floats.withUnsafeBufferPointer { Data(buffer: $0) })
  }

  public init(shape: [Int], int32s: [Int32]) {
    precondition(shape.reduce(1, *) == int32s.count, "NPYArray: shape \(shape) does not hold \(int32s.count) values")
    self.init(shape: shape, dtype: .int32, data: int32s.withUnsafeBufferPointer { Data(buffer: $0) })
  }

  public init(shape: [Int], bytes: [UInt8]) {
    self.init(shape: shape, dtype: .uint8, data: Data(bytes))
  }

  /// Values as Float (converted from any supported dtype).
  public func floats() -> [Float] {
    data.withUnsafeBytes { raw in
      switch dtype {
      case .float32: return Array(raw.bindMemory(to: Float.self))
      case .float64: return raw.bindMemory(to: Double.self).map { Float($0) }
      case .int32: return raw.bindMemory(to: Int32.self).map { Float($0) }
      case .int64: return raw.bindMemory(to: Int64.self).map { Float($0) }
      case .uint8: return raw.bindMemory(to: UInt8.self).map { Float($0) }
      }
    }
  }

  public func doubles() -> [Double] {
    data.withUnsafeBytes { raw in
      switch dtype {
      case .float64: return Array(raw.bindMemory(to: Double.self))
      default: return floats().map(Double.init)
      }
    }
  }

  /// Values as Int (converted from any supported dtype; floats are truncated, non-finite ones become Int.min).
  public func ints() -> [Int] {
    data.withUnsafeBytes { raw in
      switch dtype {
      case .int32: return raw.bindMemory(to: Int32.self).map { Int($0) }
      case .int64: return raw.bindMemory(to: Int64.self).map { Int($0) }
      case .uint8: return raw.bindMemory(to: UInt8.self).map { Int($0) }
      // NaN, ±Inf and values outside Int become Int.min, which no id or label range accepts.
      default: return floats().map { Checked.integer(Double($0).rounded(.towardZero)) ?? Int.min }
      }
    }
  }

  /// Largest .npy file read (1 TiB: any real array; refuses only devices and absurd files).
  public static let maximumFileBytes = 1 << 40
  /// Largest header accepted (numpy writes tens of bytes; format 2 allows 4 GB).
  public static let maximumHeaderBytes = 1 << 20

  public static func read(path: String) throws -> NPYArray {
    let file: Data
    do { file = try BoundedFile.read(path, limit: maximumFileBytes, what: "an .npy array") } catch let error as InputLimitError {
      if case let .unreadable(_, reason) = error { throw NPYError.unreadable(path: path, reason: reason) }
      throw NPYError.badHeader(path: path, reason: error.description)
    }
    return try parse(file, path: path)
  }

  public static func parse(_ file: Data, path: String = "<memory>") throws -> NPYArray {
    let bytes = [UInt8](file.prefix(12))
    guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
      throw NPYError.badHeader(path: path, reason: "missing \\x93NUMPY magic")
    }
    let major = bytes[6]
    let headerLength: Int, headerStart: Int
    if major == 1 {
      headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; headerStart = 10
    } else if major == 2 || major == 3 {
      guard bytes.count >= 12 else { throw NPYError.badHeader(path: path, reason: "truncated header") }
      headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24; headerStart = 12
    } else {
      throw NPYError.badHeader(path: path, reason: "format version \(major)")
    }
    guard headerLength <= maximumHeaderBytes else {
      throw NPYError.badHeader(path: path, reason: "header length \(headerLength) exceeds the \(maximumHeaderBytes)-byte limit")
    }
    guard file.count >= headerStart + headerLength else { throw NPYError.badHeader(path: path, reason: "truncated header") }
    let start = file.startIndex
    let header = String(decoding: file[(start + headerStart)..<(start + headerStart + headerLength)], as: UTF8.self)
    guard let descr = field(header, "descr").map({ $0.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) }) else {
      throw NPYError.badHeader(path: path, reason: "no descr")
    }
    guard let dtype = DType(rawValue: descr == "<u1" ? "|u1" : descr) else {
      throw NPYError.unsupportedType(path: path, descr: descr)
    }
    if let order = field(header, "fortran_order"), order.hasPrefix("True") {
      throw NPYError.badHeader(path: path, reason: "Fortran order; save with np.ascontiguousarray")
    }
    guard let open = header.firstIndex(of: "("), let close = header[open...].firstIndex(of: ")") else {
      throw NPYError.badHeader(path: path, reason: "no shape")
    }
    let dimensions = header[header.index(after: open)..<close].split(separator: ",")
      .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    let shape = try dimensions.map { text -> Int in
      // Python ints only (numpy writes "3" or "3L"); a dimension is never negative, fractional or a name.
      let digits = text.hasSuffix("L") ? String(text.dropLast()) : text
      guard digits.count <= 19, let size = Int(digits), size >= 0 else {
        throw NPYError.badHeader(path: path, reason: "shape dimension '\(text.prefix(40))' is not a non-negative integer")
      }
      return size
    }
    let elementSize = dtype == .uint8 ? 1 : (dtype == .float32 || dtype == .int32 ? 4 : 8)
    let available = file.count - headerStart - headerLength
    guard let count = Checked.product(shape), let byteCount = Checked.multiply(count, elementSize) else {
      throw NPYError.badHeader(path: path, reason: "shape \(shape) has more elements than any file can hold")
    }
    let bodyStart = start + headerStart + headerLength
    guard available >= byteCount else {
      throw NPYError.badHeader(path: path, reason: "data truncated: shape \(shape) needs \(byteCount) bytes, "
                                 + "file has \(available)")
    }
    return NPYArray(shape: shape, dtype: dtype, data: Data(file[bodyStart..<(bodyStart + byteCount)]))
  }

  private static func field(_ header: String, _ key: String) -> String? {
    guard let range = header.range(of: "'\(key)':") else { return nil }
    let rest = header[range.upperBound...].trimmingCharacters(in: .whitespaces)
    return rest.split(separator: ",").first.map { String($0).trimmingCharacters(in: .whitespaces) }
  }

  public func encoded() -> Data {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let length = UInt16(header.utf8.count)
    out.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
    out.append(contentsOf: Array(header.utf8))
    out.append(data)
    return out
  }

  /// Writes atomically (temporary file, then rename).
  public func write(path: String) throws {
    do { try encoded().write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
      throw NPYError.unreadable(path: path, reason: "cannot write: \(error.localizedDescription)")
    }
  }
}
