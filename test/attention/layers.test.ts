import { describe, expect, it } from 'vitest';
import { Graph } from '../../compiler/ir/graph.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { InitKey, flattenParams, spec, trace, type Layer, type Params } from '../../dsl/layer.ts';
import { fullAttend, localAttend } from '../../reformer/attention/full.ts';
import { FullAttention, LSHSelfAttention, LocalAttention } from '../../reformer/attention/layers.ts';
import { maxAbsDiff, randomArray, softmaxSum } from './support.ts';

function paramFeeds(params: Params): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
  return feeds;
}

function runLayer(layer: Layer, params: Params, x: Float32Array, shape: number[], extra: Record<string, HostTensor> = {}, mode: 'train' | 'eval' = 'eval') {
  const inputs = [{ shape }, ...Object.keys(extra).filter((k) => k.startsWith('input')).map((k) => ({ shape: extra[k]!.shape, dtype: extra[k]!.dtype }))];
  const t = trace(layer, params, inputs, { mode });
  const feeds = { ...paramFeeds(params), input0: hostTensor(shape, x), seed: hostTensor([], [3], 'i32'), ...extra };
  const states = evaluate(t.graph, feeds, [...t.states.values()].map((s) => s.id));
  return { t, feeds, out: evaluate(t.graph, feeds)[0]!, states: new Map([...t.states.keys()].map((k, i) => [k, states[i]!])) };
}

describe('LSHSelfAttention layer', () => {
  const B = 2, L = 8, d = 6;
  const x = randomArray(1, B * L * d);

  it('maps [B, L, d_model] to itself with per-head projections and no biases', () => {
    const layer = LSHSelfAttention({ nHeads: 2, dHead: 3, nHashes: 2, chunkLen: 4 });
    const params = layer.init(new InitKey(0), [spec([B, L, d])]);
    expect(flattenParams(params).map(([p, t]) => `${p}:${t.shape.join('x')}`)).toEqual(['wqk:6x6', 'wv:6x6', 'wo:6x6']);
    const { out, states } = runLayer(layer, params, x, [B, L, d]);
    expect(out.shape).toEqual([B, L, d]);
    expect(states.get('state:LSHSelfAttention.buckets')!.shape).toEqual([B, 2, 2, L]);
  });

  it('replays stored buckets (and dropout masks) instead of re-hashing', () => {
    const layer = LSHSelfAttention({ nHeads: 2, dHead: 3, nHashes: 2, chunkLen: 2, dropout: 0.2, causal: true });
    const params = layer.init(new InitKey(0), [spec([B, L, d])]);
    const fwd = runLayer(layer, params, x, [B, L, d], {}, 'train');
    const replay = trace(layer, params, [{ shape: [B, L, d] }], { mode: 'train', stateMode: 'replay' });
    const stored = fwd.states.get('state:LSHSelfAttention.buckets')!;
    const [same] = evaluate(replay.graph, { ...fwd.feeds, 'state:LSHSelfAttention.buckets': stored });
    expect(Array.from(same!.data)).toEqual(Array.from(fwd.out.data));
    // Other buckets give another result: the replayed graph really reads the state input.
    const shifted = hostTensor(stored.shape, Array.from(stored.data, (b, i) => (i % 3 === 0 ? b - (b % 4) + ((b + 1) % 4) : b)), 'i32');
    const [other] = evaluate(replay.graph, { ...fwd.feeds, 'state:LSHSelfAttention.buckets': shifted });
    expect(maxAbsDiff(other!.data, same!.data)).toBeGreaterThan(1e-6);
    // Dropout is live in training and absent in evaluation.
    const evalOut = runLayer(layer, params, x, [B, L, d]).out;
    expect(maxAbsDiff(evalOut.data, fwd.out.data)).toBeGreaterThan(1e-6);
  });

  it('equals FullAttention(sharedQK) with the same weights when chunkLen = L', () => {
    const lsh = LSHSelfAttention({ nHeads: 2, dHead: 3, nHashes: 3, chunkLen: L, nBuckets: 4, causal: true });
    const full = FullAttention({ nHeads: 2, dHead: 3, sharedQK: true, causal: true });
    const params = lsh.init(new InitKey(4), [spec([B, L, d])]);
    expect(maxAbsDiff(runLayer(lsh, params, x, [B, L, d]).out.data, runLayer(full, params, x, [B, L, d]).out.data)).toBeLessThan(1e-9);
  });

  // with the paper-time switches too: padded keys are closed slots, which get no duplicate correction (no log 0)
  for (const switches of [{}, { allowDuplicateAttention: false }, { allowDuplicateAttention: false, attendAcrossBuckets: false }]) {
  it(`with a padding mask, real tokens ignore padded ones and padded tokens take bucket nb (${JSON.stringify(switches)})`, () => {
    const nb = 4;
    const layer = LSHSelfAttention({ nHeads: 1, dHead: 3, nHashes: 2, nBuckets: nb, chunkLen: 2, padMask: true, ...switches });
    expect([layer.nIn, layer.nOut]).toEqual([2, 2]);
    const params = layer.init(new InitKey(5), [spec([B, L, d]), spec([B, L], 'i32')]);
    const mask = hostTensor([B, L], [1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0], 'i32');
    const a = runLayer(layer, params, x, [B, L, d], { input1: mask });
    const x2 = x.map((e, i) => (mask.data[Math.floor(i / d)] === 0 ? e + 5 * Math.sin(i) : e));
    const b = runLayer(layer, params, x2, [B, L, d], { input1: mask });
    expect(Array.from(a.out.data).every(Number.isFinite)).toBe(true);
    for (let t = 0; t < B * L; t++) {
      if (mask.data[t] === 0) continue;
      expect(Array.from(b.out.data.slice(t * d, (t + 1) * d))).toEqual(Array.from(a.out.data.slice(t * d, (t + 1) * d)));
    }
    const buckets = a.states.get('state:LSHSelfAttention.buckets')!.data;
    buckets.forEach((bk, i) => {
      const [bb, r, t] = [Math.floor(i / (2 * L)), Math.floor(i / L) % 2, i % L];
      const local = bk - r * (nb + 1);
      if (mask.data[bb * L + t] === 0) expect(local).toBe(nb);
      else expect(local).toBeLessThan(nb);
    });
  });
  }

  it('gives clear errors', () => {
    expect(() => LSHSelfAttention({ nHeads: 1, dHead: 2, nHashes: 1, chunkLen: 2, nBuckets: 3 })).toThrow(/LSHSelfAttention: option 'nBuckets' must be even/);
    expect(() => LSHSelfAttention({ nHeads: 0, dHead: 2, nHashes: 1, chunkLen: 2 })).toThrow(/'nHeads'/);
    const layer = LSHSelfAttention({ nHeads: 1, dHead: 2, nHashes: 1, chunkLen: 3 });
    const params = layer.init(new InitKey(0), [spec([1, 8, 4])]);
    expect(() => trace(layer, params, [{ shape: [1, 8, 4] }])).toThrow(/LSHSelfAttention: .*L=8 is not a multiple of chunkLen=3/);
    const rot = LSHSelfAttention({ nHeads: 1, dHead: 2, nHashes: 1, chunkLen: 4, rotations: new Float32Array(3) });
    expect(() => trace(rot, params, [{ shape: [1, 8, 4] }])).toThrow(/rotations have 3 values.*\[1,1,2,1,2\] needs 4/);
    expect(() => trace(layer, params, [{ shape: [8, 4] }])).toThrow(/must be \[B, L, d_model\], got \[8,4\]/);
  });

  it('uses injected rotations: the same rotations give the same buckets under any seed', () => {
    const rotations = randomArray(9, 2 * 2 * 3 * 2 * 2);
    const layer = LSHSelfAttention({ nHeads: 2, dHead: 3, nHashes: 2, nBuckets: 4, chunkLen: 4, rotations });
    const params = layer.init(new InitKey(0), [spec([B, L, d])]);
    const a = runLayer(layer, params, x, [B, L, d]);
    const b = runLayer(layer, params, x, [B, L, d], { seed: hostTensor([], [77], 'i32') });
    expect(a.t.graph.inputNodes().some((n) => n.name === 'seed')).toBe(false);
    expect(Array.from(b.out.data)).toEqual(Array.from(a.out.data));
  });
});

