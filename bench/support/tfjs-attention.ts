/**
 * The TF.js baseline of the attention benchmark: causal multi-head attention (q, k, v, output
 * projections, 1/√d scaling, additive causal mask) forward plus a hand-written backward, on
 * TF.js-wasm. tf.grads is not available here (tfjs-core's gradient registry is an extensionless
 * ESM build Node cannot load), so the backward is spelled out; test/bench checks it against
 * finite differences of the forward.
 *
 * Two schedules of the same arithmetic: whole [heads, L, L] score matrices (needs O(L²·heads)
 * memory, past the 4 GiB wasm32 heap beyond L ≈ 4K), or query-row blocks (`blockRows`), which do
 * every one of the L×L score products and mask entries too but keep only [heads, blockRows, L]
 * of them alive at a time.
 */
import type { loadTfWasm } from './tfjs.ts';

export type Tf = Awaited<ReturnType<typeof loadTfWasm>>['tf'];
type T = ReturnType<Tf['matMul']>;

interface ProblemInputs {
  readonly L: number;
  readonly nHeads: number;
  readonly dHead: number;
  /** `[L, d]`, d = nHeads·dHead. */
  readonly x: T;
  /** wq, wk, wv, wo, each `[d, d]`. */
  readonly ws: readonly [T, T, T, T];
  /** Cotangent of the output `[L, d]`: the loss is Σ y ⊙ cot. */
  readonly cot: T;
}

/** Whole score matrices at once. */
export interface FullScoreInputs extends ProblemInputs {
  /** `[L, L]`: 0 on and below the diagonal, −1e9 above (`causalMask`). */
  readonly mask: T;
  readonly blockRows?: undefined;
}

/** Query rows `blockRows` at a time (the last block may be shorter); block masks are built per block. */
export interface BlockedInputs extends ProblemInputs {
  /** A positive integer; ≥ L runs one block. */
  readonly blockRows: number;
  readonly mask?: undefined;
}

export type TfAttentionInputs = FullScoreInputs | BlockedInputs;

/** `[L, L]`: 0 where key ≤ query, −1e9 where the key is in the future. */
export function causalMask(tf: Tf, L: number): T {
  return causalMaskRows(tf, L, 0, L);
}

/** Rows [firstRow, firstRow + rows) of `causalMask(tf, L)`, without building the rest. */
function causalMaskRows(tf: Tf, L: number, firstRow: number, rows: number): T {
  return tf.tidy(() => {
    const future = tf.greater(tf.range(0, L, 1, 'int32'), tf.reshape(tf.range(firstRow, firstRow + rows, 1, 'int32'), [rows, 1]));
    return tf.mul(tf.cast(future, 'float32'), -1e9);
  });
}

/**
 * A rough estimate of tf.profile's peakBytes for the blocked schedule (within 2% of what was
 * measured at L = 1K–8K, blocks of 512 and 1024, 4 × 64 heads; the wasm heap itself grows past
 * it, e.g. to 678 MiB for a 529 MiB peak at 8K, from allocator slack). During the last block: six
 * [nHeads, blockRows, L] float32 matrices alive while the score cotangent is formed, and about 18
 * [L, d] tensors (inputs, projections, dO, o and dQ blocks, dK and dV accumulators); after the
 * loop about 26 [L, d] tensors, which dominates only for very small blocks. The [d, d] weights
 * are left out.
 */
export function blockedPeakBytes(L: number, nHeads: number, dHead: number, blockRows: number): number {
  const scoreBlock = nHeads * Math.min(blockRows, L) * L;
  const sequence = L * nHeads * dHead;
  return 4 * Math.max(6 * scoreBlock + 18 * sequence, 26 * sequence);
}

/** Forward only, whole score matrices: the loss Σ y ⊙ cot. */
export function tfAttentionLoss(tf: Tf, a: FullScoreInputs): T {
  return tf.tidy(() => {
    const { q, k, v, scale, merge } = project(tf, a);
    const o = merge(tf.matMul(probabilities(tf, q, k, scale, a.mask), v));
    return tf.sum(tf.mul(tf.matMul(o, a.ws[3]), a.cot));
  });
}

