/**
 * Index plumbing shared by the chunked attention layers: take-along gathers with a broadcast index,
 * and the "look around" window that stacks each chunk with its neighbours. Everything is vectorised
 * over chunks (slices + one concat), so the node count does not grow with the sequence length.
 */
import type { Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';

/**
 * `x[..., index[..., j], ...]` along `axis`, where `index` has x's leading dims up to and including
 * `axis` (`[...x.shape[:axis], m]`) and is broadcast over x's trailing dims.
 */
export function takeAlong(x: Tensor, index: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  const trailing = x.shape.slice(a + 1);
  const m = index.shape[a]!;
  const lifted = ops.reshape(index, [...index.shape, ...trailing.map(() => 1)]);
  return ops.gather(x, ops.broadcastTo(lifted, [...x.shape.slice(0, a), m, ...trailing]), a);
}

/** `out[j] = x[(j + shift) mod n]` along `axis`: chunk j sees chunk j + shift, wrapping around. */
export function roll(x: Tensor, axis: number, shift: number): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  const n = x.shape[a]!;
  const s = ((shift % n) + n) % n;
  if (s === 0) return x;
  return ops.concat([ops.sliceAxis(x, a, s, n - s), ops.sliceAxis(x, a, 0, s)], a);
}

/**
 * Key/value windows: x is `[..., nChunks, chunkLen, ...]` with the chunk axis at `axis`; the result
 * has each chunk followed, along `axis + 1`, by chunks `j - before … j + after` (wrapping), i.e.
 * `[..., nChunks, (before + 1 + after)·chunkLen, ...]`, ordered by chunk offset.
 */
export function lookAround(x: Tensor, axis: number, before: number, after: number): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  const parts: Tensor[] = [];
  for (let o = -before; o <= after; o++) parts.push(roll(x, a, o));
  return ops.concat(parts, a + 1);
}

/** The chunk offset (−before … after) of each window slot, in `lookAround` order. */
export function windowOffsets(chunkLen: number, before: number, after: number): number[] {
  const out: number[] = [];
  for (let o = -before; o <= after; o++) for (let i = 0; i < chunkLen; i++) out.push(o);
  return out;
}

/** Splits `axis` of length n into `[n / chunkLen, chunkLen]`. */
export function chunk(x: Tensor, axis: number, chunkLen: number): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  const n = x.shape[a]!;
  return ops.reshape(x, [...x.shape.slice(0, a), n / chunkLen, chunkLen, ...x.shape.slice(a + 1)]);
}

/** Merges `axis` and `axis + 1`. */
export function unchunk(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  return ops.reshape(x, [...x.shape.slice(0, a), x.shape[a]! * x.shape[a + 1]!, ...x.shape.slice(a + 2)]);
}

/** Subtracts `amount` from `logits` where the i32 mask is set (the trax masking convention). */
export function penalise(logits: Tensor, mask: Tensor, amount: number): Tensor {
  return ops.sub(logits, ops.mul(ops.toFloat(mask), amount));
}

/** Shared-QK key normalisation: k / sqrt(Σk² + 1e-6·d), a unit vector (trax's rsqrt(mean+1e-6)/√d). */
export function normalizeKeys(k: Tensor): Tensor {
  const d = k.shape[k.rank - 1]!;
  return ops.mul(k, ops.rsqrt(ops.add(ops.sum(ops.square(k), -1, true), 1e-6 * d)));
}

/** Masks worth of logits: large enough that exp underflows to exactly 0 next to any real logit. */
export const MASK_FORBIDDEN = 1e9;
/** Self-attention penalty: a token sees itself only when nothing else is allowed. */
export const MASK_SELF = 1e5;

/**
 * Softmax over the last axis and its log-normaliser. The weights are `exp(x − max) / Σ`, not
 * `exp(x − lse)`: when every logit carries a mask offset (a row that only sees itself, at −1e5),
 * lse rounds in float32 to the offset's ulp, and `exp(x − lse)` would lose that much precision.
 */
export function softmaxWithLse(logits: Tensor): { p: Tensor; lse: Tensor } {
  const m = ops.stopGradient(ops.max(logits, -1, true));
  const e = ops.exp(ops.sub(logits, m));
  const s = ops.sum(e, -1, true);
  return { p: ops.div(e, s), lse: ops.add(ops.log(s), m) };
}
