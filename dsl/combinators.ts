/**
 * Combinators: layers made of layers, working on a data stack as in trax.
 *
 * @example
 * const block = Serial(Dense(64), Relu(), Dense(10));
 * const res = Residual(LayerNorm(), Dense(32));   // x + Dense(LayerNorm(x))
 */
import { OptionError, type Tensor } from '../compiler/ir/graph.ts';
import type { Shape } from '../compiler/ir/types.ts';
import * as ops from './ops.ts';
import {
  applyLayer,
  checkArity,
  childParams,
  initInPath,
  noParams,
  outputSpecs,
  type TensorSpec,
  type ApplyContext,
  type InitKey,
  type Layer,
  type Params,
  type SymbolicParams,
} from './layer.ts';

function withChildScope<T>(inputs: readonly Tensor[], name: string, i: number, fn: () => T): T {
  const g = inputs[0]?.graph;
  return g === undefined ? fn() : g.withScope(`${name}[${i}]`, fn);
}

/** A child's `init` as if at `Name[i]` on the layer path (see `initInPath`). */
const initInChildPath = <T>(name: string, i: number, fn: () => T): T => initInPath(`${name}[${i}]`, fn);

/** Stack arity of running `layers` in sequence: how deep it reads, and how it changes the stack. */
function serialArity(layers: readonly Layer[]): { nIn: number; nOut: number } {
  let depth = 0; // current stack height relative to the start
  let need = 0; // deepest read below the start
  for (const l of layers) {
    need = Math.max(need, l.nIn - depth);
    depth += l.nOut - l.nIn;
  }
  return { nIn: need, nOut: need + depth };
}

/** Runs layers one after another on a data stack. */
export function Serial(...layers: Layer[]): Layer {
  const { nIn, nOut } = serialArity(layers);
  const name = 'Serial';
  return {
    name,
    nIn,
    nOut,
    children: layers,
    init(key: InitKey, inputs: readonly TensorSpec[]): Params {
      checkArity({ name, nIn }, inputs.length);
      let stack = [...inputs];
      return layers.map((layer, i) =>
        initInChildPath(name, i, () => {
          const args = stack.slice(0, layer.nIn);
          const p = layer.init(key.split(i), args);
          stack = [...outputSpecs(layer, p, args), ...stack.slice(layer.nIn)];
          return p;
        }),
      );
    },
    apply(params: SymbolicParams, inputs: readonly Tensor[], ctx: ApplyContext): Tensor[] {
      let stack = [...inputs];
      layers.forEach((layer, i) => {
        const args = stack.slice(0, layer.nIn);
        const out = withChildScope(inputs, name, i, () => applyLayer(layer, childParams(params, i, name), args, ctx));
        stack = [...out, ...stack.slice(layer.nIn)];
      });
      return stack;
    },
  };
}

/** Runs each layer on copies of the same inputs and stacks their outputs: `Branch(F, G)(x) = [F(x), G(x)]`. */
export function Branch(...layers: Layer[]): Layer {
  const nIn = Math.max(0, ...layers.map((l) => l.nIn));
  const nOut = layers.reduce((s, l) => s + l.nOut, 0);
  const name = 'Branch';
  return {
    name,
    nIn,
    nOut,
    children: layers,
    init(key, inputs) {
      checkArity({ name, nIn }, inputs.length);
      return layers.map((l, i) => initInChildPath(name, i, () => l.init(key.split(i), inputs.slice(0, l.nIn))));
    },
    apply(params, inputs, ctx) {
      return layers.flatMap((l, i) =>
        withChildScope(inputs, name, i, () => applyLayer(l, childParams(params, i, name), inputs.slice(0, l.nIn), ctx)),
      );
    },
  };
}

/** Splits the stack among the layers: `Parallel(F, G)([x, y]) = [F(x), G(y)]`. */
export function Parallel(...layers: Layer[]): Layer {
  const nIn = layers.reduce((s, l) => s + l.nIn, 0);
  const nOut = layers.reduce((s, l) => s + l.nOut, 0);
  const name = 'Parallel';
  const starts = layers.map((_, i) => layers.slice(0, i).reduce((s, l) => s + l.nIn, 0));
  return {
    name,
    nIn,
    nOut,
    children: layers,
    init(key, inputs) {
      checkArity({ name, nIn }, inputs.length);
      return layers.map((l, i) => initInChildPath(name, i, () => l.init(key.split(i), inputs.slice(starts[i], starts[i]! + l.nIn))));
    },
    apply(params, inputs, ctx) {
      return layers.flatMap((l, i) =>
        withChildScope(inputs, name, i, () =>
          applyLayer(l, childParams(params, i, name), inputs.slice(starts[i], starts[i]! + l.nIn), ctx),
        ),
      );
    },
  };
}

