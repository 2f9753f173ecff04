// PatchEmbedding against a direct Double convolution loop (Conv2d, stride = kernel, no bias) and finite
// differences for dWeight. Forward tolerance 1e-5 + 1e-5·|ref|: fp32 sgemm over 3·p·p = 12 products.
// Shape letters: B batch, P patches + 1, C width.
import Kernels
import Tensor
import XCTest

final class PatchEmbeddingTests: XCTestCase {
  let batch = 2, imageSize = 6, patchSize = 2, width = 4
  var grid: Int { imageSize / patchSize }

  func testForwardMatchesDirectConvolution() {
    let pixels = randomBuffer(batch * 3 * imageSize * imageSize, seed: 1)
    let weight = randomBuffer(width * 3 * patchSize * patchSize, seed: 2)
    let out = FloatBuffer(count: batch * grid * grid * width)
    let columns = FloatBuffer(count: PatchEmbedding.columnsCount(batch: batch, imageSize: imageSize, patchSize: patchSize))
    PatchEmbedding.forward(out: out.pointer, columns: columns.pointer, pixels: pixels.readOnly, weight: weight.readOnly,
                           batch: batch, imageSize: imageSize, patchSize: patchSize, width: width)
    // torch: conv(pixels)[b, o, gy, gx] = Σ_{ch, ky, kx} W[o, ch, ky, kx] · pixels[b, ch, gy·p + ky, gx·p + kx],
    // then flatten(2).transpose(1, 2) puts it at out[b, gy·G + gx, o].
    var expected = [Double](repeating: 0, count: out.count)
    let p = patchSize
    for b in 0..<batch { for gy in 0..<grid { for gx in 0..<grid { for o in 0..<width {
      var sum = 0.0
      for ch in 0..<3 { for ky in 0..<p { for kx in 0..<p {
        let w = weight[((o * 3 + ch) * p + ky) * p + kx]
        let v = pixels[((b * 3 + ch) * imageSize + gy * p + ky) * imageSize + gx * p + kx]
        sum += Double(w) * Double(v)
      } } }
      expected[((b * grid + gy) * grid + gx) * width + o] = sum
    } } } }
    assertClose(out, expected, atol: 1e-5, rtol: 1e-5, "PatchEmbedding out")
  }

  func testBackwardMatchesFiniteDifferences() {
    let pixels = randomBuffer(batch * 3 * imageSize * imageSize, seed: 3)
    let weight = randomBuffer(width * 3 * patchSize * patchSize, seed: 4)
    let r = randomBuffer(batch * grid * grid * width, seed: 5)
    let out = FloatBuffer(count: r.count), dWeight = FloatBuffer(count: weight.count)
    let columns = FloatBuffer(count: PatchEmbedding.columnsCount(batch: batch, imageSize: imageSize, patchSize: patchSize))
    checkGradients("PatchEmbedding", inputs: [GradientInput(name: "Weight", value: weight, gradient: dWeight)],
                   objective: {
                     PatchEmbedding.forward(out: out.pointer, columns: columns.pointer, pixels: pixels.readOnly,
                                            weight: weight.readOnly, batch: batch, imageSize: imageSize,
                                            patchSize: patchSize, width: width)
                     return dotDouble(r, out)
                   },
                   backward: {
                     PatchEmbedding.backward(dWeight: dWeight.pointer, dOut: r.readOnly, columns: columns.readOnly,
                                             batch: batch, imageSize: imageSize, patchSize: patchSize, width: width)
                   })
  }
}
