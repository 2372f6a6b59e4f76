/**
 * Pipelines built per run run on the calling thread (a worker pool per pipeline would be spawned
 * per run); one that took at least `threadedSegmentMinMs` there gets its own pool from its next
 * run on. Values do not depend on where cells run.
 */
import { describe, expect, it } from 'vitest';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor } from '../../compiler/ir/host-tensor.ts';
import { CompiledRunner, THREADED_SEGMENT_MIN_MS } from '../../runtime/compiled-runner.ts';
import { availableBackends, expectMatchesReference, values } from '../compile/support.ts';

/** Cut into one pipeline per kernel (`maxPipelineBytes: 1`): a pack kernel below gpu.js's 4096 cells for a worker pool, the product and its epilogue above. */
function segmentedGraph() {
  const g = new Graph();
  const [m, k, n] = [64, 48, 256];
  const feeds = { a: hostTensor([m, k], values(m * k, 1)), b: hostTensor([k, n], values(k * n, 2)) };
  const a = P.unary('tanh', g.input('a', [m, k]));
  const y = P.binary('mul', P.matmul(a, g.input('b', [k, n])), P.constant(g, 0.5));
  g.outputs = [P.unary('exp', y).id];
  return { g, feeds };
}

describe('threaded per-run pipelines', () => {
  it('a pipeline that ran long enough on the calling thread is threaded from its next run on, with the same values', async () => {
    if (!(await availableBackends()).includes('webasm')) return expect.fail('webasm is not available here');
    expect(THREADED_SEGMENT_MIN_MS).toBeGreaterThan(0);
    const { g, feeds } = segmentedGraph();
    const eager = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm', pipelineMemory: 'per-run', maxPipelineBytes: 1, threadedSegmentMinMs: 0 });
    const never = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm', pipelineMemory: 'per-run', maxPipelineBytes: 1, threadedSegmentMinMs: Infinity });
    try {
      await expectMatchesReference(eager, g, feeds); // two runs: a poisoned one, then the checked one
      const kernels = eager.stats.kernels;
      expect(kernels).toBeGreaterThan(2);
      expect(eager.stats.segments).toEqual({ pipelines: kernels, standalone: 0, threaded: kernels - 1 });
      await expectMatchesReference(never, g, feeds);
      expect(never.stats.segments).toEqual({ pipelines: kernels, standalone: 0, threaded: 0 });
      const [threaded, unthreaded] = [await eager.run(g, feeds), await never.run(g, feeds)];
      expect(Array.from(threaded[0]!.data)).toEqual(Array.from(unthreaded[0]!.data));
    } finally {
      eager.destroy();
      never.destroy();
    }
  });

  it('with the default threshold, short per-run pipelines stay on the calling thread', async () => {
    if (!(await availableBackends()).includes('webasm')) return expect.fail('webasm is not available here');
    const { g, feeds } = segmentedGraph();
    const runner = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm', pipelineMemory: 'per-run', maxPipelineBytes: 1 });
    try {
      for (let i = 0; i < 3; i++) await runner.run(g, feeds);
      expect(runner.stats.segments).toEqual({ pipelines: runner.stats.kernels, standalone: 0, threaded: 0 });
    } finally {
      runner.destroy();
    }
  });
});
