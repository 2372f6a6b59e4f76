/**
 * The benchmark's TF.js baseline has a hand-written backward (tf.grads is unavailable here). It is
 * only a fair baseline if it computes the true gradient: check every output against central
 * finite differences of the TF.js forward, on a small causal problem, at random coordinates.
 * The query-row-blocked schedule (what lets the baseline run at 8K–16K) must give the same six
 * outputs as the whole-matrix one, whatever the block size.
 */
import type { TensorContainer } from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTfWasm } from '../../bench/support/tfjs.ts';
import { causalMask, tfAttentionFwdBwd, tfAttentionLoss, type TfAttentionInputs, type Tf } from '../../bench/support/tfjs-attention.ts';

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

interface Problem {
  readonly L: number;
  readonly nHeads: number;
  readonly dHead: number;
  /** x `[L, d]` then wq, wk, wv, wo `[d, d]`. */
  readonly arrays: Float32Array[];
  readonly cot: Float32Array;
}

function problem(L: number, nHeads: number, dHead: number): Problem {
  const d = nHeads * dHead;
  return { L, nHeads, dHead, arrays: [values(L * d, 1, 2), ...[2, 3, 4, 5].map((s) => values(d * d, s, 1))], cot: values(L * d, 9, 2) };
}

/** Whole [heads, L, L] score matrices with a given mask, or query-row blocks. */
type Schedule = 'whole' | { blockRows: number };

/** Runs `f` on the problem's tensors (with `arrays` in place of its own) under the schedule, inside tf.tidy. */
function withInputs<R extends TensorContainer>(pr: Problem, arrays: Float32Array[], schedule: Schedule, f: (a: TfAttentionInputs) => R): R {
  return tf.tidy(() => {
    const { L, nHeads, dHead } = pr;
    const d = nHeads * dHead;
    const [x, wq, wk, wv, wo] = arrays.map((a, i) => tf.tensor2d(a, i === 0 ? [L, d] : [d, d]));
    const base = { L, nHeads, dHead, x: x!, ws: [wq!, wk!, wv!, wo!] as const, cot: tf.tensor2d(pr.cot, [L, d]) };
    return f(schedule === 'whole' ? { ...base, mask: causalMask(tf, L) } : { ...base, blockRows: schedule.blockRows });
  });
}

function fwdBwdValues(pr: Problem, schedule: Schedule): Float32Array[] {
  return withInputs(pr, pr.arrays, schedule, (a) => tfAttentionFwdBwd(tf, a).map((t) => t.dataSync().slice() as Float32Array));
}

/** Central differences of the schedule's own loss at a few coordinates of x and of every weight. */
function expectGradientsMatchFiniteDifferences(schedule: Schedule): void {
  const pr = problem(7, 2, 3);
  const loss = (arrays: Float32Array[]): number =>
    withInputs(pr, arrays, schedule, (a) => (a.mask !== undefined ? tfAttentionLoss(tf, a) : tfAttentionFwdBwd(tf, a)[0]!).dataSync()[0]!);
  const grads = fwdBwdValues(pr, schedule);
  expect(grads[0]![0]).toBeCloseTo(loss(pr.arrays), 4);
  const eps = 1e-2;
  let checked = 0;
  pr.arrays.forEach((arr, which) => {
    const grad = grads[which + 1]!;
    for (let probe = 0; probe < 6; probe++) {
      const i = (probe * 7919 + which * 31) % arr.length;
      const plus = pr.arrays.map((a) => a.slice());
      const minus = pr.arrays.map((a) => a.slice());
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
}

describe('TF.js attention baseline (bench)', () => {
  it('the causal mask is 0 on and below the diagonal, −1e9 above', () => {
    const mask = causalMask(tf, 3);
    // 0·−1e9 is −0; + 0 makes it 0
    expect(Array.from(mask.dataSync(), (v) => v + 0)).toEqual([0, -1e9, -1e9, 0, 0, -1e9, 0, 0, 0].map(Math.fround));
    mask.dispose();
  });

  it('hand-written backward equals central finite differences of the forward (x and all four weights)', () => {
    expectGradientsMatchFiniteDifferences('whole');
  });

  it('query-row-blocked backward equals central finite differences of its own forward', () => {
    expectGradientsMatchFiniteDifferences({ blockRows: 3 });
  });

  it('blocked and whole-matrix schedules give the same loss and gradients (L not a multiple of the block)', () => {
    const pr = problem(13, 2, 3);
    const whole = fwdBwdValues(pr, 'whole');
    for (const blockRows of [5, 1, 13, 64]) {
      const blocked = fwdBwdValues(pr, { blockRows });
      expect(blocked.map((t) => t.length)).toEqual(whole.map((t) => t.length));
      blocked.forEach((out, which) => {
        const ref = whole[which]!;
        const magnitude = Math.max(...Array.from(ref, Math.abs));
        // the same products; only the summation order differs (dK, dV summed over blocks, matmul kernels tiled by shape)
        for (let i = 0; i < ref.length; i++) expect(Math.abs(out[i]! - ref[i]!)).toBeLessThanOrEqual(1e-4 * magnitude);
      });
    }
  });

  it('rejects a block size that is not a positive integer', () => {
    const pr = problem(4, 1, 2);
    for (const blockRows of [0, 2.5]) expect(() => fwdBwdValues(pr, { blockRows })).toThrow(/blockRows/);
  });
});
