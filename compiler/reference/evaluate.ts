/**
 * The float64 reference evaluator: the living definition of every primitive. It is slow and
 * obvious on purpose; every compiled kernel is judged against it.
 */
import { liveNodes, type Graph } from '../ir/graph.ts';
import { normalAt, uniformAt } from '../ir/random.ts';
import type { Node, NodeId, Shape } from '../ir/types.ts';
import { formatShape, operands, sizeOf } from '../ir/types.ts';
import { stridesOf, type HostTensor } from '../ir/host-tensor.ts';

export type { HostTensor } from '../ir/host-tensor.ts';

/** Calls `fn(flat, index)` for each element in row-major order; `index` is reused between calls. */
function forEachIndex(shape: Shape, fn: (flat: number, index: number[]) => void): void {
  const n = sizeOf(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    fn(flat, idx);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
}

function alloc(node: Node): Float64Array | Int32Array {
  const n = sizeOf(node.shape);
  return node.dtype === 'i32' ? new Int32Array(n) : new Float64Array(n);
}

const unaryFns = {
  neg: (x: number) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x: number) => 1 / Math.sqrt(x),
  tanh: Math.tanh,
};

function binaryFn(fn: string, integer: boolean): (a: number, b: number) => number {
  switch (fn) {
    case 'add':
      return (a, b) => a + b;
    case 'sub':
      return (a, b) => a - b;
    case 'mul':
      return integer ? (a, b) => Math.imul(a, b) : (a, b) => a * b;
    case 'div':
      return integer ? (a, b) => Math.floor(a / b) : (a, b) => a / b;
    case 'max':
      return Math.max;
    case 'min':
      return Math.min;
    case 'mod':
      return (a, b) => ((a % b) + b) % b;
    default:
      throw new Error(`unknown binary fn ${fn}`);
  }
}

const compareFns = {
  lt: (a: number, b: number) => a < b,
  le: (a: number, b: number) => a <= b,
  gt: (a: number, b: number) => a > b,
  ge: (a: number, b: number) => a >= b,
  eq: (a: number, b: number) => a === b,
  ne: (a: number, b: number) => a !== b,
};

