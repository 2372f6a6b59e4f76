/**
 * Kernels launched 2-D: matmul groups ([cols, rows], row on thread.y) with odd widths and depths
 * (the unrolled k loop's straight-line tail), batches, transposed operands folded into the dot
 * product, epilogues that reshape the product, and the plan rule that writes gather-heavy
 * operands to a buffer once; scatterAdd by a row-broadcast index ([inner, outer * len]).
 * Checked against the float64 reference after a poisoned run (support.ts), and as host-run sources.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler/codegen/compile.ts';
import { MATMUL_UNROLL } from '../../compiler/codegen/matmul-emit.ts';
import { planKernels } from '../../compiler/fuse/plan.ts';
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

function f32(g: Graph, feeds: Record<string, HostTensor>, name: string, s: number[], seed: number) {
  feeds[name] = hostTensor(s, values(s.reduce((a, b) => a * b, 1), seed));
  return g.input(name, s);
}

describe('2-D matmul launches', () => {
  it('n a multiple of 4, odd m and k (unroll tail), batched, with bias epilogue and transposed operands', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 4 }).map((q) => 4 * q),
        fc.integer({ min: 1, max: 2 * MATMUL_UNROLL + 3 }),
        fc.integer({ min: 1, max: 1000 }),
        async (bt, m, n, k, seed) => {
          const g = new Graph();
          const feeds: Record<string, HostTensor> = {};
          const a = f32(g, feeds, 'a', [bt, m, k], seed);
          const w = f32(g, feeds, 'w', [k, n], seed + 1);
          const wt = f32(g, feeds, 'wt', [n, k], seed + 2);
          const bias = f32(g, feeds, 'bias', [n], seed + 3);
          const plain = P.matmul(a, P.broadcastTo(w, [bt, k, n]));
          const epi = P.unary('tanh', P.binary('add', P.matmul(a, P.broadcastTo(P.transpose(wt, [1, 0]), [bt, k, n])), P.broadcastTo(bias, [bt, m, n])));
          const at = P.matmul(P.transpose(a, [0, 2, 1]), plain); // [bt, k, n]
          // the product feeds a reshape, so the root's shape differs from the matmul's
          const flat = P.reshape(P.binary('mul', plain, plain), [bt * m * n]);
          g.outputs = [plain.id, epi.id, at.id, flat.id];
          const c = compile(g);
          const grid = c.kernels.filter((kk) => kk.dims.length === 2);
          expect(grid.length).toBeGreaterThan(0);
          for (const kk of c.kernels) expect(kk.dims.reduce((x, y) => x * y, 1)).toBe(kk.size);
          for (const r of runners) await expectMatchesReference(r, g, feeds);
        },
      ),
      { numRuns: 12 },
    );
  });

  it('widths that are not a multiple of 4 stay 1-D; grid: false keeps every kernel 1-D', () => {
    const g = new Graph();
    const a = g.input('a', [5, 6]);
    g.outputs = [P.matmul(a, g.input('w', [6, 3])).id, P.matmul(a, g.input('v', [6, 8])).id, P.matmul(a, g.input('u', [6, 10])).id];
    expect(compile(g).kernels.map((k) => k.dims)).toEqual([[15], [8, 5], [50]]);
    expect(compile(g, g.outputs, { grid: false }).kernels.map((k) => k.dims)).toEqual([[15], [40], [50]]);
  });

  it('a gathered matmul operand is written once; a transposed one folds into the dot product', async () => {
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const x = f32(g, feeds, 'x', [7, 5], 1);
    // rows 3, 0, 6, 6, 1, 2 of x (repeated), one index per element
    feeds.idx = { shape: [6, 5], dtype: 'i32', data: Int32Array.from([3, 0, 6, 6, 1, 2].flatMap((r) => [r, r, r, r, r])) };
    const idx = g.input('idx', [6, 5], 'i32');
    const rows = P.gather(x, idx, 0); // [6, 5]
    const w = f32(g, feeds, 'w', [9, 5], 2);
    const y = P.matmul(P.transpose(P.concat([rows, rows], 1), [1, 0]), rows); // [10, 5]
    const z = P.matmul(rows, P.transpose(w, [1, 0])); // [6, 9]
    g.outputs = [y.id, z.id];
    const plan = planKernels(g);
    const kinds = plan.groups.map((k) => k.kind);
    expect(kinds.filter((k) => k === 'matmul')).toHaveLength(2);
    // the gather feeding the matmuls is its own kernel; w's transpose is not
    expect(plan.groups.some((k) => k.kind === 'elementwise' && g.node(k.root).op === 'gather')).toBe(true);
    expect(plan.groups.some((k) => g.node(k.root).op === 'transpose' && g.node(k.root).shape[0] === 5)).toBe(false);
    for (const r of runners) await expectMatchesReference(r, g, feeds);
  });

  it('scatterAdd of whole rows by a broadcast index (repeats, empty targets, any outer shape)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 2 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 2 }).map((q) => 4 * q),
        fc.boolean(),
        fc.integer({ min: 1, max: 1000 }),
        async (outerShape, lenIn, lenOut, inner, shareOuter, seed) => {
          const g = new Graph();
          const feeds: Record<string, HostTensor> = {};
          const axis = outerShape.length;
          const upd = f32(g, feeds, 'u', [...outerShape, lenIn, inner], seed);
          // the index is shared across the outer axes when shareOuter (a size-1 broadcast there too)
          const ixShape = [...outerShape.map((d) => (shareOuter ? 1 : d)), lenIn, 1];
          const count = ixShape.reduce((a, b) => a * b, 1);
          feeds.ix = { shape: ixShape, dtype: 'i32', data: Int32Array.from({ length: count }, (_, i) => (i * 7 + seed) % lenOut) };
          // a computed index (materialised at its small size, before the broadcast)
          const raw = g.input('ix', ixShape, 'i32');
          const shifted = P.binary('mod', P.binary('add', raw, P.broadcastTo(P.constant(g, 1, [], 'i32'), ixShape)), P.broadcastTo(P.constant(g, lenOut, [], 'i32'), ixShape));
          const ix = P.broadcastTo(shifted, [...outerShape, lenIn, inner]);
          const y = P.scatterAdd(upd, ix, axis, lenOut);
          g.outputs = [P.binary('mul', y, y).id, y.id];
          const plan = planKernels(g);
          expect(plan.buffers.get(shifted.id)).toBe('kernel');
          expect(plan.buffers.has(ix.id)).toBe(false);
          expect(compile(g).kernels.find((k) => k.output === `%${y.id}`)!.dims).toEqual([inner, (y.shape.reduce((a, b) => a * b, 1)) / inner]);
          for (const r of runners) await expectMatchesReference(r, g, feeds);
        },
      ),
      { numRuns: 12 },
    );
  });
});
