/**
 * Reverse-mode differentiation as a graph-to-graph transformation: the result is a new graph that
 * computes the original outputs and the requested gradients, built only from primitives.
 */
import { Graph, liveNodes, type RecomputeRegion, type Tensor } from '../ir/graph.ts';
import * as P from '../ir/primitives.ts';
import type { Node, NodeId } from '../ir/types.ts';
import { operands, withOperands } from '../ir/types.ts';
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

  /** Applies the VJP rule of `node` (whose forward value is `out`, operands `args`) to `g`. */
  const backpropNode = (node: Node, out: Tensor, args: readonly Tensor[], into: readonly NodeId[], g: Tensor) => {
    const parts = graph.withScope(`grad(${node.scope || node.op})`, () => vjpRules[node.op]({ node, out, args, g }));
    parts.forEach((part, k) => {
      if (part !== null && active(into[k]!)) accumulate(into[k]!, part);
    });
  };

  /**
   * A recompute region is replayed here, after every consumer of its values has been
   * differentiated, and its VJP reads the replayed values, so the forward ones die early.
   */
  const backpropRegion = (region: RecomputeRegion) => {
    const ids = Array.from({ length: region.end - region.start }, (_, i) => region.start + i);
    if (!ids.some((id) => active(id) && cotangent.has(id))) return;
    const replayed = new Map<NodeId, NodeId>();
    const replay = (id: NodeId) => replayed.get(id) ?? id;
    graph.withScope(`recompute(${region.label})`, () => {
      for (const id of ids) {
        const node = graph.node(id);
        if (node.op === 'input') continue; // one value per name: inputs are read, never replayed
        const copy = graph.add(withOperands(node, operands(node).map(replay)), node.shape, node.dtype, node.scope);
        replayed.set(id, copy.id);
      }
    });
    const before = new Map(cotangent);
    for (const id of [...ids].reverse()) {
      const g = cotangent.get(id);
      if (g === undefined || !active(id)) continue;
      const copy = graph.node(replay(id));
      backpropNode(copy, graph.tensor(copy.id), operands(copy).map((o) => graph.tensor(o)), operands(graph.node(id)), g);
    }
    // Sums into the region's inputs are written now, so each region's terms die with it rather
    // than all staying alive until a consumer far down the backward pass reads the whole sum.
    for (const [id, sum] of cotangent) {
      const prev = before.get(id);
      if (prev !== undefined && prev !== sum && id < region.start) graph.materialize.add(sum.id);
    }
  };

  const regionEndingAt = new Map(graph.recomputeRegions.map((r) => [r.end - 1, r]));
  for (let id = forwardCount - 1; id >= 0; id--) {
    const region = regionEndingAt.get(id);
    if (region !== undefined) {
      backpropRegion(region);
      id = region.start;
      continue;
    }
    const g = cotangent.get(id);
    if (g === undefined || !active(id)) continue;
    const node = graph.node(id);
    const args = operands(node);
    backpropNode(node, graph.tensor(id), args.map((o) => graph.tensor(o)), args, g);
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
