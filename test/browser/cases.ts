/**
 * The cases the browser tests run, built identically in the page (bundled into it) and in Node:
 * each is a pure function of a seed, so Node rebuilds the same graph and feeds and evaluates the
 * float64 reference itself, comparing it with what the page computed on a GPU backend.
 *
 * Nothing here may import vitest or Node built-ins: this file is part of the page bundle.
 */
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { flattenParams, InitKey, spec } from '../../dsl/layer.ts';
import { buildModel } from '../../reformer/model.ts';
import { encodeBytes } from '../../reformer/data/bytes.ts';
import { trainObjective, type Batch, type TrainObjective } from '../../reformer/train/objective.ts';
import { stepSeed } from '../../reformer/train/trainer.ts';

/** A deterministic generator of floats in [0, 1) (an LCG: cases must rebuild bit-identically). */
export function lcg(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    return ((s >>> 8) & 0xffff) / 0x10000;
  };
}

/** Non-degenerate values in ±[lo, hi]: never zero, never all equal. */
export function values(n: number, seed: number, lo = 0.1, hi = 1): Float64Array {
  const r = lcg(seed);
  return Float64Array.from({ length: n }, (_, i) => (i % 3 === 1 ? -1 : 1) * (lo + (hi - lo) * r()));
}

const dims = (r: () => number, rank: number, max = 7) => Array.from({ length: rank }, () => 1 + Math.floor(r() * max));
const sizeOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

export interface GraphCase {
  readonly graph: Graph;
  readonly feeds: Record<string, HostTensor>;
}

function input(g: Graph, feeds: Record<string, HostTensor>, name: string, s: number[], seed: number, lo = 0.1, hi = 1) {
  feeds[name] = hostTensor(s, values(sizeOf(s), seed, lo, hi));
  return g.input(name, s);
}

