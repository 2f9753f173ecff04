// CLIP's image encoder, open_clip `VisionTransformer` / OpenAI `VisionTransformer` (pool_type "tok"):
//   x = [class; conv1(pixels) patches] + positional;  x = ln_pre(x);  x = blocks(x);
//   features = ln_post(x[:, 0]) · proj;  embeds = features / ‖features‖
// Shapes: pixels (B, 3, imageSize, imageSize); P − 1 = (imageSize / patchSize)² patches; N = B·P rows.
// ln_post runs on the class rows only (LayerNorm is per row, so this equals open_clip's order).
// Shape letters: B batch, P patches + 1, C width, D joint embedding dim, L layers.
import Kernels
import Tensor

/// Activations of the vision tower for up to `batch` images; allocated once, reused every step.
public final class VisionActivations {
  public let batch: Int
  public let isSaving: Bool
  let blocks: BlockActivations
  /// (B·(P−1), 3·patchSize²) im2col columns, (B·(P−1), C) patch embeddings, (B·P, C) tokens before ln_pre
  let columns, patches, tokens, lnPreMean, lnPreRstd: FloatBuffer
  /// (B, C) class rows after the blocks and after ln_post; (B) its mean/rstd
  let pooled, pooledNormed, lnPostMean, lnPostRstd: FloatBuffer
  /// (B, D) projected features, (B, D) L2-normalised embeddings, (B) norms
  public let features, embeds, norms: FloatBuffer
  /// backward scratch: (B, D), (B, C), (B, C)
  let dFeatures, dPooledNormed, dPooled: FloatBuffer

  public init(config: CLIPConfig, batch: Int, saving: Bool) {
    let v = config.vision, e = config.embedDim
    let rows = batch * v.tokens, patchRows = batch * v.grid * v.grid
    self.batch = batch
    isSaving = saving
    blocks = BlockActivations(layers: v.layers, batch: batch, tokens: v.tokens, width: v.width, heads: v.heads,
                              mlpWidth: v.mlpWidth, saving: saving)
    columns = FloatBuffer(count: PatchEmbedding.columnsCount(batch: batch, imageSize: v.imageSize, patchSize: v.patchSize))
    patches = FloatBuffer(count: patchRows * v.width)
    tokens = FloatBuffer(count: rows * v.width)
    lnPreMean = FloatBuffer(count: rows); lnPreRstd = FloatBuffer(count: rows)
    pooled = FloatBuffer(count: batch * v.width); pooledNormed = FloatBuffer(count: batch * v.width)
    lnPostMean = FloatBuffer(count: batch); lnPostRstd = FloatBuffer(count: batch)
    features = FloatBuffer(count: batch * e); embeds = FloatBuffer(count: batch * e); norms = FloatBuffer(count: batch)
    let scratch = saving ? batch : 0
    dFeatures = FloatBuffer(count: scratch * e)
    dPooledNormed = FloatBuffer(count: scratch * v.width); dPooled = FloatBuffer(count: scratch * v.width)
  }
}

public struct VisionTower {
  public let config: CLIPConfig
  let conv1, classEmbedding, positional, lnPreWeight, lnPreBias, lnPostWeight, lnPostBias, proj: Int
  let blocks: [BlockOffsets]

  init(config: CLIPConfig, table: ParameterTable) {
    self.config = config
    func offset(_ name: String) -> Int { table[name]!.offset }
    conv1 = offset("visual.conv1.weight"); classEmbedding = offset("visual.class_embedding")
    positional = offset("visual.positional_embedding")
    lnPreWeight = offset("visual.ln_pre.weight"); lnPreBias = offset("visual.ln_pre.bias")
    lnPostWeight = offset("visual.ln_post.weight"); lnPostBias = offset("visual.ln_post.bias")
    proj = offset("visual.proj")
    blocks = (0..<config.vision.layers).map { BlockOffsets(table: table, prefix: "visual.transformer.resblocks.\($0).") }
  }

  func blockShape(batch: Int) -> BlockShape {
    let v = config.vision
    return BlockShape(batch: batch, tokens: v.tokens, width: v.width, heads: v.heads, mlpWidth: v.mlpWidth,
                      causal: false, activation: config.activation, eps: config.layerNormEps)
  }

