/**
 * Graphs built from DSL layers — an MLP with LayerNorm and cross-entropy, its forward graph and
 * its grad() graph — run compiled and equal the float64 reference.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grad } from '../../compiler/grad/grad.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { CrossEntropyLoss, Dense, InitKey, LayerNorm, Relu, Serial, flattenParams, spec, trace } from '../../dsl/index.ts';
import { softmax } from '../../dsl/ops.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import type { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { expectMatchesReference, openRunners, values } from './support.ts';

let runners: CompiledRunner[] = [];
beforeAll(async () => {
  runners = await openRunners();
});
afterAll(() => runners.forEach((r) => r.destroy()));

function mlp(batch: number, width: number, classes: number) {
  const model = Serial(Dense(13), LayerNorm(), Relu(), Dense(classes), CrossEntropyLoss());
  const params = model.init(new InitKey(3), [spec([batch, width]), spec([batch], 'i32')]);
  const t = trace(model, params, [{ shape: [batch, width] }, { shape: [batch], dtype: 'i32' }]);
  const feeds: Record<string, HostTensor> = {
    input0: hostTensor([batch, width], values(batch * width, 17)),
    input1: hostTensor([batch], Array.from({ length: batch }, (_, i) => (i * 5) % classes), 'i32'),
  };
  for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = hostTensor(p.shape, p.data);
  return { t, feeds };
}

describe('DSL layer graphs compiled', () => {
  it('MLP forward (Dense, LayerNorm, Relu, Dense, CrossEntropy) equals the reference', async () => {
    const { t, feeds } = mlp(11, 9, 5);
    for (const r of runners) await expectMatchesReference(r, t.graph, feeds);
  });

  it('the grad() graph of the MLP equals the reference', async () => {
    const { t, feeds } = mlp(11, 9, 5);
    const paramIds = t.graph.inputNodes().filter((n) => n.role === 'param').map((n) => n.id);
    const g = grad(t.graph, t.outputs[0]!.id, paramIds);
    for (const r of runners) {
      await expectMatchesReference(r, g.graph, feeds);
      expect(r.stats.kernels).toBeGreaterThan(5);
    }
  });

  it('a softmax over 4096+ elements runs as one resident pipeline and reports its stats', async () => {
    const g = new Graph();
    const x = g.input('x', [37, 131]);
    g.outputs = [softmax(x, -1).id];
    const feeds = { x: hostTensor([37, 131], values(37 * 131, 5, 0.1, 4)) };
    for (const r of runners) {
      await expectMatchesReference(r, g, feeds);
      const s = r.stats;
      expect(s.kernels).toBe(3);
      expect(s.peakBytes).toBeGreaterThan(s.hostBytes);
      expect(r.description).toMatch(r.backend.name === 'webasm' ? /^gpu\.js webasm \(fused-threaded\)( \[wide indices\]| \[matmul wasm\])?( \[wasm matmul \d threads?(: [^\]]+)?\])?$/ : /^gpu\.js cpu \(generic\)$/);
    }
  });
});
