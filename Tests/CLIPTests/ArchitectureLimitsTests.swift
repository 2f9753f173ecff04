// Input safety of model files: architectures out of range (0 heads, patch size 0, width 2^40, 10^7 layers, eps
// NaN or 1e300) are refused with the key named before anything is allocated, config numbers that are not
// integers never reach Int(...), and NaN/Inf in the weights is reported at load with the tensor's name.
// Shape letters: C width, L layers, H heads (sizes read from model files).
import CLIP
import Foundation
import Tensor
import XCTest

final class ArchitectureLimitsTests: XCTestCase {
  var scratch: URL!

  override func setUpWithError() throws {
    scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rada-limits-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

  func testParameterCountMatchesTheParameterTable() {
    for config in [CLIPConfig.vitB32, .vitB16, .vitL14] {
      XCTAssertEqual(config.parameterCount, CLIPModel.parameterTable(config).totalCount)
    }
  }

  func testOutOfRangeArchitecturesNameTheKey() {
    func expectProblem(_ edit: (inout CLIPConfig) -> Void, _ key: String, line: UInt = #line) {
      var config = CLIPConfig.vitB32
      edit(&config)
      let problems = config.problems
      XCTAssertTrue(problems.contains { $0.contains(key) }, "\(key) not in \(problems)", line: line)
    }
    XCTAssertEqual(CLIPConfig.vitB32.problems, [])
    expectProblem({ $0.vision.heads = 0 }, "vision.heads")
    expectProblem({ $0.text.heads = -3 }, "text.heads")
    expectProblem({ $0.vision.patchSize = 0 }, "vision.patchSize")
    expectProblem({ $0.vision.width = 1 << 40 }, "vision.width")
    expectProblem({ $0.text.layers = 10_000_000 }, "text.layers")
    expectProblem({ $0.text.contextLength = 0 }, "text.contextLength")
    expectProblem({ $0.layerNormEps = .nan }, "layerNormEps")
    expectProblem({ $0.layerNormEps = -1e-5 }, "layerNormEps")
    // Every size inside its limit, the total over 2^34: refused by count, not by an allocation abort.
    expectProblem({ $0.text.vocabSize = 1 << 24; $0.text.width = 1 << 16; $0.text.heads = 1 }, "parameters")
  }

  func hfFolder(editConfig: (inout [String: Any], inout [String: Any], inout [String: Any]) -> Void) throws -> URL {
    let folder = scratch.appendingPathComponent("hf-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: ModelFixtures.url("hf/model.safetensors"), to: folder.appendingPathComponent("model.safetensors"))
    var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: ModelFixtures.url("hf/config.json"))) as? [String: Any])
    var vision = try XCTUnwrap(json["vision_config"] as? [String: Any])
    var text = try XCTUnwrap(json["text_config"] as? [String: Any])
    editConfig(&json, &vision, &text)
    json["vision_config"] = vision
    json["text_config"] = text
    try JSONSerialization.data(withJSONObject: json).write(to: folder.appendingPathComponent("config.json"))
    return folder
  }

  func testHuggingFaceConfigNumbersOutOfRangeAreRefusedWithTheKey() throws {
    let cases: [(String, (inout [String: Any], inout [String: Any], inout [String: Any]) -> Void)] = [
      ("vision_config.num_attention_heads", { _, v, _ in v["num_attention_heads"] = 1e300 }),
      ("vision_config.num_attention_heads", { _, v, _ in v["num_attention_heads"] = 0 }),
      ("text_config.num_attention_heads", { _, _, t in t["num_attention_heads"] = -4 }),
      ("text_config.num_attention_heads", { _, _, t in t["num_attention_heads"] = 2.5 }),
      ("vision_config.hidden_size", { _, v, _ in v["hidden_size"] = 1e300 }),
      ("vision_config.layer_norm_eps", { _, v, _ in v["layer_norm_eps"] = 0 }),
      ("vision_config.layer_norm_eps", { _, v, _ in v["layer_norm_eps"] = 1e300 }),
      ("vision_config.layer_norm_eps", { _, v, _ in v["layer_norm_eps"] = -1e-5 }),
      ("text_config.eos_token_id", { _, _, t in t["eos_token_id"] = -7 }),
    ]
    for (key, edit) in cases {
      let folder = try hfFolder(editConfig: edit)
      XCTAssertThrowsError(try CLIPModel.load(path: folder.path), key) { error in
        XCTAssertTrue("\(error)".contains(key) && "\(error)".contains("config.json"), "\(key): \(error)")
      }
    }
    // Integers stated as 1 or 0 in JSON are numbers, not booleans (they are NSNumber 0/1 on Linux).
    let folder = try hfFolder { _, v, _ in v["num_attention_heads"] = 1 }
    XCTAssertEqual(try CLIPCheckpoint(path: folder.path).config().vision.heads, 1)
  }

  func testZeroHeadWidthIsRefused() throws {
    let path = try ModelFixtures.url("openai/open_clip_model.safetensors").path
    XCTAssertThrowsError(try CLIPCheckpoint(path: path).config(options: CLIPLoadOptions(headWidth: 0))) { error in
      XCTAssertTrue("\(error)".contains("head width 0"), "\(error)")
    }
  }

  func testMetadataArchitectureIsCheckedBeforeAllocation() throws {
    // rada's own files carry the config as metadata; a hostile one claims 10^7 layers or width 2^40 and must be
    // refused (by the limits or by the tensors the file lacks), never allocated.
    let source = try ModelFixtures.file("openai/open_clip_model.safetensors")
    let values = try source.tensors.map { try source.floats($0.name) }
    for (edit, fragment) in [({ (c: inout CLIPConfig) in c.vision.layers = 10_000_000 }, "vision.layers"),
                             ({ (c: inout CLIPConfig) in c.vision.width = 1 << 40 }, "vision.width"),
                             ({ (c: inout CLIPConfig) in c.text.layers = 900 }, "transformer.resblocks.2.")] {
      var config = try CLIPCheckpoint(path: ModelFixtures.url("openai/open_clip_model.safetensors").path)
        .config(options: CLIPLoadOptions(headWidth: 16))
      edit(&config)
      let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
      let path = scratch.appendingPathComponent("meta-\(fragment).safetensors").path
      try withExtendedLifetime(values) {
        let pointers = values.map { v -> UnsafeMutablePointer<Float> in
          let p = UnsafeMutablePointer<Float>.allocate(capacity: max(v.count, 1)); p.initialize(from: v, count: v.count); return p
        }
        defer { pointers.forEach { $0.deallocate() } }
        try SafetensorsWriter.write(zip(source.tensors, pointers).map { .init(name: $0.name, shape: $0.shape, values: $1) },
                                    metadata: [CLIPModel.configMetadataKey: json], to: path)
      }
      XCTAssertThrowsError(try CLIPModel.load(path: path), fragment) { error in
        XCTAssertTrue("\(error)".contains(fragment) && "\(error)".contains(path), "\(fragment): \(error)")
      }
    }
  }

  func testNaNInWeightsIsReportedAtLoadWithTheTensorName() throws {
    let source = try ModelFixtures.file("openai/open_clip_model.safetensors")
    var values = try source.tensors.map { try source.floats($0.name) }
    let target = try XCTUnwrap(source.tensors.firstIndex { $0.name == "transformer.resblocks.1.mlp.c_fc.weight" })
    values[target][5] = .nan
    let path = scratch.appendingPathComponent("nan.safetensors").path
    try withExtendedLifetime(values) {
      let pointers = values.map { v -> UnsafeMutablePointer<Float> in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(v.count, 1)); p.initialize(from: v, count: v.count); return p
      }
      defer { pointers.forEach { $0.deallocate() } }
      try SafetensorsWriter.write(zip(source.tensors, pointers).map { .init(name: $0.name, shape: $0.shape, values: $1) }, to: path)
    }
    XCTAssertThrowsError(try CLIPModel.load(path: path, options: CLIPLoadOptions(headWidth: 16))) { error in
      let text = "\(error)"
      XCTAssertTrue(text.contains("'transformer.resblocks.1.mlp.c_fc.weight'") && text.contains("nan")
                      && text.contains("element 5") && text.contains(path), text)
    }
  }
}