/** Evaluates one node given its operands' values. */
function evalNode(node: Node, val: (id: NodeId) => HostTensor, feeds: ReadonlyMap<string, HostTensor>): HostTensor {
  const out = alloc(node);
  const shape = node.shape;
  const n = out.length;
  switch (node.op) {
    case 'input': {
      const t = feeds.get(node.name);
      if (t === undefined) throw new Error(`no value fed for input '${node.name}'`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`input '${node.name}' expects shape ${formatShape(shape)}, got ${formatShape(t.shape)}`);
      }
      if (t.dtype !== node.dtype) throw new Error(`input '${node.name}' expects ${node.dtype}, got ${t.dtype}`);
      out.set(t.data);
      break;
    }
    case 'const':
      for (let i = 0; i < n; i++) out[i] = node.values.length === 1 ? node.values[0]! : node.values[i]!;
      break;
    case 'unary': {
      const x = val(node.x).data;
      const f = unaryFns[node.fn];
      for (let i = 0; i < n; i++) out[i] = f(x[i]!);
      break;
    }
    case 'binary': {
      const a = val(node.a).data;
      const b = val(node.b).data;
      const f = binaryFn(node.fn, node.dtype === 'i32');
      for (let i = 0; i < n; i++) out[i] = f(a[i]!, b[i]!);
      break;
    }
    case 'compare': {
      const a = val(node.a).data;
      const b = val(node.b).data;
      const f = compareFns[node.fn];
      for (let i = 0; i < n; i++) out[i] = f(a[i]!, b[i]!) ? 1 : 0;
      break;
    }
    case 'where': {
      const c = val(node.cond).data;
      const a = val(node.a).data;
      const b = val(node.b).data;
      for (let i = 0; i < n; i++) out[i] = c[i] !== 0 ? a[i]! : b[i]!;
      break;
    }
    case 'cast': {
      const x = val(node.x).data;
      for (let i = 0; i < n; i++) out[i] = node.dtype === 'i32' ? Math.trunc(x[i]!) : x[i]!;
      break;
    }
    case 'matmul': {
      const A = val(node.a);
      const B = val(node.b);
      const k = A.shape[A.shape.length - 1]!;
      const m = shape[shape.length - 2]!;
      const nn = shape[shape.length - 1]!;
      const batches = n / (m * nn);
      for (let bt = 0; bt < batches; bt++) {
        const ao = bt * m * k;
        const bo = bt * k * nn;
        const oo = bt * m * nn;
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < nn; j++) {
            let s = 0;
            for (let p = 0; p < k; p++) s += A.data[ao + i * k + p]! * B.data[bo + p * nn + j]!;
            out[oo + i * nn + j] = s;
          }
        }
      }
      break;
    }
    case 'reduce': {
      const X = val(node.x);
      const len = X.shape[node.axis]!;
      const inner = sizeOf(X.shape.slice(node.axis + 1));
      const outer = sizeOf(X.shape.slice(0, node.axis));
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let acc = node.fn === 'sum' ? 0 : -Infinity;
          for (let r = 0; r < len; r++) {
            const v = X.data[(o * len + r) * inner + i]!;
            acc = node.fn === 'sum' ? acc + v : Math.max(acc, v);
          }
          out[o * inner + i] = acc;
        }
      }
      break;
    }
    case 'broadcast': {
      const X = val(node.x);
      const offset = shape.length - X.shape.length;
      const xs = stridesOf(X.shape);
      forEachIndex(shape, (flat, idx) => {
        let src = 0;
        for (let d = 0; d < X.shape.length; d++) if (X.shape[d] !== 1) src += idx[d + offset]! * xs[d]!;
        out[flat] = X.data[src]!;
      });
      break;
    }
    case 'reshape':
      out.set(val(node.x).data);
      break;
    case 'transpose': {
      const X = val(node.x);
      const xs = stridesOf(X.shape);
      const perm = node.perm;
      forEachIndex(shape, (flat, idx) => {
        let src = 0;
        for (let d = 0; d < perm.length; d++) src += idx[d]! * xs[perm[d]!]!;
        out[flat] = X.data[src]!;
      });
      break;
    }
    case 'slice': {
      const X = val(node.x);
      const xs = stridesOf(X.shape);
      forEachIndex(shape, (flat, idx) => {
        let src = 0;
        for (let d = 0; d < shape.length; d++) src += (idx[d]! + node.begin[d]!) * xs[d]!;
        out[flat] = X.data[src]!;
      });
      break;
    }
    case 'pad': {
      const X = val(node.x);
      const os = stridesOf(shape);
      forEachIndex(X.shape, (flat, idx) => {
        let dst = 0;
        for (let d = 0; d < shape.length; d++) dst += (idx[d]! + node.before[d]!) * os[d]!;
        out[dst] = X.data[flat]!;
      });
      break;
    }
    case 'concat': {
      const os = stridesOf(shape);
      let base = 0;
      for (const id of node.xs) {
        const X = val(id);
        forEachIndex(X.shape, (flat, idx) => {
          let dst = 0;
          for (let d = 0; d < shape.length; d++) dst += (idx[d]! + (d === node.axis ? base : 0)) * os[d]!;
          out[dst] = X.data[flat]!;
        });
        base += X.shape[node.axis]!;
      }
      break;
    }
    case 'gather': {
      const X = val(node.x);
      const I = val(node.index);
      const xs = stridesOf(X.shape);
      const len = X.shape[node.axis]!;
      forEachIndex(shape, (flat, idx) => {
        const j = I.data[flat]!;
        if (j < 0 || j >= len) throw new Error(`gather: index ${j} out of range [0, ${len}) at ${node.scope || 'top level'}`);
        let src = 0;
        for (let d = 0; d < shape.length; d++) src += (d === node.axis ? j : idx[d]!) * xs[d]!;
        out[flat] = X.data[src]!;
      });
      break;
    }
    case 'scatterAdd': {
      const U = val(node.updates);
      const I = val(node.index);
      const os = stridesOf(shape);
      const len = shape[node.axis]!;
      forEachIndex(U.shape, (flat, idx) => {
        const j = I.data[flat]!;
        if (j < 0 || j >= len) throw new Error(`scatterAdd: index ${j} out of range [0, ${len}) at ${node.scope || 'top level'}`);
        let dst = 0;
        for (let d = 0; d < shape.length; d++) dst += (d === node.axis ? j : idx[d]!) * os[d]!;
        out[dst] = out[dst]! + U.data[flat]!;
      });
      break;
    }
    case 'iota':
      forEachIndex(shape, (flat, idx) => {
        out[flat] = idx[node.axis]!;
      });
      break;
    case 'argmax':
    case 'argsort': {
      const X = val(node.x);
      const len = X.shape[node.axis]!;
      const inner = sizeOf(X.shape.slice(node.axis + 1));
      const outer = sizeOf(X.shape.slice(0, node.axis));
      const order = new Array<number>(len);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const at = (r: number) => X.data[(o * len + r) * inner + i]!;
          if (node.op === 'argmax') {
            let best = 0;
            for (let r = 1; r < len; r++) if (at(r) > at(best)) best = r;
            out[o * inner + i] = best;
          } else {
            for (let r = 0; r < len; r++) order[r] = r;
            order.sort((p, q) => at(p) - at(q) || p - q);
            for (let r = 0; r < len; r++) out[(o * len + r) * inner + i] = order[r]!;
          }
        }
      }
      break;
    }
    case 'random': {
      const seed = val(node.seed).data[0]!;
      const draw = node.dist === 'normal' ? normalAt : uniformAt;
      for (let i = 0; i < n; i++) out[i] = draw(seed, node.salt, i);
      break;
    }
    case 'stopGradient':
      out.set(val(node.x).data);
      break;
  }
  return { shape, dtype: node.dtype, data: out };
}

/**
 * Evaluates `graph` in float64 and returns the values of its outputs (or of `wanted` node ids).
 * Values are dropped once their last consumer has run, so memory follows liveness.
 */
export function evaluate(
  graph: Graph,
  feeds: Readonly<Record<string, HostTensor>> | ReadonlyMap<string, HostTensor>,
  wanted: readonly NodeId[] = graph.outputs,
): HostTensor[] {
  const feedMap = feeds instanceof Map ? feeds : new Map(Object.entries(feeds));
  const live = liveNodes(graph, wanted);
  const values = new Map<NodeId, HostTensor>();
  const val = (id: NodeId) => {
    const v = values.get(id);
    if (v === undefined) throw new Error(`internal: value %${id} is not available`);
    return v;
  };
  const lastUse = new Map<NodeId, number>();
  for (const node of graph.nodes) if (live.has(node.id)) for (const o of operands(node)) lastUse.set(o, node.id);
  const keep = new Set(wanted);
  for (const node of graph.nodes) {
    if (!live.has(node.id)) continue;
    values.set(node.id, evalNode(node, val, feedMap));
    for (const o of operands(node)) if (lastUse.get(o) === node.id && !keep.has(o)) values.delete(o);
  }
  return wanted.map(val);
}