/** Each kernel kind of the compiler, as a graph on random shapes drawn from `seed`. */
export const KERNEL_KINDS: Record<string, (seed: number) => GraphCase> = {
  elementwise(seed) {
    const r = lcg(seed);
    const s = dims(r, 3);
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const x = input(g, feeds, 'x', s, seed);
    const y = input(g, feeds, 'y', [s[2]!], seed + 1, 0.5, 2);
    const e = P.unary('exp', P.binary('mul', x, y));
    const l = P.unary('log', P.binary('add', P.unary('sqrt', P.binary('mul', x, x)), P.constant(g, 0.5)));
    const t = P.unary('tanh', P.binary('div', P.unary('rsqrt', P.binary('add', P.binary('mul', x, x), P.binary('mul', y, y))), y));
    const m = P.compare('gt', x, P.unary('neg', y));
    const w = P.where(m, P.binary('max', e, l), P.binary('min', t, P.binary('sub', x, y)));
    const c = P.cast(P.cast(P.binary('mul', w, P.constant(g, 3)), 'i32'), 'f32');
    g.outputs = [P.binary('add', w, c).id, P.cast(m, 'f32').id];
    return { graph: g, feeds };
  },
  integer(seed) {
    const r = lcg(seed);
    const n = 1 + Math.floor(r() * 23);
    const xs = Array.from({ length: n }, () => Math.floor(r() * 1001) - 500);
    const g = new Graph();
    const x = g.input('k', [n], 'i32');
    const d = P.binary('div', x, P.constant(g, 7, [], 'i32'));
    const md = P.binary('mod', x, P.constant(g, 5, [], 'i32'));
    const prod = P.binary('mul', P.binary('sub', x, md), P.constant(g, -3, [], 'i32'));
    g.outputs = [d.id, md.id, P.binary('add', prod, P.binary('max', d, md)).id];
    return { graph: g, feeds: { k: hostTensor([n], xs, 'i32') } };
  },
  indexing(seed) {
    const r = lcg(seed);
    const s = dims(r, 3);
    const axis = Math.floor(r() * 3);
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const x = input(g, feeds, 'x', s, seed);
    const begin = s.map((d) => Math.floor(d / 3));
    const sl = P.slice(x, begin, s.map((d, i) => d - begin[i]!));
    const pd = P.pad(sl, begin, s.map(() => 1));
    const z = input(g, feeds, 'z', s.map((d, i) => (i === axis ? 2 : d)), seed + 3);
    const cc = P.concat([x, P.unary('exp', z), x], axis);
    const io = P.cast(P.iota(g, s, axis), 'f32');
    const rs = P.reshape(P.binary('add', x, io), [s[0]! * s[1]!, s[2]!]);
    const b = P.broadcastTo(P.reshape(P.reduce('sum', x, 0), [1, s[1]!, s[2]!]), [2, ...s]);
    g.outputs = [P.unary('tanh', P.transpose(x, [2, 0, 1])).id, pd.id, cc.id, rs.id, b.id];
    return { graph: g, feeds };
  },
  reduction(seed) {
    const r = lcg(seed);
    const s = dims(r, 3);
    const axis = Math.floor(r() * 3);
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const x = input(g, feeds, 'x', s, seed);
    const sm = P.reduce('sum', P.binary('mul', x, x), axis);
    const mx = P.reduce('max', P.unary('tanh', x), axis);
    const am = P.argmax(P.binary('sub', x, P.unary('exp', x)), axis);
    g.outputs = [P.unary('sqrt', sm).id, mx.id, am.id];
    return { graph: g, feeds };
  },
  matmul(seed) {
    const r = lcg(seed);
    const [bt, m, n] = dims(r, 3);
    const k = 1 + Math.floor(r() * 9);
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const a = input(g, feeds, 'a', [bt!, m!, k], seed);
    const w = input(g, feeds, 'w', [k, n!], seed + 1);
    const bias = input(g, feeds, 'bias', [n!], seed + 2);
    const y = P.unary('tanh', P.binary('add', P.matmul(a, w), bias));
    g.outputs = [y.id, P.matmul(P.transpose(a, [0, 2, 1]), a).id];
    return { graph: g, feeds };
  },
  scatterGather(seed) {
    const r = lcg(seed);
    const s = dims(r, 2);
    const len = 1 + Math.floor(r() * 7);
    const axis = Math.floor(r() * 2);
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const x = input(g, feeds, 'x', s, seed);
    const ishape = s.map((d, i) => (i === axis ? len : d));
    feeds.i = hostTensor(ishape, Array.from({ length: sizeOf(ishape) }, (_, i) => (i * 7 + seed) % s[axis]!), 'i32');
    const index = g.input('i', ishape, 'i32');
    const u = input(g, feeds, 'u', ishape, seed + 5);
    g.outputs = [P.gather(P.unary('exp', x), index, axis).id, P.scatterAdd(P.binary('mul', u, u), index, axis, s[axis]!).id];
    return { graph: g, feeds };
  },
  sort(seed) {
    const r = lcg(seed);
    const s = dims(r, 2, 9);
    const axis = Math.floor(r() * 2);
    const g = new Graph();
    const keys = Array.from({ length: sizeOf(s) }, (_, i) => ((i * 13 + seed) % 5) - 2);
    const k = g.input('k', s, 'i32');
    g.outputs = [P.argsort(k, axis).id, P.argsort(P.binary('mul', k, P.constant(g, -1, [], 'i32')), axis).id];
    return { graph: g, feeds: { k: hostTensor(s, keys, 'i32') } };
  },
  random(seed) {
    const g = new Graph();
    const s = g.input('seed', [], 'i32', 'seed');
    const x = g.input('x', [5, 3]);
    g.outputs = [P.binary('add', P.random('normal', s, 11, [5, 3]), x).id, P.random('uniform', s, 12, [7]).id];
    return { graph: g, feeds: { seed: hostTensor([], [seed % 1000], 'i32'), x: hostTensor([5, 3], values(15, seed)) } };
  },
};

/** Row templates (LayerNorm, softmax, logsumexp) on `[rows, cols]`, inputs scaled by 1 or 20. */
export interface RowCase {
  readonly rows: number;
  readonly cols: number;
  readonly x: Float32Array;
  readonly gamma: Float32Array;
  readonly beta: Float32Array;
}

export function rowCase(seed: number): RowCase {
  const r = lcg(seed);
  const rows = 1 + Math.floor(r() * 9);
  const cols = 1 + Math.floor(r() * 13);
  const scale = seed % 2 === 0 ? 1 : 20;
  return {
    rows,
    cols,
    x: Float32Array.from(values(rows * cols, seed, 0.05, 2), (v) => v * scale),
    gamma: Float32Array.from(values(cols, seed + 1, 0.5, 1.5)),
    beta: Float32Array.from(values(cols, seed + 2, 0, 1)),
  };
}

