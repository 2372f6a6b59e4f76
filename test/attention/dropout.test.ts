/**
 * Attention dropout inside LSH attention (reformer/attention/lsh.ts), the window-group schedule's
 * sizing, and the shape checks of lshAttend and hashBuckets, on the float64 reference evaluator.
 *
 * Dropout is checked through v = 1: each output is then Σ_j p_ij·keep_ij / (1 − rate), so it lies
 * in [0, 1/(1 − rate)], equals 1/(1 − rate) exactly where every open key was kept (many queries
 * see only a few keys), and averages to 1 over many queries (the rescale keeps the expectation).
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../compiler/grad/grad.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import { hostTensor } from '../../compiler/ir/host-tensor.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import * as ops from '../../dsl/ops.ts';
import { checkRotations, drawRotations, hashBuckets } from '../../reformer/attention/hashing.ts';
import { GROUP_SCORE_ELEMENTS, RECOMPUTE_SCORE_ELEMENTS, chunksPerGroup, lshAttend, recomputesScores } from '../../reformer/attention/lsh.ts';
import { resolveLsh, type LshOptions } from '../../reformer/attention/options.ts';
import { randomArray } from './support.ts';

const B = 2, h = 2, L = 64, dK = 4;

/** LSH attention of random qk over v = 1 with attention dropout; outputs `[B,h,L,1]` and the graph. */
function attendOnes(options: Omit<LshOptions, 'chunkLen'> & { chunkLen?: number }, rate: number, dropoutSalt = 5) {
  const g = new Graph();
  const o = resolveLsh('test', '', { chunkLen: 4, causal: true, ...options }, L);
  const qk = g.input('qk', [B, h, L, dK]);
  const v = g.input('v', [B, h, L, 1]);
  const seed = g.input('seed', [], 'i32', 'seed');
  const buckets = hashBuckets(qk, drawRotations(qk, seed, 1, o.nHashes, o.bucketFactors), o.nHashes, o.bucketFactors);
  const out = lshAttend(qk, v, buckets, o, rate > 0 ? { dropout: { rate, seed, salt: dropoutSalt } } : {});
  g.outputs = [out.id];
  const feeds = {
    qk: hostTensor([B, h, L, dK], randomArray(3, B * h * L * dK, 2)),
    v: hostTensor([B, h, L, 1], new Array<number>(B * h * L).fill(1)),
    seed: hostTensor([], [21], 'i32'),
  };
  return { g, o, qk, v, out, feeds, values: Array.from(evaluate(g, feeds)[0]!.data) };
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('LSH attention dropout', () => {
  it('without dropout, attention to v = 1 gives exactly 1 everywhere (the check below is calibrated)', () => {
    for (const v of attendOnes({ nHashes: 1 }, 0).values) expect(v).toBeCloseTo(1, 12);
  });

  for (const nHashes of [1, 2]) {
    it(`rescales kept weights by 1/(1 − rate): outputs in [0, 1/(1 − rate)], the maximum reached exactly, mean ≈ 1 (nHashes=${nHashes})`, () => {
      const rate = 0.25;
      const { values } = attendOnes({ nHashes }, rate);
      const top = 1 / (1 - rate);
      expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...values)).toBeCloseTo(top, 10);
      expect(values.every((v) => v <= top + 1e-12)).toBe(true);
      // some weights were dropped: not every output is at the top
      expect(values.filter((v) => Math.abs(v - top) > 1e-9).length).toBeGreaterThan(values.length / 10);
      // 256 queries, each with variance ≤ rate/(1 − rate) = 1/3: the mean is 1 within 4 standard deviations
      expect(Math.abs(mean(values) - 1)).toBeLessThan(4 * Math.sqrt(1 / 3 / values.length));
    });
  }

  it('with several window groups: each group draws its own mask (distinct salts, group 0 keeps the layer salt), same rescale', () => {
    const rate = 0.5;
    const whole = attendOnes({ nHashes: 2, chunksPerGroup: 'auto' }, rate);
    const grouped = attendOnes({ nHashes: 2, chunksPerGroup: 4, recomputeScores: true }, rate);
    const salts = (g: Graph) => g.nodes.flatMap((n) => (n.op === 'random' && n.dist === 'uniform' && n.salt !== 1 ? [n.salt] : []));
    expect(salts(whole.g)).toEqual([5]);
    const groupSalts = salts(grouped.g);
    // H·L/c = 32 sorted chunks in groups of 4
    expect(groupSalts).toHaveLength(8);
    expect(new Set(groupSalts).size).toBe(8);
    expect(groupSalts[0]).toBe(5);
    expect(grouped.g.recomputeRegions).toHaveLength(8);
    const top = 1 / (1 - rate);
    expect(Math.max(...grouped.values)).toBeCloseTo(top, 10);
    expect(grouped.values.every((v) => v >= 0 && v <= top + 1e-12)).toBe(true);
    expect(Math.abs(mean(grouped.values) - 1)).toBeLessThan(4 * Math.sqrt(1 / grouped.values.length));
    // groups draw from other streams than the one-group layout, so the outputs differ
    expect(grouped.values).not.toEqual(whole.values);
  });

  it('with several recomputed window groups, the backward replays each group with its own mask: gradients equal plain backprop', () => {
    const { g, qk, v, out, feeds } = attendOnes({ nHashes: 2, chunksPerGroup: 4, recomputeScores: true }, 0.5);
    const w = ops.constant(g, Array.from(randomArray(9, B * h * L)), [B, h, L, 1]);
    const loss = ops.sumAll(ops.mul(out, w));
    const vFeeds = { ...feeds, v: hostTensor([B, h, L, 1], randomArray(8, B * h * L)) };
    const scheduled = evaluate(grad(g, loss.id, [qk.id, v.id]).graph, vFeeds);
    const plain = evaluate(grad(g, loss.id, [qk.id, v.id], { memorySchedules: false }).graph, vFeeds);
    scheduled.forEach((t, k) => expect(Array.from(t.data)).toEqual(Array.from(plain[k]!.data)));
    expect(Array.from(scheduled[2]!.data).some((x) => x !== 0)).toBe(true);
  });
});

