// CLIP's text encoder, open_clip `CLIP.encode_text` / HF `CLIPTextTransformer`:
//   x = token_embedding[ids] + positional;  x = causal blocks(x);
//   features = ln_final(x[b, eot_b]) · text_projection;  embeds = features / ‖features‖
// eot_b is the FIRST end-of-text token of row b (id 49407 for the OpenAI vocabulary): open_clip's argmax rule and
// HF's eos_token_id rule agree there; a row without one pools at its largest id. ln_final runs on pooled rows only.
// Shape letters: ids (B, T) Int32; B batch, T tokens, C width, D joint embedding dim, V vocab, L layers; N = B·T.
import Kernels
import Tensor

/// Activations of the text tower for up to `batch` token rows; allocated once, reused every step.
public final class TextActivations {
  public let batch: Int
  public let isSaving: Bool
  let blocks: BlockActivations
  /// (B) pooled position per row
  let pooledIndex: UnsafeMutablePointer<Int>
  /// (B, C) pooled rows before and after ln_final; (B) mean/rstd
  let pooled, pooledNormed, lnFinalMean, lnFinalRstd: FloatBuffer
  /// (B, D) projected features, (B, D) normalised embeddings, (B) norms
  public let features, embeds, norms: FloatBuffer
  let dFeatures, dPooledNormed, dPooled: FloatBuffer

  public init(config: CLIPConfig, batch: Int, saving: Bool) {
    let t = config.text, e = config.embedDim
    self.batch = batch
    isSaving = saving
    blocks = BlockActivations(layers: t.layers, batch: batch, tokens: t.contextLength, width: t.width, heads: t.heads,
                              mlpWidth: t.mlpWidth, saving: saving)
    pooledIndex = .allocate(capacity: max(batch, 1))
    pooledIndex.initialize(repeating: 0, count: max(batch, 1))
    pooled = FloatBuffer(count: batch * t.width); pooledNormed = FloatBuffer(count: batch * t.width)
    lnFinalMean = FloatBuffer(count: batch); lnFinalRstd = FloatBuffer(count: batch)
    features = FloatBuffer(count: batch * e); embeds = FloatBuffer(count: batch * e); norms = FloatBuffer(count: batch)
    let scratch = saving ? batch : 0
    dFeatures = FloatBuffer(count: scratch * e)
    dPooledNormed = FloatBuffer(count: scratch * t.width); dPooled = FloatBuffer(count: scratch * t.width)
  }

  deinit { pooledIndex.deallocate() }
}

public struct TextTower {
  public let config: CLIPConfig
  let tokenEmbedding, positional, lnFinalWeight, lnFinalBias, projection: Int
  let blocks: [BlockOffsets]

  init(config: CLIPConfig, table: ParameterTable) {
    self.config = config
    func offset(_ name: String) -> Int { table[name]!.offset }
    tokenEmbedding = offset("token_embedding.weight"); positional = offset("positional_embedding")
    lnFinalWeight = offset("ln_final.weight"); lnFinalBias = offset("ln_final.bias")
    projection = offset("text_projection")
    blocks = (0..<config.text.layers).map { BlockOffsets(table: table, prefix: "transformer.resblocks.\($0).") }
  }

  func blockShape(batch: Int) -> BlockShape {
    let t = config.text
    return BlockShape(batch: batch, tokens: t.contextLength, width: t.width, heads: t.heads, mlpWidth: t.mlpWidth,
                      causal: true, activation: config.activation, eps: config.layerNormEps)
  }

  /// The position text row `ids` (T) is pooled at: the first end-of-text id, else the first largest id.
  public static func pooledPosition(_ ids: UnsafePointer<Int32>, tokens: Int, endOfTextId: Int) -> Int {
    var best = 0
    for t in 0..<tokens {
      if Int(ids[t]) == endOfTextId { return t }
      if ids[t] > ids[best] { best = t }
    }
    return best
  }

