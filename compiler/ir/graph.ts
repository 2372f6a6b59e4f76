import type { DType, InputRole, Node, NodeId, Op, Shape } from './types.ts';
import { formatShape, operands } from './types.ts';

/** A build-time error that names the layer path and the shapes involved. */
export class ShapeError extends Error {
  override name = 'ShapeError';
  constructor(
    readonly scope: string,
    readonly detail: string,
  ) {
    super(scope ? `${scope}: ${detail}` : detail);
  }
}

/** An invalid option (size, name, enum value) given to a layer or op. */
export class OptionError extends Error {
  override name = 'OptionError';
}

/**
 * A graph in SSA form: nodes only refer to earlier nodes, so the node array is a topological
 * order. Graphs are data; transformations copy them (`clone`) and append, never edit in place
 * what another graph may share.
 */
export class Graph {
  readonly nodes: Node[] = [];
  outputs: NodeId[] = [];
  /** Node ranges whose values the backward pass recomputes instead of keeping (`recompute`). */
  readonly recomputeRegions: RecomputeRegion[] = [];
  /**
   * Nodes the fusion pass must give a buffer of their own: a schedule choice made by a
   * transformation, e.g. a gradient sum built region by region, so that its terms die as it goes.
   */
  readonly materialize = new Set<NodeId>();
  /** Reversible blocks whose inputs the backward pass rebuilds from their outputs (`reversible`). */
  readonly reversibleRegions: ReversibleRegion[] = [];
  /**
   * Nodes whose forward values are stored for the backward pass: a replayed region reads them
   * instead of recomputing them (layer state, e.g. LSH buckets, which must not be re-drawn).
   */
  readonly stored = new Set<NodeId>();
  private readonly scopeStack: string[] = [];
  private openRegion = false;

  get scope(): string {
    return this.scopeStack.join('.');
  }

  /** Runs `fn` with `name` pushed on the layer path, so nodes and errors carry it. */
  withScope<T>(name: string, fn: () => T): T {
    this.scopeStack.push(name);
    try {
      return fn();
    } finally {
      this.scopeStack.pop();
    }
  }

  /**
   * Runs `fn` and marks the nodes it creates as a recompute region: reverse-mode differentiation
   * (compiler/grad) will not keep their values for the backward pass but recompute them there,
   * right before they are needed, so the region's intermediates are alive only while it runs.
   * Regions do not nest (an inner call is part of the outer region).
   */
  recompute<T>(label: string, fn: () => T): T {
    if (this.openRegion) return fn();
    const start = this.nodes.length;
    this.openRegion = true;
    try {
      return fn();
    } finally {
      this.openRegion = false;
      if (this.nodes.length > start) this.recomputeRegions.push({ label, start, end: this.nodes.length });
    }
  }

  /**
   * A reversible block `[X1, X2] → [Y1, Y2]`, `Y1 = X1 + F(X2)`, `Y2 = X2 + G(Y1)`, marked as a
   * region: reverse-mode differentiation keeps none of its values (nor its inputs) but rebuilds
   * the inputs from the outputs, `X2 = Y2 − G(Y1)`, `X1 = Y1 − F(X2)`, and differentiates F and G
   * replayed on the rebuilt values. Randomness replays from the same seeds and salts; nodes marked
   * `store` (layer state) are read, not recomputed. `f` and `g` must keep the stream's shape.
   */
  reversible(label: string, x1: Tensor, x2: Tensor, f: (x2: Tensor) => Tensor, g: (y1: Tensor) => Tensor): [Tensor, Tensor] {
    const start = this.nodes.length;
    const fOut = f(x2);
    const fEnd = this.nodes.length;
    const y1 = this.residualAdd(label, 'F', x1, fOut);
    const gOut = g(y1);
    const gEnd = this.nodes.length;
    const y2 = this.residualAdd(label, 'G', x2, gOut);
    this.reversibleRegions.push({
      label,
      start,
      end: this.nodes.length,
      x1: x1.id,
      x2: x2.id,
      f: { start, end: fEnd, out: fOut.id },
      y1: y1.id,
      g: { start: y1.id + 1, end: gEnd, out: gOut.id },
      y2: y2.id,
    });
    return [y1, y2];
  }

