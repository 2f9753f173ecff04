// Input safety helpers used by every reader of untrusted files, flags and messages (README "Input safety"):
// `Checked` arithmetic on sizes (products, sums, Double -> Int) that returns nil instead of trapping, and
// `BoundedFile.read`, which checks a file's size against a limit before reading it into memory.
// Callers turn a nil or a thrown `InputLimitError` into their own module's typed error naming the file and key.
// Shape letters: none (sizes in bytes and element counts).
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Overflow-checked size arithmetic: nil where Swift's operators would trap.
public enum Checked {
  /// a · b, nil on overflow.
  @inlinable public static func multiply(_ a: Int, _ b: Int) -> Int? {
    let (value, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? nil : value
  }

  /// a + b, nil on overflow.
  @inlinable public static func add(_ a: Int, _ b: Int) -> Int? {
    let (value, overflow) = a.addingReportingOverflow(b)
    return overflow ? nil : value
  }

  /// The product of non-negative sizes (a tensor's element count), nil if a factor is negative or the product
  /// overflows. The empty product is 1 (a scalar).
  @inlinable public static func product<S: Sequence>(_ sizes: S) -> Int? where S.Element == Int {
    var total = 1
    for size in sizes {
      guard size >= 0, let next = multiply(total, size) else { return nil }
      total = next
    }
    return total
  }

  /// The sum of non-negative sizes, nil if one is negative or the sum overflows.
  @inlinable public static func sum<S: Sequence>(_ sizes: S) -> Int? where S.Element == Int {
    var total = 0
    for size in sizes {
      guard size >= 0, let next = add(total, size) else { return nil }
      total = next
    }
    return total
  }

  /// `value` as an Int when it is finite, integral and inside `range`; nil for NaN, ±Inf, 2.5, 1e300.
  @inlinable public static func integer(_ value: Double, in range: ClosedRange<Int> = Int.min...Int.max) -> Int? {
    guard value.isFinite, value == value.rounded(),
          value >= -9.2e18, value <= 9.2e18 else { return nil }  // inside Int64 with room for rounding
    let int = Int(value)
    return range.contains(int) ? int : nil
  }

  /// A JSON number (NSNumber, Int or Double as JSONSerialization gives them) as an Int when it is integral
  /// and inside `range`; nil for booleans, strings, fractions and out-of-range values.
  public static func integer(json value: Any?, in range: ClosedRange<Int> = Int.min...Int.max) -> Int? {
    guard let value, !isJSONBoolean(value) else { return nil }
    if let n = value as? NSNumber {
      let type = String(cString: n.objCType)
      if type == "q" || type == "l" || type == "i" || type == "s" {
        let int = n.int64Value
        return range.contains(Int(int)) ? Int(int) : nil
      }
      if type == "Q" || type == "L" || type == "I" {
        let unsigned = n.uint64Value
        guard unsigned <= UInt64(Int.max) else { return nil }
        return range.contains(Int(unsigned)) ? Int(unsigned) : nil
      }
      return integer(n.doubleValue, in: range)
    }
    if let int = value as? Int { return range.contains(int) ? int : nil }
    if let double = value as? Double { return integer(double, in: range) }
    return nil
  }

  /// True for JSON true/false. Not `value is Bool`: on Linux an NSNumber 0 or 1 from JSONSerialization also
  /// casts to Bool; booleans are the NSNumbers of ObjC type "c" (JSON integers are "i" or "q").
  public static func isJSONBoolean(_ value: Any) -> Bool {
    if let n = value as? NSNumber { return String(cString: n.objCType) == "c" }
    return value is Bool
  }
}

public enum InputLimitError: Error, CustomStringConvertible, Equatable {
  case tooLarge(path: String, bytes: Int, limit: Int, what: String)
  case unreadable(path: String, reason: String)

  public var description: String {
    switch self {
    case let .tooLarge(path, bytes, limit, what):
      return "\(path) is \(bytes) bytes, more than the \(limit)-byte limit for \(what). Check that this is the "
        + "intended file; a real \(what) is far smaller."
    case let .unreadable(path, reason):
      return "cannot read \(path): \(reason). Check the path and permissions."
    }
  }
}

/// Reads whole files after checking their size, so a wrong path (a dataset tarball, /dev/zero) is refused
/// before it fills memory.
public enum BoundedFile {
  /// Default limits by kind of file; every one is far above what a real file of that kind holds.
  public static let configLimit = 16 << 20        // YAML / JSON configs, state.json, sweep specs
  public static let listLimit = 1 << 30           // manifests, split JSON / pickles, metrics.jsonl

  /// The whole file, refusing anything but a regular file (or a symlink to one) of at most `limit` bytes.
  /// `what` names the kind of file in the error ("a config", "a manifest").
  public static func read(_ path: String, limit: Int, what: String) throws -> Data {
    var info = stat()
    guard stat(path, &info) == 0 else {
      throw InputLimitError.unreadable(path: path, reason: String(cString: strerror(errno)))
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
      throw InputLimitError.unreadable(path: path, reason: "not a regular file")
    }
    let size = Int(info.st_size)
    guard size <= limit else { throw InputLimitError.tooLarge(path: path, bytes: size, limit: limit, what: what) }
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw InputLimitError.unreadable(path: path, reason: "permission denied")
    }
    defer { try? handle.close() }
    do {
      // Read one byte more than allowed: a file that grew since stat is still refused.
      let data = try handle.read(upToCount: limit + 1) ?? Data()
      guard data.count <= limit else {
        throw InputLimitError.tooLarge(path: path, bytes: data.count, limit: limit, what: what)
      }
      return data
    } catch let error as InputLimitError {
      throw error
    } catch {
      throw InputLimitError.unreadable(path: path, reason: error.localizedDescription)
    }
  }
}

/// The first non-finite value of `count` floats (index and value), nil when all are finite: one pass, used to
/// report NaN/Inf in loaded weights at load time.
public func firstNonFinite(_ values: Floats, count: Int) -> (index: Int, value: Float)? {
  for i in 0..<count where !values[i].isFinite { return (i, values[i]) }
  return nil
}
