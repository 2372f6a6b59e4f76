/**
 * Deterministic data splitting and batching for language modelling on a token stream.
 *
 * - `heldOutSplit`: the last `fraction` of the stream is validation data (contiguous, so no window
 *   straddles the boundary and nothing leaks between the two parts).
 * - `WindowSampler`: batch number `step` is a pure function of (seed, step): window starts are drawn
 *   with the counter-based generator of compiler/ir/random.ts. Resuming at step N therefore replays
 *   exactly the batches an uninterrupted run would have seen; the "data position" is just the step.
 * - `evalWindows`: consecutive non-overlapping windows, for a deterministic evaluation pass.
 */
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { hash3, saltOf } from '../../compiler/ir/random.ts';

export interface HeldOutSplit {
  readonly train: Int32Array;
  readonly valid: Int32Array;
}

/** Splits off the last `fraction` (default 5%) of `tokens` as validation data; both parts are views. */
export function heldOutSplit(tokens: Int32Array, fraction = 0.05): HeldOutSplit {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`heldOutSplit: fraction must be in (0, 1), got ${fraction}`);
  const nValid = Math.ceil(tokens.length * fraction);
  const nTrain = tokens.length - nValid;
  if (nTrain <= 0 || nValid <= 0) throw new Error(`heldOutSplit: ${tokens.length} tokens are too few to hold out ${fraction * 100}% and keep training data`);
  return { train: tokens.subarray(0, nTrain), valid: tokens.subarray(nTrain) };
}

const samplerSalt = saltOf('data/WindowSampler');

/** A uniform integer in [0, n) from 53 random bits at counter pair (2i, 2i+1); n ≤ 2^53. */
export function randomIndex(seed: number, salt: number, i: number, n: number): number {
  const hi = hash3(seed, salt, 2 * i);
  const lo = hash3(seed, salt, 2 * i + 1) >>> 11;
  return Math.floor(((hi * 2097152 + lo) / 9007199254740992) * n);
}

export interface WindowSamplerOptions {
  readonly batchSize: number;
  /** Window length L. */
  readonly length: number;
  readonly seed: number;
}

/** Random [B, L] windows of a token stream, reproducible from (seed, step). */
export class WindowSampler {
  readonly batchSize: number;
  readonly length: number;
  readonly seed: number;

  constructor(
    readonly tokens: Int32Array,
    options: WindowSamplerOptions,
  ) {
    const { batchSize, length, seed } = options;
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`WindowSampler: batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(length) || length <= 0) throw new Error(`WindowSampler: length must be a positive integer, got ${length}`);
    if (!Number.isInteger(seed)) throw new Error(`WindowSampler: seed must be an integer, got ${seed}`);
    if (tokens.length < length) throw new Error(`WindowSampler: the data has ${tokens.length} tokens, fewer than one window of length ${length}`);
    this.batchSize = batchSize;
    this.length = length;
    this.seed = seed;
  }

  /** Window starts of batch `step` (any integer step ≥ 0). */
  starts(step: number): number[] {
    if (!Number.isSafeInteger(step) || step < 0) throw new Error(`WindowSampler: step must be a non-negative integer, got ${step}`);
    // Per-step seed from the full step value, so counters stay small however long training runs.
    const stepSeed = hash3(this.seed, samplerSalt, step % 2147483648) ^ Math.floor(step / 2147483648);
    const range = this.tokens.length - this.length + 1;
    return Array.from({ length: this.batchSize }, (_, b) => randomIndex(stepSeed, samplerSalt, b, range));
  }

  /** Batch `step` as an i32 [B, L] tensor. */
  batch(step: number): HostTensor {
    return windowsBatch(this.tokens, this.starts(step), this.length);
  }
}

/** Gathers windows of length `length` starting at `starts` into an i32 [starts.length, length] tensor. */
export function windowsBatch(tokens: Int32Array, starts: readonly number[], length: number): HostTensor {
  const data = new Int32Array(starts.length * length);
  starts.forEach((s, b) => {
    if (!Number.isInteger(s) || s < 0 || s + length > tokens.length) {
      throw new Error(`windowsBatch: window [${s}, ${s + length}) is outside the ${tokens.length}-token data`);
    }
    data.set(tokens.subarray(s, s + length), b * length);
  });
  return { shape: [starts.length, length], dtype: 'i32', data };
}

/** Starts of consecutive non-overlapping windows covering `tokens` (a trailing partial window is dropped), in batches. */
export function evalWindows(tokens: Int32Array, length: number, batchSize: number, maxWindows = Infinity): number[][] {
  if (!Number.isInteger(length) || length <= 0) throw new Error(`evalWindows: length must be a positive integer, got ${length}`);
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`evalWindows: batchSize must be a positive integer, got ${batchSize}`);
  const n = Math.min(Math.floor(tokens.length / length), maxWindows);
  if (n === 0) throw new Error(`evalWindows: the data has ${tokens.length} tokens, fewer than one window of length ${length}`);
  const batches: number[][] = [];
  for (let w = 0; w < n; w += batchSize) batches.push(Array.from({ length: Math.min(batchSize, n - w) }, (_, i) => (w + i) * length));
  return batches;
}
