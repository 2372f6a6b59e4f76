/**
 * Every kernel kind, compiled with each code-generation option (2-D launches on or off, exact
 * i32 "wide" indices, dot / packed / wasm matmuls), executed on the host as JavaScript (support.ts,
 * `runCompiledOnHost`) into NaN-filled outputs and compared with the float64 reference. No gpu.js:
 * these run in milliseconds, so mutation runs (stryker/groups.mjs, `fuse` and `codegen`) use them
 * to pin the planner and the code generator down; the gpu.js paths are tested in the other files.
 */
import { describe, expect, it } from 'vitest';
import { compile, type CompileOptions } from '../../compiler/codegen/compile.ts';
import { DIRECT_SCATTER_MAX_LEN, RANK_SORT_MAX_LEN } from '../../compiler/codegen/sort-kernels.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { runCompiledOnHost, values } from './support.ts';

/** Every option set a graph is compiled with here. */
const VARIANTS: readonly CompileOptions[] = [
  {},
  { grid: false },
  { wide: true },
  { wide: true, grid: false },
  { matmul: 'packed' },
  { matmul: 'wasm' },
];

type Feeds = Record<string, HostTensor>;

/** A graph, its feeds and an f32 input maker, for one case. */
function setup(): { g: Graph; feeds: Feeds; f32: (name: string, shape: number[], seed: number, lo?: number, hi?: number) => Tensor } {
  const g = new Graph();
  const feeds: Feeds = {};
  const f32 = (name: string, shape: number[], seed: number, lo = 0.1, hi = 1) => {
    feeds[name] = hostTensor(shape, values(shape.reduce((a, b) => a * b, 1), seed, lo, hi));
    return g.input(name, shape);
  };
  return { g, feeds, f32 };
}

/** Integers in [0, range) from a seed, as an i32 feed. */
function i32Feed(g: Graph, feeds: Feeds, name: string, shape: number[], seed: number, range: number): Tensor {
  let s = seed | 0 || 1;
  const data = Int32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    return ((s >>> 8) & 0xffff) % range;
  });
  feeds[name] = hostTensor(shape, data, 'i32');
  return g.input(name, shape, 'i32');
}

/** Compiles `g` with every variant and checks each host-run output against the reference. */
function expectHostRuns(g: Graph, feeds: Feeds, variants: readonly CompileOptions[] = VARIANTS): void {
  const ref = evaluate(g, feeds, g.outputs);
  for (const options of variants) runCompiledOnHost(g, feeds, g.outputs, ref, {}, options);
}

describe('host-run kernels: elementwise', () => {
  it('unary functions, f32 arithmetic, compares, where and casts', () => {
    const { g, feeds, f32 } = setup();
    const x = f32('x', [3, 5], 1);
    const y = f32('y', [3, 5], 2, 0.5, 2);
    const fns = (['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh'] as const).map((fn) => P.unary(fn, fn === 'log' || fn === 'sqrt' || fn === 'rsqrt' ? P.binary('mul', x, x) : x));
    const arith = (['add', 'sub', 'mul', 'div', 'max', 'min'] as const).map((fn) => P.binary(fn, x, y));
    const cmps = (['lt', 'le', 'gt', 'ge', 'eq', 'ne'] as const).map((fn) => P.cast(P.compare(fn, x, fn === 'eq' || fn === 'ne' ? x : y), 'f32'));
    const half = P.binary('mul', x, P.constant(g, 0.5));
    const w = P.where(P.compare('gt', x, P.unary('neg', y)), half, P.stopGradient(y));
    const trunc = P.cast(P.binary('mul', x, P.constant(g, 7)), 'i32');
    g.outputs = [...fns, ...arith, ...cmps, w, trunc].map((t) => t.id);
    expectHostRuns(g, feeds);
  });

  it('i32 floor division and modulo of negative values', () => {
    const { g, feeds } = setup();
    const k = i32Feed(g, feeds, 'k', [17], 5, 41);
    const shifted = P.binary('sub', k, P.constant(g, 20, [], 'i32'));
    g.outputs = [
      P.binary('div', shifted, P.constant(g, 7, [], 'i32')).id,
      P.binary('mod', shifted, P.constant(g, 5, [], 'i32')).id,
      P.binary('mod', shifted, P.constant(g, -3, [], 'i32')).id,
    ];
    expectHostRuns(g, feeds);
  });

  it('a multi-value constant is a buffer, a scalar one a literal', () => {
    const { g, feeds, f32 } = setup();
    const x = f32('x', [2, 3], 3);
    const table = P.constant(g, [1.5, -2, 0.25], [3]);
    g.outputs = [P.binary('add', P.binary('mul', x, P.broadcastTo(table, [2, 3])), P.constant(g, -0.75)).id];
    expectHostRuns(g, feeds);
  });
});