  private residualAdd(label: string, role: 'F' | 'G', x: Tensor, fx: Tensor): Tensor {
    if (formatShape(x.shape) !== formatShape(fx.shape) || x.dtype !== fx.dtype) {
      throw new ShapeError(this.scope, `${label}: ${role} output ${fx.dtype}${formatShape(fx.shape)} does not match its stream ${x.dtype}${formatShape(x.shape)}`);
    }
    return this.add({ op: 'binary', fn: 'add', a: x.id, b: fx.id }, x.shape, x.dtype);
  }

  /** Marks `t` as stored for the backward pass (see `stored`); it must carry no gradient. */
  store(t: Tensor): Tensor {
    if (t.dtype === 'f32' && t.node.op !== 'stopGradient') {
      throw new ShapeError(this.scope, `stored state %${t.id} is f32 and not behind stopGradient: a replay reading it would cut its gradient`);
    }
    this.stored.add(t.id);
    return t;
  }

  add(op: Op, shape: Shape, dtype: DType, scope = this.scope): Tensor {
    const node = { ...op, id: this.nodes.length, shape: [...shape], dtype, scope } as Node;
    this.nodes.push(node);
    return new Tensor(this, node.id);
  }

  node(id: NodeId): Node {
    const n = this.nodes[id];
    if (n === undefined) throw new Error(`node %${id} does not exist`);
    return n;
  }

  tensor(id: NodeId): Tensor {
    this.node(id);
    return new Tensor(this, id);
  }

  input(name: string, shape: Shape, dtype: DType = 'f32', role: InputRole = 'data'): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new ShapeError(this.scope, `input '${name}' has invalid shape ${formatShape(shape)}`);
      }
    }
    if (this.inputNodes().some((n) => n.name === name)) {
      throw new ShapeError(this.scope, `input '${name}' is declared twice`);
    }
    return this.add({ op: 'input', name, role }, shape, dtype);
  }

  inputNodes(): Array<Node & { op: 'input' }> {
    return this.nodes.filter((n): n is Node & { op: 'input' } => n.op === 'input');
  }

  inputByName(name: string): Node & { op: 'input' } {
    const n = this.inputNodes().find((i) => i.name === name);
    if (n === undefined) throw new Error(`graph has no input named '${name}'`);
    return n;
  }

  clone(): Graph {
    const g = new Graph();
    g.nodes.push(...this.nodes);
    g.outputs = [...this.outputs];
    g.recomputeRegions.push(...this.recomputeRegions);
    g.reversibleRegions.push(...this.reversibleRegions);
    for (const id of this.materialize) g.materialize.add(id);
    for (const id of this.stored) g.stored.add(id);
    return g;
  }

  toString(): string {
    return printGraph(this);
  }
}

/** Nodes `start … end - 1`, created by one `Graph.recompute` call. */
export interface RecomputeRegion extends NodeRange {
  readonly label: string;
}

/** A node range `start … end - 1`. */
export interface NodeRange {
  readonly start: NodeId;
  readonly end: NodeId;
}

/**
 * One reversible block, nodes `start … end - 1`: F's nodes (`f`, its output `f.out`), the add
 * giving `y1`, G's nodes (`g`, output `g.out`), the add giving `y2` (the last node).
 */
export interface ReversibleRegion extends NodeRange {
  readonly label: string;
  readonly x1: NodeId;
  readonly x2: NodeId;
  readonly f: NodeRange & { readonly out: NodeId };
  readonly y1: NodeId;
  readonly g: NodeRange & { readonly out: NodeId };
  readonly y2: NodeId;
}

