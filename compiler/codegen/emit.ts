/**
 * Expression emitter: writes the JavaScript statements (the gpu.js kernel dialect) that compute
 * one node's value at a flat element index, inlining the node's fused operands recursively. Each
 * (node, index) pair is computed once per scope (`memo`), so a value used twice in a kernel is a
 * shared temporary, not recomputed.
 *
 * Values are float32 in the kernel; i32 tensors are carried as floats, exact below 2^24 (checked
 * in compile.ts). Index arithmetic is float32 too: gpu.js types `/` and `%` as float, and a `let`
 * declared from an integer expression becomes a float local. That is exact while indices stay
 * below 2^24. A kernel touching a larger tensor is written in WIDE mode, where
 * - flat indices are never bound to locals: they stay inline expressions built from `(c | 0)`
 *   terms, which gpu.js evaluates in i32 (integer `+ - *` and bitwise ops stay i32);
 * - coordinates are peeled from the outermost axis, each a float estimate of a quotient
 *   corrected once by an i32 remainder, so every value held in a local is below 2^24.
 */
import type { Graph } from '../ir/graph.ts';
import type { Node, NodeId, Shape } from '../ir/types.ts';
import { sizeOf } from '../ir/types.ts';
import { stridesOf } from '../ir/host-tensor.ts';
import type { KernelPlan } from '../fuse/plan.ts';
import { axisStride, isMovableCut, viewOf, type Factor, type View } from '../fuse/views.ts';
import { FLOAT32_EXACT_INT } from './kernel-spec.ts';
import type { PackedGeometry } from './packed-matmul.ts';

/** A matmul whose value a kernel reads from a packed product buffer (packed-matmul.ts) instead of computing it. */
export interface PackedProductRead {
  readonly id: NodeId;
  /** Parameter name of the product buffer. */
  readonly param: string;
  readonly geometry: PackedGeometry;
}

/** A float literal the gpu.js parser types as Float (always has a `.` or an exponent). */
export function floatLiteral(v: number): string {
  if (Number.isNaN(v)) throw new Error('codegen: NaN constants are not supported in kernels');
  // Beyond float32 range: rounds to ±Infinity in the kernel, as the constant would in float32.
  if (!Number.isFinite(v)) return v > 0 ? '1e39' : '(-1e39)';
  let s = String(v);
  if (!/[.e]/.test(s)) s += '.0';
  return v < 0 || Object.is(v, -0) ? `(${s.startsWith('-') ? s : '-' + s})` : s;
}

/** k-loop unroll factor of inlined dot products. */
export const MATMUL_UNROLL = 4;

