// Patch embedding of the vision tower, torch.nn.Conv2d(3, C, kernel_size=patchSize, stride=patchSize, bias=False),
// as im2col followed by one sgemm. Shapes: pixels (B, 3, imageSize, imageSize) NCHW; weight (C, 3, patchSize,
// patchSize) torch layout, read as (C, 3·patchSize²); grid = imageSize / patchSize, so P − 1 = grid² patches;
// columns (B·(P−1), 3·patchSize²), column index ch·patchSize² + ky·patchSize + kx (the weight's order);
// out (B, P−1, C), patches row-major (index gy·grid + gx): torch's conv output flattened and transposed.
// Shape letters: B batch, P patches + 1 (the class token is added by the vision tower), C width.
import Tensor

public enum PatchEmbedding {
  /// Floats of the `columns` scratch: (B·(P−1), 3·patchSize²).
  public static func columnsCount(batch: Int, imageSize: Int, patchSize: Int) -> Int {
    let grid = imageSize / patchSize
    return batch * grid * grid * 3 * patchSize * patchSize
  }

  /// columns = im2col(pixels); out (B·(P−1), C) = columns (B·(P−1), 3·patchSize²) · weightᵀ (3·patchSize², C).
  public static func forward(out: MutableFloats, columns: MutableFloats, pixels: Floats, weight: Floats,
                             batch: Int, imageSize: Int, patchSize: Int, width: Int) {
    precondition(imageSize % patchSize == 0,
                 "PatchEmbedding: image size \(imageSize) is not a multiple of patch size \(patchSize)")
    let p = patchSize, grid = imageSize / p, patchLength = 3 * p * p
    let patches = batch * grid * grid
    // im2col: each (channel, kernel row) of a patch is patchSize contiguous pixels.
    Parallel.forChunks(patches, minimumWork: max(1, (1 << 15) / patchLength)) { start, end in
      for patch in start..<end {
        let b = patch / (grid * grid), gy = (patch / grid) % grid, gx = patch % grid
        let dst = columns + patch * patchLength
        for ch in 0..<3 {
          let plane = pixels + (b * 3 + ch) * imageSize * imageSize
          for ky in 0..<p {
            (dst + (ch * p + ky) * p).update(from: plane + (gy * p + ky) * imageSize + gx * p, count: p)
          }
        }
      }
    }
    // out (B·(P−1), C) = columns (B·(P−1), 3·patchSize²) · weightᵀ (3·patchSize², C)
    gemm(.noTranspose, .transpose, m: patches, n: width, k: patchLength, a: columns, b: weight, c: out)
  }

  /// Adds into dWeight (C, 3, patchSize, patchSize). Pixels get no gradient (images are not trained).
  /// forward was out = columns · Wᵀ, so dW = dOutᵀ · columns.
  public static func backward(dWeight: MutableFloats, dOut: Floats, columns: Floats,
                              batch: Int, imageSize: Int, patchSize: Int, width: Int) {
    let grid = imageSize / patchSize, patchLength = 3 * patchSize * patchSize
    // dWeight (C, 3·patchSize²) += dOutᵀ (C, B·(P−1)) · columns (B·(P−1), 3·patchSize²)
    gemm(.transpose, .noTranspose, m: width, n: patchLength, k: batch * grid * grid,
         a: dOut, b: columns, beta: 1, c: dWeight)
  }
}
