/**
 * Memory of the segmented executor (graphs with packed products between gpu.js pipelines): the
 * native products share one arena, and pipelines built per run (one segment's wasm memory alive at
 * a time) compute what retained pipelines and the float64 reference compute, run after run.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWasmMatmul, WasmMatmulArena, wasmSimdSupported, type WasmMatmulShape } from '../../compiler/codegen/wasm-matmul.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { availableBackends, expectMatchesReference, values } from '../compile/support.ts';
import { shapeOf } from '../support/wasm-shape.ts';

/** C = A·B for row-major [batch][m][k] and [batch][k][n], as [batch][mPad][nPad]. */
function naiveProduct(a: Float32Array, b: Float32Array, s: WasmMatmulShape): Float32Array {
  const c = new Float32Array(s.batch * s.mPad * s.nPad);
  for (let z = 0; z < s.batch; z++)
    for (let i = 0; i < s.m; i++)
      for (let j = 0; j < s.n; j++) {
        let acc = 0;
        for (let kk = 0; kk < s.k; kk++) acc += a[(z * s.m + i) * s.k + kk]! * b[(z * s.k + kk) * s.n + j]!;
        c[(z * s.mPad + i) * s.nPad + j] = acc;
      }
  return c;
}


describe.runIf(wasmSimdSupported())('wasm product arena', () => {
  it('products of any shapes share one arena, as large as the largest, and pad with zeros whatever an earlier product left', () => {
    const arena = new WasmMatmulArena();
    const small = arena.bytes;
    // 80 KB of operands and result: more than the arena's first 64 KiB page
    const big = shapeOf(2, 64, 40, 72);
    // NaN operands leave NaN all over the arena: a ragged product after them must still pad with 0
    createWasmMatmul(big, arena)(new Float32Array(2 * 64 * 40).fill(NaN), new Float32Array(2 * 40 * 72).fill(NaN));
    const afterBig = arena.bytes;
    expect(afterBig).toBeGreaterThan(small);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 11 }), fc.integer({ min: 1, max: 99 }), (batch, m, k, n, seed) => {
        const s = shapeOf(batch, m, k, n);
        const a = Float32Array.from(values(batch * m * k, seed));
        const b = Float32Array.from(values(batch * k * n, seed + 1));
        const got = createWasmMatmul(s, arena)(a, b);
        const want = naiveProduct(a, b, s);
        expect(got.length).toBe(want.length);
        got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 4));
      }),
      { numRuns: 40 },
    );
    expect(arena.bytes).toBe(afterBig);
  });
});

let perRun: CompiledRunner | undefined;
let retained: CompiledRunner | undefined;
beforeAll(async () => {
  if (!(await availableBackends()).includes('webasm')) return;
  perRun = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm', pipelineMemory: 'per-run' });
  retained = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm', pipelineMemory: 'retained' });
});
afterAll(() => [perRun, retained].forEach((r) => r?.destroy()));

function f32(g: Graph, feeds: Record<string, HostTensor>, name: string, s: number[], seed: number) {
  feeds[name] = hostTensor(s, values(s.reduce((a, b) => a * b, 1), seed));
  return g.input(name, s);
}

/** Two dense layers with a residual and a tanh between products: five pipeline segments around four products. */
function denseChain(bt: number, m: number, k: number, n: number, seed: number) {
  const g = new Graph();
  const feeds: Record<string, HostTensor> = {};
  const x = f32(g, feeds, 'x', [bt, m, k], seed);
  const w1 = f32(g, feeds, 'w1', [bt, k, n], seed + 1);
  const w2 = f32(g, feeds, 'w2', [bt, n, k], seed + 2);
  const h = P.unary('tanh', P.binary('add', P.matmul(x, w1), P.constant(g, 0.25)));
  const y = P.binary('add', P.matmul(h, w2), x);
  const gram = P.matmul(P.transpose(y, [0, 2, 1]), y);
  g.outputs = [y.id, P.unary('exp', P.binary('mul', gram, P.constant(g, 0.01))).id];
  return { g, feeds };
}

describe.runIf(wasmSimdSupported())('pipelines built per run', () => {
  it('compute what retained pipelines and the reference compute, on every run', async () => {
    if (perRun === undefined || retained === undefined) return expect.fail('webasm is not available here');
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 500 }), async (bt, m, k, n, seed) => {
        const { g, feeds } = denseChain(bt, m, k, n, seed);
        // expectMatchesReference runs twice (a NaN-poisoned run first): the second run rebuilds every pipeline
        await expectMatchesReference(perRun!, g, feeds);
        expect(perRun!.stats.executor).toBe('segmented');
        expect(perRun!.stats.pipelineMemory.mode).toBe('per-run');
        expect(perRun!.stats.segments.pipelines).toBeGreaterThan(1);
        expect(perRun!.description).toContain('pipelines built per run');
        const [a, b] = [await perRun!.run(g, feeds), await retained!.run(g, feeds)];
        expect(retained!.stats.pipelineMemory.mode).toBe('retained');
        a.forEach((t, i) => expect(Array.from(t.data)).toEqual(Array.from(b[i]!.data)));
      }),
      { numRuns: 8 },
    );
  });

  it("'auto' keeps a small graph's pipelines and reports what they hold", async () => {
    if (!(await availableBackends()).includes('webasm')) return expect.fail('webasm is not available here');
    const auto = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm' });
    try {
      const { g, feeds } = denseChain(2, 8, 6, 10, 3);
      await expectMatchesReference(auto, g, feeds);
      const { mode, retainedBytes } = auto.stats.pipelineMemory;
      expect(mode).toBe('retained');
      // at least the two inputs and the two outputs of the first and last segments
      expect(retainedBytes).toBeGreaterThanOrEqual(4 * (2 * 8 * 6 + 2 * 6 * 10 + 2 * 8 * 6 + 2 * 6 * 6));
      expect(auto.description).not.toContain('per run');
    } finally {
      auto.destroy();
    }
  });
});