export class KernelWriter {
  private readonly lines: string[] = [];
  private memo = new Map<string, string>();
  private counter = 0;
  private depth = 1;
  /** The largest constant loop bound written, for gpu.js's loopMaxIterations. */
  loopMax = 0;
  /** Values of the scalar arguments the source reads (`o0`, `o1`, …, after the buffers), in order. */
  readonly scalars: number[] = [];
  private readonly scalarNames = new Map<string, string>();

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
      /** Exact i32 index arithmetic (see the file comment); needed beyond 2^24 elements. */
      readonly wide?: boolean;
      /**
       * Wide mode: index values below this are held in float locals (2^24, where float32 stops
       * being exact). Tests lower it so the i32 paths run at small sizes.
       */
      readonly exactBelow?: number;
      /** A matmul read from its packed product buffer (the epilogue kernel of a packed group). */
      readonly product?: PackedProductRead;
    } = {},
  ) {
    this.product = options.product;
    this.grid = options.grid;
    this.wide = options.wide ?? false;
    this.exactBelow = options.exactBelow ?? FLOAT32_EXACT_INT;
    // 2-D launches put at least 4 cells on x, so thread.y stays below a quarter of the output
    if (this.wide && sizeOf(plan.graph.node(root).shape) / 4 <= this.exactBelow) this.small.add('this.thread.y');
  }

  readonly grid?: { readonly index: string; readonly cols: number };
  readonly wide: boolean;
  private readonly exactBelow: number;
  private readonly product?: PackedProductRead;

  /** Index values known to be below 2^24 (exact as float locals): coordinates, small remainders. */
  private readonly small = new Set<string>();

  private isSmall(x: string): boolean {
    return !this.wide || /^\(?[0-9]+\)?$/.test(x) || this.small.has(x);
  }

  /**
   * ⌊x / d⌋ for an integer x ≥ 0 and a constant d ≥ 1. In wide mode, an x not known to be below
   * 2^24 (an inline i32 expression) takes a float estimate corrected once in i32; the quotient
   * must be below 2^24 (it is a coordinate).
   */
  div(x: string, d: number): string {
    if (d === 1) return x;
    if (this.isSmall(x)) return this.markSmall(this.bind(`Math.floor(${x} / ${d})`, 'c'));
    // the float quotient of a rounded x is off by a few units at most; the i32 remainder fixes it
    const q0 = this.bind(`Math.floor(${x} / ${d})`, 'c');
    return this.markSmall(this.bind(`${q0} + Math.floor((${x} - (${q0} | 0) * ${d}) / ${d})`, 'c'));
  }

  /** x mod d for an integer x ≥ 0 (in wide mode, with x / d below 2^24). */
  mod(x: string, d: number): string {
    if (d === 1) return '0';
    if (this.isSmall(x)) return this.markSmall(this.bind(`${x} % ${d}`, 'c'));
    return this.markSmall(this.bind(`${x} - (${this.div(x, d)} | 0) * ${d}`, 'c'));
  }

  /**
   * Where a slice or pad node cuts `axis` (its begin or before), as a scalar argument rather than a
   * literal: kernels that differ only in where they cut, like the chunks of a Chunked layer and
   * their gradients, then have one source and share one compiled kernel.
   */
  cut(node: NodeId, axis: number, value: number): string {
    const key = `${node}:${axis}`;
    let name = this.scalarNames.get(key);
    if (name === undefined) {
      name = `o${this.scalars.length}`;
      this.scalars.push(value);
      this.scalarNames.set(key, name);
      this.markSmall(name);
    }
    return name;
  }

  private markSmall(x: string): string {
    if (this.wide) this.small.add(x);
    return x;
  }

  /**
   * A loop counter (or counter + constant) as an index term. gpu.js loop counters are floats
   * too, so in wide mode they are made i32 before meeting a large base: `base + p` in float
   * would round above 2^24.
   */
  iv(v: string): string {
    return this.wide && !/^[0-9]+$/.test(v) ? `(${v} | 0)` : v;
  }

  /** A float-typed integer (a clamp result, a position read from a buffer) as an index term. */
  int(expr: string): string {
    return this.wide ? `(${expr} | 0)` : this.bind(expr, 'c');
  }

  get graph(): Graph {
    return this.plan.graph;
  }

  fresh(prefix: string): string {
    return `${prefix}${this.counter++}`;
  }

  stmt(line: string): void {
    this.lines.push('  '.repeat(this.depth) + line);
  }

  /** Binds `expr` to a new variable (memoised under `key` when given) and returns its name. */
  bind(expr: string, prefix = 't', key?: string): string {
    if (key !== undefined) {
      const hit = this.memo.get(key);
      if (hit !== undefined) return hit;
    }
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(expr) || /^\(?-?[0-9.e]+\)?$/.test(expr)) {
      if (key !== undefined) this.memo.set(key, expr);
      return expr;
    }
    const name = this.fresh(prefix);
    this.stmt(`let ${name} = ${expr};`);
    if (key !== undefined) this.memo.set(key, name);
    return name;
  }

  /** `head { body }`; temporaries made inside stay inside. */
  private block(head: string, body: () => void): void {
    this.stmt(`${head} {`);
    const saved = new Map(this.memo);
    this.depth++;
    body();
    this.depth--;
    this.memo = saved;
    this.stmt('}');
  }

  /** `for (let v = from; v < to; v++) { body }`; temporaries made inside stay inside. */
  loop(v: string, from: number, to: number, body: () => void): void {
    this.loopMax = Math.max(this.loopMax, to);
    this.block(`for (let ${v} = ${from}; ${v} < ${to}; ${v}++)`, body);
  }

  /** `if (cond) { body }`; temporaries made inside stay inside. */
  ifBlock(cond: string, body: () => void): void {
    this.block(`if (${cond})`, body);
  }

  /** `for (let v = from; v < to; v += step) { body }`, scoped like `loop`. */
  loopBy(v: string, from: number, to: number, step: number, body: () => void): void {
    this.loopMax = Math.max(this.loopMax, to);
    this.block(`for (let ${v} = ${from}; ${v} < ${to}; ${v} += ${step})`, body);
  }

  /** Row-major coordinates of flat index `idx` in `shape` (size-1 axes are the literal 0). */
  coords(idx: string, shape: Shape): string[] {
    const strides = stridesOf(shape);
    if (this.wide && !this.isSmall(idx)) {
      // an index into a tensor of at most 2^24 elements is exact as a float local
      if (sizeOf(shape) > this.exactBelow) return this.peel(idx, shape, strides);
      idx = this.markSmall(this.bind(idx, 'c'));
    }
    return shape.map((d, axis) => {
      if (d === 1) return '0';
      const key = `coord:${idx}:${shape.join(',')}:${axis}`;
      const hit = this.memo.get(key);
      if (hit !== undefined) return hit;
      const q = this.div(idx, strides[axis]!);
      const c = axis === 0 ? q : this.mod(q, d);
      this.memo.set(key, c);
      return c;
    });
  }

  /**
   * Wide-mode coordinates: from the outermost axis in, coordinate = ⌊rest / stride⌋ (below the
   * axis size) and rest −= coordinate·stride in i32; rest is bound to a local once it is below 2^24.
   */
  private peel(idx: string, shape: Shape, strides: readonly number[]): string[] {
    const key = `peel:${idx}:${shape.join(',')}`;
    const hit = this.memo.get(key);
    if (hit !== undefined) return JSON.parse(hit) as string[];
    let rest = idx;
    const out = shape.map((d, axis) => {
      if (d === 1) return '0';
      const s = strides[axis]!;
      const c = this.div(rest, s);
      if (s > 1) {
        const next = `${rest} - (${c} | 0) * ${s}`;
        rest = s <= this.exactBelow ? this.markSmall(this.bind(next, 'c')) : `(${next})`;
      }
      return c;
    });
    this.memo.set(key, JSON.stringify(out));
    return out;
  }

  /** Flat index from per-axis terms and strides, skipping zero terms (i32 terms in wide mode). */
  flat(terms: readonly string[], strides: readonly number[]): string {
    const parts: string[] = [];
    terms.forEach((t, d) => {
      if (t === '0') return;
      const term = this.wide && t !== 'this.thread.x' && t !== 'this.thread.y' ? `(${t} | 0)` : t;
      parts.push(strides[d] === 1 ? term : `${term} * ${strides[d]}`);
    });
    return parts.length === 0 ? '0' : parts.length === 1 ? parts[0]! : `(${parts.join(' + ')})`;
  }

  /**
   * An index reused many times (a loop's base): bound once. In wide mode a local would be a
   * float, so it is held as two exact float locals, hi·4096 + lo, rebuilt in i32 at each use
   * (two conversions, a multiply and an add instead of the whole inline expression).
   */
  hold(expr: string, limit?: number): string {
    if (!this.wide) return this.index(expr);
    if (/^[A-Za-z0-9_.]+$/.test(expr)) return expr;
    // an index into a buffer of at most 2^24 elements is exact as a float local
    if (limit !== undefined && limit <= this.exactBelow) return this.markSmall(this.bind(expr, 'i'));
    const hi = this.div(`(${expr})`, 4096);
    const lo = this.bind(`(${expr}) - (${hi} | 0) * 4096`, 'c');
    return `((${hi} | 0) * 4096 + (${lo} | 0))`;
  }

  /** Binds an index expression; in wide mode indices stay inline (a local would be float). */
  index(expr: string): string {
    return this.wide ? (/^[A-Za-z0-9_.]+$/.test(expr) ? expr : `(${expr})`) : this.bind(expr, 'i');
  }

  /**
   * Buffer index of a view at per-axis coordinates (each a variable or literal). A concat view
   * selects its piece by the coordinate along the concat axis (all pieces' indices are computed).
   */
  viewIndex(view: View, coords: readonly string[]): string {
    if (view.kind === 'concat') {
      const c = coords[view.axis]!;
      const pieces = view.parts.map((p) => {
        const local = p.begin === 0 ? c : this.bind(`${c} - ${p.begin}`, 'c');
        return this.index(this.viewIndex(p.view, coords.map((x, a) => (a === view.axis ? local : x))));
      });
      let e = pieces[pieces.length - 1]!;
      for (let i = pieces.length - 2; i >= 0; i--) e = `(${c} < ${view.parts[i + 1]!.begin} ? ${pieces[i]} : ${e})`;
      return e;
    }
    const parts: string[] = [];
    view.axes.forEach((factors, axis) => {
      const c = coords[axis]!;
      if (c === '0') return;
      let inner = 1;
      for (let j = factors.length - 1; j >= 0; j--) {
        const { size, stride } = factors[j]!;
        const q = this.div(c, inner);
        const digit = j === 0 ? q : this.mod(q, size);
        inner *= size;
        const term = this.wide ? `(${digit} | 0)` : digit;
        if (stride !== 0) parts.push(stride === 1 ? term : `${term} * ${stride}`);
      }
    });
    if (view.offset !== 0) parts.push(String(view.offset));
    for (const c of view.cuts) {
      const term = this.wide ? `(${this.cut(c.node, c.axis, c.begin)} | 0)` : this.cut(c.node, c.axis, c.begin);
      parts.push(c.stride === 1 ? term : `${term} * ${c.stride}`);
    }
    return parts.length === 0 ? '0' : parts.join(' + ');
  }

  /** The value of node `id` at flat index `idx` (a variable name or an integer literal). */
  value(id: NodeId, idx: string): string {
    const key = `v:${id}@${idx}`;
    const hit = this.memo.get(key);
    if (hit !== undefined) return hit;
    const n = this.graph.node(id);
    let out: string;
    if (this.product?.id === id) {
      out = this.bind(`${this.product.param}[${this.packedProductAt(n, idx)}]`, 'v');
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
        return this.matmulAt(n, idx);
    }
    throw new Error(`codegen internal: unhandled op in %${(n as Node).id}`);
  }

  /**
   * Index of a matmul's element in its packed product buffer: element (z, i, j) sits at
   * ((z·quads + ⌊i/4⌋)·nPad + j)·4 + i mod 4 (gpu.js product), (z·4·quads + i)·nPad + j (wasm). On a 2-D launch over the matmul's own shape the
   * row part comes from thread.y alone, so it stays lane-uniform and only `+ j·4` varies.
   */
  private packedProductAt(n: Node, idx: string): string {
    const g = this.product!.geometry;
    const rootShape = this.graph.node(this.root).shape;
    const onGrid =
      this.grid !== undefined && idx === this.grid.index && this.grid.cols === g.n && rootShape.length === n.shape.length && rootShape.every((d, i) => d === n.shape[i]);
    let z: string;
    let i: string;
    let j: string;
    if (onGrid) {
      z = g.batch > 1 ? this.div('this.thread.y', g.m) : '0';
      i = g.m === 1 ? '0' : g.batch > 1 ? this.mod('this.thread.y', g.m) : 'this.thread.y';
      j = g.n === 1 ? '0' : 'this.thread.x';
    } else {
      [z, i, j] = this.coords(idx, [g.batch, g.m, g.n]) as [string, string, string];
    }
    if (g.engine === 'wasm') {
      // row-major [batch][4·quads][nPad]
      const row = z === '0' ? i : `${z} * ${4 * g.quads} + ${i}`;
      const uniform = row === '0' ? '0' : this.bind(`(${row}) * ${g.nPad}`, 'i');
      return this.index(j === '0' ? uniform : uniform === '0' ? j : `${uniform} + ${j}`);
    }
    const q = i === '0' ? '0' : this.div(i, 4);
    const c = i === '0' ? '0' : this.mod(i, 4);
    const row = z === '0' ? (q === '0' ? '' : `${q} * ${g.nPad * 4}`) : `(${z} * ${g.quads} + ${q}) * ${g.nPad * 4}`;
    const uniform = this.bind(row === '' ? c : c === '0' ? row : `${row} + ${c}`, 'i');
    return this.index(j === '0' ? uniform : uniform === '0' ? `${j} * 4` : `${uniform} + ${j} * 4`);
  }

  /**
   * Dot product for one output element of a (batched) matmul. The k loop is unrolled by
   * MATMUL_UNROLL (independent loads per trip for the scheduler); the remainder is straight-line.
   */
  private matmulAt(n: Node & { op: 'matmul' }, idx: string): string {
    const a = this.graph.node(n.a);
    const k = a.shape[a.shape.length - 1]!;
    const [m, nn] = n.shape.slice(-2) as [number, number];
    const rank = n.shape.length;
    const rootShape = this.graph.node(this.root).shape;
    const onGrid =
      this.grid !== undefined &&
      idx === this.grid.index &&
      this.grid.cols === nn &&
      rootShape.length === rank &&
      rootShape.every((d, i) => d === n.shape[i]);
    let batch: string;
    let row: string;
    let col: string;
    if (onGrid) {
      // thread.y enumerates (batch, row) pairs; only thread-y terms, so the A index stays uniform
      const rows = sizeOf(n.shape) / nn;
      batch = rank > 2 && rows > m ? this.div('this.thread.y', m) : '0';
      row = m === 1 ? '0' : rows > m ? this.mod('this.thread.y', m) : 'this.thread.y';
      col = nn === 1 ? '0' : 'this.thread.x';
    } else {
      const c = this.coords(idx, n.shape);
      batch = rank > 2 ? this.div(idx, m * nn) : '0';
      row = c[rank - 2]!;
      col = c[rank - 1]!;
    }
    const batchShape = n.shape.slice(0, -2);
    const batchCoords = batch === '0' ? batchShape.map(() => '0') : this.coords(batch, batchShape);
    // Operand reads, per k segment: straight from the buffer at base + p·stride where the operand
    // is a view of one (a concat along k, like a look-around window, gives one segment per
    // piece); otherwise the operand's value at its logical flat index.
    type Read = (p: string) => string;
    /** A view operand walked by digits of its k factors: buffer index = origin + Σ digitⱼ·strideⱼ. */
    type Walk = { origin: string; factors: readonly Factor[]; param: string };
    type Segment = { begin: number; read: Read; walk?: Walk };
    const segments = (id: NodeId, outer: string, outerAxis: number, kAxis: number): Segment[] => {
      const decomposed = (): Read => {
        const strides = stridesOf(this.graph.node(id).shape);
        const base = this.hold(this.flat([...batchCoords, outer], [...strides.slice(0, -2), strides[outerAxis]!]), sizeOf(this.graph.node(id).shape));
        const step = strides[kAxis]!;
        return (p) => this.value(id, this.index(base === '0' ? `${this.iv(p)} * ${step}` : `${base} + ${this.iv(p)} * ${step}`));
      };
      const view = viewOf(this.graph, (x) => x !== this.root && this.plan.buffers.has(x), id);
      if (view === undefined) return [{ begin: 0, read: decomposed() }];
      const param = this.params.get(view.buffer);
      if (param === undefined) throw new Error(`codegen internal: buffer %${view.buffer} is not a parameter of this kernel`);
      const coords = [...batchCoords, outerAxis === rank - 2 ? outer : '0', outerAxis === rank - 1 ? outer : '0'];
      // the pieces along k, each a view whose k axis has one stride
      const pieces: Array<{ begin: number; view: View }> =
        view.kind === 'concat' && view.axis === kAxis ? [...view.parts] : [{ begin: 0, view }];
      const limit = sizeOf(this.graph.node(view.buffer).shape);
      const originOf = (pv: View, shift: number): string => {
        // wide mode: the lane coordinate (thread.x, an i32) stays out of the held base, so the
        // lanes' indices are `base + thread.x·stride`, not rebuilt from float locals per read
        const laneStride = this.wide && outer === 'this.thread.x' ? axisStride(pv, outerAxis) : undefined;
        const base = this.viewIndex(pv, laneStride === undefined ? coords : coords.map((c) => (c === outer ? '0' : c)));
        const held = this.hold(shift === 0 ? base : `${base} - ${shift}`, limit);
        if (laneStride === undefined || laneStride === 0) return held;
        return held === '0' ? `this.thread.x * ${laneStride}` : `${held} + this.thread.x * ${laneStride}`;
      };
      if (pieces.some((pc) => axisStride(pc.view, kAxis) === undefined)) {
        // a k axis made of several factors (heads merged back into the model width): walkable
        // by nested loops when it is one piece; the flat read stays as the fallback
        const only = pieces.length === 1 ? pieces[0]!.view : undefined;
        if (only?.kind !== 'strided') return [{ begin: 0, read: decomposed() }];
        let fallback: Read | undefined;
        const read: Read = (p) => (fallback ??= decomposed())(p);
        return [{ begin: 0, read, walk: { origin: originOf(only, 0), factors: only.axes[kAxis]!, param } }];
      }
      return pieces.map(({ begin, view: pv }) => {
        const step = axisStride(pv, kAxis)!;
        // element p of the whole k axis is element p − begin of this piece
        const origin = originOf(pv, begin * step);
        const read: Read = (loopP) => {
          const p = this.iv(loopP);
          const at = step === 0 ? origin : origin === '0' ? (step === 1 ? p : `${p} * ${step}`) : `${origin} + ${step === 1 ? p : `${p} * ${step}`}`;
          return this.bind(`${param}[${this.index(at)}]`, 'v');
        };
        const walk = pieces.length === 1 ? { origin, factors: k === 1 ? [] : [{ size: k, stride: step }], param } : undefined;
        return { begin, read, ...(walk ? { walk } : {}) };
      });
    };
    const segA = segments(n.a, row, rank - 2, rank - 1);
    const segB = segments(n.b, col, rank - 1, rank - 2);
    const walkA = segA.length === 1 ? segA[0]!.walk : undefined;
    const walkB = segB.length === 1 ? segB[0]!.walk : undefined;
    if (walkA && walkB && (walkA.factors.length > 1 || walkB.factors.length > 1)) {
      const digits = commonFactors(walkA.factors, walkB.factors);
      if (digits !== undefined) return this.walkedDot(walkA, walkB, digits);
    }
    const cuts = [...new Set([0, ...segA.map((x) => x.begin), ...segB.map((x) => x.begin), k])].sort((x, y) => x - y);
    const pick = (segs: Array<{ begin: number; read: Read }>, at: number): Read => segs.filter((x) => x.begin <= at).pop()!.read;
    const acc = this.fresh('acc');
    this.stmt(`let ${acc} = 0.0;`);
    for (let c = 0; c + 1 < cuts.length; c++) {
      const [from, to] = [cuts[c]!, cuts[c + 1]!];
      const readA = pick(segA, from);
      const readB = pick(segB, from);
      const term = (p: string): void => {
        const av = readA(p);
        const bv = readB(p);
        this.stmt(`${acc} += ${av} * ${bv};`);
      };
      const len = to - from;
      const unroll = Math.min(MATMUL_UNROLL, len);
      const main = unroll > 0 ? Math.floor(len / unroll) * unroll : 0;
      if (main > 0) {
        const p = this.fresh('p');
        this.loopBy(p, from, from + main, unroll, () => {
          for (let u = 0; u < unroll; u++) term(u === 0 ? p : this.index(`${p} + ${u}`));
        });
      }
      for (let p = from + main; p < to; p++) term(String(p));
    }
    return acc;
  }

  /**
   * Σₖ A·B with k split into nested loops over `digits` (outermost first; the innermost unrolled),
   * each operand advancing by its own stride per digit. Summation order is k's order.
   */
  private walkedDot(
    a: { origin: string; param: string },
    b: { origin: string; param: string },
    digits: ReadonlyArray<{ size: number; sa: number; sb: number }>,
  ): string {
    const acc = this.fresh('acc');
    this.stmt(`let ${acc} = 0.0;`);
    const offset = (origin: string, terms: readonly string[]): string =>
      [origin, ...terms].filter((t) => t !== '0' && t !== '').join(' + ') || '0';
    const level = (d: number, termsA: readonly string[], termsB: readonly string[]): void => {
      const { size, sa, sb } = digits[d]!;
      const term = (loopV: string): [string, string] => {
        const v = this.iv(loopV);
        return [sa === 0 ? '' : sa === 1 ? v : `${v} * ${sa}`, sb === 0 ? '' : sb === 1 ? v : `${v} * ${sb}`];
      };
      if (d < digits.length - 1) {
        const v = this.fresh('q');
        this.loop(v, 0, size, () => {
          const [ta, tb] = term(v);
          level(d + 1, [...termsA, ta], [...termsB, tb]);
        });
        return;
      }
      const step = (p: string): void => {
        const [ta, tb] = term(p);
        const av = this.bind(`${a.param}[${this.index(offset(a.origin, [...termsA, ta]))}]`, 'v');
        const bv = this.bind(`${b.param}[${this.index(offset(b.origin, [...termsB, tb]))}]`, 'v');
        this.stmt(`${acc} += ${av} * ${bv};`);
      };
      const unroll = Math.min(MATMUL_UNROLL, size);
      const main = Math.floor(size / unroll) * unroll;
      const p = this.fresh('p');
      this.loopBy(p, 0, main, unroll, () => {
        for (let u = 0; u < unroll; u++) step(u === 0 ? p : `(${p} + ${u})`);
      });
      for (let r = main; r < size; r++) step(String(r));
    };
    level(0, [], []);
    return acc;
  }

  /** The kernel function text: `function (b0, b3, o0) { ...; return v; }`, buffers then scalars. */
  finish(paramNames: readonly string[], result: string): string {
    const names = [...paramNames, ...this.scalars.map((_, i) => `o${i}`)];
    return [`function (${names.join(', ')}) {`, ...this.lines, `  return ${result};`, '}'].join('\n');
  }
}


