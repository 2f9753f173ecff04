// The CLIP model against PyTorch (Fixtures/model, generate_clip_fixtures.py): two tiny random models, one
// open_clip with QuickGELU in OpenAI names, one transformers CLIPModel with exact GELU in HF names. Checks
// embeddings, logits, loss and the gradient of EVERY parameter, plus finite differences, the forward-only
// path, the distributed form of the contrastive loss, random init and save/load.
// Shape letters: B batch, T tokens, P patches + 1, C width, D joint embedding dim.
import CLIP
import Foundation
import Kernels
import Tensor
import XCTest

/// Fixture access shared by the CLIP tests.
enum ModelFixtures {
  static func url(_ relative: String) throws -> URL {
    let base = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    return base.appendingPathComponent("model").appendingPathComponent(relative)
  }
  static func file(_ relative: String) throws -> SafetensorsFile { try SafetensorsFile(path: url(relative).path) }
}

/// max |a - b| and its first index, for failure messages.
func maxDifference(_ a: [Float], _ b: [Float]) -> (diff: Float, index: Int) {
  var worst: Float = 0, index = 0
  for i in a.indices where abs(a[i] - b[i]) > worst { worst = abs(a[i] - b[i]); index = i }
  return (worst, index)
}

func assertClose(_ actual: [Float], _ expected: [Float], atol: Float, _ name: String, file: StaticString = #filePath,
                 line: UInt = #line) {
  XCTAssertEqual(actual.count, expected.count, "\(name): element count", file: file, line: line)
  guard actual.count == expected.count else { return }
  let (diff, index) = maxDifference(actual, expected)
  XCTAssertLessThanOrEqual(diff, atol, "\(name): max |diff| \(diff) at index \(index) (got \(actual[index]), "
                           + "expected \(expected[index]), tolerance \(atol))", file: file, line: line)
}

/// One forward + loss + backward of a whole model on the fixture batch.
struct FullStep {
  var imageFeatures: [Float], imageEmbeds: [Float], textFeatures: [Float], textEmbeds: [Float]
  var logits: [Float], loss: Float
  var gradients: FloatBuffer
}

func runFullStep(_ model: CLIPModel, pixels: [Float], ids: [Int32], batch: Int, backward: Bool = true) -> FullStep {
  let config = model.config, e = config.embedDim
  let visionActivations = VisionActivations(config: config, batch: batch, saving: true)
  let textActivations = TextActivations(config: config, batch: batch, saving: true)
  let p = model.parameters.readOnly
  pixels.withUnsafeBufferPointer { model.vision.forward(pixels: $0.baseAddress!, batch: batch, parameters: p, activations: visionActivations) }
  ids.withUnsafeBufferPointer { model.text.forward(ids: $0.baseAddress!, batch: batch, parameters: p, activations: textActivations) }
  let loss = ContrastiveLoss(localRows: batch, globalRows: batch, dim: e)
  let dImage = FloatBuffer(count: batch * e), dText = FloatBuffer(count: batch * e)
  let imageEmbeds = visionActivations.embeds.readOnly, textEmbeds = textActivations.embeds.readOnly
  let result = loss.compute(imageLocal: imageEmbeds, textLocal: textEmbeds, imageGlobal: imageEmbeds,
                            textGlobal: textEmbeds, rows: batch, columns: batch, labelOffset: 0,
                            logitScale: model.logitScale, dImageLocal: dImage.pointer, dTextLocal: dText.pointer)
  let gradients = FloatBuffer(count: model.table.totalCount)
  if backward {
    model.vision.backward(dEmbeds: dImage.readOnly, batch: batch, parameters: p, gradients: gradients.pointer,
                          activations: visionActivations)
    ids.withUnsafeBufferPointer {
      model.text.backward(dEmbeds: dText.readOnly, ids: $0.baseAddress!, batch: batch, parameters: p,
                          gradients: gradients.pointer, activations: textActivations)
    }
    gradients[model.logitScaleIndex] += result.dLogitScale
  }
  func prefix(_ buffer: FloatBuffer) -> [Float] { Array(buffer.array.prefix(batch * e)) }
  return FullStep(imageFeatures: prefix(visionActivations.features), imageEmbeds: prefix(visionActivations.embeds),
                  textFeatures: prefix(textActivations.features), textEmbeds: prefix(textActivations.embeds),
                  logits: loss.lastLogitsPerImage(rows: batch, columns: batch), loss: result.loss, gradients: gradients)
}

