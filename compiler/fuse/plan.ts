/**
 * The fusion pass: a pure function from a graph (and the node ids wanted from it) to a kernel
 * plan. It decides which nodes get a buffer of their own ("materialise") and which are inlined as
 * an expression into the kernel of their consumer. Nothing here knows about gpu.js; the plan is
 * printable (`printPlan`) and tested on its own.
 *
 * Policy (a schedule choice; every choice gives the reference values):
 * - Always materialised: graph inputs, multi-value constants (uploaded), `random` (drawn on the
 *   host, uploaded), reduce / argmax / argsort / scatterAdd (expensive or global), wanted outputs,
 *   and matmul unless it is the single operand of a pointwise consumer (then it is fused into that
 *   consumer as a dot-product prologue: the bias/activation epilogue of Dense).
 * - Elementwise and index-only nodes (reshape, transpose, slice, pad, concat, gather, iota,
 *   broadcast, scalar const) are inlined into their consumers, so a chain writes one buffer.
 * - An elementwise node with several consumers is recomputed in each while its inlined cost is at
 *   most RECOMPUTE_BUDGET (so softmax needs 3 kernels, LayerNorm 3); beyond that it materialises,
 *   which also bounds the blow-up of recomputation in gradient graphs.
 * - A concat computes every piece at each element and selects one, so a piece costing more than
 *   RECOMPUTE_BUDGET (the last Dense of each chunk of a Chunked layer) is materialised, before any
 *   reshape: otherwise a concat of n such pieces would pay n dot products per element.
 * - Operands read many times per output element (matmul / gather / argsort / scatterAdd
 *   operands) are inlined only when they are pure index remaps (cost 0) with little index
 *   arithmetic (MULTI_INDEX_BUDGET); a computed value reaching them through reshapes and
 *   broadcasts is materialised before the broadcast, at its small size. An operand expanded by a
 *   broadcast is inlined while its cost is at most EXPAND_BUDGET and its index arithmetic at most
 *   EXPAND_INDEX_BUDGET (attention masks built from gathered, windowed positions are written once
 *   at their small size instead of being rebuilt for every score).
 * - A matmul operand that is a view of one buffer (reshapes, transposes, broadcasts, slices and
 *   concats of it: compiler/fuse/views.ts) is always inlined, whatever its index arithmetic:
 *   the kernel resolves the view once per thread and walks the k axis by a stride. A computed
 *   value reaching a matmul through view ops is materialised before them, so the chain (the
 *   look-around windows of chunked attention) is read in place rather than copied out.
 */
import { liveNodes, type Graph } from '../ir/graph.ts';
import type { Node, NodeId } from '../ir/types.ts';
import { formatShape, operands } from '../ir/types.ts';
import { viewOf } from './views.ts';

const VIEW_OPS = new Set(['reshape', 'transpose', 'broadcast', 'slice', 'concat', 'stopGradient']);

export const RECOMPUTE_BUDGET = 8;
export const EXPAND_BUDGET = 8;
export const EXPAND_INDEX_BUDGET = 2;
/**
 * Index arithmetic an operand read many times per output element (matmul, gather, argsort,
 * scatterAdd operands) may carry inlined: a transpose or broadcast of a buffer folds into the
 * consumer, a chain of gathers / concats / pads (LSH bucket sorting, look-back chunks) is
 * written to a buffer once instead of being recomputed in every step of the consumer's loop.
 */
export const MULTI_INDEX_BUDGET = 2;
/** Caps the size of one inlined expression tree, so kernel sources stay bounded. */
export const MAX_INLINED_NODES = 40;

export type GroupKind = 'elementwise' | 'matmul' | 'reduce' | 'argmax' | 'argsort' | 'scatterAdd';

/** Where a materialised buffer's values come from. */
export type BufferSource = 'input' | 'constant' | 'random' | 'kernel';

