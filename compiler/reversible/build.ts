/**
 * Builds the per-block graphs of a reversible stack from the F and G layer graphs alone, each
 * traced separately in the scope it has inside a plain trace of the stack, so dropout salts and
 * recorded-state names agree with ordinary tracing:
 *
 * - forward:  [X1, X2] -> [Y1, Y2] plus the states F and G record (stateMode 'compute');
 * - inverse:  [Y1, Y2] -> [X1, X2] with the stored states replayed;
 * - backward, two graphs per block (see reformer-semantics.md §3):
 *   G step: g = G(Y1) under a VJP with cotangent dY2 → G's weight grads, dY1' = dY1 + (∂G/∂Y1)ᵀdY2,
 *           X2 = Y2 − g;
 *   F step: f = F(X2) (same seed, replayed states) under a VJP with cotangent dY1' → F's weight
 *           grads, dX2 = dY2 + (∂F/∂X2)ᵀdY1', X1 = Y1 − f.  (dX1 is dY1'.)
 */
import { Graph, type Tensor } from '../ir/graph.ts';
import type { NodeId } from '../ir/types.ts';
import { vjp } from '../grad/grad.ts';
import * as ops from '../../dsl/ops.ts';
import { applyLayer, childParams, paramInputs, traceContext, type Layer, type Params, type TensorSpec } from '../../dsl/layer.ts';
import { blockScope, residualScope, type ReversibleBlock } from '../../dsl/reversible.ts';

export type TraceMode = 'train' | 'eval';

/** Everything needed to place block `index` in its scope: `prefix` is the stack's own layer path. */
export interface BlockContext {
  readonly index: number;
  readonly block: ReversibleBlock;
  /** The block's parameters, `[fParams, gParams]`. */
  readonly params: Params;
  readonly spec: TensorSpec;
  readonly mode: TraceMode;
  readonly prefix: string;
}

/** A built graph plus which graph value goes to which named role. */
export interface BuiltGraph {
  readonly graph: Graph;
  /** Role -> node id, e.g. `y1`, `x2`, `dx1`, or `grad:<param path>`. */
  readonly values: ReadonlyMap<string, NodeId>;
}

/** Runs `fn` with the stack prefix and `more` pushed on the graph's layer path. */
function scoped<T>(graph: Graph, prefix: string, more: readonly string[], fn: () => T): T {
  const names = prefix ? [prefix, ...more] : [...more];
  const go = (k: number): T => (k === names.length ? fn() : graph.withScope(names[k]!, () => go(k + 1)));
  return go(0);
}

/** Graph input prefix for the parameters of block `i` (stack parameter paths are `i.0.*` / `i.1.*`). */
export const blockParamPrefix = (i: number) => `params.${i}`;

function blockInputs(graph: Graph, b: BlockContext, names: readonly string[]): Tensor[] {
  return names.map((n) => graph.input(n, b.spec.shape, b.spec.dtype));
}

/** Applies F (`which = 0`) or G (`which = 1`) to `x` within its scope. */
function applyResidual(graph: Graph, b: BlockContext, which: 0 | 1, x: Tensor, stateMode: 'compute' | 'replay', ctx = traceContext(graph, b.mode, stateMode)): Tensor {
  const layer: Layer = which === 0 ? b.block.f : b.block.g;
  const sym = paramInputs(graph, childParams(b.params, which, 'Reversible'), `${blockParamPrefix(b.index)}.${which}`);
  const [y] = scoped(graph, b.prefix, [blockScope(b.index), residualScope(which)], () => applyLayer(layer, sym, [x], ctx));
  return y!;
}

/** The block's forward graph: outputs `y1`, `y2` and one `state:<path>` value per recorded state. */
export function buildForward(b: BlockContext): BuiltGraph {
  const graph = new Graph();
  const [x1, x2] = blockInputs(graph, b, ['x1', 'x2']);
  const ctx = traceContext(graph, b.mode, 'compute');
  const sym = paramInputs(graph, b.params, blockParamPrefix(b.index));
  const [y1, y2] = scoped(graph, b.prefix, [blockScope(b.index)], () => applyLayer(b.block, sym, [x1!, x2!], ctx));
  const values = new Map<string, NodeId>([
    ['y1', y1!.id],
    ['y2', y2!.id],
  ]);
  for (const [key, t] of ctx.states) values.set(key, t.id);
  graph.outputs = [...values.values()];
  return { graph, values };
}

/** The block's inverse: `X2 = Y2 − G(Y1)`, `X1 = Y1 − F(X2)`, states replayed. */
export function buildInverse(b: BlockContext): BuiltGraph {
  const graph = new Graph();
  const [y1, y2] = blockInputs(graph, b, ['y1', 'y2']);
  const ctx = traceContext(graph, b.mode, 'replay');
  const x2 = ops.sub(y2!, applyResidual(graph, b, 1, y1!, 'replay', ctx));
  const x1 = ops.sub(y1!, applyResidual(graph, b, 0, x2, 'replay', ctx));
  const values = new Map<string, NodeId>([
    ['x1', x1.id],
    ['x2', x2.id],
  ]);
  graph.outputs = [...values.values()];
  return { graph, values };
}

/**
 * VJP of one residual function at input `x`: a graph with inputs `x`, its parameters, seed and
 * replayed states, and the cotangent `cotangent:0`; values `out`, `dx` and `grad:<path>`.
 */
function residualVjp(b: BlockContext, which: 0 | 1): { graph: Graph; out: Tensor; dx: Tensor; grads: Map<string, NodeId> } {
  const source = new Graph();
  const [x] = blockInputs(source, b, ['x']);
  const out = applyResidual(source, b, which, x!, 'replay');
  source.outputs = [out.id];
  const params = source.inputNodes().filter((n) => n.role === 'param');
  const v = vjp(source, [out.id], [x!.id, ...params.map((p) => p.id)]);
  const grads = new Map<string, NodeId>();
  params.forEach((p, k) => grads.set(`grad:${p.name.slice('params.'.length)}`, v.gradients[k + 1]!));
  return { graph: v.graph, out: v.graph.tensor(out.id), dx: v.graph.tensor(v.gradients[0]!), grads };
}

/** Backward G step: inputs `x` (=Y1), `cotangent:0` (=dY2), `dy1`, `y2`; values `x2`, `dy1p`, grads. */
export function buildBackwardG(b: BlockContext): BuiltGraph {
  const { graph, out, dx, grads } = residualVjp(b, 1);
  const [dy1, y2] = blockInputs(graph, b, ['dy1', 'y2']);
  const values = new Map<string, NodeId>([
    ['x2', ops.sub(y2!, out).id],
    ['dy1p', ops.add(dy1!, dx).id],
    ...grads,
  ]);
  graph.outputs = [...values.values()];
  return { graph, values };
}

/** Backward F step: inputs `x` (=X2), `cotangent:0` (=dY1'), `y1`, `dy2`; values `x1`, `dx2`, grads. */
export function buildBackwardF(b: BlockContext): BuiltGraph {
  const { graph, out, dx, grads } = residualVjp(b, 0);
  const [y1, dy2] = blockInputs(graph, b, ['y1', 'dy2']);
  const values = new Map<string, NodeId>([
    ['x1', ops.sub(y1!, out).id],
    ['dx2', ops.add(dy2!, dx).id],
    ...grads,
  ]);
  graph.outputs = [...values.values()];
  return { graph, values };
}
