// safetensors files (huggingface/safetensors format): an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the raw
// little-endian tensor bytes. The reader memory-maps the file and converts F32/F16/BF16/F64 tensors to Float;
// the writer emits F32 tensors (our checkpoints) through a temporary file, fsync and rename.
// Shape letters: none (each tensor's shape is in the header).
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum SafetensorsError: Error, CustomStringConvertible {
  case unreadable(path: String, reason: String)
  case truncated(path: String, reason: String)
  case badHeader(path: String, reason: String)
  case offsetsOutOfRange(path: String, tensor: String, reason: String)
  case unsupportedDType(path: String, tensor: String, dtype: String)
  case missingTensor(path: String, tensor: String)
  case unwritable(path: String, reason: String)
  case wrongSize(path: String, tensor: String, count: Int, expected: Int)
  case nonFinite(path: String, tensor: String, index: Int, value: Float)

  public var description: String {
    switch self {
    case let .unreadable(path, reason):
      return "cannot read \(path): \(reason). Check the path and permissions."
    case let .truncated(path, reason):
      return "\(path) is truncated (\(reason)). The download or copy was probably interrupted; fetch the file again."
    case let .badHeader(path, reason):
      return "\(path) is not a valid safetensors file (\(reason)). Write it with safetensors' save_file or rada."
    case let .offsetsOutOfRange(path, tensor, reason):
      return "tensor '\(tensor)' in \(path) has bad data_offsets (\(reason)). The file is damaged; fetch it again."
    case let .unsupportedDType(path, tensor, dtype):
      return "tensor '\(tensor)' in \(path) has dtype \(dtype); rada reads F32, F16, BF16 and F64. "
        + "Convert it with {k: v.float() for k, v in state_dict.items()} before saving."
    case let .missingTensor(path, tensor):
      return "\(path) has no tensor '\(tensor)'. List its tensors with safetensors.safe_open(path, 'pt').keys()."
    case let .unwritable(path, reason):
      return "cannot write \(path): \(reason). Check free disk space and that the directory exists."
    case let .wrongSize(path, tensor, count, expected):
      return "tensor '\(tensor)' in \(path) has \(count) elements where \(expected) are expected. The file belongs to "
        + "another model or run; pass the matching one."
    case let .nonFinite(path, tensor, index, value):
      return "tensor '\(tensor)' in \(path) holds \(value) at element \(index). The file is damaged or was saved from a "
        + "diverged run; use an earlier checkpoint."
    }
  }
}

/// A read-only memory mapping of a whole file; unmapped when the last reference goes.
final class MappedFile {
  let base: UnsafeRawPointer
  let count: Int

  init(path: String) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
      throw SafetensorsError.unreadable(path: path, reason: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw SafetensorsError.unreadable(path: path, reason: String(cString: strerror(errno)))
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
      throw SafetensorsError.unreadable(path: path, reason: "not a regular file")
    }
    count = Int(info.st_size)
    if count == 0 {
      base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 8))
      isMapped = false
      return
    }
    guard let pointer = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), pointer != MAP_FAILED else {
      throw SafetensorsError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
    }
    base = UnsafeRawPointer(pointer)
    isMapped = true
  }

  /// Wraps bytes already in memory (tests, small files).
  init(data: Data) {
    count = data.count
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 8)
    data.copyBytes(to: raw.assumingMemoryBound(to: UInt8.self), count: count)
    base = UnsafeRawPointer(raw)
    isMapped = false
  }

  private let isMapped: Bool

  deinit {
    if isMapped { munmap(UnsafeMutableRawPointer(mutating: base), count) } else {
      UnsafeMutableRawPointer(mutating: base).deallocate()
    }
  }
}

