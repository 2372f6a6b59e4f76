/**
 * Index arithmetic: coordinates of flat indices, flat indices of coordinates, view addressing,
 * as kernel IR expressions.
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
import { add, binary, call, int, isInt, isZero, mul, paren, printExpr, select, sub, sum, toI32, type Expr } from './kernel-ir.ts';
import { StatementWriter } from './statements.ts';

/** `term · stride`, or the term itself for stride 1. */
const scaled = (term: Expr, stride: number): Expr => (stride === 1 ? term : mul(term, int(stride)));

/** A local, a literal or a thread coordinate: used as it is wherever an index is needed. */
const isIndexAtom = (e: Expr): boolean => e.kind === 'local' || e.kind === 'int' || e.kind === 'thread';

export class IndexWriter extends StatementWriter {
  readonly wide: boolean;
  private readonly exactBelow: number;

  /**
   * Locals and thread coordinates known to be below 2^24 (exact as float locals): coordinates,
   * small remainders, cuts.
   */
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

  private isSmall(x: Expr): boolean {
    return !this.wide || isInt(x) || ((x.kind === 'local' || x.kind === 'thread') && this.small.has(printExpr(x)));
  }

  protected markSmall(x: Expr): Expr {
    if (this.wide && (x.kind === 'local' || x.kind === 'thread')) this.small.add(printExpr(x));
    return x;
  }

  /**
   * ⌊x / d⌋ for an integer x ≥ 0 and a constant d ≥ 1. In wide mode, an x not known to be below
   * 2^24 (an inline i32 expression) takes a float estimate corrected once in i32; the quotient
   * must be below 2^24 (it is a coordinate).
   */
  div(x: Expr, d: number): Expr {
    if (d === 1) return x;
    const q0 = this.bind(call('floor', binary('/', x, int(d))), 'c');
    if (this.isSmall(x)) return this.markSmall(q0);
    // the float quotient of a rounded x is off by a few units at most; the i32 remainder fixes it
    const fix = call('floor', binary('/', paren(sub(x, mul(toI32(q0), int(d)))), int(d)));
    return this.markSmall(this.bind(add(q0, fix), 'c'));
  }

  /** x mod d for an integer x ≥ 0 (in wide mode, with x / d below 2^24). */
  mod(x: Expr, d: number): Expr {
    if (d === 1) return int(0);
    if (this.isSmall(x)) return this.markSmall(this.bind(binary('%', x, int(d)), 'c'));
    return this.markSmall(this.bind(sub(x, mul(toI32(this.div(x, d)), int(d))), 'c'));
  }

  /**
   * Where a slice or pad node cuts `axis` (its begin or before), as a scalar argument rather than a
   * literal: kernels that differ only in where they cut, like the chunks of a Chunked layer and
   * their gradients, then have one source and share one compiled kernel.
   */
  cut(node: NodeId, axis: number, value: number): Expr {
    const { arg, added } = this.scalar(`${node}:${axis}`, value);
    // Stryker disable next-line ConditionalExpression: cuts enter indices as i32 terms or sums, never through isSmall
    if (added) this.markSmall(arg);
    return arg;
  }

  /**
   * A loop counter (or counter + constant) as an index term. gpu.js loop counters are floats
   * too, so in wide mode they are made i32 before meeting a large base: `base + p` in float
   * would round above 2^24.
   */
  iv(v: Expr): Expr {
    return this.wide && v.kind !== 'int' ? toI32(v) : v;
  }

  /** A float-typed integer (a clamp result, a position read from a buffer) as an index term. */
  int(expr: Expr): Expr {
    return this.wide ? toI32(expr) : this.bind(expr, 'c');
  }

  /** Row-major coordinates of flat index `idx` in `shape` (size-1 axes are the literal 0). */
  coords(idx: Expr, shape: Shape): Expr[] {
    const strides = stridesOf(shape);
    if (this.wide && !this.isSmall(idx)) {
      // an index into a tensor of at most 2^24 elements is exact as a float local
      if (sizeOf(shape) > this.exactBelow) return this.peel(idx, shape, strides);
      idx = this.markSmall(this.bind(idx, 'c'));
    }
    const at = printExpr(idx);
    return shape.map((d, axis) => {
      if (d === 1) return int(0);
      const key = `coord:${at}:${shape.join(',')}:${axis}`;
      const hit = this.memo.get(key);
      if (hit !== undefined) return hit;
      const q = this.div(idx, strides[axis]!);
      const c = axis === 0 ? q : this.mod(q, d);
      this.memo.set(key, c);
      return c;
    });
  }

