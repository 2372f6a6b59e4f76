/**
 * GLU is built only from DSL pieces; these tests show it needs nothing from the compiler: it
 * traces to existing primitives, evaluates, and its gradients are right.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor } from '../../compiler/ir/host-tensor.ts';
import { OptionError } from '../../compiler/ir/graph.ts';
import { GLU, InitKey, Residual, LayerNorm, spec, trace, flattenParams } from '../../dsl/index.ts';
import { checkLayerGradients } from '../grad/check.ts';

describe('GLU feed-forward', () => {
  it('computes Dense2(a · sigmoid(b)) with [a, b] = Dense1(x)', () => {
    const layer = GLU(3);
    const params = layer.init(new InitKey(5), [spec([2, 4])]);
    const t = trace(layer, params, [{ shape: [2, 4] }]);
    expect(t.outputs[0]!.shape).toEqual([2, 4]);
    const p = Object.fromEntries(flattenParams(params).map(([k, v]) => [k, Array.from(v.data)]));
    expect(Object.keys(p).sort()).toEqual(['0.b', '0.w', '2.b', '2.w']);
    const x = [0.3, -0.7, 1.1, 0.05, -1.2, 0.4, 0.9, -0.1];
    const feeds: Record<string, ReturnType<typeof hostTensor>> = { input0: hostTensor([2, 4], x) };
    for (const [k, v] of flattenParams(params)) feeds[`params.${k}`] = hostTensor(v.shape, v.data);
    const [y] = evaluate(t.graph, feeds);
    // Hand computation in plain JavaScript.
    const expected: number[] = [];
    for (let row = 0; row < 2; row++) {
      const h = Array.from({ length: 6 }, (_, j) => p['0.b']![j]! + [0, 1, 2, 3].reduce((s, i) => s + x[row * 4 + i]! * p['0.w']![i * 6 + j]!, 0));
      const gated = [0, 1, 2].map((j) => h[j]! / (1 + Math.exp(-h[j + 3]!)));
      for (let o = 0; o < 4; o++) expected.push(p['2.b']![o]! + gated.reduce((s, v, j) => s + v * p['2.w']![j * 4 + o]!, 0));
    }
    Array.from(y!.data).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 12));
  });

  it('gradients of parameters and inputs equal finite differences', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 2 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5 }),
        fc.nat(1000),
        (lead, dModel, dFF, seed) => {
          const checked = checkLayerGradients(GLU(dFF), [[...lead, dModel]], { seed: seed + 1 });
          expect(checked).toContain('input0');
          expect(checked.filter((n) => n.startsWith('params.'))).toHaveLength(4);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('composes with other layers (pre-norm residual block)', () => {
    checkLayerGradients(Residual(LayerNorm(), GLU(5)), [[3, 4]], { seed: 9 });
  });

  it('rejects a non-positive hidden width, naming the option', () => {
    expect(() => GLU(0)).toThrow(OptionError);
    expect(() => GLU(-2)).toThrow(/GLU: option 'dFF' must be a positive integer, got -2/);
  });

  it('layer paths of its nodes start with GLU', () => {
    const layer = GLU(2);
    const t = trace(layer, layer.init(new InitKey(1), [spec([1, 3])]), [{ shape: [1, 3] }]);
    const scopes = new Set(t.graph.nodes.filter((n) => n.op !== 'input').map((n) => n.scope));
    expect([...scopes].sort()).toEqual(['GLU.Serial[0].Dense', 'GLU.Serial[1].Gate', 'GLU.Serial[2].Dense']);
  });
});
