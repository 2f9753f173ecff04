// Token embedding lookup, torch.nn.Embedding: out[n] = table[ids[n]].
// Shapes: ids (N) Int32 with 0 ≤ id < V, table (V, C), out (N, C). Callers (the tokenizer) guarantee the
// id range; it is checked with a precondition because a bad id here is our bug, not user input.
// Shape letters: N rows (B·T token positions), V vocab, C width.
import Tensor

public enum Embedding {
  /// out (N, C) = rows of table (V, C) picked by ids (N).
  public static func forward(out: MutableFloats, ids: UnsafePointer<Int32>, table: Floats,
                             count: Int, channels: Int) {
    for n in 0..<count {
      let id = Int(ids[n])
      precondition(id >= 0, "Embedding.forward: negative token id \(id) at position \(n)")
      (out + n * channels).update(from: table + id * channels, count: channels)
    }
  }

  /// Adds into dTable (V, C): each row of dOut (N, C) into the row of its id (repeated ids accumulate).
  /// Serial on purpose: repeated ids would make a threaded scatter race.
  public static func backward(dTable: MutableFloats, dOut: Floats, ids: UnsafePointer<Int32>,
                              count: Int, channels: Int) {
    for n in 0..<count {
      let id = Int(ids[n])
      precondition(id >= 0, "Embedding.backward: negative token id \(id) at position \(n)")
      let dst = dTable + id * channels, src = dOut + n * channels
      for c in 0..<channels { dst[c] += src[c] }
    }
  }
}