final class CLIPModelTests: XCTestCase {
  func inputs(pixels: String) throws -> (pixels: [Float], ids: [Int32]) {
    let file = try ModelFixtures.file("inputs.safetensors")
    return (try file.floats(pixels), try file.ints("tokens").map { Int32($0) })
  }

  /// Compares one model with its fixture: outputs, loss and every parameter gradient by the file's names.
  func checkAgainstPyTorch(folder: String, pixels: String, naming: CLIPNaming) throws {
    let model = try CLIPModel.load(path: ModelFixtures.url(folder).path)
    let (px, ids) = try inputs(pixels: pixels)
    let step = runFullStep(model, pixels: px, ids: ids, batch: 3)
    let expected = try ModelFixtures.file("\(folder)/expected.safetensors")
    // Float32 forward vs a float64 reference: features are O(1); 1e-5 on unit vectors is ~100 ulp of slack
    // for two 2-layer towers; unnormalised features scale with |features| so they get a relative bound.
    assertClose(step.imageEmbeds, try expected.floats("image_embeds"), atol: 1e-5, "\(folder) image_embeds")
    assertClose(step.textEmbeds, try expected.floats("text_embeds"), atol: 1e-5, "\(folder) text_embeds")
    let imageFeatures = try expected.floats("image_features"), textFeatures = try expected.floats("text_features")
    assertClose(step.imageFeatures, imageFeatures, atol: 1e-5 * max(1, imageFeatures.map(abs).max()!), "\(folder) image_features")
    assertClose(step.textFeatures, textFeatures, atol: 1e-5 * max(1, textFeatures.map(abs).max()!), "\(folder) text_features")
    // Logits are exp(logit_scale) ≈ 14 times cosines: 1e-4 absolute.
    assertClose(step.logits, try expected.floats("logits_per_image"), atol: 1e-4, "\(folder) logits_per_image")
    assertClose([step.loss], try expected.floats("loss"), atol: 1e-5, "\(folder) loss")
    // Every parameter gradient within 1e-3 of that tensor's largest |value| (float32 accumulation over the
    // backward pass against float64; PyTorch float32 itself lands around 1e-5 relative here). The scale has
    // a floor of 1e-3: HF's separate k_proj.bias has a gradient that is zero in exact arithmetic (softmax
    // ignores a shift shared by a row), so both sides hold only rounding noise there (1e-8..2e-7, depending on
    // the summation order of the attention products, which depends on the thread layout).
    var checked = Set<String>()
    for source in CLIPWeightNames.sources(for: model.config, naming: naming) {
      let reference = try expected.floats("grad." + source.name)
      let actual = CLIPWeightNames.extract(source, from: step.gradients.readOnly, table: model.table)
      let scale = max(reference.map(abs).max() ?? 0, 1e-3)
      assertClose(actual, reference, atol: 1e-3 * scale, "\(folder) grad \(source.name)")
      checked.insert("grad." + source.name)
    }
    let gradientNames = Set(expected.names.filter { $0.hasPrefix("grad.") })
    XCTAssertEqual(checked, gradientNames, "\(folder): every PyTorch parameter gradient is checked")
  }

  func testOpenCLIPQuickGELUModelMatchesPyTorch() throws {
    try checkAgainstPyTorch(folder: "openai", pixels: "pixels_openai", naming: .openCLIP)
  }

  func testHuggingFaceGELUModelMatchesPyTorch() throws {
    try checkAgainstPyTorch(folder: "hf", pixels: "pixels_hf", naming: .huggingFace)
  }

