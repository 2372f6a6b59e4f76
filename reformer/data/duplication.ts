/**
 * The paper's duplication task (Reformer §5, Table 2): sequences `0 w 0 w`, where w is a string of
 * random symbols from 1..vocabSize−1. The paper uses vocabulary 128, total length 1024 (|w| = 511).
 *
 * The second half (from the second 0 on) carries loss weight 1 and the first half 0, as in trax's
 * copy task: only the copy can be predicted, so loss and accuracy are measured there. (The separator
 * at position L/2 is trivially predictable; it moves accuracy by at most 1/(L/2).) Batches are a pure
 * function of (seed, step), like `WindowSampler`.
 */
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { hash3, saltOf } from '../../compiler/ir/random.ts';
import { randomIndex } from './split.ts';

export interface DuplicationOptions {
  readonly batchSize: number;
  /** Total length L (even, ≥ 4); default 1024. */
  readonly length?: number;
  /** Symbols are 1..vocabSize−1 and 0 is the separator; default 128. */
  readonly vocabSize?: number;
  readonly seed: number;
}

export interface DuplicationBatch {
  /** i32 [B, L]: `0 w 0 w`. */
  readonly inputs: HostTensor;
  /** f32 [B, L]: 1 on the second half, 0 on the first. */
  readonly weights: HostTensor;
}

const salt = saltOf('data/duplication');

export function checkDuplicationOptions(o: DuplicationOptions): Required<DuplicationOptions> {
  const length = o.length ?? 1024;
  const vocabSize = o.vocabSize ?? 128;
  if (!Number.isInteger(o.batchSize) || o.batchSize <= 0) throw new Error(`duplication task: batchSize must be a positive integer, got ${o.batchSize}`);
  if (!Number.isInteger(length) || length < 4 || length % 2 !== 0) throw new Error(`duplication task: length must be an even integer ≥ 4, got ${length}`);
  if (!Number.isInteger(vocabSize) || vocabSize < 2) throw new Error(`duplication task: vocabSize must be an integer ≥ 2, got ${vocabSize}`);
  if (!Number.isInteger(o.seed)) throw new Error(`duplication task: seed must be an integer, got ${o.seed}`);
  return { batchSize: o.batchSize, length, vocabSize, seed: o.seed };
}

/** Batch number `step` of the duplication task. */
export function duplicationBatch(options: DuplicationOptions, step: number): DuplicationBatch {
  const { batchSize: B, length: L, vocabSize, seed } = checkDuplicationOptions(options);
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`duplication task: step must be a non-negative integer, got ${step}`);
  const half = L / 2;
  const inputs = new Int32Array(B * L);
  const weights = new Float32Array(B * L);
  for (let b = 0; b < B; b++) {
    // One seed per example, so counters stay small for any step and batch size.
    const exSeed = hash3(hash3(seed, salt, step % 2147483648) ^ Math.floor(step / 2147483648), salt, b);
    const row = b * L;
    for (let i = 1; i < half; i++) {
      const sym = 1 + randomIndex(exSeed, salt, i, vocabSize - 1);
      inputs[row + i] = sym;
      inputs[row + half + i] = sym;
    }
    weights.fill(1, row + half, row + L);
  }
  return { inputs: { shape: [B, L], dtype: 'i32', data: inputs }, weights: { shape: [B, L], dtype: 'f32', data: weights } };
}