export interface KernelGroup {
  /** Stable name, e.g. `k3_reduce_sum`. */
  readonly name: string;
  readonly kind: GroupKind;
  /** The node whose value the group writes. */
  readonly root: NodeId;
  /** Nodes inlined into this group (root excluded), in topological order. */
  readonly fused: readonly NodeId[];
  /** Materialised buffers the group reads, ascending. */
  readonly reads: readonly NodeId[];
  /** For elementwise roots: the matmul fused in as a prologue (Dense + bias/activation epilogue). */
  readonly fusedMatmul?: NodeId;
}

export interface KernelPlan {
  readonly graph: Graph;
  readonly wanted: readonly NodeId[];
  /** Every materialised node and where its values come from. */
  readonly buffers: ReadonlyMap<NodeId, BufferSource>;
  /** Kernel groups in execution order. */
  readonly groups: readonly KernelGroup[];
}

type UseKind = 'pointwise' | 'remap' | 'expand' | 'multi' | 'reduce';

const POINTWISE = new Set(['unary', 'binary', 'compare', 'where', 'cast', 'stopGradient']);

function useKinds(g: Graph, n: Node): Array<[NodeId, UseKind]> {
  switch (n.op) {
    case 'unary':
    case 'binary':
    case 'compare':
    case 'where':
    case 'cast':
    case 'stopGradient':
      return operands(n).map((o) => [o, 'pointwise']);
    case 'reshape':
    case 'transpose':
    case 'slice':
    case 'pad':
    case 'concat':
      // Stryker disable next-line StringLiteral: 'remap' and 'reduce' uses are never compared (only pointwise, multi and expand are)
      return operands(n).map((o) => [o, 'remap']);
    case 'broadcast': {
      const x = g.node(n.x);
      const grows = x.shape.reduce((a, b) => a * b, 1) < n.shape.reduce((a, b) => a * b, 1);
      return [[n.x, grows ? 'expand' : 'remap']];
    }
    case 'gather':
      return [
        [n.x, 'multi'],
        // Stryker disable next-line StringLiteral: 'remap' uses are never compared
        [n.index, 'remap'],
      ];
    case 'reduce':
    case 'argmax':
      // Stryker disable next-line StringLiteral: 'reduce' uses are never compared
      return [[n.x, 'reduce']];
    case 'matmul':
    case 'argsort':
    case 'scatterAdd':
    case 'random':
      return operands(n).map((o) => [o, 'multi']);
    case 'input':
    case 'const':
    case 'iota':
      // Stryker disable next-line ArrayDeclaration: a junk entry would be a use of no node, never looked up
      return [];
  }
}

/** Arithmetic cost of a node's own op when inlined (index remaps are free). */
function ownCost(g: Graph, n: Node): number {
  switch (n.op) {
    case 'unary':
      return n.fn === 'neg' ? 1 : 4;
    case 'binary':
    case 'compare':
    case 'where':
      return 1;
    case 'matmul':
      return 2 * g.node(n.a).shape[g.node(n.a).shape.length - 1]!;
    default:
      return 0;
  }
}

/** Index arithmetic of a node's own op when inlined (coordinates, clamps, the read of an index). */
function ownIndexCost(n: Node): number {
  switch (n.op) {
    case 'transpose':
    case 'slice':
    case 'broadcast':
      return 1;
    case 'pad':
    case 'concat':
      return 2;
    case 'gather':
      return 4;
    default:
      return 0;
  }
}

function forcedSource(n: Node): BufferSource | undefined {
  if (n.op === 'input') return 'input';
  if (n.op === 'const' && n.values.length > 1) return 'constant';
  if (n.op === 'random') return 'random';
  if (n.op === 'reduce' || n.op === 'argmax' || n.op === 'argsort' || n.op === 'scatterAdd') return 'kernel';
  return undefined;
}

export interface PlanOptions {
  /**
   * Most buffers one kernel may read. When a node's inlined subtree would read more, its inlined
   * operand reading the most buffers is materialised instead, until it fits (or every operand is
   * already a buffer). WebGPU guarantees only 8 storage buffers per shader stage, one of them the
   * output, and gpu.js requests no more; unbounded by default.
   */
  readonly maxReads?: number;
}