describe('host-run kernels: index remaps', () => {
  it('transpose, slice, pad, reshape and broadcast, chained', () => {
    const { g, feeds, f32 } = setup();
    const x = f32('x', [3, 4, 5], 4);
    const tr = P.transpose(x, [2, 0, 1]);
    const sl = P.slice(tr, [1, 0, 2], [3, 3, 2]);
    const pd = P.pad(sl, [0, 2, 1], [1, 0, 2]);
    const rs = P.reshape(x, [12, 5]);
    const bc = P.broadcastTo(P.reshape(P.slice(x, [0, 1, 0], [3, 1, 5]), [3, 1, 5]), [2, 3, 4, 5]);
    g.outputs = [tr.id, sl.id, P.unary('exp', pd).id, P.binary('add', rs, P.constant(g, 1)).id, P.binary('mul', bc, P.constant(g, 2)).id];
    expectHostRuns(g, feeds);
  });

  it('concat with an empty piece, iota along each axis, gather with repeated indices', () => {
    const { g, feeds, f32 } = setup();
    const a = f32('a', [2, 3, 4], 6);
    const b = f32('b', [2, 1, 4], 7);
    const e = f32('e', [2, 0, 4], 8);
    const c = P.concat([a, e, P.unary('tanh', b), a], 1);
    const iotas = [0, 1, 2].map((axis) => P.cast(P.iota(g, [2, 3, 4], axis), 'f32'));
    const ix = i32Feed(g, feeds, 'ix', [2, 5, 4], 9, 3);
    const gathered = P.gather(P.unary('exp', a), ix, 1);
    const gLast = P.gather(a, i32Feed(g, feeds, 'iy', [2, 3, 6], 10, 4), 2);
    g.outputs = [c.id, ...iotas.map((t) => P.binary('add', t, a).id), gathered.id, gLast.id];
    expectHostRuns(g, feeds);
  });
});

describe('host-run kernels: reductions', () => {
  it('sum, max and argmax along every axis, with prologue and epilogue', () => {
    const { g, feeds, f32 } = setup();
    const x = f32('x', [3, 4, 5], 11, -1, 1);
    const outs: Tensor[] = [];
    for (const axis of [0, 1, 2]) {
      const pro = P.binary('mul', x, x);
      outs.push(P.unary('sqrt', P.reduce('sum', pro, axis)), P.reduce('max', x, axis), P.cast(P.argmax(x, axis), 'f32'));
    }
    // a reduced axis of length 1
    outs.push(P.reduce('sum', P.reshape(x, [3, 1, 20]), 1), P.argmax(P.reshape(x, [60, 1]), 1));
    g.outputs = outs.map((t) => t.id);
    expectHostRuns(g, feeds);
  });
});

describe('host-run kernels: matmuls', () => {
  it('plain, batched with a broadcast operand, bias and activation epilogue, ragged and multiple-of-4 widths', () => {
    const { g, feeds, f32 } = setup();
    const outs: Tensor[] = [];
    for (const [m, k, n] of [
      [5, 7, 8],
      [3, 6, 5],
      [1, 1, 1],
      [4, 9, 1],
      [1, 5, 12],
      [8, 16, 16],
    ] as const) {
      const a = f32(`a${m}${k}${n}`, [m, k], m * 100 + k);
      const b = f32(`b${m}${k}${n}`, [k, n], n * 100 + k);
      const bias = f32(`c${m}${k}${n}`, [n], n);
      outs.push(P.unary('tanh', P.binary('add', P.matmul(a, b), P.broadcastTo(bias, [m, n]))));
    }
    const ab = f32('ab', [3, 5, 6], 21);
    const shared = f32('shared', [6, 4], 22);
    outs.push(P.matmul(ab, P.broadcastTo(shared, [3, 6, 4])));
    const bb = f32('bb', [2, 3, 4, 7], 23);
    const cc = f32('cc', [2, 3, 7, 5], 24);
    outs.push(P.binary('mul', P.matmul(bb, cc), P.constant(g, 0.5)));
    g.outputs = outs.map((t) => t.id);
    expectHostRuns(g, feeds);
  });

  it('transposed and sliced operands, a computed operand, a matmul read twice', () => {
    const { g, feeds, f32 } = setup();
    const a = f32('a', [6, 5], 31);
    const b = f32('b', [8, 6], 32);
    const at = P.transpose(a, [1, 0]);
    const prod = P.matmul(at, P.transpose(b, [1, 0]));
    const computed = P.matmul(P.unary('exp', at), P.slice(P.transpose(b, [1, 0]), [0, 2], [6, 4]));
    const twice = P.matmul(a, P.slice(at, [0, 1], [5, 4]));
    g.outputs = [prod.id, computed.id, P.binary('add', twice, P.unary('exp', twice)).id];
    expectHostRuns(g, feeds);
  });

  it('heads split from a model width and merged back (a k axis of several factors), and look-around windows along k', () => {
    const { g, feeds, f32 } = setup();
    const [L, h, d] = [6, 2, 4];
    const q = f32('q', [L, h * d], 41);
    const wo = f32('wo', [h * d, 5], 42);
    const heads = P.transpose(P.reshape(q, [L, h, d]), [1, 0, 2]);
    const merged = P.reshape(P.transpose(heads, [1, 0, 2]), [L, h * d]);
    const kv = f32('kv', [4, 3, d], 43);
    const rolled = P.concat([P.slice(kv, [3, 0, 0], [1, 3, d]), P.slice(kv, [0, 0, 0], [3, 3, d])], 0);
    const window = P.concat([kv, rolled], 1); // [4, 6, d]: each chunk with the one before
    const qc = f32('qc', [4, 3, d], 44);
    const scores = P.matmul(qc, P.transpose(window, [0, 2, 1]));
    const vals = P.matmul(P.transpose(window, [0, 2, 1]), f32('vw', [4, 6, 3], 45));
    g.outputs = [P.matmul(merged, wo).id, P.matmul(heads, P.transpose(heads, [0, 2, 1])).id, scores.id, vals.id];
    expectHostRuns(g, feeds);
  });
});