/** A symbolic tensor: a handle on one node of a graph, with its static shape and dtype. */
export class Tensor {
  constructor(
    readonly graph: Graph,
    readonly id: NodeId,
  ) {}

  get node(): Node {
    return this.graph.node(this.id);
  }
  get shape(): Shape {
    return this.node.shape;
  }
  get dtype(): DType {
    return this.node.dtype;
  }
  get rank(): number {
    return this.node.shape.length;
  }

  toString(): string {
    return `%${this.id}:${this.dtype}${formatShape(this.shape)}`;
  }
}

function describeOp(n: Node): string {
  const ref = (id: NodeId) => `%${id}`;
  switch (n.op) {
    case 'input':
      return `input ${n.role} '${n.name}'`;
    case 'const':
      return n.values.length === 1 ? `const ${n.values[0]}` : `const <${n.values.length} values>`;
    case 'unary':
      return `${n.fn} ${ref(n.x)}`;
    case 'binary':
    case 'compare':
      return `${n.fn} ${ref(n.a)} ${ref(n.b)}`;
    case 'where':
      return `where ${ref(n.cond)} ${ref(n.a)} ${ref(n.b)}`;
    case 'cast':
    case 'broadcast':
    case 'reshape':
    case 'stopGradient':
      return `${n.op} ${ref(n.x)}`;
    case 'matmul':
      return `matmul ${ref(n.a)} ${ref(n.b)}`;
    case 'reduce':
      return `reduce_${n.fn} ${ref(n.x)} axis=${n.axis}`;
    case 'transpose':
      return `transpose ${ref(n.x)} perm=${formatShape(n.perm)}`;
    case 'slice':
      return `slice ${ref(n.x)} begin=${formatShape(n.begin)}`;
    case 'pad':
      return `pad ${ref(n.x)} before=${formatShape(n.before)}`;
    case 'concat':
      return `concat ${n.xs.map(ref).join(' ')} axis=${n.axis}`;
    case 'gather':
      return `gather ${ref(n.x)} ${ref(n.index)} axis=${n.axis}`;
    case 'scatterAdd':
      return `scatter_add ${ref(n.updates)} ${ref(n.index)} axis=${n.axis}`;
    case 'iota':
      return `iota axis=${n.axis}`;
    case 'argmax':
    case 'argsort':
      return `${n.op} ${ref(n.x)} axis=${n.axis}`;
    case 'random':
      return `random_${n.dist} seed=${ref(n.seed)} salt=${n.salt}`;
  }
}

/** Compact text form, one node per line: `%3:f32[4,8] = matmul %1 %2   # Serial[0].Dense`. */
export function printGraph(g: Graph): string {
  const lines = g.nodes.map((n) => {
    const lhs = `%${n.id}:${n.dtype}${formatShape(n.shape)}`;
    const scope = n.scope ? `  # ${n.scope}` : '';
    return `${lhs} = ${describeOp(n)}${scope}`;
  });
  for (const r of g.recomputeRegions) lines.push(`recompute %${r.start}…%${r.end - 1}  # ${r.label}`);
  for (const r of g.reversibleRegions) {
    lines.push(
      `reversible %${r.start}…%${r.end - 1} (%${r.x1}, %${r.x2}) -> (%${r.y1}, %${r.y2}) F %${r.f.start}…%${r.f.end - 1} G %${r.g.start}…%${r.g.end - 1}  # ${r.label}`,
    );
  }
  if (g.stored.size > 0) lines.push(`stored ${[...g.stored].map((id) => `%${id}`).join(' ')}`);
  lines.push(`outputs ${g.outputs.map((o) => `%${o}`).join(' ')}`);
  return lines.join('\n');
}

/** Ids of the nodes that `roots` depend on, roots included. */
export function liveNodes(graph: Graph, roots: readonly NodeId[]): Set<NodeId> {
  const live = new Set<NodeId>(roots);
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    if (!live.has(i)) continue;
    for (const o of operands(graph.nodes[i]!)) live.add(o);
  }
  return live;
}