/** `x + Serial(layers)(x)`; the body must keep the shape of its first input. */
export function Residual(...layers: Layer[]): Layer {
  const body = Serial(...layers);
  if (body.nIn > 1 || body.nOut !== Math.max(1, body.nIn)) {
    throw new OptionError(`Residual: body must map one tensor to one tensor, got ${body.nIn} → ${body.nOut}`);
  }
  const name = 'Residual';
  return {
    name,
    nIn: 1,
    nOut: 1,
    children: [body],
    init(key, inputs) {
      checkArity({ name, nIn: 1 }, inputs.length);
      return [initInChildPath(name, 0, () => body.init(key.split(0), inputs.slice(0, 1)))];
    },
    apply(params, inputs, ctx) {
      const x = inputs[0]!;
      const [y] = withChildScope(inputs, name, 0, () => applyLayer(body, childParams(params, 0, name), [x], ctx));
      if (y!.shape.length !== x.shape.length || y!.shape.some((d, i) => d !== x.shape[i])) {
        throw new ops.ShapeError(
          x.graph.scope ? `${x.graph.scope}.Residual` : 'Residual',
          `body output ${fmt(y!.shape)} does not match input ${fmt(x.shape)}`,
        );
      }
      return [ops.add(x, y!)];
    },
  };
}

/**
 * `Serial(layers)` whose intermediate values are not kept for the backward pass: gradients
 * recompute them from the inputs (jax.checkpoint / trax remat), trading one more forward of the
 * body for memory. Dropout and other seeded randomness replay identically.
 */
export function Recompute(...layers: Layer[]): Layer {
  const body = Serial(...layers);
  const name = 'Recompute';
  return {
    name,
    nIn: body.nIn,
    nOut: body.nOut,
    children: [body],
    init(key, inputs) {
      checkArity({ name, nIn: body.nIn }, inputs.length);
      return [initInChildPath(name, 0, () => body.init(key.split(0), inputs))];
    },
    apply(params, inputs, ctx) {
      const run = () => withChildScope(inputs, name, 0, () => applyLayer(body, childParams(params, 0, name), inputs, ctx));
      const g = inputs[0]?.graph;
      return g === undefined ? run() : g.recompute(g.scope ? `${g.scope}.${name}` : name, run);
    },
  };
}

const fmt = (s: Shape) => `[${s.join(',')}]`;

/** Reorders / copies stack entries: `Select([0, 0])` duplicates the top, `Select([1, 0])` swaps. */
export function Select(indices: readonly number[], nIn = Math.max(...indices) + 1): Layer {
  if (indices.some((i) => !Number.isInteger(i) || i < 0 || i >= nIn)) {
    throw new OptionError(`Select: indices [${indices.join(',')}] must be integers in [0, ${nIn})`);
  }
  return {
    name: 'Select',
    nIn,
    nOut: indices.length,
    init: () => noParams,
    apply: (_p, inputs) => indices.map((i) => inputs[i]!),
  };
}

export const Dup = (): Layer => ({ ...Select([0, 0], 1), name: 'Dup' });
export const Swap = (): Layer => ({ ...Select([1, 0], 2), name: 'Swap' });
/** Drops the top of the stack. */
export const Drop = (): Layer => ({ ...Select([], 1), name: 'Drop' });

/**
 * A parameter-free layer from a pure function of tensors written with the ops.
 *
 * @example
 * const Concat = Fn('Concat', (a, b) => [ops.concat([a, b], -1)], 2);
 */
export function Fn(name: string, fn: (...xs: Tensor[]) => Tensor | Tensor[], nIn = 1, nOut = 1): Layer {
  return {
    name,
    nIn,
    nOut,
    init: () => noParams,
    apply: (_p, inputs) => {
      const out = fn(...inputs);
      return Array.isArray(out) ? out : [out];
    },
  };
}
