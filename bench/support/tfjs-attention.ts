/**
 * The TF.js baseline of the attention benchmark: causal multi-head attention (q, k, v, output
 * projections, 1/√d scaling, additive causal mask) forward plus a hand-written backward, on
 * TF.js-wasm. tf.grads is not available here (tfjs-core's gradient registry is an extensionless
 * ESM build Node cannot load), so the backward is spelled out; test/bench checks it against
 * finite differences of the forward.
 */
import type { loadTfWasm } from './tfjs.ts';

export type Tf = Awaited<ReturnType<typeof loadTfWasm>>['tf'];
type T = ReturnType<Tf['matMul']>;

export interface TfAttentionInputs {
  readonly L: number;
  readonly nHeads: number;
  readonly dHead: number;
  /** `[L, d]`, d = nHeads·dHead. */
  readonly x: T;
  /** wq, wk, wv, wo, each `[d, d]`. */
  readonly ws: readonly [T, T, T, T];
  /** Cotangent of the output `[L, d]`: the loss is Σ y ⊙ cot. */
  readonly cot: T;
  /** `[L, L]`: 0 on and below the diagonal, −1e9 above (`causalMask`). */
  readonly mask: T;
}

export function causalMask(tf: Tf, L: number): T {
  return tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([L, L]), -1, 0)), -1e9));
}

/** Forward only: the loss Σ y ⊙ cot. */
export function tfAttentionLoss(tf: Tf, a: TfAttentionInputs): T {
  return tf.tidy(() => forward(tf, a).loss);
}

function forward(tf: Tf, a: TfAttentionInputs) {
  const { L, nHeads, dHead, x, cot, mask } = a;
  const d = nHeads * dHead;
  const [wq, wk, wv, wo] = a.ws;
  const heads = (t: T) => tf.transpose(tf.reshape(t, [L, nHeads, dHead]), [1, 0, 2]);
  const merge = (t: T) => tf.reshape(tf.transpose(t, [1, 0, 2]), [L, d]);
  const scale = 1 / Math.sqrt(dHead);
  const q = heads(tf.matMul(x, wq));
  const k = heads(tf.matMul(x, wk));
  const v = heads(tf.matMul(x, wv));
  const p = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), scale), mask));
  const o = merge(tf.matMul(p, v));
  const y = tf.matMul(o, wo);
  return { q, k, v, p, o, y, scale, heads, merge, loss: tf.sum(tf.mul(y, cot)) };
}

/** Forward and backward: `[loss, dx, dWq, dWk, dWv, dWo]` (call inside tf.tidy or dispose them). */
export function tfAttentionFwdBwd(tf: Tf, a: TfAttentionInputs): T[] {
  const { x, cot } = a;
  const [wq, wk, wv, wo] = a.ws;
  const { q, k, v, p, o, scale, heads, merge, loss } = forward(tf, a);
  // loss = Σ y ⊙ cot, so dy = cot
  const dWo = tf.matMul(o, cot, true, false);
  const dO = heads(tf.matMul(cot, wo, false, true));
  const dP = tf.matMul(dO, v, false, true);
  const dV = tf.matMul(p, dO, true, false);
  const dS = tf.mul(tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))), scale);
  const dQ = merge(tf.matMul(dS, k));
  const dK = merge(tf.matMul(dS, q, true, false));
  const dVm = merge(dV);
  const dx = tf.addN([tf.matMul(dQ, wq, false, true), tf.matMul(dK, wk, false, true), tf.matMul(dVm, wv, false, true)]);
  return [loss, dx, tf.matMul(x, dQ, true, false), tf.matMul(x, dK, true, false), tf.matMul(x, dVm, true, false), dWo];
}