/** The fixed lshAttention cases of test/attention/lsh.test.ts (regressions and the duplicate switch). */
export interface LshCase {
  readonly name: string;
  readonly B: number;
  readonly h: number;
  readonly L: number;
  readonly dK: number;
  readonly dV: number;
  readonly nHashes: number;
  readonly nBuckets: number;
  readonly chunkLen: number;
  readonly causal: boolean;
  readonly nChunksBefore: number;
  readonly nChunksAfter: number;
  readonly attendAcrossBuckets: boolean;
  readonly allowDuplicateAttention: boolean;
  readonly seed: number;
  /** Scale of the qk values. */
  readonly scale: number;
}

const unionCase = (causal: boolean): LshCase => ({
  name: `4 rounds, L = 64, no duplicates, causal=${causal}`,
  B: 1, h: 2, L: 64, dK: 8, dV: 4, nHashes: 4, nBuckets: 8, chunkLen: 8, causal,
  nChunksBefore: 1, nChunksAfter: 0, attendAcrossBuckets: false, allowDuplicateAttention: false, seed: 3, scale: 2,
});

export const LSH_CASES: readonly LshCase[] = [
  unionCase(false),
  unionCase(true),
  ...[true, false].map((dup) => ({
    name: `overlapping windows across 3 rounds, allowDuplicateAttention=${dup}`,
    B: 1, h: 1, L: 8, dK: 3, dV: 2, nHashes: 3, nBuckets: 2, chunkLen: 2, causal: false,
    nChunksBefore: 1, nChunksAfter: 0, attendAcrossBuckets: true, allowDuplicateAttention: dup, seed: 9, scale: 2,
  })),
  ...[1, 2, 3].map((nHashes) => ({
    name: `self-only rows, chunkLen = L, nHashes=${nHashes}`,
    B: 1, h: 2, L: 8, dK: 3, dV: 3, nHashes, nBuckets: 2, chunkLen: 8, causal: true,
    nChunksBefore: 1, nChunksAfter: 0, attendAcrossBuckets: true, allowDuplicateAttention: true, seed: 4, scale: 3,
  })),
];

/** Gaussian values (Box–Muller over the LCG), as the attention tests draw qk and v. */
export function gaussians(seed: number, n: number, scale = 1): Float32Array {
  const r = lcg(seed);
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}

export function lshInputs(c: LshCase): { qk: Float32Array; v: Float32Array } {
  return { qk: gaussians(c.seed + 1, c.B * c.h * c.L * c.dK, c.scale), v: gaussians(c.seed + 2, c.B * c.h * c.L * c.dV) };
}

/** A tiny ReformerLM (local + LSH attention, reversible, chunked feed-forward, dropout on). */
export function trainStepConfig(): RunConfig {
  return validateRunConfig({
    model: {
      seqLen: 16, dModel: 32, dFF: 64, nHeads: 2, dHead: 16, nLayers: 2, attention: ['local', 'lsh'], nHashes: 2,
      chunkLen: 8, ffChunkLen: 8, axialShape: [4, 4], axialDims: [16, 16], dropout: 0.1,
    },
    train: { batchSize: 2, steps: 1 },
  });
}

const TRAIN_STEP_SEED = 7;
const TRAIN_TEXT = 'the quick brown fox jumps over the lazy dog. ';

export interface TrainStepCase {
  readonly objective: TrainObjective;
  readonly params: Map<string, HostTensor>;
  readonly batch: Batch;
  /** The step's dropout and hash-rotation seed. */
  readonly seed: number;
}

/** One training step of trainStepConfig(): initial parameters, a batch of text windows, its seed. */
export function trainStepCase(): TrainStepCase {
  const config = trainStepConfig();
  const { batchSize } = config.train;
  const L = config.model.seqLen;
  const model = buildModel(config.model);
  const tree = model.init(new InitKey(TRAIN_STEP_SEED), [spec([batchSize, L], 'i32')]);
  const text = encodeBytes(TRAIN_TEXT.repeat(2));
  const tokens = new Int32Array(batchSize * L);
  for (let b = 0; b < batchSize; b++) tokens.set(text.subarray(b * 5, b * 5 + L), b * L);
  return {
    objective: trainObjective(model, tree, batchSize, L),
    params: new Map(flattenParams(tree)),
    batch: { tokens: { shape: [batchSize, L], dtype: 'i32', data: tokens }, weights: hostTensor([batchSize, L], new Float64Array(batchSize * L).fill(1)) },
    seed: stepSeed(TRAIN_STEP_SEED, 0),
  };
}
