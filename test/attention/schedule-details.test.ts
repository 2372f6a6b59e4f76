/**
 * Details of LSH attention's graph that values alone do not show: a dropout rate of 0 draws no
 * mask, recomputed window groups are labelled by their index (the label names them in printed
 * graphs and memory reports), a rotation error notes dK only when the rank is right, and buckets
 * of the wrong rank are refused even when their sizes match as far as they go.
 */
import { describe, expect, it } from 'vitest';
import { Graph } from '../../compiler/ir/graph.ts';
import { checkRotations, drawRotations, hashBuckets } from '../../reformer/attention/hashing.ts';
import { lshAttend } from '../../reformer/attention/lsh.ts';
import { resolveLsh, type LshOptions } from '../../reformer/attention/options.ts';

const B = 1, h = 2, L = 32, dK = 4;

/** The graph of LSH attention over random rotations, with the given options and extras. */
function attentionGraph(options: LshOptions, dropoutRate?: number) {
  const g = new Graph();
  const o = resolveLsh('test', '', options, L);
  const qk = g.input('qk', [B, h, L, dK]);
  const v = g.input('v', [B, h, L, dK]);
  const seed = g.input('seed', [], 'i32', 'seed');
  const buckets = hashBuckets(qk, drawRotations(qk, seed, 1, o.nHashes, o.bucketFactors), o.nHashes, o.bucketFactors);
  const drawsBefore = g.nodes.filter((n) => n.op === 'random').length;
  g.outputs = [lshAttend(qk, v, buckets, o, dropoutRate === undefined ? {} : { dropout: { rate: dropoutRate, seed, salt: 9 } }).id];
  return { g, draws: g.nodes.filter((n) => n.op === 'random').length - drawsBefore };
}

describe('LSH attention graph details', () => {
  it('refuses buckets whose shape is a prefix of [B,h,nHashes,L] (the rank is checked, not only the sizes)', () => {
    const g = new Graph();
    const o = resolveLsh('test', '', { nHashes: 2, chunkLen: 8 }, L);
    const qk = g.input('qk', [B, h, L, dK]);
    const buckets = g.input('buckets', [B, h, 2], 'i32', 'state');
    expect(() => lshAttend(qk, qk, buckets, o)).toThrow(`LSH attention: buckets must be i32 [B,h,nHashes,L] = [${B},${h},2,${L}], got i32[${B},${h},2]`);
  });

  it('attention dropout at rate 0 draws no mask (the same graph as without dropout); any positive rate draws one per group', () => {
    const options: LshOptions = { nHashes: 2, chunkLen: 8 };
    expect(attentionGraph(options).draws).toBe(0);
    expect(attentionGraph(options, 0).draws).toBe(0);
    expect(attentionGraph(options, 0).g.nodes.length).toBe(attentionGraph(options).g.nodes.length);
    expect(attentionGraph(options, 0.1).draws).toBe(1);
    expect(attentionGraph({ ...options, chunksPerGroup: 2, recomputeScores: true }, 0.1).draws).toBe(4);
  });

  it('recomputed window groups are labelled by their index', () => {
    const { g } = attentionGraph({ nHashes: 2, chunkLen: 8, chunksPerGroup: 3, recomputeScores: true });
    // H·L/c = 8 sorted chunks in groups of 3: 3 + 3 + 2
    expect(g.recomputeRegions.map((r) => r.label)).toEqual(['LSH window group 0', 'LSH window group 1', 'LSH window group 2']);
  });

  it('a rotation error notes the dK mismatch only for rotations of rank 5', () => {
    const qk = new Graph().input('qk', [1, 2, 8, 4]);
    const want = 'LSH rotations must have shape [B,h,dK,nHashes,nBuckets/2] = [1,2,4,3,4]';
    // rank 4 whose third size differs from dK: no note about dK
    expect(() => checkRotations(qk, qk.graph.input('r4', [1, 2, 3, 4]), 3, 8)).toThrow(new RegExp(`^${escape(want)}, got \\[1,2,3,4\\]$`));
    expect(() => checkRotations(qk, qk.graph.input('r5', [1, 2, 3, 3, 4]), 3, 8)).toThrow(/got \[1,2,3,3,4\] \(rotations have dK=3, qk has dK=4\)$/);
  });
});

/** `s` with regular-expression metacharacters escaped. */
function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