/** Forward and backward: `[loss, dx, dWq, dWk, dWv, dWo]` (call inside tf.tidy or dispose them). */
export function tfAttentionFwdBwd(tf: Tf, a: TfAttentionInputs): T[] {
  const { x, cot } = a;
  const [wq, wk, wv, wo] = a.ws;
  const projected = project(tf, a);
  // loss = Σ y ⊙ cot, so dy = cot: dO is known before attention runs, which lets each query
  // block do its backward right after its forward
  const dO = projected.heads(tf.matMul(cot, wo, false, true));
  const perHead = a.blockRows === undefined ? fullScores(tf, projected, dO, a.mask) : blockedScores(tf, projected, dO, a.L, a.blockRows);
  const [o, dQ, dK, dV] = [perHead.o, perHead.dQ, perHead.dK, perHead.dV].map(projected.merge);
  const loss = tf.sum(tf.mul(tf.matMul(o, wo), cot));
  const dx = tf.addN([tf.matMul(dQ, wq, false, true), tf.matMul(dK, wk, false, true), tf.matMul(dV, wv, false, true)]);
  return [loss, dx, tf.matMul(x, dQ, true, false), tf.matMul(x, dK, true, false), tf.matMul(x, dV, true, false), tf.matMul(o, cot, true, false)];
}

interface Projected {
  /** `[heads, L, dHead]` each. */
  readonly q: T;
  readonly k: T;
  readonly v: T;
  readonly scale: number;
  /** `[L, d]` → `[heads, L, dHead]`. */
  heads(t: T): T;
  /** `[heads, L, dHead]` → `[L, d]`. */
  merge(t: T): T;
}

/** The attention output and the cotangents of q, k, v, all `[heads, L, dHead]`. */
interface PerHead {
  readonly o: T;
  readonly dQ: T;
  readonly dK: T;
  readonly dV: T;
}

function project(tf: Tf, a: ProblemInputs): Projected {
  const { L, nHeads, dHead, x } = a;
  const [wq, wk, wv] = a.ws;
  const heads = (t: T) => tf.transpose(tf.reshape(t, [L, nHeads, dHead]), [1, 0, 2]);
  const merge = (t: T) => tf.reshape(tf.transpose(t, [1, 0, 2]), [L, nHeads * dHead]);
  return { q: heads(tf.matMul(x, wq)), k: heads(tf.matMul(x, wk)), v: heads(tf.matMul(x, wv)), scale: 1 / Math.sqrt(dHead), heads, merge };
}

/** softmax(q·kᵀ·scale + mask) for the query rows in q. */
function probabilities(tf: Tf, q: T, k: T, scale: number, mask: T): T {
  return tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), scale), mask));
}

/** The cotangent of the scaled scores, from the probabilities p and the output cotangent dO of the same rows. */
function scoreCotangent(tf: Tf, p: T, dO: T, v: T, scale: number): T {
  const dP = tf.matMul(dO, v, false, true);
  return tf.mul(tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))), scale);
}

function fullScores(tf: Tf, { q, k, v, scale }: Projected, dO: T, mask: T): PerHead {
  const p = probabilities(tf, q, k, scale, mask);
  const dS = scoreCotangent(tf, p, dO, v, scale);
  return { o: tf.matMul(p, v), dQ: tf.matMul(dS, k), dK: tf.matMul(dS, q, true, false), dV: tf.matMul(p, dO, true, false) };
}

function blockedScores(tf: Tf, { q, k, v, scale }: Projected, dO: T, L: number, blockRows: number): PerHead {
  if (!Number.isInteger(blockRows) || blockRows < 1) throw new Error(`tfAttentionFwdBwd: blockRows must be a positive integer, got ${blockRows}`);
  const oBlocks: T[] = [];
  const dQBlocks: T[] = [];
  let dK = tf.zerosLike(k);
  let dV = tf.zerosLike(v);
  for (let firstRow = 0; firstRow < L; firstRow += blockRows) {
    const rows = Math.min(blockRows, L - firstRow);
    const [oBlock, dQBlock, dKSum, dVSum] = tf.tidy((): [T, T, T, T] => {
      const qBlock = tf.slice(q, [0, firstRow, 0], [-1, rows, -1]);
      const dOBlock = tf.slice(dO, [0, firstRow, 0], [-1, rows, -1]);
      // inner scopes drop each step's [heads, rows, L] intermediates as soon as its result exists
      const p = tf.tidy(() => probabilities(tf, qBlock, k, scale, causalMaskRows(tf, L, firstRow, rows)));
      const dS = tf.tidy(() => scoreCotangent(tf, p, dOBlock, v, scale));
      return [
        tf.matMul(p, v),
        tf.matMul(dS, k),
        tf.add(dK, tf.matMul(dS, qBlock, true, false)),
        tf.add(dV, tf.matMul(p, dOBlock, true, false)),
      ];
    });
    tf.dispose([dK, dV]);
    dK = dKSum;
    dV = dVSum;
    oBlocks.push(oBlock);
    dQBlocks.push(dQBlock);
  }
  return { o: tf.concat(oBlocks, 1), dQ: tf.concat(dQBlocks, 1), dK, dV };
}
