/**
 * Reverse-mode differentiation as a graph-to-graph transformation: the result is a new graph that
 * computes the original outputs and the requested gradients, built only from primitives.
 */
import { Graph, liveNodes, type Tensor } from '../ir/graph.ts';
import * as P from '../ir/primitives.ts';
import type { NodeId } from '../ir/types.ts';
import { operands } from '../ir/types.ts';
import { vjpRules } from './vjp-rules.ts';

export interface VjpGraph {
  readonly graph: Graph;
  /** Ids of the original outputs in the new graph (unchanged ids). */
  readonly outputs: readonly NodeId[];
  /** One gradient per `wrt` entry, same order. */
  readonly gradients: readonly NodeId[];
  /** Names of the cotangent inputs, one per output (`cotangent:<i>`). */
  readonly cotangentInputs: readonly string[];
}

export interface VjpOptions {
  /** Seed cotangents: fresh graph inputs (default), or ones for every output. */
  readonly seed?: 'inputs' | 'ones';
}

/**
 * Vector-Jacobian product of `outputs` with respect to `wrt`. The returned graph's outputs are
 * `[...outputs, ...gradients]`.
 */
export function vjp(source: Graph, outputs: readonly NodeId[], wrt: readonly NodeId[], options: VjpOptions = {}): VjpGraph {
  const graph = source.clone();
  const forwardCount = graph.nodes.length;

  // Only nodes on a path from some `wrt` node to some output carry gradients.
  const fromWrt = new Set<NodeId>(wrt);
  for (const node of graph.nodes) {
    if (node.op === 'stopGradient' || node.dtype !== 'f32') continue;
    if (operands(node).some((o) => fromWrt.has(o))) fromWrt.add(node.id);
  }
  const toOutputs = liveNodes(graph, outputs);
  const active = (id: NodeId) => fromWrt.has(id) && toOutputs.has(id) && graph.node(id).dtype === 'f32';

  const cotangent = new Map<NodeId, Tensor>();
  const accumulate = (id: NodeId, t: Tensor) => {
    const prev = cotangent.get(id);
    cotangent.set(id, prev === undefined ? t : P.binary('add', prev, t));
  };

  const cotangentInputs: string[] = [];
  outputs.forEach((id, i) => {
    const out = graph.node(id);
    if (options.seed === 'ones') {
      if (active(id)) accumulate(id, P.broadcastTo(P.constant(graph, 1), out.shape));
      return;
    }
    const name = `cotangent:${i}`;
    cotangentInputs.push(name);
    const ct = graph.input(name, out.shape, out.dtype, 'cotangent');
    if (active(id)) accumulate(id, ct);
  });

  for (let id = forwardCount - 1; id >= 0; id--) {
    const g = cotangent.get(id);
    if (g === undefined || !active(id)) continue;
    const node = graph.node(id);
    const args = operands(node).map((o) => graph.tensor(o));
    const parts = graph.withScope(`grad(${node.scope || node.op})`, () =>
      vjpRules[node.op]({ node, out: graph.tensor(id), args, g }),
    );
    parts.forEach((part, k) => {
      const arg = args[k]!;
      if (part !== null && active(arg.id)) accumulate(arg.id, part);
    });
  }

  const gradients = wrt.map((id) => {
    const g = cotangent.get(id);
    if (g !== undefined) return g.id;
    const node = graph.node(id);
    return P.broadcastTo(P.constant(graph, 0), node.shape).id;
  });
  graph.outputs = [...outputs, ...gradients];
  return { graph, outputs, gradients, cotangentInputs };
}

/** Gradient of a scalar `loss` with respect to `wrt`: a graph with outputs `[loss, ...gradients]`. */
export function grad(source: Graph, loss: NodeId, wrt: readonly NodeId[]): VjpGraph {
  const node = source.node(loss);
  if (node.shape.length !== 0) throw new Error(`grad: loss must be a scalar, got shape [${node.shape.join(',')}]`);
  return vjp(source, [loss], wrt, { seed: 'ones' });
}
