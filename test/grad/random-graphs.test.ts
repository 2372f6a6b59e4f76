/**
 * Random small models built from the combinators and layers (test/grad/random-models.ts), traced to
 * IR, reduced to a scalar and differentiated: the gradients of every parameter and every input must
 * equal central finite differences in float64.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkLayerGradients } from './check.ts';
import { build, model, modelCases, type Desc } from './random-models.ts';

describe('random layer graphs: gradients equal finite differences', () => {
  for (const mode of ['eval', 'train'] as const) {
    it(`params and inputs, ${mode} mode${mode === 'train' ? ' (seeded dropout)' : ''}`, () => {
      fc.assert(
        fc.property(modelCases, ({ a, b, top, lead, d, seed }) => {
          const { layer, nIn } = model(top, a, b, d);
          const shape = [...lead, d];
          const checked = checkLayerGradients(layer, Array.from({ length: nIn }, () => shape), { mode, seed, rtol: 1e-5, atol: 1e-6 });
          expect(checked.filter((n) => n.startsWith('input'))).toHaveLength(nIn);
        }),
        { numRuns: 60 },
      );
    });
  }

  it('a deep fixed model with every combinator', () => {
    const x: Desc = {
      k: 'serial',
      xs: [
        { k: 'dense' },
        { k: 'residual', body: { k: 'serial', xs: [{ k: 'layerNorm' }, { k: 'act', name: 'gelu' }, { k: 'dense' }] } },
        { k: 'branch', a: { k: 'dropout' }, b: { k: 'act', name: 'tanh' }, combine: 'concat' },
        { k: 'swap', a: { k: 'dense' }, b: { k: 'halfSquare' } },
        { k: 'select', a: { k: 'act', name: 'relu' }, b: { k: 'dense' } },
        { k: 'parallel', a: { k: 'dense' }, b: { k: 'layerNorm' } },
      ],
    };
    const checked = checkLayerGradients(build(x, 4), [[2, 3, 4]], { mode: 'train', seed: 17, rtol: 1e-5, atol: 1e-6 });
    expect(checked.length).toBeGreaterThan(10);
  });
});
