/**
 * LSH self-attention given buckets (Kitaev et al. 2020, trax v2 semantics): sort the H·L token
 * copies by (bucket, position), cut them into chunks, let each chunk attend to itself and its
 * neighbours (wrapping across rounds), unsort, and combine the rounds by their log-normalisers.
 * Buckets are an argument, not computed here, so a reversible backward pass can replay the stored
 * ones. Only DSL ops are used; gradients come from the compiler.
 */
import { ShapeError, type Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';
import { saltOf } from '../../compiler/ir/random.ts';
import { MASK_FORBIDDEN, MASK_SELF, chunk, normalizeKeys, penalise, softmaxWithLse, takeAlong, unchunk } from './chunks.ts';
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

/** Score-block elements per window group when `chunksPerGroup` is 'auto' (float32-exact indices). */
export const GROUP_SCORE_ELEMENTS = 2 ** 24;
/** All windows' score elements beyond which `recomputeScores: 'auto'` recomputes groups. */
export const RECOMPUTE_SCORE_ELEMENTS = 2 ** 26;

/** Elements of one query chunk's score block: chunkLen × window. */
const chunkScores = (o: ResolvedLsh) => o.chunkLen * o.chunkLen * (o.nChunksBefore + 1 + o.nChunksAfter);

/** Query chunks per window group: the option, or as many as keep a group's scores within budget. */
export function chunksPerGroup(o: ResolvedLsh, batchHeads: number, nChunks: number): number {
  if (o.chunksPerGroup !== 'auto') return Math.min(o.chunksPerGroup, nChunks);
  return Math.max(1, Math.min(nChunks, Math.floor(GROUP_SCORE_ELEMENTS / (batchHeads * chunkScores(o)))));
}

/** Whether window groups are recompute regions (one group never is: nothing to gain). */
export function recomputesScores(o: ResolvedLsh, batchHeads: number, nChunks: number): boolean {
  if (chunksPerGroup(o, batchHeads, nChunks) >= nChunks) return false;
  if (o.recomputeScores !== 'auto') return o.recomputeScores;
  return batchHeads * nChunks * chunkScores(o) > RECOMPUTE_SCORE_ELEMENTS;
}

/** `length` entries of `axis` from `start` on, wrapping around the axis (as many times as needed). */
function wrappedSlice(x: Tensor, axis: number, start: number, length: number): Tensor {
  const n = x.shape[axis]!;
  const parts: Tensor[] = [];
  let at = ((start % n) + n) % n;
  for (let left = length; left > 0; ) {
    const take = Math.min(left, n - at);
    parts.push(ops.sliceAxis(x, axis, at, take));
    left -= take;
    at = 0;
  }
  // Stryker disable next-line ConditionalExpression: a concat of one tensor is that tensor
  return parts.length === 1 ? parts[0]! : ops.concat(parts, axis);
}

/**
 * Windows of `x` `[..., n + span - 1, c, ...]` (chunk axis at `axis`): chunk j of the result is
 * followed, along `axis + 1`, by chunks j … j + span - 1 of x: `[..., n, span·c, ...]`.
 */
function windowsOf(x: Tensor, axis: number, n: number, span: number): Tensor {
  const parts = Array.from({ length: span }, (_, o) => ops.sliceAxis(x, axis, o, n));
  // Stryker disable next-line ConditionalExpression: a concat of one tensor is that tensor
  return parts.length === 1 ? parts[0]! : ops.concat(parts, axis + 1);
}

interface WindowInputs {
  readonly qk: Tensor;
  readonly v: Tensor;
  readonly sort: LshSort;
  /** `[B, h, H·L]` buckets in sorted order, when keys of other buckets are masked. */
  readonly sortedBuckets?: Tensor;
  /** `[B, h, L]` i32, nonzero = real token. */
  readonly real?: Tensor;
  /** `[B, h, nC, c, w]` log N_ij per window slot (0 on closed slots), when duplicates are corrected. */
  readonly logCounts?: Tensor;
}

/** Where query chunks `first … first + n - 1` and their windows sit in the sorted order. */
interface WindowGeometry {
  /** The group's slots with their look-around neighbours (wrapping): `t → [B, h, (n + span - 1)·c, …]`. */
  readonly extended: (t: Tensor) => Tensor;
  /** The group's own query slots of an extended tensor, chunked: `[B, h, n, c, …]`. */
  readonly own: (t: Tensor) => Tensor;
  /** The key windows of an extended tensor: `[B, h, n, w, …]`. */
  readonly windows: (t: Tensor) => Tensor;
  /** Original positions of the extended slots `[B, h, (n + span - 1)·c]`. */
  readonly position: Tensor;
  /** Query positions `[B, h, n, c, 1]` and key positions `[B, h, n, 1, w]`. */
  readonly qPos: Tensor;
  readonly kvPos: Tensor;
}

function windowGeometry(x: WindowInputs, o: ResolvedLsh, first: number, n: number): WindowGeometry {
  const [B, h] = x.qk.shape as [number, number];
  const c = o.chunkLen;
  const before = o.nChunksBefore;
  const span = before + 1 + o.nChunksAfter;
  const w = span * c;
  // the group's slots, the `before` chunks preceding them and the `after` chunks following them
  // (wrapping across rounds and around the end)
  const extended = (t: Tensor) => wrappedSlice(t, 2, (first - before) * c, (n + span - 1) * c);
  const own = (t: Tensor) => chunk(ops.sliceAxis(t, 2, before * c, n * c), 2, c);
  const windows = (t: Tensor) => windowsOf(chunk(t, 2, c), 2, n, span);
  const position = extended(x.sort.position);
  const qPos = ops.reshape(own(position), [B, h, n, c, 1]);
  const kvPos = ops.reshape(windows(position), [B, h, n, 1, w]);
  return { extended, own, windows, position, qPos, kvPos };
}

/**
 * The hard masks in force (i32, nonzero = the window slot is closed to the query), each
 * broadcastable to `[B, h, n, c, w]`: causal, other bucket, padded key. The self mask is soft (a
 * token sees itself when nothing else is open), so it is not among them.
 */
function hardMasks(x: WindowInputs, o: ResolvedLsh, g: WindowGeometry): Tensor[] {
  const [B, h, n, c] = g.qPos.shape as [number, number, number, number];
  const w = g.kvPos.shape[4]!;
  const masks: Tensor[] = [];
  if (o.causal) masks.push(ops.gt(g.kvPos, g.qPos));
  if (x.sortedBuckets !== undefined) {
    const sb = g.extended(x.sortedBuckets);
    masks.push(ops.ne(ops.reshape(g.windows(sb), [B, h, n, 1, w]), ops.reshape(g.own(sb), [B, h, n, c, 1])));
  }
  if (x.real !== undefined) {
    masks.push(ops.eq(ops.reshape(g.windows(ops.gather(x.real, g.position, 2)), [B, h, n, 1, w]), 0));
  }
  return masks;
}

/**
 * log N_ij for every window slot `[B, h, nC, c, w]`: N_ij counts the slots, over all rounds, that
 * hold key j and that no hard mask closes for query i (so a per-query count: under the bucket
 * mask it depends on the query's own bucket in each round). Counted directly from the windows:
 * each query slot scatter-adds its open slots by key position, the sums are unsorted to query
 * copies and added over rounds, then read back per window slot. Look-back pairs that wrap across
 * rounds therefore count right. Closed slots get 0 (no correction, no log 0). Costs O(H·L²)
 * memory per head; only the paper-time switch uses it.
 */
function logDuplicateCounts(x: WindowInputs, o: ResolvedLsh, nC: number): Tensor {
  const [B, h, L] = x.qk.shape as [number, number, number];
  const H = o.nHashes;
  const c = o.chunkLen;
  const g = windowGeometry(x, o, 0, nC);
  const w = g.kvPos.shape[4]!;
  const shape = [B, h, nC, c, w];
  const open = hardMasks(x, o, g).reduce<Tensor>(
    (acc, m) => ops.mul(acc, ops.sub(1, ops.toFloat(m))),
    ops.broadcastTo(ops.constant(x.qk.graph, 1), shape),
  );
  const openF = ops.broadcastTo(open, shape);
  const keyIndex = ops.broadcastTo(g.kvPos, shape);
  const perSlot = ops.reshape(ops.scatterAdd(openF, keyIndex, 4, L), [B, h, H * L, L]); // query slot × key
  const perQuery = ops.sum(ops.reshape(takeAlong(perSlot, x.sort.undo, 2), [B, h, H, L, L]), 2); // [B,h,L,L]
  const bySlot = chunk(takeAlong(perQuery, x.sort.position, 2), 2, c); // [B,h,nC,c,L]
  const counts = ops.gather(bySlot, keyIndex, 4); // [B,h,nC,c,w]
  // open slots have N ≥ 1; closed ones read log(N + 1 − open)·open = 0
  return ops.stopGradient(ops.mul(openF, ops.log(ops.add(counts, ops.sub(1, openF)))));
}

/**
 * Attention of query chunks `first … first + n - 1` (of the sorted order) to their windows:
 * the sorted output `[B, h, n·c, dV]` and the log-normalisers `[B, h, n·c]`. Only this group's
 * slots and their look-around neighbours are gathered, so every tensor here is group-sized.
 */
function attendWindowGroup(x: WindowInputs, o: ResolvedLsh, first: number, n: number, dropout: LshExtras['dropout']) {
  const { qk, v } = x;
  const [B, h] = qk.shape as [number, number];
  const c = o.chunkLen;
  const g = windowGeometry(x, o, first, n);
  const sqk = takeAlong(qk, g.position, 2); // [B,h,E,dK]
  const q = g.own(sqk); // [B,h,n,c,dK]
  const k = g.windows(normalizeKeys(sqk)); // [B,h,n,w,dK]
  const vw = g.windows(takeAlong(v, g.position, 2)); // [B,h,n,w,dV]
  let logits = ops.matmul(q, ops.transpose(k, [0, 1, 2, 4, 3])); // [B,h,n,c,w]

  logits = penalise(logits, ops.eq(g.kvPos, g.qPos), MASK_SELF);
  for (const m of hardMasks(x, o, g)) logits = penalise(logits, m, MASK_FORBIDDEN);
  if (x.logCounts !== undefined) logits = ops.sub(logits, ops.sliceAxis(x.logCounts, 2, first, n));

  const soft = softmaxWithLse(logits);
  let p = soft.p;
  if (dropout !== undefined && dropout.rate > 0) {
    const keep = ops.toFloat(ops.ge(ops.randomUniform(dropout.seed, dropout.salt, p.shape), dropout.rate));
    p = ops.mul(p, ops.mul(keep, 1 / (1 - dropout.rate)));
  }
  return { out: unchunk(ops.matmul(p, vw), 2), lse: ops.reshape(soft.lse, [B, h, n * c]) };
}

/**
 * LSH attention of qk `[B,h,L,dK]` (shared queries/keys) and v `[B,h,L,dV]` with precomputed
 * buckets `[B,h,H,L]`; returns `[B,h,L,dV]`.
 *
 * The chunk schedule: query chunks are attended in groups (`chunksPerGroup`). With
 * `recomputeScores`, each group is a recompute region, so the backward pass replays one group's
 * scores at a time instead of keeping every window's probabilities from the forward pass.
 */
export function lshAttend(qk: Tensor, v: Tensor, buckets: Tensor, o: ResolvedLsh, extras: LshExtras = {}): Tensor {
  checkShapes(qk, v, buckets, o);
  const [B, h, L] = qk.shape as [number, number, number];
  const dV = v.shape[3]!;
  const H = o.nHashes;
  const c = o.chunkLen;
  const nC = (H * L) / c;

  const sort = sortByBuckets(buckets);
  const base: WindowInputs = {
    qk,
    v,
    sort,
    ...(o.attendAcrossBuckets ? {} : { sortedBuckets: ops.gather(ops.reshape(buckets, [B, h, H * L]), sort.sticker, 2) }),
    ...(extras.padMask === undefined ? {} : { real: ops.broadcastTo(ops.reshape(ops.ne(extras.padMask, 0), [B, 1, L]), [B, h, L]) }),
  };
  const inputs = o.allowDuplicateAttention ? base : { ...base, logCounts: logDuplicateCounts(base, o, nC) };
  const per = chunksPerGroup(o, B * h, nC);
  const recompute = recomputesScores(o, B * h, nC);
  const outs: Tensor[] = [];
  const lses: Tensor[] = [];
  for (let first = 0, group = 0; first < nC; first += per, group++) {
    const n = Math.min(per, nC - first);
    // each group draws its own dropout stream (group 0 keeps the layer's)
    const d = extras.dropout;
    const dropout = d === undefined || group === 0 ? d : { ...d, salt: saltOf(`${d.salt}|window group ${group}`) };
    const attend = () => attendWindowGroup(inputs, o, first, n, dropout);
    const r = recompute ? qk.graph.recompute(`LSH window group ${group}`, attend) : attend();
    outs.push(r.out);
    lses.push(r.lse);
  }
  // Stryker disable next-line ConditionalExpression: a concat of one tensor is that tensor
  const out = outs.length === 1 ? outs[0]! : ops.concat(outs, 2); // [B,h,HL,dV]
  // Stryker disable next-line ConditionalExpression: a concat of one tensor is that tensor
  const lse = lses.length === 1 ? lses[0]! : ops.concat(lses, 2); // [B,h,HL]

  const byRound = ops.reshape(takeAlong(out, sort.undo, 2), [B, h, H, L, dV]);
  // Stryker disable next-line ConditionalExpression: with one round its weight is softmax of one value, exactly 1
  if (H === 1) return ops.reshape(byRound, [B, h, L, dV]);
  const lseByRound = ops.reshape(takeAlong(lse, sort.undo, 2), [B, h, H, L, 1]);
  // softmax over rounds subtracts the max first, so rows that only see themselves stay exact.
  return ops.sum(ops.mul(ops.softmax(lseByRound, 2), byRound), 2);
}