  private readonly peeled = new Map<string, Expr[]>();

  /**
   * Wide-mode coordinates: from the outermost axis in, coordinate = ⌊rest / stride⌋ (below the
   * axis size) and rest −= coordinate·stride in i32; rest is bound to a local once it is below 2^24.
   */
  private peel(idx: Expr, shape: Shape, strides: readonly number[]): Expr[] {
    const key = `peel:${printExpr(idx)}:${shape.join(',')}`;
    const hit = this.peeled.get(key);
    if (hit !== undefined) return hit;
    let rest = idx;
    const out = shape.map((d, axis) => {
      if (d === 1) return int(0);
      const s = strides[axis]!;
      const c = this.div(rest, s);
      if (s > 1) {
        const next = sub(rest, mul(toI32(c), int(s)));
        rest = s <= this.exactBelow ? this.markSmall(this.bind(next, 'c')) : paren(next);
      }
      return c;
    });
    this.peeled.set(key, out);
    return out;
  }

  /** Flat index from per-axis terms and strides, skipping zero terms (i32 terms in wide mode). */
  flat(terms: readonly Expr[], strides: readonly number[]): Expr {
    const parts: Expr[] = [];
    terms.forEach((t, d) => {
      if (isZero(t)) return;
      const lane = t.kind === 'thread' && t.axis !== 'z';
      parts.push(scaled(this.wide && !lane ? toI32(t) : t, strides[d]!));
    });
    return parts.length === 0 ? int(0) : parts.length === 1 ? parts[0]! : paren(sum(parts));
  }

  /**
   * An index reused many times (a loop's base): bound once. In wide mode a local would be a
   * float, so it is held as two exact float locals, hi·4096 + lo, rebuilt in i32 at each use
   * (two conversions, a multiply and an add instead of the whole inline expression).
   */
  hold(expr: Expr, limit?: number): Expr {
    if (!this.wide) return this.index(expr);
    if (isIndexAtom(expr)) return expr;
    // an index into a buffer of at most 2^24 elements is exact as a float local
    if (limit !== undefined && limit <= this.exactBelow) return this.markSmall(this.bind(expr, 'i'));
    const hi = this.div(paren(expr), 4096);
    const lo = this.bind(sub(paren(expr), mul(toI32(hi), int(4096))), 'c');
    return paren(add(mul(toI32(hi), int(4096)), toI32(lo)));
  }

  /** Binds an index expression; in wide mode indices stay inline (a local would be float). */
  index(expr: Expr): Expr {
    return this.wide ? (isIndexAtom(expr) ? expr : paren(expr)) : this.bind(expr, 'i');
  }

  /**
   * Buffer index of a view at per-axis coordinates (each a local or a literal). A concat view
   * selects its piece by the coordinate along the concat axis (all pieces' indices are computed).
   */
  viewIndex(view: View, coords: readonly Expr[]): Expr {
    if (view.kind === 'concat') {
      const c = coords[view.axis]!;
      const pieces = view.parts.map((p) => {
        const local = p.begin === 0 ? c : this.bind(sub(c, int(p.begin)), 'c');
        return this.index(this.viewIndex(p.view, coords.map((x, a) => (a === view.axis ? local : x))));
      });
      let e = pieces[pieces.length - 1]!;
      for (let i = pieces.length - 2; i >= 0; i--) e = paren(select(binary('<', c, int(view.parts[i + 1]!.begin)), pieces[i]!, e));
      return e;
    }
    const parts: Expr[] = [];
    view.axes.forEach((factors, axis) => {
      const c = coords[axis]!;
      if (isZero(c)) return;
      let inner = 1;
      for (let j = factors.length - 1; j >= 0; j--) {
        const { size, stride } = factors[j]!;
        const q = this.div(c, inner);
        const digit = j === 0 ? q : this.mod(q, size);
        inner *= size;
        if (stride !== 0) parts.push(scaled(this.wide ? toI32(digit) : digit, stride));
      }
    });
    if (view.offset !== 0) parts.push(int(view.offset));
    for (const c of view.cuts) {
      const begin = this.cut(c.node, c.axis, c.begin);
      parts.push(scaled(this.wide ? toI32(begin) : begin, c.stride));
    }
    return sum(parts);
  }
}
