/**
 * The dense baselines: full dot-product attention (ordinary or shared-QK) and local chunked
 * attention (trax `SelfAttention(chunk_len, n_chunks_before)`). Same masking constants and the
 * same logsumexp formulation as LSH attention, so the three agree where they should.
 */
import { ShapeError, type Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';
import { MASK_FORBIDDEN, MASK_SELF, chunk, lookAround, normalizeKeys, penalise, softmaxWithLse, unchunk, windowOffsets } from './chunks.ts';

export interface FullAttendOptions {
  readonly causal?: boolean;
  /**
   * Shared-QK semantics (as in LSH attention): keys are the queries normalised to unit length,
   * queries unscaled, and a token attends to itself only when nothing else is allowed.
   */
  readonly sharedQK?: boolean;
}

function checkQKV(what: string, q: Tensor, k: Tensor, v: Tensor): void {
  const ok =
    q.rank === 4 && k.rank === 4 && v.rank === 4 &&
    q.shape.slice(0, 3).every((d, i) => d === k.shape[i] && d === v.shape[i]) &&
    q.shape[3] === k.shape[3];
  if (!ok) {
    throw new ShapeError(
      q.graph.scope,
      `${what}: q, k, v must be [B,h,L,d] with equal [B,h,L] and equal q/k width, got [${q.shape.join(',')}], [${k.shape.join(',')}], [${v.shape.join(',')}]`,
    );
  }
}

/** Softmax attention with logits already masked. */
function attend(logits: Tensor, v: Tensor): Tensor {
  return ops.matmul(softmaxWithLse(logits).p, v);
}

/**
 * Full attention on `[B,h,L,d]`. With `sharedQK`, `k` is ignored in favour of `q` (pass the same
 * tensor) and keys are normalised; otherwise logits are `q·k / √d`.
 */
export function fullAttend(q: Tensor, k: Tensor, v: Tensor, options: FullAttendOptions = {}): Tensor {
  checkQKV('full attention', q, k, v);
  const [, , L, d] = q.shape as [number, number, number, number];
  const shared = options.sharedQK ?? false;
  const keys = shared ? normalizeKeys(q) : ops.mul(k, 1 / Math.sqrt(d));
  let logits = ops.matmul(q, ops.transpose(keys, [0, 1, 3, 2])); // [B,h,L,L]
  const qPos = ops.iota(q.graph, [L, 1], 0);
  const kvPos = ops.iota(q.graph, [1, L], 1);
  if (options.causal ?? false) logits = penalise(logits, ops.gt(kvPos, qPos), MASK_FORBIDDEN);
  if (shared) logits = penalise(logits, ops.eq(kvPos, qPos), MASK_SELF);
  return attend(logits, v);
}

export interface LocalAttendOptions {
  readonly chunkLen: number;
  readonly nChunksBefore?: number;
  readonly causal?: boolean;
}

/**
 * Local attention on `[B,h,L,d]`: each chunk of `chunkLen` positions attends to itself and the
 * `nChunksBefore` chunks before it; keys scaled by 1/√d; no self mask. Unlike trax, chunk 0 does
 * not wrap around to the last chunk (that only mattered without causal masking).
 */
export function localAttend(q: Tensor, k: Tensor, v: Tensor, options: LocalAttendOptions): Tensor {
  checkQKV('local attention', q, k, v);
  const [B, h, L, d] = q.shape as [number, number, number, number];
  const c = options.chunkLen;
  const before = options.nChunksBefore ?? 1;
  if (L % c !== 0) throw new ShapeError(q.graph.scope, `local attention: sequence length L=${L} is not a multiple of chunkLen=${c}`);
  const nC = L / c;
  const qc = chunk(q, 2, c); // [B,h,nC,c,d]
  const kw = lookAround(chunk(ops.mul(k, 1 / Math.sqrt(d)), 2, c), 2, before, 0); // [B,h,nC,w,d]
  const vw = lookAround(chunk(v, 2, c), 2, before, 0);
  const w = kw.shape[3]!;
  // The window layout is static, so the mask is a constant: wrapped-around chunks and (if causal) the future.
  const offsets = windowOffsets(c, before, 0);
  const penalty = new Array<number>(nC * c * w);
  for (let j = 0; j < nC; j++) {
    for (let i = 0; i < c; i++) {
      for (let s = 0; s < w; s++) {
        const kvChunk = j + offsets[s]!;
        const qPos = j * c + i;
        const kvPos = kvChunk * c + (s % c);
        const blocked = kvChunk < 0 || ((options.causal ?? false) && kvPos > qPos);
        penalty[(j * c + i) * w + s] = blocked ? MASK_FORBIDDEN : 0;
      }
    }
  }
  const logits = ops.sub(ops.matmul(qc, ops.transpose(kw, [0, 1, 2, 4, 3])), ops.constant(q.graph, penalty, [nC, c, w]));
  return ops.reshape(unchunk(attend(logits, vw), 2), [B, h, L, v.shape[3]!]);
}
