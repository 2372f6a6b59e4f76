/**
 * What the backward pass keeps: the forward values that some node of a VJP graph's backward part
 * reads (JAX's "saved residuals"). This is the measure of a memory schedule: reversible regions
 * should leave nothing from inside a block or at its inputs, only the stack's outputs, stored
 * layer state, parameters and the seed.
 *
 * Bytes are static-shape bytes at 4 per element (f32 and i32 on the device).
 */
import { liveNodes, type Graph, type ReversibleRegion } from '../ir/graph.ts';
import type { Node, NodeId, Shape } from '../ir/types.ts';
import { isDataFree, operands, sizeOf } from '../ir/types.ts';

export const bytesOf = (shape: Shape): number => sizeOf(shape) * 4;

/** Forward nodes (`id < forwardCount`) read by live backward nodes, in id order. */
export function savedForBackward(graph: Graph, forwardCount: number): Node[] {
  const live = liveNodes(graph, graph.outputs);
  const saved = new Set<NodeId>();
  for (const n of graph.nodes.slice(forwardCount)) {
    if (!live.has(n.id)) continue;
    for (const o of operands(n)) if (o < forwardCount) saved.add(o);
  }
  // Outputs of the forward pass that are also graph outputs are read too (e.g. the loss).
  return [...saved].sort((a, b) => a - b).map((id) => graph.node(id));
}

/**
 * Bytes of saved activations: parameters and constants are excluded (every schedule keeps them,
 * and they do not change from step to step); random draws count (a dropout mask is per step).
 */
export function savedActivationBytes(graph: Graph, forwardCount: number): number {
  return savedForBackward(graph, forwardCount)
    .filter((n) => !(n.op === 'input' && n.role === 'param') && n.op !== 'const' && n.op !== 'iota')
    .reduce((a, n) => a + bytesOf(n.shape), 0);
}

/** A forward value the backward must not read under a reversible schedule. */
export interface ReversibleLeak {
  readonly node: Node;
  readonly block: string;
  readonly where: 'inside' | 'input';
}

/**
 * The forward values inside a reversible block, or at its inputs, that the backward reads. Stored
 * layer state is allowed, and so are data-free nodes (constants, iotas) and a block's outputs where
 * they leave the stack (they are not another block's inputs). A random draw is a leak: the replay
 * draws it again, so reading the forward's keeps a per-step mask alive. An empty list means the
 * backward rebuilds every activation it needs.
 */
export function reversibleLeaks(graph: Graph, forwardCount: number): ReversibleLeak[] {
  const blocks: readonly ReversibleRegion[] = graph.reversibleRegions;
  const blockInputs = new Set(blocks.flatMap((b) => [b.x1, b.x2]));
  const leaks: ReversibleLeak[] = [];
  for (const node of savedForBackward(graph, forwardCount)) {
    if (graph.stored.has(node.id) || node.op === 'input' || isDataFree(node)) continue;
    for (const b of blocks) {
      const isOutput = node.id === b.y1 || node.id === b.y2;
      if (node.id === b.x1 || node.id === b.x2) leaks.push({ node, block: b.label, where: 'input' });
      else if (node.id >= b.start && node.id < b.end && !(isOutput && !blockInputs.has(node.id))) leaks.push({ node, block: b.label, where: 'inside' });
    }
  }
  return leaks;
}

/**
 * Peak bytes of the values computed while evaluating `wanted` in node order, each freed after its
 * last consumer (the reference evaluator's order). Inputs are the caller's buffers and not counted.
 */
export function graphPeakBytes(graph: Graph, wanted: readonly NodeId[] = graph.outputs): number {
  const live = liveNodes(graph, wanted);
  const lastUse = new Map<NodeId, number>();
  for (const n of graph.nodes) if (live.has(n.id)) for (const o of operands(n)) lastUse.set(o, n.id);
  const keep = new Set(wanted);
  let current = 0;
  let peak = 0;
  for (const n of graph.nodes) {
    if (!live.has(n.id)) continue;
    if (n.op !== 'input') current += bytesOf(n.shape);
    peak = Math.max(peak, current);
    for (const o of new Set(operands(n))) {
      const on = graph.node(o);
      if (lastUse.get(o) === n.id && !keep.has(o) && on.op !== 'input') current -= bytesOf(on.shape);
    }
  }
  return peak;
}
