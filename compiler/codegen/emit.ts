/**
 * Expression emitter: writes the JavaScript statements (the gpu.js kernel dialect) that compute
 * one node's value at a flat element index, inlining the node's fused operands recursively. Each
 * (node, index) pair is computed once per scope, so a value used twice in a kernel is a shared
 * temporary, not recomputed. Statements and temporaries: statements.ts; index arithmetic (and its
 * exact i32 wide mode): index-arithmetic.ts; dot products: matmul-emit.ts.
 *
 * Values are float32 in the kernel; i32 tensors are carried as floats, exact below 2^24 (checked
 * in compile.ts).
 */
import type { Graph } from '../ir/graph.ts';
import type { Node, NodeId } from '../ir/types.ts';
import { sizeOf } from '../ir/types.ts';
import { stridesOf } from '../ir/host-tensor.ts';
import type { KernelPlan } from '../fuse/plan.ts';
import { isMovableCut } from '../fuse/views.ts';
import { FLOAT32_EXACT_INT } from './kernel-spec.ts';
import { IndexWriter } from './index-arithmetic.ts';
import { matmulAt, packedProductAt, type PackedProductRead } from './matmul-emit.ts';

/** A float literal the gpu.js parser types as Float (always has a `.` or an exponent). */
export function floatLiteral(v: number): string {
  if (Number.isNaN(v)) throw new Error('codegen: NaN constants are not supported in kernels');
  // Beyond float32 range: rounds to ±Infinity in the kernel, as the constant would in float32.
  if (!Number.isFinite(v)) return v > 0 ? '1e39' : '(-1e39)';
  let s = String(v);
  if (!/[.e]/.test(s)) s += '.0';
  return v < 0 || Object.is(v, -0) ? `(${s.startsWith('-') ? s : '-' + s})` : s;
}

export class KernelWriter extends IndexWriter {
  constructor(
    readonly plan: KernelPlan,
    /** The group root: its own value is computed here, never read from a buffer. */
    readonly root: NodeId,
    /** Parameter name of each materialised buffer this kernel reads. */
    readonly params: ReadonlyMap<NodeId, string>,
    options: {
      /**
       * Set for a 2-D launch `[cols, rows]` over the root's row-major shape: `index` is the variable
       * holding the root's flat index. A matmul read at that index with the root's shape then takes
       * its row from `this.thread.y` (uniform across the four SIMD lanes on webasm, so A is read with
       * scalar loads instead of gathers) and its column from `this.thread.x`.
       */
      readonly grid?: { readonly index: string; readonly cols: number };
      /** Exact i32 index arithmetic (index-arithmetic.ts); needed beyond 2^24 elements. */
      readonly wide?: boolean;
      /** Wide mode: index values below this are held in float locals (tests lower it). */
      readonly exactBelow?: number;
      /** A matmul read from its packed product buffer (the epilogue kernel of a packed group). */
      readonly product?: PackedProductRead;
    } = {},
  ) {
    super(options);
    this.product = options.product;
    this.grid = options.grid;
    // 2-D launches put at least 4 cells on x, so thread.y stays below a quarter of the output
    if (sizeOf(plan.graph.node(root).shape) / 4 <= (options.exactBelow ?? FLOAT32_EXACT_INT)) this.markSmall('this.thread.y');
  }

  readonly grid?: { readonly index: string; readonly cols: number };
  readonly product?: PackedProductRead;

  get graph(): Graph {
    return this.plan.graph;
  }

  /** The value of node `id` at flat index `idx` (a variable name or an integer literal). */
  value(id: NodeId, idx: string): string {
    const key = `v:${id}@${idx}`;
    const hit = this.memo.get(key);
    if (hit !== undefined) return hit;
    const n = this.graph.node(id);
    let out: string;
    if (this.product?.id === id) {
      out = this.bind(`${this.product.param}[${packedProductAt(this, n, idx)}]`, 'v');
    } else if (id !== this.root && this.plan.buffers.has(id)) {
      const p = this.params.get(id);
      if (p === undefined) throw new Error(`codegen internal: buffer %${id} is not a parameter of this kernel`);
      out = this.bind(`${p}[${idx}]`, 'v');
    } else {
      out = this.bind(this.expression(n, idx), 'v');
    }
    this.memo.set(key, out);
    return out;
  }