/** Groups the live nodes of `graph` (those `wanted` depends on) into kernels. */
export function planKernels(graph: Graph, wanted: readonly NodeId[] = graph.outputs, options: PlanOptions = {}): KernelPlan {
  const live = liveNodes(graph, wanted);
  const uses = new Map<NodeId, Array<{ consumer: NodeId; kind: UseKind }>>();
  for (const n of graph.nodes) {
    if (!live.has(n.id)) continue;
    for (const [o, kind] of useKinds(graph, n)) {
      if (!uses.has(o)) uses.set(o, []);
      uses.get(o)!.push({ consumer: n.id, kind });
    }
  }
  // Nodes whose value reaches a 'multi' use through reshapes and broadcasts only: a computed value
  // there is materialised BEFORE the broadcast (small), so the broadcast stays an inlined remap.
  const feedsMulti = new Set<NodeId>();
  // Stryker disable next-line EqualityOperator: node 0 has no operands, so no set is ever asked about it
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    // Stryker disable next-line ConditionalExpression: a dead node has no live consumers, so it would not be added anyway
    if (!live.has(n.id)) continue;
    const viaRemap = (u: { consumer: NodeId; kind: UseKind }) => {
      const op = graph.node(u.consumer).op;
      return (op === 'broadcast' || op === 'reshape') && feedsMulti.has(u.consumer);
    };
    if ((uses.get(n.id) ?? []).some((u) => u.kind === 'multi' || viaRemap(u))) feedsMulti.add(n.id);
  }
  // Nodes whose value is a piece of a concat, directly or through reshapes.
  const feedsConcat = new Set<NodeId>();
  // Stryker disable next-line EqualityOperator: node 0 has no operands, so no set is ever asked about it
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    // Stryker disable next-line ConditionalExpression: a dead node has no live consumers, so it would not be added anyway
    if (!live.has(n.id)) continue;
    const piece = (u: { consumer: NodeId }) => {
      const op = graph.node(u.consumer).op;
      return op === 'concat' || (op === 'reshape' && feedsConcat.has(u.consumer));
    };
    if ((uses.get(n.id) ?? []).some(piece)) feedsConcat.add(n.id);
  }
  // Nodes whose value reaches a matmul operand through view ops only.
  const feedsMatmulView = new Set<NodeId>();
  // Stryker disable next-line EqualityOperator: node 0 has no operands, so no set is ever asked about it
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    // Stryker disable next-line ConditionalExpression: a dead node has no live consumers, so it would not be added anyway
    if (!live.has(n.id)) continue;
    const reaches = (uses.get(n.id) ?? []).some((u) => {
      const op = graph.node(u.consumer).op;
      return op === 'matmul' || (VIEW_OPS.has(op) && feedsMatmulView.has(u.consumer));
    });
    if (reaches) feedsMatmulView.add(n.id);
  }
  const viaViewOp = (id: NodeId): boolean =>
    // Stryker disable next-line ArrayDeclaration: asked only for nodes without a source, which are not wanted and so have consumers
    (uses.get(id) ?? []).some((u) => VIEW_OPS.has(graph.node(u.consumer).op) && feedsMatmulView.has(u.consumer));
  const beforeBroadcast = (id: NodeId): boolean =>
    // Stryker disable next-line ArrayDeclaration: asked only for nodes without a source, which are not wanted and so have consumers
    (uses.get(id) ?? []).some((u) => {
      const op = graph.node(u.consumer).op;
      return (op === 'broadcast' || op === 'reshape') && feedsMulti.has(u.consumer);
    });
  const wantedSet = new Set(wanted);
  const buffers = new Map<NodeId, BufferSource>();
  const cost = new Map<NodeId, number>();
  const size = new Map<NodeId, number>();
  const indexCost = new Map<NodeId, number>();
  // Buffers each inlined node's subtree reads (kept only under a maxReads bound).
  const reads = new Map<NodeId, ReadonlySet<NodeId>>();
  const readsOf = (o: NodeId): ReadonlySet<NodeId> => (buffers.has(o) ? new Set([o]) : (reads.get(o) ?? new Set()));
  const materialiseAsKernel = (id: NodeId) => {
    buffers.set(id, 'kernel');
    cost.set(id, 0);
    size.set(id, 0);
    indexCost.set(id, 0);
  };

  // Inlined subtrees with a dot product (a matmul prologue) or a padded computation (a pad
  // evaluates its operand at every position of its output, then selects).
  const heavy = new Set<NodeId>();

  for (const n of graph.nodes) {
    if (!live.has(n.id)) continue;
    // One heavy operand per kernel: where several operands bring one (the first two terms of a
    // gradient summed over chunks), all but the last are materialised, so the first terms are added
    // by the same kernel as every later one.
    const heavyOperands = [...new Set(operands(n))].filter((o) => !buffers.has(o) && heavy.has(o));
    for (const o of heavyOperands.slice(0, -1)) materialiseAsKernel(o);
    // Stryker disable next-line ConditionalExpression: without a bound the loop never runs (x > undefined is false)
    if (options.maxReads !== undefined) {
      const union = () => new Set(operands(n).flatMap((o) => [...readsOf(o)]));
      let r = union();
      while (r.size > options.maxReads) {
        const inlined = operands(n).filter((o) => !buffers.has(o));
        if (inlined.length === 0) break;
        // The widest operand reads >= 1 buffer; its own buffer replaces them, so no other consumer reads more.
        materialiseAsKernel(inlined.reduce((a, b) => (readsOf(b).size > readsOf(a).size ? b : a)));
        r = union();
      }
      reads.set(n.id, r);
    }
    let c = ownCost(graph, n);
    let s = 1;
    let ic = ownIndexCost(n);
    for (const o of operands(n)) {
      // Stryker disable next-line ConditionalExpression: a buffer's cost, size and index cost are 0, so adding them changes nothing
      if (buffers.has(o)) continue;
      c += cost.get(o)!;
      // a concat's pieces are alternatives (one per range of positions): it counts as its largest,
      // so how the nodes around it fuse does not depend on how many pieces (chunks) there are
      s = n.op === 'concat' ? Math.max(s, 1 + size.get(o)!) : s + size.get(o)!;
      ic += indexCost.get(o)!;
    }
    if (heavyOperands.length > 0 || n.op === 'matmul' || (n.op === 'pad' && c > 0)) heavy.add(n.id);
    cost.set(n.id, c);
    size.set(n.id, s);
    indexCost.set(n.id, ic);
    // Stryker disable next-line ArrayDeclaration: only wanted nodes have no uses, and they have a source before us is read
    const us = uses.get(n.id) ?? [];
    let source = forcedSource(n) ?? (graph.materialize.has(n.id) ? 'kernel' : undefined);
    if (source === undefined && wantedSet.has(n.id)) source = 'kernel';
    // Stryker disable next-line ConditionalExpression: a matmul with a source already has 'kernel', which this only sets again
    if (source === undefined && n.op === 'matmul') {
      // Stryker disable next-line ConditionalExpression: a consumer in POINTWISE always makes a pointwise use
      const fusable = us.length === 1 && us[0]!.kind === 'pointwise' && POINTWISE.has(graph.node(us[0]!.consumer).op);
      if (!fusable) source = 'kernel';
    }
    // Stryker disable next-line ConditionalExpression: host buffers (cost 0, one node) meet no rule; kernels stay kernels
    if (source === undefined) {
      // a pure view of a buffer is free to inline into a matmul (resolved once per thread)
      let matmulView: boolean | undefined;
      // Stryker disable next-line LogicalOperator: a node with c > 0 has computation under it, so it is never a view
      const isMatmulView = () => (matmulView ??= c === 0 && viewOf(graph, (id) => buffers.has(id), n.id) !== undefined);
      const multiTooCostly = (u: { consumer: NodeId }) =>
        c > 0 || (ic > MULTI_INDEX_BUDGET && !(graph.node(u.consumer).op === 'matmul' && isMatmulView()));
      const materialise =
        (us.length > 1 && c > RECOMPUTE_BUDGET) ||
        (c > 0 && n.op !== 'broadcast' && n.op !== 'reshape' && beforeBroadcast(n.id)) ||
        (c > RECOMPUTE_BUDGET && n.op !== 'reshape' && feedsConcat.has(n.id)) ||
        ((c > 0 || ic > 0) && !VIEW_OPS.has(n.op) && viaViewOp(n.id)) ||
        us.some((u) => (u.kind === 'multi' && multiTooCostly(u)) || (u.kind === 'expand' && (c > EXPAND_BUDGET || ic > EXPAND_INDEX_BUDGET))) ||
        (s > MAX_INLINED_NODES && !isMatmulView());
      if (materialise) source = 'kernel';
    }
    if (source !== undefined) {
      buffers.set(n.id, source);
      // A materialised node is a leaf for its consumers: reset its inlined cost.
      cost.set(n.id, 0);
      size.set(n.id, 0);
      indexCost.set(n.id, 0);
    }
  }

  const groups: KernelGroup[] = [];
  for (const n of graph.nodes) {
    if (buffers.get(n.id) !== 'kernel') continue;
    const fused = new Set<NodeId>();
    const reads = new Set<NodeId>();
    const stack = operands(n);
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (buffers.has(id)) {
        reads.add(id);
        continue;
      }
      // Stryker disable next-line ConditionalExpression: fused is a set; a revisited node only repeats work
      if (fused.has(id)) continue;
      fused.add(id);
      stack.push(...operands(graph.node(id)));
    }
    const fusedMatmul = [...fused].find((id) => graph.node(id).op === 'matmul');
    const kind: GroupKind =
      n.op === 'reduce' || n.op === 'argmax' || n.op === 'argsort' || n.op === 'scatterAdd' || n.op === 'matmul'
        ? n.op === 'reduce'
          ? 'reduce'
          : n.op
        : fusedMatmul !== undefined
          ? 'matmul'
          : 'elementwise';
    const label = n.op === 'reduce' ? `reduce_${n.fn}` : fusedMatmul !== undefined ? 'matmul_epilogue' : kind;
    groups.push({
      name: `k${groups.length}_${label}`,
      kind,
      root: n.id,
      fused: [...fused].sort((a, b) => a - b),
      reads: [...reads].sort((a, b) => a - b),
      ...(fusedMatmul !== undefined ? { fusedMatmul } : {}),
    });
  }
  return { graph, wanted: [...wanted], buffers, groups };
}

/**
 * Compact text form: host buffers first, then one line per kernel.
 * `k1_reduce_sum  %9:f32[3,1] <- %0 %4  fuses %5 %6 %7 %8`
 */
export function printPlan(plan: KernelPlan): string {
  const g = plan.graph;
  const t = (id: NodeId) => {
    const n = g.node(id);
    return `%${id}:${n.dtype}${formatShape(n.shape)}`;
  };
  const lines: string[] = [];
  for (const [id, source] of plan.buffers) {
    if (source === 'kernel') continue;
    const n = g.node(id);
    const what = n.op === 'input' ? ` '${n.name}'` : '';
    lines.push(`host ${source}${what} ${t(id)}`);
  }
  for (const k of plan.groups) {
    const reads = k.reads.length > 0 ? k.reads.map((r) => `%${r}`).join(' ') : '-';
    const fuses = k.fused.length > 0 ? `  fuses ${k.fused.map((r) => `%${r}`).join(' ')}` : '';
    lines.push(`${k.name}  ${t(k.root)} <- ${reads}${fuses}`);
  }
  lines.push(`outputs ${plan.wanted.map((o) => `%${o}`).join(' ')}`);
  return lines.join('\n');
}
