// Options shared by the commands that score images with class prompts and an optional head (`rada eval`,
// `rada ttt`): prompt templates, logit scale, the head's temperature and the base/new class subset.
import ArgumentParser
import Data
import Training

struct HeadScoringOptions: ParsableArguments {
  @Option(help: "Prompt template with {} for the class name (repeatable; averaged).") var template: [String] = []
  @Option(name: .customLong("logit-scale"), help: "Fixed logit scale s (linear, e.g. 100); default: the model's.")
  var logitScale: Double?
  @Option(help: "Temperature of the head's attention maps (must match the head's training).") var temperature: Double?
  @Option(help: "base, new or all classes (CoOp's base/new split of the dataset's classes).") var subsample = ClassSubset.all

  func validate() throws {
    if let logitScale, !(logitScale > 0 && logitScale <= 1e6) {
      throw ValidationError("--logit-scale must be in (0, 1e6] (got \(logitScale)); CLIP's is 100.")
    }
    if let temperature, !(temperature > 0 && temperature.isFinite) {
      throw ValidationError("--temperature must be a positive number (got \(temperature)).")
    }
  }

  /// Writes these options into the config the sessions read.
  func apply(to config: inout TrainConfig) {
    config.model.logitScale = logitScale
    config.data.subsample = subsample
    if let temperature { config.rada.temperature = temperature }
    if !template.isEmpty { config.rada.templates = template }
  }
}