describe("window groups: 'auto' sizing", () => {
  const resolved = (nChunksAfter: number, extra: Partial<LshOptions> = {}) => resolveLsh('test', '', { nHashes: 1, chunkLen: 64, nChunksAfter, ...extra }, 64 * 64);

  it('sizes a group to 2^24 score elements, counting the look-ahead chunks (nChunksAfter)', () => {
    // one query chunk scores 64 × 64·(1 + 1 + after) elements
    expect(chunksPerGroup(resolved(0), 8, 1000)).toBe(Math.floor(GROUP_SCORE_ELEMENTS / (8 * 64 * 64 * 2)));
    expect(chunksPerGroup(resolved(1), 8, 1000)).toBe(Math.floor(GROUP_SCORE_ELEMENTS / (8 * 64 * 64 * 3)));
    expect(chunksPerGroup(resolved(1), 8, 1000)).toBe(170);
    expect(chunksPerGroup(resolved(0, { nChunksBefore: 2 }), 8, 1000)).toBe(170);
    // never more than there are chunks, never fewer than one
    expect(chunksPerGroup(resolved(1), 8, 20)).toBe(20);
    expect(chunksPerGroup(resolved(1), 2 ** 20, 1000)).toBe(1);
    // a number is taken as is, capped by the chunk count
    expect(chunksPerGroup(resolved(1, { chunksPerGroup: 7 }), 8, 1000)).toBe(7);
    expect(chunksPerGroup(resolved(1, { chunksPerGroup: 7 }), 8, 5)).toBe(5);
  });

  it("recomputes scores ('auto') above 2^26 score elements in all, the look-ahead counted; never with one group", () => {
    // 8 heads × 800 chunks × 64·64·2 = 52.4M (kept); × 64·64·3 = 78.6M (recomputed)
    expect(8 * 800 * 64 * 64 * 2).toBeLessThan(RECOMPUTE_SCORE_ELEMENTS);
    expect(recomputesScores(resolved(0), 8, 800)).toBe(false);
    expect(recomputesScores(resolved(1), 8, 800)).toBe(true);
    expect(recomputesScores(resolved(1, { recomputeScores: false }), 8, 800)).toBe(false);
    expect(recomputesScores(resolved(0, { recomputeScores: true }), 8, 800)).toBe(true);
    expect(recomputesScores(resolved(1, { recomputeScores: true, chunksPerGroup: 800 }), 8, 800)).toBe(false);
    expect(recomputesScores(resolved(1, { recomputeScores: true }), 8, 100)).toBe(false);
  });
});

