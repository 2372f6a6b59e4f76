/**
 * The benchmark's TF.js baseline has a hand-written backward (tf.grads is unavailable here). It is
 * only a fair baseline if it computes the true gradient: check every output against central
 * finite differences of the TF.js forward, on a small causal problem, at random coordinates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTfWasm } from '../../bench/support/tfjs.ts';
import { causalMask, tfAttentionFwdBwd, tfAttentionLoss, type Tf } from '../../bench/support/tfjs-attention.ts';

let tf: Tf;
beforeAll(async () => {
  tf = (await loadTfWasm()).tf;
});
afterAll(() => tf?.disposeVariables());

function values(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * scale;
  }
  return a;
}

describe('TF.js attention baseline (bench)', () => {
  it('hand-written backward equals central finite differences of the forward (x and all four weights)', async () => {
    const L = 7;
    const nHeads = 2;
    const dHead = 3;
    const d = nHeads * dHead;
    const arrays = [values(L * d, 1, 2), ...[2, 3, 4, 5].map((s) => values(d * d, s, 1))];
    const cot = tf.tensor2d(values(L * d, 9, 2), [L, d]);
    const mask = causalMask(tf, L);
    const loss = (xs: Float32Array[]): number =>
      tf.tidy(() => {
        const [x, ...w] = xs.map((a, i) => tf.tensor2d(a, i === 0 ? [L, d] : [d, d]));
        return tfAttentionLoss(tf, { L, nHeads, dHead, x: x!, ws: w as [typeof x, typeof x, typeof x, typeof x], cot, mask }).dataSync()[0]!;
      });
    const grads = tf.tidy(() => {
      const [x, ...w] = arrays.map((a, i) => tf.tensor2d(a, i === 0 ? [L, d] : [d, d]));
      return tfAttentionFwdBwd(tf, { L, nHeads, dHead, x: x!, ws: w as [typeof x, typeof x, typeof x, typeof x], cot, mask }).map((t) => t.dataSync().slice());
    });
    expect(grads[0]![0]).toBeCloseTo(loss(arrays), 4);
    const eps = 1e-2;
    let checked = 0;
    arrays.forEach((arr, which) => {
      const grad = grads[which + 1]!;
      for (let probe = 0; probe < 6; probe++) {
        const i = (probe * 7919 + which * 31) % arr.length;
        const plus = arrays.map((a) => a.slice());
        const minus = arrays.map((a) => a.slice());
        plus[which]![i]! += eps;
        minus[which]![i]! -= eps;
        const fd = (loss(plus) - loss(minus)) / (2 * eps);
        // float32 forward, eps 1e-2: the differences agree to ~1e-5 here; a 1% error in dS fails
        expect(Math.abs(grad[i]! - fd)).toBeLessThan(1e-4 + 2e-3 * Math.abs(fd));
        checked++;
      }
    });
    expect(checked).toBe(30);
    // a wrong backward is caught: the gradient of x is not that of wq
    expect(Array.from(grads[1]!.slice(0, 6))).not.toEqual(Array.from(grads[2]!.slice(0, 6)));
    tf.dispose([cot, mask]);
  });
});
