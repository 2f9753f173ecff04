// Flat, aligned Float storage: the one owner of parameter, gradient, moment and activation memory.
// Kernels work on raw pointers (`Floats`, `MutableFloats`) taken from these buffers; nothing above the
// kernels indexes them element by element in hot loops.
// Shape letters: none (a buffer is `count` floats; its users give the shapes).

/// Read-only view of contiguous floats handed to kernels.
public typealias Floats = UnsafePointer<Float>
/// Writable view of contiguous floats handed to kernels.
public typealias MutableFloats = UnsafeMutablePointer<Float>

/// A fixed-size, 64-byte aligned, zero-initialised Float buffer. Reference type so that views stay valid
/// while the owner lives; never resized.
public final class FloatBuffer {
  public let count: Int
  public let pointer: MutableFloats
  /// For a view: the buffer whose memory this one shows (kept alive by the view, and the one that frees it).
  private let owner: FloatBuffer?

  public init(count: Int) {
    precondition(count >= 0, "FloatBuffer count must be non-negative")
    self.count = count
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
    pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    pointer.initialize(repeating: 0, count: max(count, 1))
    owner = nil
  }

  /// `count` floats of `owner` from `offset`, sharing its memory (two layouts over one buffer, e.g. a model's
  /// parameters inside a trainer's larger buffer). Writes through either are seen by both.
  public init(viewing owner: FloatBuffer, offset: Int, count: Int) {
    precondition(offset >= 0 && count >= 0 && offset <= owner.count - count,
                 "FloatBuffer view \(offset)..<\(offset + count) outside a buffer of \(owner.count)")
    self.count = count
    pointer = owner.pointer + offset
    self.owner = owner
  }

  public convenience init(_ values: [Float]) {
    self.init(count: values.count)
    values.withUnsafeBufferPointer { src in
      if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
    }
  }

  deinit { if owner == nil { UnsafeMutableRawPointer(pointer).deallocate() } }

  public var readOnly: Floats { Floats(pointer) }
  public subscript(index: Int) -> Float {
    get { pointer[index] }
    set { pointer[index] = newValue }
  }
  /// A copy of the contents (for tests, logging and I/O; not for hot loops).
  public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
  public func zero() { pointer.update(repeating: 0, count: count) }
  public func copy(from other: FloatBuffer) {
    precondition(other.count == count, "FloatBuffer.copy: sizes \(other.count) and \(count) differ")
    pointer.update(from: other.pointer, count: count)
  }
  public func fill(_ value: Float) { pointer.update(repeating: value, count: count) }
}
