/**
 * A model module for `reformer verify` and `reformer compile` (the contract is in docs/cli.md):
 * a tiny ReformerLM (reversible blocks with LSH and local attention, chunked feed-forward, axial
 * positions) built from a model config.
 *
 *   npx reformer verify examples/tiny-reformer.ts --backend webasm
 *   npx reformer compile examples/tiny-reformer.ts --emit out/tiny-reformer --graph forward
 */
import { CrossEntropyLoss, buildModel, defaultRunConfig, validateRunConfig, type InputSpec, type Layer } from '../index.ts';

const config = validateRunConfig({
  model: {
    ...defaultRunConfig.model,
    seqLen: 32,
    dModel: 16,
    dFF: 32,
    nHeads: 2,
    dHead: 8,
    nLayers: 2,
    attention: ['lsh', 'local'],
    nHashes: 2,
    chunkLen: 8,
    ffChunkLen: 16,
    axialShape: [4, 8],
    axialDims: [8, 8],
    dropout: 0.1,
  },
  train: defaultRunConfig.train,
}).model;

export const model: Layer = buildModel(config);

/** Token ids [batch 2, seqLen]; the model shifts right internally, so the tokens are also the targets. */
export const inputs: InputSpec[] = [{ shape: [2, config.seqLen], dtype: 'i32', name: 'tokens' }];

/** Random i32 inputs (for `verify`) are token ids below the vocabulary size. */
export const intHigh = config.vocabSize;

/** `--graph train`: cross-entropy of [logits, tokens]. */
export const loss: Layer = CrossEntropyLoss();