/// An open safetensors file. Tensor data stays in the mapping until asked for.
public struct SafetensorsFile {
  public enum DType: String, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
      switch self {
      case .f64, .i64: return 8
      case .f32, .i32: return 4
      case .f16, .bf16, .i16: return 2
      case .i8, .u8, .bool: return 1
      }
    }
    public var isFloatingPoint: Bool { self == .f32 || self == .f16 || self == .bf16 || self == .f64 }
  }

  public struct TensorInfo: Equatable {
    public let name: String
    /// The dtype as written in the header (kept as text so unknown dtypes only fail when read).
    public let dtype: String
    public let shape: [Int]
    /// Byte range inside the data section (after the header).
    public let begin: Int, end: Int
    public var count: Int { shape.reduce(1, *) }
  }

  /// Largest header accepted; real headers are a few hundred kB at most.
  public static let maximumHeaderBytes = 100 * 1024 * 1024

  public let path: String
  public let metadata: [String: String]
  /// Tensors in the order of their data in the file.
  public let tensors: [TensorInfo]
  private let indexByName: [String: Int]
  private let file: MappedFile
  private let dataStart: Int

  /// Opens and memory-maps `path`, validating the header and every tensor's offsets.
  public init(path: String) throws {
    try self.init(file: MappedFile(path: path), path: path)
  }

  /// Parses a file held in memory; `path` only names it in errors.
  public init(data: Data, path: String = "<memory>") throws {
    try self.init(file: MappedFile(data: data), path: path)
  }

  init(file: MappedFile, path: String) throws {
    self.file = file
    self.path = path
    guard file.count >= 8 else {
      throw SafetensorsError.truncated(path: path, reason: "\(file.count) bytes, shorter than the 8-byte header length")
    }
    var headerLength: UInt64 = 0
    for i in 0..<8 { headerLength |= UInt64(file.base.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(i)) }
    guard headerLength <= UInt64(Self.maximumHeaderBytes) else {
      throw SafetensorsError.badHeader(path: path, reason: "header length \(headerLength) bytes exceeds the 100 MB limit")
    }
    guard Int(headerLength) <= file.count - 8 else {
      throw SafetensorsError.truncated(path: path, reason: "header says \(headerLength) bytes, file has \(file.count - 8) after the length")
    }
    dataStart = 8 + Int(headerLength)
    let headerData = Data(bytes: file.base + 8, count: Int(headerLength))
    let json: Any
    do { json = try JSONSerialization.jsonObject(with: headerData) } catch {
      throw SafetensorsError.badHeader(path: path, reason: "header is not valid JSON")
    }
    guard let object = json as? [String: Any] else {
      throw SafetensorsError.badHeader(path: path, reason: "header is not a JSON object")
    }
    var metadata: [String: String] = [:]
    var infos: [TensorInfo] = []
    let dataLength = file.count - dataStart
    for (name, value) in object {
      if name == "__metadata__" {
        guard let dict = value as? [String: Any] else {
          throw SafetensorsError.badHeader(path: path, reason: "__metadata__ is not an object")
        }
        for (k, v) in dict {
          guard let s = v as? String else {
            throw SafetensorsError.badHeader(path: path, reason: "__metadata__['\(k)'] is not a string")
          }
          metadata[k] = s
        }
        continue
      }
      guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
            let shapeValues = entry["shape"] as? [Any], let offsetValues = entry["data_offsets"] as? [Any],
            offsetValues.count == 2 else {
        throw SafetensorsError.badHeader(path: path, reason: "tensor '\(name)' lacks dtype, shape or data_offsets")
      }
      let shape = try shapeValues.map { v -> Int in
        guard let i = Self.integer(v), i >= 0 else {
          throw SafetensorsError.badHeader(path: path, reason: "tensor '\(name)' has a bad shape \(shapeValues)")
        }
        return i
      }
      guard let begin = Self.integer(offsetValues[0]), let end = Self.integer(offsetValues[1]) else {
        throw SafetensorsError.badHeader(path: path, reason: "tensor '\(name)' has non-integer data_offsets")
      }
      guard begin >= 0, begin <= end else {
        throw SafetensorsError.offsetsOutOfRange(path: path, tensor: name, reason: "begin \(begin) after end \(end)")
      }
      guard end <= dataLength else {
        throw SafetensorsError.offsetsOutOfRange(
          path: path, tensor: name, reason: "end \(end) beyond the \(dataLength) data bytes in the file")
      }
      guard let count = Checked.product(shape) else {
        throw SafetensorsError.badHeader(path: path, reason: "tensor '\(name)' has shape \(shapeString(shape)), whose "
                                           + "element count overflows")
      }
      if let known = DType(rawValue: dtype) {
        let expected = Checked.multiply(count, known.byteSize)
        guard end - begin == expected else {
          let needs = expected.map(String.init) ?? "more than any file holds"
          throw SafetensorsError.offsetsOutOfRange(
            path: path, tensor: name,
            reason: "\(end - begin) bytes for shape \(shapeString(shape)) of \(dtype), which needs \(needs)")
        }
      } else if count > end - begin {
        // Unknown dtypes fail when read; their element count must still fit the bytes (every dtype is >= 1 byte).
        throw SafetensorsError.offsetsOutOfRange(
          path: path, tensor: name, reason: "\(end - begin) bytes cannot hold the \(count) elements of \(shapeString(shape))")
      }
      infos.append(TensorInfo(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
    }
    infos.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }
    self.metadata = metadata
    self.tensors = infos
    var index: [String: Int] = [:]
    for (i, t) in infos.enumerated() { index[t.name] = i }
    indexByName = index
  }

  private static func integer(_ value: Any) -> Int? { Checked.integer(json: value) }

  public var names: [String] { tensors.map(\.name) }

  public subscript(name: String) -> TensorInfo? { indexByName[name].map { tensors[$0] } }

  /// Converts tensor `name` to Float into `destination` (capacity: the tensor's element count).
  public func read(_ name: String, into destination: MutableFloats) throws {
    guard let info = self[name] else { throw SafetensorsError.missingTensor(path: path, tensor: name) }
    guard let dtype = DType(rawValue: info.dtype), dtype.isFloatingPoint else {
      throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtype)
    }
    let source = file.base + dataStart + info.begin
    let count = info.count
    switch dtype {
    case .f32:
      UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
    case .f64:
      for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
    case .f16:
      for i in 0..<count { destination[i] = floatFromHalfBits(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    case .bf16:
      for i in 0..<count {
        destination[i] = Float(bitPattern: UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
      }
    default:
      throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtype)
    }
  }

  /// `read(_:into:)` for a destination of exactly `count` floats (a parameter slot): a tensor of another size
  /// is refused before anything is written, and NaN or ±Inf in it is reported with its first bad element.
  public func read(_ name: String, into destination: MutableFloats, count: Int) throws {
    guard let info = self[name] else { throw SafetensorsError.missingTensor(path: path, tensor: name) }
    guard info.count == count else {
      throw SafetensorsError.wrongSize(path: path, tensor: name, count: info.count, expected: count)
    }
    try read(name, into: destination)
    if let (index, value) = firstNonFinite(Floats(destination), count: count) {
      throw SafetensorsError.nonFinite(path: path, tensor: name, index: index, value: value)
    }
  }

  /// Integer tensor `name` (I64, I32, I16, I8, U8, BOOL) as Int values (token ids, labels).
  public func ints(_ name: String) throws -> [Int] {
    guard let info = self[name] else { throw SafetensorsError.missingTensor(path: path, tensor: name) }
    let source = file.base + dataStart + info.begin
    switch DType(rawValue: info.dtype) {
    case .i64: return (0..<info.count).map { Int(source.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
    case .i32: return (0..<info.count).map { Int(source.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
    case .i16: return (0..<info.count).map { Int(source.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
    case .i8: return (0..<info.count).map { Int(source.load(fromByteOffset: $0, as: Int8.self)) }
    case .u8, .bool: return (0..<info.count).map { Int(source.load(fromByteOffset: $0, as: UInt8.self)) }
    default: throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtype)
    }
  }

  /// Tensor `name` as a Float array (tests, small tensors).
  public func floats(_ name: String) throws -> [Float] {
    guard let info = self[name] else { throw SafetensorsError.missingTensor(path: path, tensor: name) }
    var values = [Float](repeating: 0, count: info.count)
    try values.withUnsafeMutableBufferPointer { try read(name, into: $0.baseAddress!) }
    return values
  }
}

/// IEEE half precision bits to Float (handles subnormals, infinities and NaN).
@inline(__always)
public func floatFromHalfBits(_ h: UInt16) -> Float {
  let sign = UInt32(h & 0x8000) << 16
  let exponent = Int((h >> 10) & 0x1F)
  let mantissa = UInt32(h & 0x3FF)
  if exponent == 0 {
    // Zero or subnormal: mantissa · 2^-24.
    let magnitude = Float(mantissa) * (1.0 / 16_777_216.0)
    return sign != 0 ? -magnitude : magnitude
  }
  if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
  return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
}

/// Writes F32 (or, on request, F16) safetensors files: header sorted by name, data in the order given.
public enum SafetensorsWriter {
  /// Storage type of the written tensors; F16 halves the size (values rounded to nearest, read back as f32).
  public enum StorageType: String { case f32 = "F32", f16 = "F16" }

  public struct Tensor {
    public var name: String
    public var shape: [Int]
    public var values: Floats
    public init(name: String, shape: [Int], values: Floats) {
      self.name = name; self.shape = shape; self.values = values
    }
  }

  /// The complete file bytes (header padded with spaces to a multiple of 8, as safetensors does).
  public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:], storage: StorageType = .f32) -> Data {
    var header: [String: Any] = [:]
    var offset = 0
    let elementBytes = storage == .f32 ? 4 : 2
    for t in tensors {
      let bytes = t.shape.reduce(1, *) * elementBytes
      precondition(header[t.name] == nil, "SafetensorsWriter: duplicate tensor name \(t.name)")
      header[t.name] = ["dtype": storage.rawValue, "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
      offset += bytes
    }
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
    while json.count % 8 != 0 { json.append(0x20) }
    var out = Data(capacity: 8 + json.count + offset)
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
    out.append(json)
    for t in tensors {
      let count = t.shape.reduce(1, *)
      switch storage {
      case .f32: out.append(UnsafeBufferPointer(start: t.values, count: count))
      case .f16:
        let halves = (0..<count).map { Float16(t.values[$0]).bitPattern.littleEndian }
        halves.withUnsafeBufferPointer { out.append($0) }
      }
    }
    return out
  }

  /// Writes to `path.tmp-PID`, fsyncs it and renames it over `path`, so a reader never sees half a file.
  public static func write(_ tensors: [Tensor], metadata: [String: String] = [:], storage: StorageType = .f32,
                           to path: String) throws {
    let bytes = encode(tensors, metadata: metadata, storage: storage)
    try writeAtomically(bytes, to: path)
  }
}

/// Temporary file, fsync, rename, then fsync of the directory (best effort).
public func writeAtomically(_ bytes: Data, to path: String) throws {
  let temporary = path + ".tmp-\(getpid())"
  let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  guard fd >= 0 else { throw SafetensorsError.unwritable(path: path, reason: String(cString: strerror(errno))) }
  var failure: String?
  bytes.withUnsafeBytes { raw in
    var written = 0
    while written < raw.count {
      let n = write(fd, raw.baseAddress! + written, raw.count - written)
      if n < 0 {
        if errno == EINTR { continue }
        failure = String(cString: strerror(errno)); return
      }
      written += n
    }
  }
  if failure == nil, fsync(fd) != 0 { failure = "fsync: " + String(cString: strerror(errno)) }
  close(fd)
  if let failure {
    unlink(temporary)
    throw SafetensorsError.unwritable(path: path, reason: failure)
  }
  guard rename(temporary, path) == 0 else {
    let reason = String(cString: strerror(errno))
    unlink(temporary)
    throw SafetensorsError.unwritable(path: path, reason: "rename: \(reason)")
  }
  let directory = (path as NSString).deletingLastPathComponent
  let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY)
  if dirFD >= 0 { fsync(dirFD); close(dirFD) }
}
