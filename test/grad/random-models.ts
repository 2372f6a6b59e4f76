/**
 * Random small models built from the combinators and layers, as plain descriptions (so a failing
 * case prints readably and shrinks): shared by the finite-difference gradient test (test/grad) and
 * the compiled-path test (test/compile/foundation.test.ts).
 */
import fc from 'fast-check';
import {
  Branch,
  Dense,
  Dropout,
  Dup,
  Fn,
  LayerNorm,
  Parallel,
  Recompute,
  Residual,
  Select,
  Serial,
  Swap,
  activation,
  ops,
  type Layer,
} from '../../dsl/index.ts';

/** A model description whose layer maps width d to width d, one tensor to one tensor. */
export type Desc =
  | { readonly k: 'dense' | 'layerNorm' | 'dropout' | 'halfSquare' }
  | { readonly k: 'act'; readonly name: 'relu' | 'gelu' | 'tanh' }
  | { readonly k: 'serial'; readonly xs: readonly Desc[] }
  | { readonly k: 'residual' | 'recompute'; readonly body: Desc }
  | { readonly k: 'branch'; readonly a: Desc; readonly b: Desc; readonly combine: 'add' | 'mul' | 'concat' }
  | { readonly k: 'parallel' | 'swap' | 'select'; readonly a: Desc; readonly b: Desc };

const leaf: fc.Arbitrary<Desc> = fc.oneof(
  fc.constantFrom<Desc>({ k: 'dense' }, { k: 'layerNorm' }, { k: 'dropout' }, { k: 'halfSquare' }),
  fc.constantFrom('relu', 'gelu', 'tanh').map((name): Desc => ({ k: 'act', name })),
);

export function desc(depth: number): fc.Arbitrary<Desc> {
  if (depth === 0) return leaf;
  const sub = desc(depth - 1);
  return fc.oneof(
    { weight: 2, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(sub, { minLength: 1, maxLength: 3 }).map((xs): Desc => ({ k: 'serial', xs })) },
    { weight: 1, arbitrary: sub.map((body): Desc => ({ k: 'residual', body })) },
    { weight: 1, arbitrary: sub.map((body): Desc => ({ k: 'recompute', body })) },
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
export function build(x: Desc, d: number): Layer {
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
    case 'recompute':
      return Recompute(build(x.body, d));
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

export type Top = 'one' | 'twoInputs' | 'twoOutputs';

export function model(top: Top, a: Desc, b: Desc, d: number): { layer: Layer; nIn: number } {
  if (top === 'twoInputs') return { layer: Serial(Parallel(build(a, d), build(b, d)), Add()), nIn: 2 };
  if (top === 'twoOutputs') return { layer: Branch(build(a, d), build(b, d)), nIn: 1 };
  return { layer: build(a, d), nIn: 1 };
}

/** One random case: two sub-models, how they are wired, the leading shape, width and seed. */
export const modelCases = fc.record({
  a: desc(3),
  b: desc(2),
  top: fc.constantFrom<Top>('one', 'twoInputs', 'twoOutputs'),
  lead: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 2 }),
  d: fc.integer({ min: 1, max: 5 }),
  seed: fc.integer({ min: 1, max: 10_000 }),
});
