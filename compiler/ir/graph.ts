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
    for (const id of this.materialize) g.materialize.add(id);
    return g;
  }

  toString(): string {
    return printGraph(this);
  }
}

/** Nodes `start … end - 1`, created by one `Graph.recompute` call. */
export interface RecomputeRegion {
  readonly label: string;
  readonly start: NodeId;
  readonly end: NodeId;
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
