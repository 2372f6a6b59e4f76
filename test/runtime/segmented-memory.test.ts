/**
 * Pipelines cut by memory: a graph whose pipelines are built per run (one pipeline's wasm memory
 * alive at a time), or cut by `maxPipelineBytes`, computes what one retained pipeline and the
 * float64 reference compute, run after run.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmSimdSupported } from '../../compiler/codegen/wasm-matmul.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { availableBackends, expectMatchesReference, values } from '../compile/support.ts';

let perRun: CompiledRunner | undefined;
let retained: CompiledRunner | undefined;
beforeAll(async () => {
  if (!(await availableBackends()).includes('webasm')) return;
  // every kernel its own pipeline: the most cuts, the most host round trips
  perRun = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm', pipelineMemory: 'per-run', maxPipelineBytes: 1 });
  retained = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm', pipelineMemory: 'retained' });
});
afterAll(() => [perRun, retained].forEach((r) => r?.destroy()));

function f32(g: Graph, feeds: Record<string, HostTensor>, name: string, s: number[], seed: number) {
  feeds[name] = hostTensor(s, values(s.reduce((a, b) => a * b, 1), seed));
  return g.input(name, s);
}

/** Two dense layers with a residual and a tanh between products, then a Gram matrix of the result. */
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
        expect(perRun!.stats.pipelineMemory.mode).toBe('per-run');
        expect(perRun!.stats.segments.pipelines).toBe(perRun!.stats.kernels);
        expect(perRun!.stats.segments.standalone).toBe(0);
        expect(perRun!.description).toContain('pipelines built per run');
        const [a, b] = [await perRun!.run(g, feeds), await retained!.run(g, feeds)];
        expect(retained!.stats.pipelineMemory.mode).toBe('retained');
        expect(retained!.stats.segments.pipelines).toBe(1);
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
