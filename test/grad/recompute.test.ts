/**
 * Recompute regions (`Graph.recompute`, the `Recompute` combinator): the gradient graph replays a
 * region's forward nodes after the region's consumers are differentiated and reads only the
 * replayed values, so the forward intermediates are dead once the region's outputs exist. The
 * gradients must be exactly those of the same model without the region.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Dense, InitKey, Recompute, Serial, flattenParams, spec, trace, type Layer } from '../../dsl/index.ts';
import { grad } from '../../compiler/grad/grad.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { isDataFree, operands, type NodeId } from '../../compiler/ir/types.ts';
import { liveNodes } from '../../compiler/ir/graph.ts';
import { checkLayerGradients, rng, uniform, weightedLoss } from './check.ts';
import { build, modelCases } from './random-models.ts';

/**
 * Gradients (loss first) of `layer` w.r.t. every parameter and input, in train mode; with
 * `keepRegions: false` the same traced graph is differentiated with its regions dropped.
 */
function gradients(layer: Layer, shape: number[], seed: number, keepRegions = true) {
  const params = layer.init(new InitKey(seed), [spec(shape)]);
  const t = trace(layer, params, [{ shape }], { mode: 'train' });
  if (!keepRegions) t.graph.recomputeRegions.length = 0;
  const loss = weightedLoss(t.outputs[0]!, rng(seed));
  const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data');
  const g = grad(t.graph, loss.id, wrt.map((n) => n.id));
  const feeds: Record<string, HostTensor> = { input0: uniform(rng(seed + 1), shape, -1.5, 1.5), seed: hostTensor([], [seed * 31], 'i32') };
  for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
  for (const k of Object.keys(feeds)) if (!g.graph.inputNodes().some((n) => n.name === k)) delete feeds[k];
  return { graph: g.graph, forwardCount: t.graph.nodes.length, values: evaluate(g.graph, feeds).map((v) => Array.from(v.data)) };
}

describe('Recompute regions', () => {
  it('give exactly the gradients of the plain model, on random models with dropout', () => {
    fc.assert(
      fc.property(modelCases, ({ a, b, lead, d, seed }) => {
        const shape = [...lead, d];
        const layer = Serial(Recompute(build(a, d)), build(b, d));
        const remat = gradients(layer, shape, seed);
        expect(remat.graph.nodes.length).toBeGreaterThan(gradients(layer, shape, seed, false).graph.nodes.length);
        expect(remat.values).toEqual(gradients(layer, shape, seed, false).values);
      }),
      { numRuns: 40 },
    );
  });

  it('the backward reads a region only through its outputs and data-free draws (its internal values die after the forward)', () => {
    fc.assert(
      fc.property(modelCases, ({ a, lead, d, seed }) => {
        const shape = [...lead, d];
        const { graph, forwardCount } = gradients(Serial(Dense(d), Recompute(build(a, d)), Dense(d)), shape, seed);
        const region = graph.recomputeRegions[0]!;
        const inRegion = (id: NodeId) => id >= region.start && id < region.end;
        const live = liveNodes(graph, graph.outputs);
        const readFromOutside = new Set<NodeId>();
        for (const n of graph.nodes.slice(0, forwardCount)) if (!inRegion(n.id)) for (const o of operands(n)) if (inRegion(o)) readFromOutside.add(o);
        for (const n of graph.nodes.slice(forwardCount)) {
          if (!live.has(n.id)) continue;
          // Data-free nodes (random draws, constants) are read where they are: replaying them is a copy.
          for (const o of operands(n)) if (inRegion(o) && graph.node(o).op !== 'input' && !isDataFree(graph.node(o))) expect(readFromOutside.has(o)).toBe(true);
        }
      }),
      { numRuns: 30 },
    );
  });

  it('gradients through a region equal finite differences', () => {
    fc.assert(
      fc.property(modelCases, ({ a, lead, d, seed }) => {
        const checked = checkLayerGradients(Serial(Dense(d), Recompute(build(a, d))), [[...lead, d]], { mode: 'train', seed, rtol: 1e-5, atol: 1e-6 });
        expect(checked).toContain('input0');
      }),
      { numRuns: 20 },
    );
  });

  it('regions do not nest, and print with the graph', () => {
    const layer = Recompute(Dense(3), Recompute(Dense(3)));
    const params = layer.init(new InitKey(1), [spec([2, 3])]);
    const t = trace(layer, params, [{ shape: [2, 3] }]);
    expect(t.graph.recomputeRegions).toHaveLength(1);
    expect(t.graph.toString()).toMatch(/recompute %\d+…%\d+ {2}# Recompute/);
  });
});
