/**
 * The model part of a tiny local/LSH ReformerLM config (L = 16, d_model 16, 2 layers, dropout 0.1):
 * small enough for the float64 reference and for a training step in milliseconds. Raw JSON, before
 * `validateRunConfig`; `overrides` replace fields.
 */
export function tinyModelJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    seqLen: 16,
    dModel: 16,
    dFF: 32,
    nHeads: 2,
    dHead: 8,
    nLayers: 2,
    attention: ['local', 'lsh'],
    nHashes: 1,
    chunkLen: 8,
    ffChunkLen: 8,
    axialShape: [4, 4],
    axialDims: [8, 8],
    dropout: 0.1,
    ...overrides,
  };
}