describe('local attention', () => {
  /** Loop-by-loop: query i sees keys from the start of chunk (i div c) − before, up to i (causal) or the chunk end. */
  function naiveLocal(q: number[][], k: number[][], v: number[][], c: number, before: number, causal: boolean): number[][] {
    const dd = q[0]!.length;
    return q.map((qi, i) => {
      const start = Math.max(0, (Math.floor(i / c) - before) * c);
      const end = causal ? i + 1 : (Math.floor(i / c) + 1) * c;
      const js = Array.from({ length: end - start }, (_, t) => start + t);
      return softmaxSum(js.map((j) => qi.reduce((s, x, e) => s + (x * k[j]![e]!) / Math.sqrt(dd), 0)), js.map((j) => v[j]!));
    });
  }

  for (const [c, before, causal] of [[2, 1, true], [2, 1, false], [4, 2, true], [2, 0, false], [2, 5, true], [8, 1, false]] as const) {
    it(`matches a loop-by-loop model (chunkLen ${c}, nChunksBefore ${before}, causal ${causal})`, () => {
      const L = 8, dd = 3;
      const g = new Graph();
      const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, [1, 1, L, dd]));
      g.outputs = [localAttend(q!, k!, v!, { chunkLen: c, nChunksBefore: before, causal }).id];
      const data = [1, 2, 3].map((s) => randomArray(s, L * dd));
      const [out] = evaluate(g, { q: hostTensor(q!.shape, data[0]!), k: hostTensor(k!.shape, data[1]!), v: hostTensor(v!.shape, data[2]!) });
      const rows = data.map((a) => Array.from({ length: L }, (_, t) => Array.from(a.slice(t * dd, (t + 1) * dd))));
      expect(maxAbsDiff(out!.data, naiveLocal(rows[0]!, rows[1]!, rows[2]!, c, before, causal).flat())).toBeLessThan(1e-12);
    });
  }

  it('with one chunk spanning L and no causal mask equals ordinary full attention', () => {
    const g = new Graph();
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, [2, 2, 8, 3]));
    g.outputs = [localAttend(q!, k!, v!, { chunkLen: 8 }).id, fullAttend(q!, k!, v!).id];
    const feeds = Object.fromEntries(['q', 'k', 'v'].map((n, i) => [n, hostTensor([2, 2, 8, 3], randomArray(i + 7, 96))]));
    const [a, b] = evaluate(g, feeds);
    expect(maxAbsDiff(a!.data, b!.data)).toBeLessThan(1e-12);
  });

  it('LocalAttention layer names L and chunkLen when they do not divide', () => {
    const layer = LocalAttention({ nHeads: 1, dHead: 2, chunkLen: 3 });
    const params = layer.init(new InitKey(0), [spec([1, 8, 4])]);
    expect(() => trace(layer, params, [{ shape: [1, 8, 4] }])).toThrow(/L=8 is not a multiple of chunkLen=3/);
  });
});
