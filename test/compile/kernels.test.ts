/**
 * Every kernel kind and fused group against the float64 reference, on random shapes (odd sizes)
 * and non-degenerate values, on every gpu.js backend present (see support.ts for skips).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { expectMatchesReference, openRunners, values } from './support.ts';

const dim = fc.integer({ min: 1, max: 7 });
const shape = (rank: number) => fc.array(dim, { minLength: rank, maxLength: rank });
const RUNS = { numRuns: 15 };

let runners: CompiledRunner[] = [];
beforeAll(async () => {
  runners = await openRunners();
});
afterAll(() => runners.forEach((r) => r.destroy()));

type Build = (g: Graph) => { feeds: Record<string, HostTensor> };

async function check(build: Build): Promise<void> {
  const g = new Graph();
  const { feeds } = build(g);
  for (const r of runners) await expectMatchesReference(r, g, feeds);
}

function f32(g: Graph, feeds: Record<string, HostTensor>, name: string, s: number[], seed: number, lo = 0.1, hi = 1) {
  feeds[name] = hostTensor(s, values(s.reduce((a, b) => a * b, 1), seed, lo, hi));
  return g.input(name, s);
}

describe('compiled kernels equal the reference', () => {
  it('elementwise chains with broadcasting, unary fns, compare, where, cast', async () => {
    await fc.assert(
      fc.asyncProperty(shape(3), fc.integer({ min: 1, max: 1000 }), async (s, seed) => {
        await check((g) => {
          const feeds: Record<string, HostTensor> = {};
          const x = f32(g, feeds, 'x', s, seed);
          const y = f32(g, feeds, 'y', [s[2]!], seed + 1, 0.5, 2);
          const e = P.unary('exp', P.binary('mul', x, y));
          const l = P.unary('log', P.binary('add', P.unary('sqrt', P.binary('mul', x, x)), P.constant(g, 0.5)));
          const t = P.unary('tanh', P.binary('div', P.unary('rsqrt', P.binary('add', P.binary('mul', x, x), P.binary('mul', y, y))), y));
          const m = P.compare('gt', x, P.unary('neg', y));
          const w = P.where(m, P.binary('max', e, l), P.binary('min', t, P.binary('sub', x, y)));
          const c = P.cast(P.cast(P.binary('mul', w, P.constant(g, 3)), 'i32'), 'f32');
          g.outputs = [P.binary('add', w, c).id, P.cast(m, 'f32').id];
          return { feeds };
        });
      }),
      RUNS,
    );
  });

  it('i32 arithmetic: floor div, mod, mul with negative values', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: -500, max: 500 }), { minLength: 1, maxLength: 23 }), async (xs) => {
        await check((g) => {
          const x = g.input('k', [xs.length], 'i32');
          const d = P.binary('div', x, P.constant(g, 7, [], 'i32'));
          const md = P.binary('mod', x, P.constant(g, 5, [], 'i32'));
          const prod = P.binary('mul', P.binary('sub', x, md), P.constant(g, -3, [], 'i32'));
          g.outputs = [d.id, md.id, P.binary('add', prod, P.binary('max', d, md)).id];
          return { feeds: { k: hostTensor([xs.length], xs, 'i32') } };
        });
      }),
      RUNS,
    );
  });

  it('index-only ops: transpose, slice, pad, concat, reshape, iota, broadcast', async () => {
    await fc.assert(
      fc.asyncProperty(shape(3), fc.integer({ min: 1, max: 1000 }), fc.nat(2), async (s, seed, axis) => {
        await check((g) => {
          const feeds: Record<string, HostTensor> = {};
          const x = f32(g, feeds, 'x', s, seed);
          const tr = P.transpose(x, [2, 0, 1]);
          const begin = s.map((d) => Math.floor(d / 3));
          const size = s.map((d, i) => d - begin[i]!);
          const sl = P.slice(x, begin, size);
          const pd = P.pad(sl, begin, s.map(() => 1));
          const z = f32(g, feeds, 'z', s.map((d, i) => (i === axis ? 2 : d)), seed + 3);
          const cc = P.concat([x, P.unary('exp', z), x], axis);
          const io = P.cast(P.iota(g, s, axis), 'f32');
          const rs = P.reshape(P.binary('add', x, io), [s[0]! * s[1]!, s[2]!]);
          const b = P.broadcastTo(P.reshape(P.reduce('sum', x, 0), [1, s[1]!, s[2]!]), [2, ...s]);
          g.outputs = [P.unary('tanh', tr).id, pd.id, cc.id, rs.id, b.id];
          return { feeds };
        });
      }),
      RUNS,
    );
  });

  it('reductions (sum, max, argmax) on any axis, with fused prologue and epilogue', async () => {
    await fc.assert(
      fc.asyncProperty(shape(3), fc.integer({ min: 1, max: 1000 }), fc.nat(2), async (s, seed, axis) => {
        await check((g) => {
          const feeds: Record<string, HostTensor> = {};
          const x = f32(g, feeds, 'x', s, seed);
          const sq = P.binary('mul', x, x);
          const sm = P.reduce('sum', sq, axis);
          const mx = P.reduce('max', P.unary('tanh', x), axis);
          const am = P.argmax(P.binary('sub', x, P.unary('exp', x)), axis);
          g.outputs = [P.unary('sqrt', sm).id, mx.id, am.id];
          return { feeds };
        });
      }),
      RUNS,
    );
  });

  it('batched matmul with broadcast operand, bias and activation epilogue', async () => {
    await fc.assert(
      fc.asyncProperty(dim, dim, dim, fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 1000 }), async (bt, m, n, k, seed) => {
        await check((g) => {
          const feeds: Record<string, HostTensor> = {};
          const a = f32(g, feeds, 'a', [bt, m, k], seed);
          const w = f32(g, feeds, 'w', [k, n], seed + 1);
          const bias = f32(g, feeds, 'bias', [n], seed + 2);
          const y = P.unary('tanh', P.binary('add', P.matmul(a, w), bias));
          const at = P.matmul(P.transpose(a, [0, 2, 1]), a);
          g.outputs = [y.id, at.id];
          return { feeds };
        });
      }),
      RUNS,
    );
  });

  it('gather and scatterAdd along an axis, with repeated indices', async () => {
    await fc.assert(
      fc.asyncProperty(shape(2), dim, fc.integer({ min: 1, max: 1000 }), fc.nat(1), async (s, len, seed, axis) => {
        await check((g) => {
          const feeds: Record<string, HostTensor> = {};
          const x = f32(g, feeds, 'x', s, seed);
          const ishape = s.map((d, i) => (i === axis ? len : d));
          const n = ishape[0]! * ishape[1]!;
          const idx = Array.from({ length: n }, (_, i) => (i * 7 + seed) % s[axis]!);
          feeds.i = hostTensor(ishape, idx, 'i32');
          const index = g.input('i', ishape, 'i32');
          const gathered = P.gather(P.unary('exp', x), index, axis);
          const u = f32(g, feeds, 'u', ishape, seed + 5);
          const scattered = P.scatterAdd(P.binary('mul', u, u), index, axis, s[axis]!);
          g.outputs = [gathered.id, scattered.id];
          return { feeds };
        });
      }),
      RUNS,
    );
  });

  it('argsort of i32 keys with ties is stable', async () => {
    await fc.assert(
      fc.asyncProperty(shape(2), fc.integer({ min: 1, max: 1000 }), fc.nat(1), async (s, seed, axis) => {
        await check((g) => {
          const n = s[0]! * s[1]!;
          const keys = Array.from({ length: n }, (_, i) => ((i * 13 + seed) % 5) - 2);
          const k = g.input('k', s, 'i32');
          g.outputs = [P.argsort(k, axis).id, P.argsort(P.binary('mul', k, P.constant(g, -1, [], 'i32')), axis).id];
          return { feeds: { k: hostTensor(s, keys, 'i32') } };
        });
      }),
      RUNS,
    );
  });

  it('random draws the reference values exactly (host-drawn, uploaded)', async () => {
    await check((g) => {
      const seed = g.input('seed', [], 'i32', 'seed');
      const x = g.input('x', [5, 3]);
      g.outputs = [P.binary('add', P.random('normal', seed, 11, [5, 3]), x).id, P.random('uniform', seed, 12, [7]).id];
      return { feeds: { seed: hostTensor([], [42], 'i32'), x: hostTensor([5, 3], values(15, 9)) } };
    });
  });

  it('a kernel with more than 4096 outputs runs threaded on webasm', async () => {
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const x = f32(g, feeds, 'x', [67, 71], 3);
    g.outputs = [P.unary('exp', P.binary('mul', x, P.reduce('max', x, 1))).id];
    for (const r of runners) {
      await expectMatchesReference(r, g, feeds);
      if (r.backend.name === 'webasm') {
        const { executor } = r.stats;
        if (executor !== 'fused-threaded') throw new Error(`expected fused-threaded on webasm, got ${executor}`);
      }
    }
  });
});
