/**
 * Index arithmetic: coordinates of flat indices, flat indices of coordinates, view addressing.
 *
 * Index arithmetic is float32: gpu.js types `/` and `%` as float, and a `let` declared from an
 * integer expression becomes a float local. That is exact while indices stay below 2^24. A kernel
 * touching a larger tensor is written in WIDE mode, where
 * - flat indices are never bound to locals: they stay inline expressions built from `(c | 0)`
 *   terms, which gpu.js evaluates in i32 (integer `+ - *` and bitwise ops stay i32);
 * - coordinates are peeled from the outermost axis, each a float estimate of a quotient
 *   corrected once by an i32 remainder, so every value held in a local is below 2^24.
 */
import type { NodeId, Shape } from '../ir/types.ts';
import { sizeOf } from '../ir/types.ts';
import { stridesOf } from '../ir/host-tensor.ts';
import type { View } from '../fuse/views.ts';
import { FLOAT32_EXACT_INT } from './kernel-spec.ts';
import { StatementWriter } from './statements.ts';

export class IndexWriter extends StatementWriter {
  readonly wide: boolean;
  private readonly exactBelow: number;

  /** Index values known to be below 2^24 (exact as float locals): coordinates, small remainders. */
  private readonly small = new Set<string>();

  constructor(options: {
    /** Exact i32 index arithmetic (see the file comment); needed beyond 2^24 elements. */
    readonly wide?: boolean;
    /**
     * Wide mode: index values below this are held in float locals (2^24, where float32 stops
     * being exact). Tests lower it so the i32 paths run at small sizes.
     */
    readonly exactBelow?: number;
  }) {
    super();
    this.wide = options.wide ?? false;
    this.exactBelow = options.exactBelow ?? FLOAT32_EXACT_INT;
  }

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
    const { name, added } = this.scalar(`${node}:${axis}`, value);
    if (added) this.markSmall(name);
    return name;
  }

  protected markSmall(x: string): string {
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
}