  /// ids (B, T) with 0 ≤ id < V -> a.features (B, D), a.embeds (B, D). B ≤ a.batch.
  public func forward(ids: UnsafePointer<Int32>, batch: Int, parameters p: Floats, activations a: TextActivations) {
    precondition(batch <= a.batch, "TextTower.forward: batch \(batch) exceeds the arena's \(a.batch)")
    let t = config.text, c = t.width, e = config.embedDim, tokens = t.contextLength
    let rows = batch * tokens
    for i in 0..<rows {
      precondition(ids[i] >= 0 && Int(ids[i]) < t.vocabSize,
                   "TextTower.forward: token id \(ids[i]) at \(i) outside the vocabulary of \(t.vocabSize)")
    }
    // residual₀ (B·T, C) = token_embedding[ids] + positional (T, C)
    let x = a.blocks.residualIn(0)
    Embedding.forward(out: x, ids: ids, table: p + tokenEmbedding, count: rows, channels: c)
    for b in 0..<batch { addInPlace(x + b * tokens * c, p + positional, tokens * c) }
    let shape = blockShape(batch: batch)
    for (l, offsets) in blocks.enumerated() {
      ResidualBlock.forward(a.blocks.layer(l), parameters: p, offsets: offsets, shape: shape)
    }
    // pooled (B, C) = rows at end-of-text;  pooledNormed = ln_final(pooled)
    let last = a.blocks.residualIn(t.layers)
    for b in 0..<batch {
      let position = Self.pooledPosition(ids + b * tokens, tokens: tokens, endOfTextId: t.endOfTextId)
      a.pooledIndex[b] = position
      (a.pooled.pointer + b * c).update(from: last + (b * tokens + position) * c, count: c)
    }
    LayerNorm.forward(out: a.pooledNormed.pointer, mean: a.lnFinalMean.pointer, rstd: a.lnFinalRstd.pointer,
                      x: a.pooled.pointer, weight: p + lnFinalWeight, bias: p + lnFinalBias, rows: batch,
                      channels: c, eps: config.layerNormEps)
    // features (B, D) = pooledNormed (B, C) · text_projection (C, D)
    gemm(.noTranspose, .noTranspose, m: batch, n: e, k: c, a: a.pooledNormed.pointer, b: p + projection,
         c: a.features.pointer)
    L2Normalize.forward(out: a.embeds.pointer, norms: a.norms.pointer, x: a.features.pointer, rows: batch, dim: e)
  }

  /// Adds the gradients of every text parameter into `g`, given dEmbeds (B, D) and/or dFeatures (B, D).
  /// `afterLayer(l)`, if given, runs once block l's gradients are complete (l = L-1 down to 0): every text
  /// gradient from block l's first tensor to the end of the tower is final then (FFT's gradient buckets).
  public func backward(dEmbeds: Floats?, dFeatures: Floats? = nil, ids: UnsafePointer<Int32>, batch: Int,
                       parameters p: Floats, gradients g: MutableFloats, activations a: TextActivations,
                       afterLayer: ((Int) -> Void)? = nil) {
    precondition(a.isSaving, "TextTower.backward needs activations created with saving: true")
    let t = config.text, c = t.width, e = config.embedDim, tokens = t.contextLength
    let rows = batch * tokens
    let dFeat = a.dFeatures.pointer
    dFeat.update(repeating: 0, count: batch * e)
    if let dFeatures { addInPlace(dFeat, dFeatures, batch * e) }
    if let dEmbeds {
      L2Normalize.backward(dX: dFeat, dOut: dEmbeds, out: a.embeds.pointer, norms: a.norms.pointer, rows: batch, dim: e)
    }
    // dProjection (C, D) += pooledNormedᵀ (C, B) · dFeatures (B, D);  dPooledNormed (B, C) = dFeatures · projectionᵀ
    gemm(.transpose, .noTranspose, m: c, n: e, k: batch, a: a.pooledNormed.pointer, b: dFeat, beta: 1,
         c: g + projection)
    gemm(.noTranspose, .transpose, m: batch, n: c, k: e, a: dFeat, b: p + projection, c: a.dPooledNormed.pointer)
    a.dPooled.zero()
    LayerNorm.backward(dX: a.dPooled.pointer, dWeight: g + lnFinalWeight, dBias: g + lnFinalBias,
                       dOut: a.dPooledNormed.pointer, x: a.pooled.pointer, weight: p + lnFinalWeight,
                       mean: a.lnFinalMean.pointer, rstd: a.lnFinalRstd.pointer, rows: batch, channels: c)
    let dResidual = a.blocks.dResidual.pointer
    dResidual.update(repeating: 0, count: rows * c)
    for b in 0..<batch {
      (dResidual + (b * tokens + a.pooledIndex[b]) * c).update(from: a.dPooled.pointer + b * c, count: c)
    }
    let shape = blockShape(batch: batch)
    for l in stride(from: t.layers - 1, through: 0, by: -1) {
      ResidualBlock.backward(dResidual: dResidual, a.blocks.layer(l), scratch: a.blocks, parameters: p,
                             gradients: g, offsets: blocks[l], shape: shape)
      afterLayer?(l)
    }
    // residual₀ = token_embedding[ids] + positional
    for b in 0..<batch { addInPlace(g + positional, dResidual + b * tokens * c, tokens * c) }
    Embedding.backward(dTable: g + tokenEmbedding, dOut: dResidual, ids: ids, count: rows, channels: c)
  }
}