describe('host-run kernels: scatterAdd and argsort', () => {
  it('scatterAdd of short and long rows, with repeated and missing targets', () => {
    const { g, feeds, f32 } = setup();
    const outs: Tensor[] = [];
    for (const len of [5, DIRECT_SCATTER_MAX_LEN + 9]) {
      const u = f32(`u${len}`, [2, len, 3], len);
      const ix = i32Feed(g, feeds, `i${len}`, [2, len, 3], len + 1, 7);
      outs.push(P.scatterAdd(P.unary('exp', u), ix, 1, 9), P.scatterAdd(P.transpose(u, [1, 0, 2]), P.transpose(ix, [1, 0, 2]), 0, 7));
    }
    g.outputs = outs.map((t) => t.id);
    expectHostRuns(g, feeds);
  });

  it('scatterAdd of whole rows by a broadcast index (the take-along gradient), short and long', () => {
    const { g, feeds, f32 } = setup();
    const outs: Tensor[] = [];
    for (const len of [6, DIRECT_SCATTER_MAX_LEN + 3]) {
      const u = f32(`u${len}`, [3, len, 8], len);
      const pos = i32Feed(g, feeds, `p${len}`, [3, len, 1], len + 2, 5);
      outs.push(P.scatterAdd(u, P.broadcastTo(pos, [3, len, 8]), 1, 5));
      const shared = i32Feed(g, feeds, `s${len}`, [len, 1], len + 3, 4);
      outs.push(P.scatterAdd(u, P.broadcastTo(shared, [3, len, 8]), 1, 4));
    }
    g.outputs = outs.map((t) => t.id);
    expectHostRuns(g, feeds);
  });

  /** Stable argsorts of rows of each length, along the middle axis, of negated keys and along the last axis. */
  function argsorts(lengths: readonly number[]): Graph {
    const { g, feeds } = setup();
    const outs: Tensor[] = [];
    for (const len of lengths) {
      const k = i32Feed(g, feeds, `k${len}`, [2, len, 3], len, 6);
      outs.push(P.argsort(k, 1), P.argsort(P.binary('mul', k, P.constant(g, -1, [], 'i32')), 1));
      if (len > 1) outs.push(P.argsort(P.transpose(k, [0, 2, 1]), 2));
    }
    g.outputs = outs.map((t) => t.id);
    expectHostRuns(g, feeds);
    return g;
  }

  it('argsort by rank counting is stable, along any axis, with a computed key', () => {
    const g = argsorts([1, 7, RANK_SORT_MAX_LEN]);
    expect(compile(g).kernels.some((k) => k.name.includes('.pass'))).toBe(false);
  });

  it('argsort by merge passes is stable, along any axis, with a computed key', () => {
    const g = argsorts([RANK_SORT_MAX_LEN + 1, 2 * RANK_SORT_MAX_LEN + 5]);
    expect(compile(g).kernels.some((k) => k.name.includes('.pass'))).toBe(true);
  });
});

describe('host-run kernels: random and sizes', () => {
  it('random draws are host buffers; a kernel over more elements than wide mode holds in locals', () => {
    const { g, feeds, f32 } = setup();
    const seed = g.input('seed', [], 'i32');
    feeds.seed = hostTensor([], [12345], 'i32');
    const r = P.random('uniform', seed, 3, [4, 5]);
    const x = f32('x', [4, 5], 51);
    const big = f32('big', [7, 9, 11], 52);
    g.outputs = [P.binary('add', r, x).id, P.reduce('sum', P.transpose(big, [2, 1, 0]), 1).id, P.binary('mul', big, big).id];
    expectHostRuns(g, feeds);
  });
});