  /// Central differences of the Float loss for a few entries of different kinds of tensors.
  func testFiniteDifferencesAgreeWithBackward() throws {
    let model = try CLIPModel.load(path: ModelFixtures.url("openai").path)
    let (px, ids) = try inputs(pixels: "pixels_openai")
    let analytic = runFullStep(model, pixels: px, ids: ids, batch: 3).gradients
    let probes: [(String, Int)] = [
      ("logit_scale", 0), ("visual.conv1.weight", 77), ("visual.class_embedding", 3),
      ("visual.transformer.resblocks.0.attn.in_proj_weight", 40 * 32 + 5), ("visual.proj", 21),
      ("transformer.resblocks.1.mlp.c_fc.weight", 300), ("token_embedding.weight", 99 * 32 + 4),
      ("positional_embedding", 2 * 32 + 7), ("ln_final.bias", 9), ("text_projection", 100),
    ]
    let h: Float = 1e-2
    for (name, index) in probes {
      let entry = try XCTUnwrap(model.table[name], name)
      let p = model.parameters.pointer + entry.offset + index
      let original = p.pointee
      p.pointee = original + h
      let plus = runFullStep(model, pixels: px, ids: ids, batch: 3, backward: false).loss
      p.pointee = original - h
      let minus = runFullStep(model, pixels: px, ids: ids, batch: 3, backward: false).loss
      p.pointee = original
      let numeric = (plus - minus) / (2 * h)
      let exact = analytic[entry.offset + index]
      // Float loss rounding (~1e-6) / 2h plus O(h²) truncation: 2e-3 absolute + 2 % relative.
      XCTAssertEqual(numeric, exact, accuracy: 2e-3 + 0.02 * abs(exact), "\(name)[\(index)]: finite difference vs backward")
    }
  }

  func testForwardOnlyMatchesSavingForwardAndEncodeHelpers() throws {
    let model = try CLIPModel.load(path: ModelFixtures.url("openai").path)
    let (px, ids) = try inputs(pixels: "pixels_openai")
    let step = runFullStep(model, pixels: px, ids: ids, batch: 3, backward: false)
    // Same batch: bit-identical. Chunk 2 forces a partial second chunk through the reused arena; sgemm
    // blocks differently for 2 rows than for 3, so that path agrees to float rounding (1e-6).
    XCTAssertEqual(model.encodeImages(pixels: px, count: 3, normalize: false), step.imageFeatures)
    XCTAssertEqual(model.encodeTexts(ids: ids, count: 3), step.textEmbeds)
    assertClose(model.encodeImages(pixels: px, count: 3, chunk: 2), step.imageEmbeds, atol: 1e-6, "chunked images")
    assertClose(model.encodeTexts(ids: ids, count: 3, chunk: 2), step.textEmbeds, atol: 1e-6, "chunked texts")
  }

  func testTextPoolsAtFirstEndOfTextElseLargestId() {
    let rows: [[Int32]] = [[254, 5, 255, 0, 0], [254, 7, 255, 255, 255], [3, 9, 2, 9, 1]]
    for (row, expected) in zip(rows, [2, 2, 1]) {
      XCTAssertEqual(row.withUnsafeBufferPointer { TextTower.pooledPosition($0.baseAddress!, tokens: 5, endOfTextId: 255) },
                     expected, "\(row)")
    }
  }