  /// pixels (B, 3, imageSize, imageSize) -> a.features (B, D), a.embeds (B, D). B ≤ a.batch.
  public func forward(pixels: Floats, batch: Int, parameters p: Floats, activations a: VisionActivations) {
    precondition(batch <= a.batch, "VisionTower.forward: batch \(batch) exceeds the arena's \(a.batch)")
    let v = config.vision, c = v.width, e = config.embedDim, tokens = v.tokens, patchCount = v.grid * v.grid
    let rows = batch * tokens
    // patches (B·(P−1), C) = conv1(pixels)
    PatchEmbedding.forward(out: a.patches.pointer, columns: a.columns.pointer, pixels: pixels, weight: p + conv1,
                           batch: batch, imageSize: v.imageSize, patchSize: v.patchSize, width: c)
    // tokens (B, P, C): row 0 the class embedding, rows 1... the patches; plus positional (P, C)
    let x = a.tokens.pointer, pos = p + positional
    for b in 0..<batch {
      let image = x + b * tokens * c
      for j in 0..<c { image[j] = p[classEmbedding + j] + pos[j] }
      let src = a.patches.pointer + b * patchCount * c
      for i in 0..<(patchCount * c) { image[c + i] = src[i] + pos[c + i] }
    }
    // residual₀ (B·P, C) = ln_pre(tokens)
    LayerNorm.forward(out: a.blocks.residualIn(0), mean: a.lnPreMean.pointer, rstd: a.lnPreRstd.pointer, x: x,
                      weight: p + lnPreWeight, bias: p + lnPreBias, rows: rows, channels: c, eps: config.layerNormEps)
    let shape = blockShape(batch: batch)
    for (l, offsets) in blocks.enumerated() {
      ResidualBlock.forward(a.blocks.layer(l), parameters: p, offsets: offsets, shape: shape)
    }
    // pooled (B, C) = class rows;  pooledNormed = ln_post(pooled)
    let last = a.blocks.residualIn(v.layers)
    for b in 0..<batch { (a.pooled.pointer + b * c).update(from: last + b * tokens * c, count: c) }
    LayerNorm.forward(out: a.pooledNormed.pointer, mean: a.lnPostMean.pointer, rstd: a.lnPostRstd.pointer,
                      x: a.pooled.pointer, weight: p + lnPostWeight, bias: p + lnPostBias, rows: batch, channels: c,
                      eps: config.layerNormEps)
    // features (B, D) = pooledNormed (B, C) · proj (C, D)
    gemm(.noTranspose, .noTranspose, m: batch, n: e, k: c, a: a.pooledNormed.pointer, b: p + proj,
         c: a.features.pointer)
    L2Normalize.forward(out: a.embeds.pointer, norms: a.norms.pointer, x: a.features.pointer, rows: batch, dim: e)
  }

  /// Adds the gradients of every vision parameter into `g`, given dEmbeds (B, D) (normalised embeddings)
  /// and/or dFeatures (B, D) (unnormalised). Needs the activations of a saving `forward` of the same batch.
  /// `afterLayer(l)`, if given, runs once block l's gradients are complete (l = L-1 down to 0): every vision
  /// gradient from block l's first tensor to the end of the tower is final then (FFT's gradient buckets).
  public func backward(dEmbeds: Floats?, dFeatures: Floats? = nil, batch: Int, parameters p: Floats,
                       gradients g: MutableFloats, activations a: VisionActivations,
                       afterLayer: ((Int) -> Void)? = nil) {
    precondition(a.isSaving, "VisionTower.backward needs activations created with saving: true")
    let v = config.vision, c = v.width, e = config.embedDim, tokens = v.tokens, patchCount = v.grid * v.grid
    let rows = batch * tokens
    let dFeat = a.dFeatures.pointer
    dFeat.update(repeating: 0, count: batch * e)
    if let dFeatures { addInPlace(dFeat, dFeatures, batch * e) }
    if let dEmbeds {
      L2Normalize.backward(dX: dFeat, dOut: dEmbeds, out: a.embeds.pointer, norms: a.norms.pointer, rows: batch, dim: e)
    }
    // features = pooledNormed · proj:  dProj (C, D) += pooledNormedᵀ (C, B) · dFeatures (B, D)
    gemm(.transpose, .noTranspose, m: c, n: e, k: batch, a: a.pooledNormed.pointer, b: dFeat, beta: 1, c: g + proj)
    // dPooledNormed (B, C) = dFeatures (B, D) · projᵀ (D, C)
    gemm(.noTranspose, .transpose, m: batch, n: c, k: e, a: dFeat, b: p + proj, c: a.dPooledNormed.pointer)
    a.dPooled.zero()
    LayerNorm.backward(dX: a.dPooled.pointer, dWeight: g + lnPostWeight, dBias: g + lnPostBias,
                       dOut: a.dPooledNormed.pointer, x: a.pooled.pointer, weight: p + lnPostWeight,
                       mean: a.lnPostMean.pointer, rstd: a.lnPostRstd.pointer, rows: batch, channels: c)
    // Only the class rows of the last residual reach the output.
    let dResidual = a.blocks.dResidual.pointer
    dResidual.update(repeating: 0, count: rows * c)
    for b in 0..<batch { (dResidual + b * tokens * c).update(from: a.dPooled.pointer + b * c, count: c) }
    let shape = blockShape(batch: batch)
    for l in stride(from: v.layers - 1, through: 0, by: -1) {
      ResidualBlock.backward(dResidual: dResidual, a.blocks.layer(l), scratch: a.blocks, parameters: p,
                             gradients: g, offsets: blocks[l], shape: shape)
      afterLayer?(l)
    }
    // residual₀ = ln_pre(tokens): dTokens (B·P, C) into the dNormed scratch
    let dTokens = a.blocks.dNormed.pointer
    dTokens.update(repeating: 0, count: rows * c)
    LayerNorm.backward(dX: dTokens, dWeight: g + lnPreWeight, dBias: g + lnPreBias, dOut: dResidual,
                       x: a.tokens.pointer, weight: p + lnPreWeight, mean: a.lnPreMean.pointer,
                       rstd: a.lnPreRstd.pointer, rows: rows, channels: c)
    // tokens = [class; patches] + positional: class and positional gradients sum over the batch;
    // the patch rows are compacted into dPatches (B·(P−1), C) (the dResidual scratch, no longer needed).
    let dPatches = dResidual
    for b in 0..<batch {
      let image = dTokens + b * tokens * c
      for j in 0..<c { g[classEmbedding + j] += image[j] }
      for i in 0..<(tokens * c) { g[positional + i] += image[i] }
      (dPatches + b * patchCount * c).update(from: image + c, count: patchCount * c)
    }
    PatchEmbedding.backward(dWeight: g + conv1, dOut: dPatches, columns: a.columns.pointer, batch: batch,
                            imageSize: v.imageSize, patchSize: v.patchSize, width: c)
  }
}