describe('shape checks', () => {
  const setup = (qkShape: number[], vShape: number[], bShape: number[], bType: 'i32' | 'f32' = 'i32') => {
    const o = resolveLsh('test', '', { nHashes: 2, chunkLen: 4 }, 8);
    const g = new Graph();
    const qk = g.input('qk', qkShape);
    const v = g.input('v', vShape);
    const buckets = g.input('buckets', bShape, bType, 'state');
    return () => g.withScope('Layer', () => lshAttend(qk, v, buckets, o));
  };

  it('accepts matching qk, v and buckets', () => {
    expect(() => setup([1, 2, 8, 3], [1, 2, 8, 5], [1, 2, 2, 8])()).not.toThrow();
  });

  it('rejects qk or v not of rank 4, naming both shapes', () => {
    expect(setup([2, 8, 3], [1, 2, 8, 5], [1, 2, 2, 8])).toThrow('LSH attention: qk and v must be [B,h,L,d], got [2,8,3] and [1,2,8,5]');
    expect(setup([1, 2, 8, 3], [2, 8, 5], [1, 2, 2, 8])).toThrow('LSH attention: qk and v must be [B,h,L,d], got [1,2,8,3] and [2,8,5]');
  });

  it('rejects qk and v that differ in any one of B, h, L', () => {
    for (const [i, vShape] of [[1, 2, 8, 5], [2, 2, 8, 5], [1, 1, 8, 5], [1, 2, 4, 5]].entries()) {
      const fn = setup([1, 2, 8, 3], vShape!, [1, 2, 2, 8]);
      if (i === 0) expect(fn).not.toThrow();
      else expect(fn).toThrow(`LSH attention: qk [1,2,8,3] and v [${vShape!.join(',')}] differ in [B,h,L]`);
    }
  });

  it('rejects buckets of the wrong dtype, rank or size, naming [B,h,nHashes,L]', () => {
    const want = 'buckets must be i32 [B,h,nHashes,L] = [1,2,2,8]';
    expect(setup([1, 2, 8, 3], [1, 2, 8, 5], [1, 2, 2, 8], 'f32')).toThrow(`${want}, got f32[1,2,2,8]`);
    expect(setup([1, 2, 8, 3], [1, 2, 8, 5], [1, 2, 16])).toThrow(`${want}, got i32[1,2,16]`);
    expect(setup([1, 2, 8, 3], [1, 2, 8, 5], [1, 2, 2, 8, 1])).toThrow(`${want}, got i32[1,2,2,8,1]`);
    expect(setup([1, 2, 8, 3], [1, 2, 8, 5], [1, 2, 1, 8])).toThrow(`${want}, got i32[1,2,1,8]`);
    expect(setup([1, 2, 8, 3], [1, 2, 8, 5], [1, 1, 2, 8])).toThrow(`${want}, got i32[1,1,2,8]`);
  });

  it('errors carry the layer path', () => {
    expect(setup([2, 8, 3], [1, 2, 8, 5], [1, 2, 2, 8])).toThrow(/^Layer: LSH attention/);
  });
});

describe('rotation checks', () => {
  const qkOf = () => new Graph().input('qk', [1, 2, 8, 4]);

  it('accepts [B,h,dK,nHashes,nBuckets/2] and, factorised, [.., Σ factor/2]', () => {
    const qk = qkOf();
    expect(() => checkRotations(qk, qk.graph.input('r', [1, 2, 4, 3, 4]), 3, 8)).not.toThrow();
    expect(() => checkRotations(qk, qk.graph.input('f', [1, 2, 4, 3, 3]), 3, [2, 4])).not.toThrow();
  });

  it('rejects rotations of the wrong rank even when the leading dimensions match', () => {
    const qk = qkOf();
    const want = 'LSH rotations must have shape [B,h,dK,nHashes,nBuckets/2] = [1,2,4,3,4]';
    expect(() => checkRotations(qk, qk.graph.input('r4', [1, 2, 4, 3]), 3, 8)).toThrow(`${want}, got [1,2,4,3]`);
    expect(() => checkRotations(qk, qk.graph.input('r6', [1, 2, 4, 3, 4, 1]), 3, 8)).toThrow(`${want}, got [1,2,4,3,4,1]`);
    expect(() => hashBuckets(qk, qk.graph.input('r4b', [1, 2, 4, 3]), 3, 8)).toThrow(`${want}, got [1,2,4,3]`);
  });

  it('names the size that differs: nHashes, the bucket width, or dK (with a note)', () => {
    const qk = qkOf();
    expect(() => checkRotations(qk, qk.graph.input('h', [1, 2, 4, 2, 4]), 3, 8)).toThrow(/= \[1,2,4,3,4\], got \[1,2,4,2,4\]$/);
    expect(() => checkRotations(qk, qk.graph.input('w', [1, 2, 4, 3, 4]), 3, [2, 4])).toThrow(
      'LSH rotations must have shape [B,h,dK,nHashes,Σ factor/2] = [1,2,4,3,3], got [1,2,4,3,4]',
    );
    expect(() => checkRotations(qk, qk.graph.input('one', [1, 2, 4, 3, 4]), 3, [10])).toThrow('[B,h,dK,nHashes,nBuckets/2] = [1,2,4,3,5], got [1,2,4,3,4]');
    expect(() => checkRotations(qk, qk.graph.input('d', [1, 2, 5, 3, 4]), 3, 8)).toThrow(/got \[1,2,5,3,4\] \(rotations have dK=5, qk has dK=4\)$/);
    expect(() => checkRotations(qk, qk.graph.input('b', [2, 2, 4, 3, 4]), 3, 8)).toThrow(/got \[2,2,4,3,4\]$/);
  });
});
