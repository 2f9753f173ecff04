// EFT as a StepModel: frozen encoders, only the RAda head trains. Each micro-batch takes its image features
// from an ImageFeatureSource (frozen tower on augmented images, or a cache), runs the head against the class
// text features t (K, D), and backpropagates CE + α·mask loss into the head's gradients. The head's small
// gradient is one fused allreduce (one bucket).
import Foundation
import RAda
import Tensor

public final class EFTModel: StepModel {
  public let head: RAdaHead
  public let source: ImageFeatureSource
  public let labels: [Int]
  public let classFeatures: FloatBuffer
  public let classes: Int
  /// CLIP's logit_scale (log space): s = exp(logitScale) inside the head.
  public let logitScale: Float
  private let workspace: RAdaWorkspace
  private let features: FloatBuffer

  public var table: ParameterTable { head.table }
  public var parameters: FloatBuffer { head.parameters }
  public var gradients: FloatBuffer { head.gradients }

  /// labels[i] is the class of dataset position i; classFeatures t (K, D) L2-normalised.
  public init(head: RAdaHead, source: ImageFeatureSource, labels: [Int], classFeatures: FloatBuffer, classes: Int,
              logitScale: Float, microBatch: Int) throws {
    self.head = head; self.source = source; self.labels = labels; self.classFeatures = classFeatures
    self.classes = classes; self.logitScale = logitScale
    workspace = try RAdaWorkspace(config: head.config, maxBatch: microBatch, classes: classes)
    features = FloatBuffer(count: microBatch * head.config.dim)
  }

  public func forwardBackward(positions: [Int], epoch: Int, reducer: GradientReducer) throws -> StepLosses {
    try source.features(positions: positions, epoch: epoch, into: features.pointer)
    try head.forward(imageFeatures: features.readOnly, textFeatures: classFeatures.readOnly, batch: positions.count,
                     classes: classes, logitScale: logitScale, workspace: workspace)
    let loss = try head.loss(labels: positions.map { labels[$0] }, workspace: workspace)
    try head.backward(workspace: workspace, maskLossWeight: head.config.alpha)
    return StepLosses(total: Double(loss.total), ce: Double(loss.ce), maskLoss: Double(loss.maskLoss))
  }

  public func checkpointFiles() -> [String: [SafetensorsWriter.Tensor]] {
    ["head.safetensors": head.table.entries.map {
      SafetensorsWriter.Tensor(name: $0.name, shape: $0.shape, values: head.parameters.readOnly + $0.offset)
    }]
  }
}
