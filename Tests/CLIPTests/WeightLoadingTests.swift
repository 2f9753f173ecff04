// Loading: architecture from HF config.json, open_clip_config.json and bare OpenAI-named files, and the
// errors for missing, unexpected and wrongly shaped tensors (each must name the tensor, the shapes and the
// file). Broken checkpoints are made by rewriting the PyTorch fixture's tensors with our writer.
// Shape letters: C width, D joint embedding dim.
import CLIP
import Foundation
import Tensor
import XCTest

final class WeightLoadingTests: XCTestCase {
  var scratch: URL!

  override func setUpWithError() throws {
    scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rada-weights-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

  /// Rewrites the open_clip fixture weights with `edit` applied to (name -> (shape, values)), as a bare file.
  func rewrittenOpenCLIPFile(_ name: String, edit: (inout [String: ([Int], [Float])]) -> Void) throws -> String {
    let source = try ModelFixtures.file("openai/open_clip_model.safetensors")
    var tensors: [String: ([Int], [Float])] = [:]
    for info in source.tensors { tensors[info.name] = (info.shape, try source.floats(info.name)) }
    edit(&tensors)
    let path = scratch.appendingPathComponent(name).path
    let names = tensors.keys.sorted()
    let arrays = names.map { tensors[$0]!.1 }
    var pointers: [UnsafeMutablePointer<Float>] = []
    defer { pointers.forEach { $0.deallocate() } }
    for values in arrays {
      let p = UnsafeMutablePointer<Float>.allocate(capacity: max(values.count, 1))
      p.initialize(from: values, count: values.count)
      pointers.append(p)
    }
    try SafetensorsWriter.write(zip(names, pointers).map { .init(name: $0, shape: tensors[$0]!.0, values: $1) }, to: path)
    return path
  }

  func assertError(_ body: @autoclosure () throws -> Any, contains fragments: [String], line: UInt = #line) {
    XCTAssertThrowsError(try body(), line: line) { error in
      let text = "\(error)"
      for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' missing in: \(text)", line: line) }
    }
  }

  func testHuggingFaceFolderConfig() throws {
    let config = try CLIPCheckpoint(path: ModelFixtures.url("hf").path).config()
    XCTAssertEqual(config, CLIPConfig(
      embedDim: 12,
      vision: CLIPVisionConfig(width: 24, layers: 2, heads: 3, mlpWidth: 64, patchSize: 8, imageSize: 24),
      text: CLIPTextConfig(width: 16, layers: 1, heads: 2, mlpWidth: 64, contextLength: 16, vocabSize: 256, endOfTextId: 255),
      activation: .gelu))
  }

  func testOpenCLIPFolderConfig() throws {
    let checkpoint = try CLIPCheckpoint(path: ModelFixtures.url("openai").path)
    XCTAssertEqual(checkpoint.naming, .openCLIP)
    XCTAssertEqual(try checkpoint.config(), CLIPConfig(
      embedDim: 16, vision: CLIPVisionConfig(width: 32, layers: 2, heads: 2, patchSize: 8, imageSize: 32),
      text: CLIPTextConfig(width: 32, layers: 2, heads: 2, contextLength: 16, vocabSize: 256), activation: .quickGELU))
  }

  func testBareOpenAIFileUsesHeadWidth64UnlessTold() throws {
    let path = try ModelFixtures.url("openai/open_clip_model.safetensors").path
    // Width 32 cannot have 64-wide heads: the error says so and how to fix it.
    assertError(try CLIPModel.load(path: path), contains: [path, "head width 64", "--head-width"])
    let model = try CLIPModel.load(path: path, options: CLIPLoadOptions(headWidth: 16))
    XCTAssertEqual(model.config.vision.heads, 2)
    XCTAssertEqual(model.config.text.heads, 2)
    XCTAssertEqual(model.config.activation, .quickGELU)
    let gelu = try CLIPCheckpoint(path: path).config(options: CLIPLoadOptions(headWidth: 16, activation: .gelu))
    XCTAssertEqual(gelu.activation, .gelu)
    // Same numbers as the folder load (which takes heads from open_clip_config.json).
    let folder = try CLIPModel.load(path: ModelFixtures.url("openai").path)
    XCTAssertEqual(model.parameters.array, folder.parameters.array)
  }

  func testMissingTensorIsNamed() throws {
    let path = try rewrittenOpenCLIPFile("missing.safetensors") { $0["visual.ln_post.bias"] = nil }
    assertError(try CLIPModel.load(path: path, options: CLIPLoadOptions(headWidth: 16)),
                contains: [path, "'visual.ln_post.bias'", "[32]"])
  }

  func testUnexpectedTensorIsNamed() throws {
    let path = try rewrittenOpenCLIPFile("unexpected.safetensors") { $0["visual.extra_head.weight"] = ([2, 2], [1, 2, 3, 4]) }
    assertError(try CLIPModel.load(path: path, options: CLIPLoadOptions(headWidth: 16)),
                contains: [path, "'visual.extra_head.weight'", "[2, 2]"])
  }

  func testWronglyShapedTensorNamesBothShapes() throws {
    let path = try rewrittenOpenCLIPFile("shape.safetensors") {
      $0["transformer.resblocks.1.mlp.c_fc.weight"] = ([64, 32], [Float](repeating: 0, count: 64 * 32))
    }
    assertError(try CLIPModel.load(path: path, options: CLIPLoadOptions(headWidth: 16)),
                contains: [path, "'transformer.resblocks.1.mlp.c_fc.weight'", "[64, 32]", "[128, 32]"])
  }

  func testHuggingFaceConfigThatDisagreesWithWeights() throws {
    let folder = scratch.appendingPathComponent("hf")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: ModelFixtures.url("hf/model.safetensors"), to: folder.appendingPathComponent("model.safetensors"))
    var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: ModelFixtures.url("hf/config.json"))) as? [String: Any])
    var vision = try XCTUnwrap(json["vision_config"] as? [String: Any])
    vision["num_hidden_layers"] = 3
    json["vision_config"] = vision
    let configPath = folder.appendingPathComponent("config.json")
    try JSONSerialization.data(withJSONObject: json).write(to: configPath)
    assertError(try CLIPModel.load(path: folder.path), contains: [configPath.path, "vision_config.num_hidden_layers", "3", "2"])
  }

  func testHuggingFaceMissingQProjIsNamedInHFTerms() throws {
    let source = try ModelFixtures.file("hf/model.safetensors")
    let folder = scratch.appendingPathComponent("hf-missing")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: ModelFixtures.url("hf/config.json"), to: folder.appendingPathComponent("config.json"))
    let kept = source.tensors.filter { $0.name != "text_model.encoder.layers.0.self_attn.k_proj.bias" }
    let values = try kept.map { try source.floats($0.name) }
    let weights = folder.appendingPathComponent("model.safetensors").path
    try withExtendedLifetime(values) {
      let pointers = values.map { v -> UnsafeMutablePointer<Float> in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(v.count, 1)); p.initialize(from: v, count: v.count); return p
      }
      defer { pointers.forEach { $0.deallocate() } }
      try SafetensorsWriter.write(zip(kept, pointers).map { .init(name: $0.name, shape: $0.shape, values: $1) }, to: weights)
    }
    assertError(try CLIPModel.load(path: folder.path),
                contains: [weights, "'text_model.encoder.layers.0.self_attn.k_proj.bias'", "[16]"])
  }

  func testUnrecognizedPathsSayWhatIsExpected() throws {
    assertError(try CLIPModel.load(path: scratch.path), contains: [scratch.path, "config.json", "open_clip_config.json"])
    assertError(try CLIPModel.load(path: "/nonexistent/model"), contains: ["/nonexistent/model"])
  }
}
