import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/grad/grad.ts';
import { evaluate } from '../compiler/reference/evaluate.ts';
import { hostTensor } from '../compiler/ir/host-tensor.ts';
import { CrossEntropyLoss, Dense, InitKey, Relu, Serial, Branch, Parallel, trace, flattenParams, LayerNorm, spec } from '../dsl/index.ts';
import { finiteDifference, expectClose } from './support/numeric.ts';

describe('end to end on the reference evaluator', () => {
  it('MLP + cross-entropy: traced gradients equal finite differences', () => {
    const model = Serial(Dense(5), LayerNorm(), Relu(), Dense(3), CrossEntropyLoss());
    const params = model.init(new InitKey(1), [spec([4, 7]), spec([4], 'i32')]);
    const t = trace(model, params, [{ shape: [4, 7] }, { shape: [4], dtype: 'i32' }]);
    const paramIds = t.graph.inputNodes().filter((n) => n.role === 'param');
    const g = grad(t.graph, t.outputs[0]!.id, paramIds.map((n) => n.id));
    const feeds: Record<string, ReturnType<typeof hostTensor>> = {
      input0: hostTensor([4, 7], Array.from({ length: 28 }, (_, i) => Math.sin(i * 1.7))),
      input1: hostTensor([4], [0, 2, 1, 2], 'i32'),
    };
    for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = hostTensor(p.shape, p.data);
    const outs = evaluate(g.graph, feeds);
    paramIds.forEach((n, k) => {
      const fd = finiteDifference(t.graph, feeds, n.name, t.outputs[0]!.id);
      expectClose(outs[k + 1]!.data, fd, 1e-5, 1e-7, n.name);
    });
  });

  it('shape errors name the layer path and both shapes', () => {
    const model = Serial(Dense(5), Branch(Serial(Dense(3), Dense(4)), Dense(2)), Parallel(Dense(2), Dense(2)));
    const params = model.init(new InitKey(1), [spec([2, 6])]);
    // feeding a wrong width through the params of another shape
    expect(() => trace(model, params, [{ shape: [2, 7] }])).toThrow(/Serial\[0\]\.Dense: input \[2,7\] has last axis 7, weight \[6,5\]/);
  });
});