/**
 * The common refinement of two factorisations of one axis (outermost first), as digits with each
 * side's stride, or undefined when their cut points do not nest (a factor boundary of one side
 * falls unevenly inside a factor of the other).
 */
export function commonFactors(
  a: readonly Factor[],
  b: readonly Factor[],
): Array<{ size: number; sa: number; sb: number }> | undefined {
  const ra = [...a].reverse();
  const rb = [...b].reverse();
  const out: Array<{ size: number; sa: number; sb: number }> = [];
  while (ra.length > 0 && rb.length > 0) {
    const fa = ra[0]!;
    const fb = rb[0]!;
    const m = Math.min(fa.size, fb.size);
    if (fa.size % m !== 0 || fb.size % m !== 0) return undefined;
    out.push({ size: m, sa: fa.stride, sb: fb.stride });
    if (fa.size === m) ra.shift();
    else ra[0] = { size: fa.size / m, stride: fa.stride * m };
    if (fb.size === m) rb.shift();
    else rb[0] = { size: fb.size / m, stride: fb.stride * m };
  }
  return ra.length === 0 && rb.length === 0 ? out.reverse() : undefined;
}

/** KernelWriter index options from a group's index mode: 0 (float indices) or wide below a limit. */
export function indexing(mode: number): { wide: boolean; exactBelow?: number } {
  return mode === 0 ? { wide: false } : { wide: true, exactBelow: mode };
}
