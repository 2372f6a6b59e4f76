/**
 * LSH self-attention given buckets (Kitaev et al. 2020, trax v2 semantics): sort the H·L token
 * copies by (bucket, position), cut them into chunks, let each chunk attend to itself and its
 * neighbours (wrapping across rounds), unsort, and combine the rounds by their log-normalisers.
 * Buckets are an argument, not computed here, so a reversible backward pass can replay the stored
 * ones. Only DSL ops are used; gradients come from the compiler.
 */
import { ShapeError, type Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';
import { MASK_FORBIDDEN, MASK_SELF, chunk, lookAround, normalizeKeys, penalise, softmaxWithLse, takeAlong, unchunk } from './chunks.ts';
import type { ResolvedLsh } from './options.ts';

export interface LshSort {
  /** `[B, h, H·L]`: slot s of the sorted order holds copy `sticker[s]` (round-major index r·L + t). */
  readonly sticker: Tensor;
  /** The inverse permutation: `undo[sticker[s]] = s`. */
  readonly undo: Tensor;
  /** Original position `sticker mod L` of each sorted slot. */
  readonly position: Tensor;
}

/**
 * Sorts token copies by the unique keys `L·bucket + (i mod L)`; buckets `[B, h, H, L]` with round
 * offsets. That order is a stable sort by bucket alone: equal buckets lie in one round (the
 * offsets keep rounds apart), where copies stand in position order. Sorting the buckets keeps the
 * keys small (below H·(nb+1)), so they stay exact in float32 kernels at any L.
 */
export function sortByBuckets(buckets: Tensor): LshSort {
  const [B, h, H, L] = buckets.shape as [number, number, number, number];
  const sticker = ops.argsort(ops.reshape(buckets, [B, h, H * L]), 2);
  const undo = ops.argsort(sticker, 2);
  return { sticker, undo, position: ops.mod(sticker, L) };
}

export interface LshExtras {
  /** `[B, L]` i32, nonzero = real token; padded tokens are masked as keys. */
  readonly padMask?: Tensor;
  /** Dropout on the attention weights (training only). */
  readonly dropout?: { readonly rate: number; readonly seed: Tensor; readonly salt: number };
}

function checkShapes(qk: Tensor, v: Tensor, buckets: Tensor, o: ResolvedLsh): void {
  const scope = qk.graph.scope;
  if (qk.rank !== 4 || v.rank !== 4) {
    throw new ShapeError(scope, `LSH attention: qk and v must be [B,h,L,d], got [${qk.shape.join(',')}] and [${v.shape.join(',')}]`);
  }
  if (qk.shape.slice(0, 3).some((d, i) => d !== v.shape[i])) {
    throw new ShapeError(scope, `LSH attention: qk [${qk.shape.join(',')}] and v [${v.shape.join(',')}] differ in [B,h,L]`);
  }
  const [B, h, L] = qk.shape as [number, number, number];
  const want = [B, h, o.nHashes, L];
  if (buckets.dtype !== 'i32' || buckets.rank !== 4 || buckets.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(scope, `LSH attention: buckets must be i32 [B,h,nHashes,L] = [${want.join(',')}], got ${buckets.dtype}[${buckets.shape.join(',')}]`);
  }
}

/**
 * N_ij: how many window slots, over all rounds, hold key j for query i, looked up per slot as
 * `[B, h, nC, c, w]`. Counted directly from the windows (scatter-add of ones per chunk, unsorted to
 * original order and summed over rounds), so look-back pairs that wrap across rounds count right.
 * Costs O(H·L²) memory per head; only the paper-time switch uses it.
 */
function duplicateCounts(kvPos: Tensor, sort: LshSort, H: number, L: number, c: number): Tensor {
  const [B, h, nC, w] = kvPos.shape as [number, number, number, number];
  const ones = ops.broadcastTo(ops.constant(kvPos.graph, 1), kvPos.shape);
  const perChunk = ops.scatterAdd(ones, kvPos, 3, L); // [B,h,nC,L]
  const perSlot = ops.reshape(ops.broadcastTo(ops.reshape(perChunk, [B, h, nC, 1, L]), [B, h, nC, c, L]), [B, h, nC * c, L]);
  const perCopy = ops.reshape(takeAlong(perSlot, sort.undo, 2), [B, h, H, L, L]);
  const perQuery = ops.sum(perCopy, 2); // [B,h,L,L]
  const bySlot = chunk(takeAlong(perQuery, sort.position, 2), 2, c); // [B,h,nC,c,L]
  const index = ops.broadcastTo(ops.reshape(kvPos, [B, h, nC, 1, w]), [B, h, nC, c, w]);
  return ops.gather(bySlot, index, 4);
}

/**
 * LSH attention of qk `[B,h,L,dK]` (shared queries/keys) and v `[B,h,L,dV]` with precomputed
 * buckets `[B,h,H,L]`; returns `[B,h,L,dV]`.
 */
export function lshAttend(qk: Tensor, v: Tensor, buckets: Tensor, o: ResolvedLsh, extras: LshExtras = {}): Tensor {
  checkShapes(qk, v, buckets, o);
  const [B, h, L] = qk.shape as [number, number, number];
  const dV = v.shape[3]!;
  const H = o.nHashes;
  const c = o.chunkLen;
  const nC = (H * L) / c;
  const w = c * (o.nChunksBefore + 1 + o.nChunksAfter);
  const around = (x: Tensor) => lookAround(chunk(x, 2, c), 2, o.nChunksBefore, o.nChunksAfter);

  const sort = sortByBuckets(buckets);
  const sqk = takeAlong(qk, sort.position, 2); // [B,h,HL,dK]
  const sv = takeAlong(v, sort.position, 2);
  const q = chunk(sqk, 2, c); // [B,h,nC,c,dK]
  const k = around(normalizeKeys(sqk)); // [B,h,nC,w,dK]
  const vw = around(sv); // [B,h,nC,w,dV]
  let logits = ops.matmul(q, ops.transpose(k, [0, 1, 2, 4, 3])); // [B,h,nC,c,w]

  const qPos = ops.reshape(sort.position, [B, h, nC, c, 1]);
  const kvPosWin = around(sort.position); // [B,h,nC,w]
  const kvPos = ops.reshape(kvPosWin, [B, h, nC, 1, w]);
  if (o.causal) logits = penalise(logits, ops.gt(kvPos, qPos), MASK_FORBIDDEN);
  logits = penalise(logits, ops.eq(kvPos, qPos), MASK_SELF);
  if (!o.attendAcrossBuckets) {
    const sb = ops.gather(ops.reshape(buckets, [B, h, H * L]), sort.sticker, 2);
    const other = ops.ne(ops.reshape(around(sb), [B, h, nC, 1, w]), ops.reshape(sb, [B, h, nC, c, 1]));
    logits = penalise(logits, other, MASK_FORBIDDEN);
  }
  if (extras.padMask !== undefined) {
    const real = ops.broadcastTo(ops.reshape(ops.ne(extras.padMask, 0), [B, 1, L]), [B, h, L]);
    const kvReal = ops.reshape(around(ops.gather(real, sort.position, 2)), [B, h, nC, 1, w]);
    logits = penalise(logits, ops.eq(kvReal, 0), MASK_FORBIDDEN);
  }
  if (!o.allowDuplicateAttention) {
    logits = ops.sub(logits, ops.log(duplicateCounts(kvPosWin, sort, H, L, c)));
  }

  const soft = softmaxWithLse(logits);
  const lse = soft.lse; // [B,h,nC,c,1]
  let p = soft.p;
  if (extras.dropout !== undefined && extras.dropout.rate > 0) {
    const { rate, seed, salt } = extras.dropout;
    const keep = ops.toFloat(ops.ge(ops.randomUniform(seed, salt, p.shape), rate));
    p = ops.mul(p, ops.mul(keep, 1 / (1 - rate)));
  }
  const out = unchunk(ops.matmul(p, vw), 2); // [B,h,HL,dV]

  const byRound = ops.reshape(takeAlong(out, sort.undo, 2), [B, h, H, L, dV]);
  if (H === 1) return ops.reshape(byRound, [B, h, L, dV]);
  const lseByRound = ops.reshape(takeAlong(ops.reshape(lse, [B, h, H * L]), sort.undo, 2), [B, h, H, L, 1]);
  // softmax over rounds subtracts the max first, so rows that only see themselves stay exact.
  return ops.sum(ops.mul(ops.softmax(lseByRound, 2), byRound), 2);
}