  /// Two "ranks" of 2 rows against 4 gathered columns must reproduce one process with 4 rows: mean of the
  /// losses, and local gradients plus the summed global-column gradients of each rank's slice.
  func testContrastiveLossSplitOverRanksEqualsSingleProcess() {
    var rng = SeededRNG(seed: 5)
    let n = 4, e = 6
    func unitRows() -> [Float] {
      var v = (0..<(n * e)).map { _ in Float(rng.normal()) }
      for r in 0..<n {
        let norm = (0..<e).map { v[r * e + $0] * v[r * e + $0] }.reduce(0, +).squareRoot()
        for j in 0..<e { v[r * e + j] /= norm }
      }
      return v
    }
    let image = unitRows(), text = unitRows()
    let logitScale: Float = 1.3
    var dImage = [Float](repeating: 0, count: n * e), dText = dImage
    let whole = ContrastiveLoss(localRows: n, globalRows: n, dim: e)
    let full = whole.compute(imageLocal: image, textLocal: text, imageGlobal: image, textGlobal: text, rows: n,
                             columns: n, labelOffset: 0, logitScale: logitScale, dImageLocal: &dImage, dTextLocal: &dText)
    // Reference loss by a naive Double loop.
    var reference = 0.0
    for direction in 0..<2 {
      let rowsF = direction == 0 ? image : text, colsF = direction == 0 ? text : image
      for i in 0..<n {
        let logits = (0..<n).map { j in exp(Double(logitScale)) * (0..<e).reduce(0.0) { $0 + Double(rowsF[i * e + $1] * colsF[j * e + $1]) } }
        let m = logits.max()!
        reference += (log(logits.map { exp($0 - m) }.reduce(0, +)) + m - logits[i]) / Double(2 * n)
      }
    }
    XCTAssertEqual(Double(full.loss), reference, accuracy: 1e-5)

    var splitImage = [Float](repeating: 0, count: n * e), splitText = splitImage
    var globalImage = splitImage, globalText = splitImage
    var lossSum: Float = 0, scaleSum: Float = 0
    let half = ContrastiveLoss(localRows: 2, globalRows: n, dim: e)
    for rank in 0..<2 {
      let rows = rank * 2 * e..<(rank * 2 + 2) * e
      var dLocalImage = [Float](repeating: 0, count: 2 * e), dLocalText = dLocalImage
      let r = half.compute(imageLocal: Array(image[rows]), textLocal: Array(text[rows]), imageGlobal: image,
                           textGlobal: text, rows: 2, columns: n, labelOffset: rank * 2, logitScale: logitScale,
                           dImageLocal: &dLocalImage, dTextLocal: &dLocalText, dImageGlobal: &globalImage,
                           dTextGlobal: &globalText)
      lossSum += r.loss; scaleSum += r.dLogitScale
      for (k, i) in rows.enumerated() { splitImage[i] += dLocalImage[k]; splitText[i] += dLocalText[k] }
    }
    // The mean over ranks of the per-rank losses is the global loss; gradients divide by the rank count.
    XCTAssertEqual(lossSum / 2, full.loss, accuracy: 1e-6)
    XCTAssertEqual(scaleSum / 2, full.dLogitScale, accuracy: 1e-6)
    assertClose(zip(splitImage, globalImage).map { ($0 + $1) / 2 }, dImage, atol: 1e-6, "dImage split vs whole")
    assertClose(zip(splitText, globalText).map { ($0 + $1) / 2 }, dText, atol: 1e-6, "dText split vs whole")
  }

  func testRandomInitIsSeededAndSaveLoadRoundTrips() throws {
    let config = CLIPConfig(embedDim: 8, vision: CLIPVisionConfig(width: 16, layers: 1, heads: 2, patchSize: 4, imageSize: 8),
                            text: CLIPTextConfig(width: 16, layers: 1, heads: 4, contextLength: 5, vocabSize: 20),
                            activation: .gelu)
    let a = CLIPModel.random(config: config, seed: 1), b = CLIPModel.random(config: config, seed: 1)
    let c = CLIPModel.random(config: config, seed: 2)
    XCTAssertEqual(a.parameters.array, b.parameters.array)
    XCTAssertNotEqual(a.parameters.array, c.parameters.array)
    XCTAssertEqual(a.logitScale, Float(log(1 / 0.07)), accuracy: 1e-6)
    XCTAssertEqual(a.parameter("visual.ln_pre.weight")?.pointee, 1)
    let path = NSTemporaryDirectory() + "rada-clip-\(getpid()).safetensors"
    defer { unlink(path) }
    try a.save(path: path)
    let back = try CLIPModel.load(path: path)
    XCTAssertEqual(back.config, config, "the config travels in the metadata (heads, GELU, end-of-text)")
    XCTAssertEqual(back.parameters.array, a.parameters.array)
  }
}
