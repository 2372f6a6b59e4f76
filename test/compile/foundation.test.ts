/**
 * The foundation's graphs on the compiled path: the random combinator/layer models of the gradient
 * tests (test/grad/random-models.ts), their forward values and the grad() graph of a weighted loss
 * w.r.t. every parameter and input, run through gpu.js (every backend here, and the wide-index
 * path) against the float64 reference evaluator.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { grad } from '../../compiler/grad/grad.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { InitKey, flattenParams, spec, trace } from '../../dsl/index.ts';
import type { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { rng, uniform, weightedLoss } from '../grad/check.ts';
import { model, modelCases } from '../grad/random-models.ts';
import { expectMatchesReference, openRunners } from './support.ts';

let runners: CompiledRunner[] = [];
beforeAll(async () => {
  runners = await openRunners();
});
afterAll(() => runners.forEach((r) => r.destroy()));

describe('foundation graphs compiled', () => {
  for (const mode of ['eval', 'train'] as const) {
    it(`random layer models: forward and gradient graphs equal the reference, ${mode} mode`, async () => {
      await fc.assert(
        fc.asyncProperty(modelCases, async ({ a, b, top, lead, d, seed }) => {
          const { layer, nIn } = model(top, a, b, d);
          const shapes = Array.from({ length: nIn }, () => [...lead, d]);
          const r = rng(seed);
          const params = layer.init(new InitKey(seed), shapes.map((s) => spec(s)));
          const t = trace(layer, params, shapes.map((shape) => ({ shape })), { mode });
          const feeds: Record<string, HostTensor> = {};
          for (const [path, p] of flattenParams(params)) {
            const data = p.dtype === 'f32' ? Array.from(p.data, (v) => v + 0.3 * (2 * r() - 1)) : p.data;
            feeds[path ? `params.${path}` : 'params'] = hostTensor(p.shape, data, p.dtype);
          }
          shapes.forEach((s, i) => (feeds[`input${i}`] = uniform(r, s, -1.5, 1.5)));
          if (t.graph.inputNodes().some((n) => n.name === 'seed')) feeds.seed = hostTensor([], [(seed * 7919) % 2 ** 23], 'i32'); // seeds travel as float32: below 2^24
          const loss = t.outputs.map((o) => weightedLoss(o, r)).reduce((x, y) => P.binary('add', x, y));
          const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data');
          const g = grad(t.graph, loss.id, wrt.map((n) => n.id));
          const wanted = [...t.outputs.map((o) => o.id), ...g.graph.outputs];
          // float32 kernels against float64 through several layers (LayerNorm, products of branches)
          for (const runner of runners) await expectMatchesReference(runner, g.graph, feeds, wanted, { rtol: 2e-3, atol: 2e-4 });
        }),
        { numRuns: 12 },
      );
    });
  }
});
