/**
 * Reverse-mode differentiation as a graph-to-graph transformation: the result is a new graph that
 * computes the original outputs and the requested gradients, built only from primitives.
 *
 * Memory schedules are regions of the forward graph that the reverse walk treats specially:
 * - a recompute region is replayed after all its consumers were differentiated, and its VJP reads
 *   the replayed values, so the forward intermediates die as soon as the region's outputs exist;
 * - a reversible region (block `Y1 = X1 + F(X2)`, `Y2 = X2 + G(Y1)`) rebuilds its inputs from its
 *   outputs, `X2 = Y2 − G(Y1)`, `X1 = Y1 − F(X2)`, replaying G then F, so neither its
 *   intermediates nor its inputs are read by the backward pass; the rebuilt inputs stand in for
 *   the forward values from then on, which is what makes a stack of blocks memory-flat in depth.
 * Regions nest (e.g. LSH window groups inside a reversible block's F): a replayed range is walked
 * by the same function, which replays the regions inside it again.
 */
import { Graph, type NodeRange, type RecomputeRegion, type ReversibleRegion, type Tensor } from '../ir/graph.ts';
import { liveNodes } from '../ir/graph.ts';
import * as P from '../ir/primitives.ts';
import type { NodeId } from '../ir/types.ts';
import { isDataFree, operands, withOperands } from '../ir/types.ts';
import { cotangentName } from '../ir/names.ts';
import { vjpRules, vjpValueReads } from './vjp-rules.ts';

export interface VjpGraph {
  readonly graph: Graph;
  /** Ids of the original outputs in the new graph (unchanged ids). */
  readonly outputs: readonly NodeId[];
  /** One gradient per `wrt` entry, same order. */
  readonly gradients: readonly NodeId[];
  /** Names of the cotangent inputs, one per output (`cotangent:<i>`). */
  readonly cotangentInputs: readonly string[];
  /**
   * Inputs of each reversible block as rebuilt by the backward pass: forward node id → the node
   * that recomputes it from the block's outputs (for checking reconstruction, e.g. `verify`).
   */
  readonly rebuilt: ReadonlyMap<NodeId, NodeId>;
}

export interface VjpOptions {
  /** Seed cotangents: fresh graph inputs (default), or ones for every output. */
  readonly seed?: 'inputs' | 'ones';
  /**
   * Honour the graph's memory schedules (recompute and reversible regions; default true). False
   * gives plain backprop of the same graph: every forward value the backward needs is kept.
   */
  readonly memorySchedules?: boolean;
}

type Region = { readonly kind: 'recompute'; readonly r: RecomputeRegion } | { readonly kind: 'reversible'; readonly r: ReversibleRegion };

/**
 * Where the backward pass reads each forward value from: the node itself, or a replayed or
 * rebuilt copy. Maps chain, one per replayed region, so a nested replay sees its parents' copies.
 */
class ValueMap {
  private readonly copies = new Map<NodeId, NodeId>();
  constructor(private readonly parent?: ValueMap) {}
  get(id: NodeId): NodeId {
    return this.copies.get(id) ?? this.parent?.get(id) ?? id;
  }
  set(id: NodeId, copy: NodeId): void {
    this.copies.set(id, copy);
  }
}

