/**
 * Random small models built from the combinators and layers, traced to IR, reduced to a scalar and
 * differentiated: the gradients of every parameter and every input must equal central finite
 * differences in float64. Models are generated as plain descriptions first, so a failing case
 * prints readably and shrinks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Branch,
  Dense,
  Dropout,
  Dup,
  Fn,
  LayerNorm,
  Parallel,
  Residual,
  Select,
  Serial,
  Swap,
  activation,
  ops,
  type Layer,
} from '../../dsl/index.ts';
import { checkLayerGradients } from './check.ts';

/** A model description whose layer maps width d to width d, one tensor to one tensor. */
type Desc =
  | { readonly k: 'dense' | 'layerNorm' | 'dropout' | 'halfSquare' }
  | { readonly k: 'act'; readonly name: 'relu' | 'gelu' | 'tanh' }
  | { readonly k: 'serial'; readonly xs: readonly Desc[] }
  | { readonly k: 'residual'; readonly body: Desc }
  | { readonly k: 'branch'; readonly a: Desc; readonly b: Desc; readonly combine: 'add' | 'mul' | 'concat' }
  | { readonly k: 'parallel' | 'swap' | 'select'; readonly a: Desc; readonly b: Desc };

const leaf: fc.Arbitrary<Desc> = fc.oneof(
  fc.constantFrom<Desc>({ k: 'dense' }, { k: 'layerNorm' }, { k: 'dropout' }, { k: 'halfSquare' }),
  fc.constantFrom('relu', 'gelu', 'tanh').map((name): Desc => ({ k: 'act', name })),
);

function desc(depth: number): fc.Arbitrary<Desc> {
  if (depth === 0) return leaf;
  const sub = desc(depth - 1);
  return fc.oneof(
    { weight: 2, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(sub, { minLength: 1, maxLength: 3 }).map((xs): Desc => ({ k: 'serial', xs })) },
    { weight: 1, arbitrary: sub.map((body): Desc => ({ k: 'residual', body })) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(sub, sub, fc.constantFrom('add', 'mul', 'concat') as fc.Arbitrary<'add' | 'mul' | 'concat'>)
        .map(([a, b, combine]): Desc => ({ k: 'branch', a, b, combine })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(sub, sub, fc.constantFrom('parallel', 'swap', 'select') as fc.Arbitrary<'parallel' | 'swap' | 'select'>)
        .map(([a, b, k]): Desc => ({ k, a, b })),
    },
  );
}

const Add = () => Fn('Add', (a, b) => ops.add(a, b), 2);
const Mul = () => Fn('Mul', (a, b) => ops.mul(a, b), 2);

/** Builds the layer for a description, for inputs of last-axis width `d`. */
function build(x: Desc, d: number): Layer {
  switch (x.k) {
    case 'dense':
      return Dense(d);
    case 'layerNorm':
      // A larger epsilon keeps LayerNorm well conditioned when a Relu zeroes a whole row.
      return LayerNorm({ epsilon: 1e-3 });
    case 'dropout':
      return Dropout(0.3);
    case 'halfSquare':
      return Fn('HalfSquare', (t) => ops.mul(ops.square(t), 0.5));
    case 'act':
      return activation(x.name);
    case 'serial':
      return Serial(...x.xs.map((c) => build(c, d)));
    case 'residual':
      return Residual(build(x.body, d));
    case 'branch': {
      const both = Branch(build(x.a, d), build(x.b, d));
      if (x.combine === 'add') return Serial(both, Add());
      if (x.combine === 'mul') return Serial(both, Mul());
      return Serial(both, Fn('Concat', (a, b) => ops.concat([a, b], -1), 2), Dense(d));
    }
    case 'parallel':
      // [x] -> [x, x] -> [A(x), B(x)] -> A(x)·B(x)
      return Serial(Dup(), Parallel(build(x.a, d), build(x.b, d)), Mul());
    case 'swap':
      // [x] -> [x, x] -> [A(x), x] -> [x, A(x)] -> [B(x), A(x)] -> B(x) − A(x): order matters.
      return Serial(Dup(), build(x.a, d), Swap(), build(x.b, d), Fn('Sub', (p, q) => ops.sub(p, q), 2));
    case 'select':
      // [A(x), x] -> [x, A(x), x] -> x + B(A(x))·x, via Select copying a deeper entry.
      return Serial(
        Dup(),
        build(x.a, d),
        Select([1, 0, 1], 2),
        Parallel(Fn('Id', (t) => t), build(x.b, d), Fn('Id', (t) => t)),
        Fn('MulAdd', (p, q, r) => ops.add(p, ops.mul(q, r)), 3),
      );
  }
}

type Top = 'one' | 'twoInputs' | 'twoOutputs';

function model(top: Top, a: Desc, b: Desc, d: number): { layer: Layer; nIn: number } {
  if (top === 'twoInputs') return { layer: Serial(Parallel(build(a, d), build(b, d)), Add()), nIn: 2 };
  if (top === 'twoOutputs') return { layer: Branch(build(a, d), build(b, d)), nIn: 1 };
  return { layer: build(a, d), nIn: 1 };
}

describe('random layer graphs: gradients equal finite differences', () => {
  const cases = fc.record({
    a: desc(3),
    b: desc(2),
    top: fc.constantFrom<Top>('one', 'twoInputs', 'twoOutputs'),
    lead: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 2 }),
    d: fc.integer({ min: 1, max: 5 }),
    seed: fc.integer({ min: 1, max: 10_000 }),
  });

  for (const mode of ['eval', 'train'] as const) {
    it(`params and inputs, ${mode} mode${mode === 'train' ? ' (seeded dropout)' : ''}`, () => {
      fc.assert(
        fc.property(cases, ({ a, b, top, lead, d, seed }) => {
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
