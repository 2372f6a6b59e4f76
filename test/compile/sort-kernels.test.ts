/**
 * The merge-pass argsort and the sort-based scatterAdd (rows longer than the rank-counting and
 * direct-loop limits) against the float64 reference, on ragged lengths, ties, computed keys and
 * both index layouts of scatterAdd.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler/codegen/compile.ts';
import { DIRECT_SCATTER_MAX_LEN, RANK_SORT_MAX_LEN } from '../../compiler/codegen/sort-kernels.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { expectMatchesReference, openRunners, values } from './support.ts';

let runners: CompiledRunner[] = [];
beforeAll(async () => {
  runners = await openRunners();
});
afterAll(() => runners.forEach((r) => r.destroy()));

const longRow = fc.integer({ min: RANK_SORT_MAX_LEN + 1, max: 300 });
const small = fc.integer({ min: 1, max: 3 });

function ints(n: number, seed: number, range: number): Int32Array {
  let s = seed | 0 || 1;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    return ((s >>> 8) & 0xffff) % range;
  });
}

describe('merge-pass argsort', () => {
  it('is the stable argsort along any axis, with ties and a computed key', async () => {
    await fc.assert(
      fc.asyncProperty(small, longRow, small, fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 1000 }), async (outer, len, inner, range, seed) => {
        const g = new Graph();
        const s = [outer, len, inner];
        const k = g.input('k', s, 'i32');
        // a fused key expression (negated keys), as LSH sorts L·bucket + position
        const negated = P.binary('mul', k, P.broadcastTo(P.constant(g, -1, [], 'i32'), s));
        g.outputs = [P.argsort(k, 1).id, P.argsort(negated, 1).id];
        const kernels = compile(g).kernels.map((x) => x.name);
        expect(kernels.filter((n) => n.includes('.pass')).length).toBe(2 * Math.ceil(Math.log2(len)));
        const feeds = { k: hostTensor(s, ints(outer * len * inner, seed, range), 'i32') };
        for (const r of runners) await expectMatchesReference(r, g, feeds);
      }),
      { numRuns: 10 },
    );
  });

  it('sorts a reversed row and inverts a permutation (argsort of argsort)', async () => {
    const len = 257;
    const g = new Graph();
    const k = g.input('k', [2, len], 'i32');
    const order = P.argsort(k, 1);
    g.outputs = [order.id, P.argsort(order, 1).id];
    const data = Int32Array.from({ length: 2 * len }, (_, i) => (i < len ? len - i : (i * 37) % 11));
    for (const r of runners) await expectMatchesReference(r, g, { k: hostTensor([2, len], data, 'i32') });
  });
});

describe('sort-based scatterAdd', () => {
  it('sums repeated targets in source order; empty targets are zero (index over the whole shape)', async () => {
    await fc.assert(
      fc.asyncProperty(
        small,
        fc.integer({ min: DIRECT_SCATTER_MAX_LEN + 1, max: 200 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 1000 }),
        async (outer, lenIn, lenOut, inner, seed) => {
          const g = new Graph();
          const feeds: Record<string, HostTensor> = {};
          const s = [outer, lenIn, inner];
          const n = outer * lenIn * inner;
          feeds.u = hostTensor(s, values(n, seed));
          feeds.i = hostTensor(s, ints(n, seed + 1, lenOut), 'i32');
          const u = g.input('u', s);
          const y = P.scatterAdd(P.unary('exp', u), g.input('i', s, 'i32'), 1, lenOut);
          g.outputs = [y.id];
          expect(compile(g).kernels.some((k) => k.name.endsWith('.starts'))).toBe(true);
          for (const r of runners) await expectMatchesReference(r, g, feeds);
        },
      ),
      { numRuns: 10 },
    );
  });

  it('scatters whole rows by a broadcast index (the take-along gradient), shared or per-row index', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 2 }),
        fc.integer({ min: DIRECT_SCATTER_MAX_LEN + 1, max: 150 }),
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 9 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 1000 }),
        async (outerShape, lenIn, lenOut, inner, shareOuter, seed) => {
          const g = new Graph();
          const axis = outerShape.length;
          const us = [...outerShape, lenIn, inner];
          const ixShape = [...outerShape.map((d) => (shareOuter ? 1 : d)), lenIn, 1];
          const feeds: Record<string, HostTensor> = {
            u: hostTensor(us, values(us.reduce((a, b) => a * b, 1), seed)),
            ix: hostTensor(ixShape, ints(ixShape.reduce((a, b) => a * b, 1), seed + 3, lenOut), 'i32'),
          };
          const ix = P.broadcastTo(g.input('ix', ixShape, 'i32'), us);
          const y = P.scatterAdd(g.input('u', us), ix, axis, lenOut);
          g.outputs = [y.id];
          // only the small index is sorted
          const order = compile(g).kernels.find((k) => k.output.endsWith('.order'))!;
          expect(order.size).toBe(ixShape.reduce((a, b) => a * b, 1));
          for (const r of runners) await expectMatchesReference(r, g, feeds);
        },
      ),
      { numRuns: 10 },
    );
  });
});
