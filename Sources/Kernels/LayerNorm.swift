// LayerNorm over the last axis; matches torch.nn.LayerNorm(C, eps: 1e-5) (biased variance, affine).
// Shapes: x, out (N, C); weight, bias (C); mean, rstd (N) saved for backward.
// Rows are independent: forward and the dX pass thread over rows, the dWeight/dBias pass over channels.
// Shape letters: N rows, C width (`channels`).
import Tensor

public enum LayerNorm {
  /// out = (x − mean) · rstd · weight + bias, rstd = 1 / sqrt(var + eps); writes mean and rstd per row.
  public static func forward(out: MutableFloats, mean: MutableFloats, rstd: MutableFloats,
                             x: Floats, weight: Floats, bias: Floats, rows: Int, channels: Int,
                             eps: Float = 1e-5) {
    let inverseChannels = 1 / Float(channels)
    Parallel.forChunks(rows, minimumWork: max(1, (1 << 15) / max(1, channels))) { start, end in
      for row in start..<end {
        let xRow = x + row * channels, outRow = out + row * channels
        // Two passes (mean, then centred variance): no cancellation for rows with a large mean.
        let mu = rowSum(xRow, channels) * inverseChannels
        var varianceSum: Float = 0
        var acc = SIMD16<Float>(repeating: 0)
        var j = 0
        while j + 16 <= channels {
          let d = UnsafeRawPointer(xRow + j).loadUnaligned(as: SIMD16<Float>.self) - mu
          acc += d * d
          j += 16
        }
        varianceSum = acc.sum()
        while j < channels { let d = xRow[j] - mu; varianceSum += d * d; j += 1 }
        let r = 1 / (varianceSum * inverseChannels + eps).squareRoot()
        mean[row] = mu
        rstd[row] = r
        for c in 0..<channels { outRow[c] = (xRow[c] - mu) * r * weight[c] + bias[c] }
      }
    }
  }

  /// Adds into dX (N, C), dWeight (C), dBias (C) (the latter two skipped when nil).
  /// With x̂ = (x − mean)·rstd and g = dOut ⊙ weight, forward out = x̂ ⊙ weight + bias gives
  ///   dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)),  dWeight = Σ_rows dOut ⊙ x̂,  dBias = Σ_rows dOut.
  public static func backward(dX: MutableFloats, dWeight: MutableFloats?, dBias: MutableFloats?,
                              dOut: Floats, x: Floats, weight: Floats, mean: Floats, rstd: Floats,
                              rows: Int, channels: Int) {
    let inverseChannels = 1 / Float(channels)
    Parallel.forChunks(rows, minimumWork: max(1, (1 << 14) / max(1, channels))) { start, end in
      for row in start..<end {
        let xRow = x + row * channels, gRow = dOut + row * channels, dxRow = dX + row * channels
        let mu = mean[row], r = rstd[row]
        // Σ g and Σ g·x̂ in one sweep with SIMD accumulators (strict FP would keep a scalar loop serial).
        var sumG = SIMD16<Float>(repeating: 0), sumGX = SIMD16<Float>(repeating: 0)
        var c = 0
        while c + 16 <= channels {
          let g = UnsafeRawPointer(gRow + c).loadUnaligned(as: SIMD16<Float>.self)
            * UnsafeRawPointer(weight + c).loadUnaligned(as: SIMD16<Float>.self)
          let xHat = (UnsafeRawPointer(xRow + c).loadUnaligned(as: SIMD16<Float>.self) - mu) * r
          sumG += g
          sumGX += g * xHat
          c += 16
        }
        var meanG = sumG.sum(), meanGX = sumGX.sum()
        while c < channels {
          let g = gRow[c] * weight[c], xHat = (xRow[c] - mu) * r
          meanG += g
          meanGX += g * xHat
          c += 1
        }
        meanG *= inverseChannels
        meanGX *= inverseChannels
        for c in 0..<channels {
          let xHat = (xRow[c] - mu) * r
          dxRow[c] += r * (gRow[c] * weight[c] - meanG - xHat * meanGX)
        }
      }
    }
    if dWeight == nil && dBias == nil { return }
    // Parameter gradients sum over rows: split the channels across threads so no two write the same entry.
    Parallel.forChunks(channels, minimumWork: max(1, (1 << 15) / max(1, rows))) { start, end in
      for row in 0..<rows {
        let xRow = x + row * channels, gRow = dOut + row * channels
        let mu = mean[row], r = rstd[row]
        if let dWeight { for c in start..<end { dWeight[c] += gRow[c] * (xRow[c] - mu) * r } }
        if let dBias { for c in start..<end { dBias[c] += gRow[c] } }
      }
    }
  }
}