const rangeIds = (r: NodeRange) => Array.from({ length: r.end - r.start }, (_, i) => r.start + i);

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
    const name = cotangentName(i);
    cotangentInputs.push(name);
    const ct = graph.input(name, out.shape, out.dtype, 'cotangent');
    if (active(id)) accumulate(id, ct);
  });

  /** Applies the VJP rule of node `id` to its cotangent `g`, reading values through `values`. */
  const backpropNode = (id: NodeId, values: ValueMap, g: Tensor) => {
    const node = graph.node(id);
    const into = operands(node);
    const out = graph.tensor(values.get(id));
    const args = into.map((o) => graph.tensor(values.get(o)));
    const parts = graph.withScope(`grad(${node.scope || node.op})`, () => vjpRules[node.op]({ node, out, args, g }));
    parts.forEach((part, k) => {
      // Stryker disable next-line LogicalOperator: rules return null only for i32 operands or behind stopGradient, which are never active
      if (part !== null && active(into[k]!)) accumulate(into[k]!, part);
    });
  };

  /**
   * Copies the nodes of `range` reading through `values`; inputs, stored state and data-free nodes
   * (constants) are read, not copied. Random draws are copied: they are counter-based, so the copy
   * draws the same bits, and the forward's mask can die after its last forward reader.
   */
  const replay = (range: NodeRange, values: ValueMap, include: (id: NodeId) => boolean = () => true) => {
    for (const id of rangeIds(range)) {
      const node = graph.node(id);
      if (!include(id) || node.op === 'input' || graph.stored.has(id) || isDataFree(node)) continue;
      const copy = graph.add(withOperands(node, operands(node).map((o) => values.get(o))), node.shape, node.dtype, node.scope);
      values.set(id, copy.id);
    }
  };

  // Outermost region first where several end at one node (e.g. Recompute around a whole block).
  const endingAt = new Map<NodeId, Region[]>();
  const regions: Region[] =
    options.memorySchedules === false
      ? []
      : [
          ...graph.recomputeRegions.map((r) => ({ kind: 'recompute' as const, r })),
          ...graph.reversibleRegions.map((r) => ({ kind: 'reversible' as const, r })),
        ];
  for (const region of regions) {
    // A block's outputs are cheap sums (X + F(X')) that fusion would inline into every reader,
    // chaining back through the whole stack: each reader would then read every earlier block's F
    // and G outputs, keeping them alive. As buffers, a block's F and G outputs die with the block.
    if (region.kind === 'reversible') graph.materialize.add(region.r.y1).add(region.r.y2);
    const list = endingAt.get(region.r.end - 1) ?? [];
    list.push(region);
    // Stryker disable next-line all: already in this order for graphs built by Graph (recompute regions are listed first and cannot sit inside a block's end)
    list.sort((a, b) => a.r.start - b.r.start);
    endingAt.set(region.r.end - 1, list);
  }

  /** Differentiates nodes `start … end - 1` in reverse order, entering the regions inside. */
  const walk = (range: NodeRange, values: ValueMap, entered: ReadonlySet<Region>) => {
    for (let id = range.end - 1; id >= range.start; id--) {
      const region = endingAt.get(id)?.find((r) => !entered.has(r) && r.r.start >= range.start);
      if (region !== undefined) {
        const inside = new Set(entered).add(region);
        if (region.kind === 'recompute') backpropRecompute(region.r, values, inside);
        else backpropReversible(region.r, values, inside);
        id = region.r.start;
        continue;
      }
      const g = cotangent.get(id);
      if (g !== undefined && active(id)) backpropNode(id, values, g);
    }
  };

  /**
   * Sums into values defined before `region` are written as soon as its backward is done, so each
   * region's terms die with it rather than staying alive until a consumer far down reads the sum.
   */
  const materializeSums = (region: NodeRange, walkRegion: () => void) => {
    const before = new Map(cotangent);
    walkRegion();
    for (const [id, sum] of cotangent) {
      const prev = before.get(id);
      if (prev !== undefined && prev !== sum && id < region.start) graph.materialize.add(sum.id);
    }
  };

  /**
   * Regions whose replayed values are handed to the enclosing map (see `deferredRegions`), each with
   * whether the walk has replayed it yet.
   */
  const publishing = new Map<RecomputeRegion, boolean>();

  const backpropRecompute = (region: RecomputeRegion, values: ValueMap, entered: ReadonlySet<Region>) => {
    if (!rangeIds(region).some((id) => active(id) && cotangent.has(id))) return;
    const replayed = new ValueMap(values);
    replay(region, replayed);
    if (publishing.has(region)) {
      for (const id of rangeIds(region)) values.set(id, replayed.get(id));
      publishing.set(region, true);
    }
    materializeSums(region, () => walk(region, replayed, entered));
  };

  /**
   * The recompute regions directly inside `part` (a block's F or G) whose values reach the rest of
   * the part only through nodes whose VJP reads none of their values (e.g. the concat and dropout
   * after a chunked feed-forward's chunks), and those nodes. Rebuilding the block's input needs
   * only the part's output, so these regions are not replayed for the rebuild: each is replayed
   * once, by its own VJP, which hands its values on, and the nodes after it are replayed after the
   * walk.
   */
  const deferredRegions = (part: NodeRange): { regions: RecomputeRegion[]; nodes: Set<NodeId> } => {
    // Stryker disable next-line MethodExpression,ConditionalExpression,LogicalOperator: a region outside the part is neither replayed nor walked with it, so listing it changes nothing
    const inner = graph.recomputeRegions.filter((r) => r.start >= part.start && r.end <= part.end);
    const outermost = inner.filter((r) => !inner.some((o) => o !== r && o.start <= r.start && r.end <= o.end));
    // Stryker disable next-line ArrayDeclaration: a stray entry is no region: never published, never matched
    const regions: RecomputeRegion[] = [];
    const nodes = new Set<NodeId>();
    for (const region of outermost) {
      const reached = new Set<NodeId>(rangeIds(region));
      let linear = true; // the region's values are read by no VJP after it
      // Stryker disable next-line EqualityOperator: the node at part.end is the block's residual add, whose VJP reads nothing
      for (let id = region.end; id < part.end && linear; id++) {
        const node = graph.node(id);
        const into = operands(node);
        if (!into.some((o) => reached.has(o))) continue;
        const read = vjpValueReads(node, into.map(active));
        linear = !read.out && ![...read.operands].some((k) => reached.has(into[k]!));
        reached.add(id);
      }
      if (!linear) continue;
      regions.push(region);
      for (const id of reached) nodes.add(id);
    }
    return { regions, nodes };
  };

  /**
   * Replays `part` for a rebuild, walks it backward, and completes the replay with what the walk
   * deferred: regions it never entered (no cotangent reached them) and the nodes after them.
   */
  const replayAndWalkPart = (part: NodeRange, walkRange: NodeRange, scope: string, values: ValueMap, entered: ReadonlySet<Region>) => {
    const deferred = deferredRegions(part);
    deferred.regions.forEach((r) => publishing.set(r, false));
    graph.withScope(scope, () => replay(part, values, (id) => !deferred.nodes.has(id)));
    walk(walkRange, values, entered);
    const replayed = deferred.regions.filter((r) => publishing.get(r) === true);
    // Stryker disable next-line ArrowFunction: each part's regions are walked once, with that part, so a stale entry is never consulted
    deferred.regions.forEach((r) => publishing.delete(r));
    const byWalk = (id: NodeId) => replayed.some((r) => id >= r.start && id < r.end);
    graph.withScope(scope, () => replay(part, values, (id) => deferred.nodes.has(id) && !byWalk(id)));
  };

  /**
   * In the order of the semantics (§3): replay G on Y1 and differentiate it with dY2 at once, so
   * G's intermediates die before F is replayed; rebuild X2 = Y2 − G(Y1); replay F on X2 and
   * differentiate it with dY1'; rebuild X1 = Y1 − F(X2).
   */
  const backpropReversible = (block: ReversibleRegion, values: ValueMap, entered: ReadonlySet<Region>) => {
    const flows = [block.y1, block.y2].some((id) => active(id) && cotangent.has(id));
    if (!flows) return;
    const rebuilt = new ValueMap(values);
    const y1 = graph.tensor(rebuilt.get(block.y1));
    const y2 = graph.tensor(rebuilt.get(block.y2));
    const scope = `reverse(${block.label})`;
    materializeSums(block, () => {
      replayAndWalkPart(block.g, { start: block.g.start, end: block.end }, scope, rebuilt, entered);
      graph.withScope(scope, () => rebuilt.set(block.x2, P.binary('sub', y2, graph.tensor(rebuilt.get(block.g.out))).id));
      replayAndWalkPart(block.f, { start: block.start, end: block.g.start }, scope, rebuilt, entered);
      graph.withScope(scope, () => rebuilt.set(block.x1, P.binary('sub', y1, graph.tensor(rebuilt.get(block.f.out))).id));
    });
    // When X1 and X2 are one node (after Dup) either rebuilt value stands for it.
    const x1 = rebuilt.get(block.x1);
    const x2 = rebuilt.get(block.x2);
    // The rebuilt inputs are the previous block's outputs: buffers of their own, like the forward's.
    graph.materialize.add(x1);
    graph.materialize.add(x2);
    rebuiltInputs.set(block.x1, x1);
    rebuiltInputs.set(block.x2, x2);
    // From here on the rebuilt inputs stand in for the forward ones (the previous block's outputs).
    values.set(block.x2, x2);
    values.set(block.x1, x1);
  };

  const rebuiltInputs = new Map<NodeId, NodeId>();
  walk({ start: 0, end: forwardCount }, new ValueMap(), new Set());

  const gradients = wrt.map((id) => {
    const g = cotangent.get(id);
    if (g !== undefined) return g.id;
    const node = graph.node(id);
    return P.broadcastTo(P.constant(graph, 0), node.shape).id;
  });
  graph.outputs = [...outputs, ...gradients];
  return { graph, outputs, gradients, cotangentInputs, rebuilt: rebuiltInputs };
}

/** Gradient of a scalar `loss` with respect to `wrt`: a graph with outputs `[loss, ...gradients]`. */
export function grad(source: Graph, loss: NodeId, wrt: readonly NodeId[], options: Pick<VjpOptions, 'memorySchedules'> = {}): VjpGraph {
  const node = source.node(loss);
  if (node.shape.length !== 0) throw new Error(`grad: loss must be a scalar, got shape [${node.shape.join(',')}]`);
  return vjp(source, [loss], wrt, { ...options, seed: 'ones' });
}
