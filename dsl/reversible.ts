/**
 * Reversible residual blocks (Gomez et al. 2017, as used by the Reformer): a block maps two streams
 * `[X1, X2]` to `[Y1, Y2]` with `Y1 = X1 + F(X2)`, `Y2 = X2 + G(Y1)`, so its inputs can be
 * recomputed from its outputs. Tracing marks each block as a reversible region of the graph; the
 * memory-free backward pass is derived from it by reverse-mode differentiation (compiler/grad),
 * which keeps only the stack's final outputs, recorded layer state and the seed.
 *
 * @example
 * const block = Reversible(Serial(LayerNorm(), Dense(64)), Serial(LayerNorm(), Dense(256), Relu(), Dense(64)));
 * const model = Serial(Dup(), ReversibleStack([block, block2]), Fn('Concat', (a, b) => ops.concat([a, b], -1), 2));
 */
import { OptionError, ShapeError, type Tensor } from '../compiler/ir/graph.ts';
import type { Shape } from '../compiler/ir/types.ts';
import {
  applyLayer,
  childParams,
  initInPath,
  outputSpecs,
  type ApplyContext,
  type InitKey,
  type Layer,
  type Params,
  type SymbolicParams,
  type TensorSpec,
} from './layer.ts';

const fmt = (s: Shape) => `[${s.join(',')}]`;
const sameShape = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);

/** A reversible block: a layer that also exposes its residual functions for the compiler. */
export interface ReversibleBlock extends Layer {
  readonly kind: 'reversible';
  readonly f: Layer;
  readonly g: Layer;
}

/** A stack of reversible blocks; parameters are one `[fParams, gParams]` pair per block. */
export interface ReversibleStackLayer extends Layer {
  readonly kind: 'reversible-stack';
  readonly blocks: readonly ReversibleBlock[];
}

export function isReversibleBlock(layer: Layer): layer is ReversibleBlock {
  return (layer as Partial<ReversibleBlock>).kind === 'reversible';
}
export function isReversibleStack(layer: Layer): layer is ReversibleStackLayer {
  return (layer as Partial<ReversibleStackLayer>).kind === 'reversible-stack';
}

/** Scope name of F (`which = 0`) or G (`which = 1`) inside a block, as pushed on the layer path. */
export const residualScope = (which: 0 | 1) => `Reversible[${which}]`;
/** Scope name of block `i` inside a stack. */
export const blockScope = (i: number) => `ReversibleStack[${i}]`;

function checkOneToOne(role: 'F' | 'G', layer: Layer): void {
  if (layer.nIn !== 1 || layer.nOut !== 1) {
    throw new OptionError(`Reversible: ${role} (${layer.name}) must map one tensor to one tensor, got ${layer.nIn} → ${layer.nOut}`);
  }
}

function checkKeepsShape(scope: string, role: 'F' | 'G', layer: Layer, input: Shape, output: Shape): void {
  if (!sameShape(input, output)) {
    throw new ShapeError(scope, `${role} (${layer.name}) output ${fmt(output)} does not match its input ${fmt(input)}`);
  }
}

function checkStreams(scope: string, a: TensorSpec, b: TensorSpec): void {
  if (!sameShape(a.shape, b.shape) || a.dtype !== b.dtype) {
    throw new ShapeError(scope, `the two streams must have the same shape, got X1 ${a.dtype}${fmt(a.shape)} and X2 ${b.dtype}${fmt(b.shape)}`);
  }
}

/**
 * Applies F then G to the streams as a reversible region of the graph (`Graph.reversible`), within
 * the scopes `Reversible[0]` (F) and `Reversible[1]` (G), so reverse-mode differentiation rebuilds
 * the block's inputs from its outputs instead of keeping them, replaying dropout from the same
 * salts and reading recorded layer state (LSH buckets) instead of recomputing it.
 */
function applyBlock(f: Layer, g: Layer, params: SymbolicParams, x1: Tensor, x2: Tensor, ctx: ApplyContext): [Tensor, Tensor] {
  const graph = x1.graph;
  const scope = graph.scope ? `${graph.scope}.Reversible` : 'Reversible';
  checkStreams(scope, x1, x2);
  const residual = (which: 0 | 1, layer: Layer, role: 'F' | 'G') => (x: Tensor) => {
    const [y] = graph.withScope(residualScope(which), () => applyLayer(layer, childParams(params, which, 'Reversible'), [x], ctx));
    checkKeepsShape(scope, role, layer, x.shape, y!.shape);
    return y!;
  };
  return graph.reversible(scope, x1, x2, residual(0, f, 'F'), residual(1, g, 'G'));
}

/**
 * One reversible block: `[X1, X2] -> [X1 + F(X2), X2 + G(X1 + F(X2))]`. F and G must map one
 * tensor to one tensor of the same shape. Parameters: `[fParams, gParams]`.
 */
export function Reversible(f: Layer, g: Layer): ReversibleBlock {
  checkOneToOne('F', f);
  checkOneToOne('G', g);
  return {
    kind: 'reversible',
    name: 'Reversible',
    nIn: 2,
    nOut: 2,
    f,
    g,
    // Stryker disable next-line ArrayDeclaration: applyLayer reads only whether a layer has children, not which
    children: [f, g],
    init(key: InitKey, inputs: readonly TensorSpec[]): Params {
      const [x1, x2] = inputs as [TensorSpec, TensorSpec];
      checkStreams('Reversible', x1, x2);
      // F and G initialise at their trace paths, Reversible[0] and Reversible[1]
      const fp = initInPath(residualScope(0), () => f.init(key.split(0), [x2]));
      const [fo] = initInPath(residualScope(0), () => outputSpecs(f, fp, [x2]));
      checkKeepsShape('Reversible', 'F', f, x2.shape, fo!.shape);
      const gp = initInPath(residualScope(1), () => g.init(key.split(1), [x1]));
      const [go] = initInPath(residualScope(1), () => outputSpecs(g, gp, [x1]));
      checkKeepsShape('Reversible', 'G', g, x1.shape, go!.shape);
      return [fp, gp];
    },
    apply(params, inputs, ctx) {
      return applyBlock(f, g, params, inputs[0]!, inputs[1]!, ctx);
    },
  };
}

/**
 * Reversible blocks in sequence: differentiated, the backward pass rebuilds each block's inputs
 * from its outputs, so activation memory does not grow with the number of blocks.
 */
export function ReversibleStack(blocks: readonly ReversibleBlock[]): ReversibleStackLayer {
  blocks.forEach((b, i) => {
    if (!isReversibleBlock(b)) throw new OptionError(`ReversibleStack: block ${i} (${(b as Layer).name}) is not a Reversible(F, G) block`);
  });
  return {
    kind: 'reversible-stack',
    name: 'ReversibleStack',
    nIn: 2,
    nOut: 2,
    blocks,
    children: blocks,
    init: (key, inputs) => blocks.map((b, i) => initInPath(blockScope(i), () => b.init(key.split(i), inputs))),
    apply(params, inputs, ctx) {
      let stack: Tensor[] = [inputs[0]!, inputs[1]!];
      const graph = inputs[0]!.graph;
      blocks.forEach((b, i) => {
        stack = graph.withScope(blockScope(i), () => applyLayer(b, childParams(params, i, 'ReversibleStack'), stack, ctx));
      });
      return stack;
    },
  };
}