  private expression(n: Node, idx: string): string {
    const g = this.graph;
    switch (n.op) {
      case 'input':
      case 'random':
      case 'reduce':
      case 'argmax':
      case 'argsort':
      case 'scatterAdd':
        throw new Error(`codegen internal: %${n.id} (${n.op}) must be materialised`);
      case 'const':
        if (n.values.length !== 1) throw new Error(`codegen internal: const %${n.id} with many values must be a buffer`);
        return floatLiteral(n.values[0]!);
      case 'iota':
        return this.coords(idx, n.shape)[n.axis]!;
      case 'unary': {
        const x = this.value(n.x, idx);
        switch (n.fn) {
          case 'neg':
            return `-${x}`;
          case 'exp':
            return `Math.exp(${x})`;
          case 'log':
            return `Math.log(${x})`;
          case 'sqrt':
            return `Math.sqrt(${x})`;
          case 'rsqrt':
            return `1.0 / Math.sqrt(${x})`;
          case 'tanh':
            return `Math.tanh(${x})`;
        }
        break;
      }
      case 'binary': {
        const a = this.value(n.a, idx);
        const b = this.value(n.b, idx);
        const integer = n.dtype === 'i32';
        switch (n.fn) {
          case 'add':
            return `${a} + ${b}`;
          case 'sub':
            return `${a} - ${b}`;
          case 'mul':
            return `${a} * ${b}`;
          case 'div':
            return integer ? `Math.floor(${a} / ${b})` : `${a} / ${b}`;
          case 'max':
            return `Math.max(${a}, ${b})`;
          case 'min':
            return `Math.min(${a}, ${b})`;
          case 'mod':
            return `${a} - ${b} * Math.floor(${a} / ${b})`;
        }
        break;
      }
      case 'compare': {
        const a = this.value(n.a, idx);
        const b = this.value(n.b, idx);
        const op = { lt: '<', le: '<=', gt: '>', ge: '>=', eq: '===', ne: '!==' }[n.fn];
        return `(${a} ${op} ${b} ? 1.0 : 0.0)`;
      }
      case 'where': {
        const c = this.value(n.cond, idx);
        const a = this.value(n.a, idx);
        const b = this.value(n.b, idx);
        return `(${c} !== 0.0 ? ${a} : ${b})`;
      }
      case 'cast':
        return n.dtype === 'i32' ? `Math.trunc(${this.value(n.x, idx)})` : this.value(n.x, idx);
      case 'stopGradient':
      case 'reshape':
        return this.value(n.x, idx);
      case 'broadcast': {
        const x = g.node(n.x);
        const c = this.coords(idx, n.shape);
        const off = n.shape.length - x.shape.length;
        const terms = x.shape.map((d, i) => (d === 1 ? '0' : c[i + off]!));
        return this.value(n.x, this.index(this.flat(terms, stridesOf(x.shape))));
      }
      case 'transpose': {
        const x = g.node(n.x);
        const c = this.coords(idx, n.shape);
        const xs = stridesOf(x.shape);
        return this.value(n.x, this.index(this.flat(c, n.perm.map((p) => xs[p]!))));
      }
      case 'slice': {
        const x = g.node(n.x);
        const c = this.coords(idx, n.shape).map((t, d) => {
          if (x.shape[d] === n.shape[d]) return t;
          const begin = isMovableCut(x.shape[d]!) ? this.cut(n.id, d, n.begin[d]!) : String(n.begin[d]);
          return begin === '0' ? t : `(${t} + ${begin})`;
        });
        return this.value(n.x, this.index(this.flat(c, stridesOf(x.shape))));
      }
      case 'pad': {
        const x = g.node(n.x);
        const c = this.coords(idx, n.shape);
        const inner = c.map((t, d) => {
          if (x.shape[d] === n.shape[d]) return t;
          const before = isMovableCut(n.shape[d]!) ? this.cut(n.id, d, n.before[d]!) : String(n.before[d]);
          return before === '0' ? t : this.bind(`${t} - ${before}`, 'c');
        });
        const checks = inner.flatMap((t, d) => (x.shape[d] === n.shape[d] ? [] : [`${t} >= 0`, `${t} < ${x.shape[d]}`]));
        const ok = checks.length === 0 ? 'true' : this.bind(checks.join(' && '), 'ok');
        // Out-of-range positions read element 0 (always valid) and select 0 afterwards.
        const src = this.index(`(${ok} ? ${this.flat(inner, stridesOf(x.shape))} : 0)`);
        return `(${ok} ? ${this.value(n.x, src)} : 0.0)`;
      }
      case 'concat': {
        const c = this.coords(idx, n.shape);
        const pos = c[n.axis]!;
        let base = 0;
        const pieces: Array<[number, string]> = [];
        for (const id of n.xs) {
          const x = g.node(id);
          const len = x.shape[n.axis]!;
          if (len > 0) {
            const clamped = this.int(this.bind(`Math.min(Math.max(${pos} - ${base}, 0), ${len - 1})`, 'c'));
            const terms = c.map((t, d) => (d === n.axis ? clamped : t));
            pieces.push([base + len, this.value(id, this.index(this.flat(terms, stridesOf(x.shape))))]);
          }
          base += len;
        }
        let e = pieces[pieces.length - 1]![1];
        for (let i = pieces.length - 2; i >= 0; i--) e = `(${pos} < ${pieces[i]![0]} ? ${pieces[i]![1]} : ${e})`;
        return e;
      }
      case 'gather': {
        const x = g.node(n.x);
        const c = this.coords(idx, n.shape);
        const len = x.shape[n.axis]!;
        // Clamped so a bad index cannot read outside the buffer; the reference throws instead.
        const j = this.int(this.bind(`Math.min(Math.max(${this.value(n.index, idx)}, 0), ${len - 1})`, 'j'));
        const terms = c.map((t, d) => (d === n.axis ? j : t));
        return this.value(n.x, this.index(this.flat(terms, stridesOf(x.shape))));
      }
      case 'matmul':
        return matmulAt(this, n, idx);
    }
    throw new Error(`codegen internal: unhandled op in %${(n as Node).id}`);
  }
}

/** KernelWriter index options from a group's index mode: 0 (float indices) or wide below a limit. */
export function indexing(mode: number): { wide: boolean; exactBelow?: number } {
  return mode === 0 ? { wide: false } : { wide: true, exactBelow: mode };
}
