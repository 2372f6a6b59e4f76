/**
 * Dot products inside a kernel: one output element of a (batched) matmul per thread, its operands
 * read in place where they are views of a buffer (compiler/fuse/views.ts), the k axis walked by
 * strides (nested loops when it is made of several factors, one loop segment per concat piece), or
 * the element read from a packed product buffer (packed-matmul.ts).
 */
import type { Node, NodeId } from '../ir/types.ts';
import { sizeOf } from '../ir/types.ts';
import { stridesOf } from '../ir/host-tensor.ts';
import { axisStride, viewOf, type Factor, type View } from '../fuse/views.ts';
import type { KernelWriter } from './emit.ts';
import { add, float, int, isZero, load, local, mul, paren, sub, sum, thread, type Expr } from './kernel-ir.ts';
import type { PackedGeometry } from './packed-matmul.ts';

/** A matmul whose value a kernel reads from a packed product buffer (packed-matmul.ts) instead of computing it. */
export interface PackedProductRead {
  readonly id: NodeId;
  /** Parameter name of the product buffer. */
  readonly param: string;
  readonly geometry: PackedGeometry;
}

/** k-loop unroll factor of inlined dot products. */
export const MATMUL_UNROLL = 4;

/**
 * Index of a matmul's element in its packed product buffer: element (z, i, j) sits at
 * ((z·quads + ⌊i/4⌋)·nPad + j)·4 + i mod 4 (gpu.js product), (z·4·quads + i)·nPad + j (wasm). On a 2-D launch over the matmul's own shape the
 * row part comes from thread.y alone, so it stays lane-uniform and only `+ j·4` varies.
 */
export function packedProductAt(w: KernelWriter, n: Node, idx: Expr): Expr {
  const g = w.product!.geometry;
  const rootShape = w.graph.node(w.root).shape;
  const onGrid =
    w.grid !== undefined && idx === w.grid.index && w.grid.cols === g.n && rootShape.length === n.shape.length && rootShape.every((d, i) => d === n.shape[i]);
  let z: Expr;
  let i: Expr;
  let j: Expr;
  if (onGrid) {
    z = g.batch > 1 ? w.div(thread('y'), g.m) : int(0);
    i = g.m === 1 ? int(0) : g.batch > 1 ? w.mod(thread('y'), g.m) : thread('y');
    // Stryker disable next-line ConditionalExpression: equivalent, a 2-D launch has a multiple of 4 columns, never 1
    j = g.n === 1 ? int(0) : thread('x');
  } else {
    [z, i, j] = w.coords(idx, [g.batch, g.m, g.n]) as [Expr, Expr, Expr];
  }
  if (g.engine === 'wasm') {
    // row-major [batch][4·quads][nPad]
    const row = isZero(z) ? i : add(mul(z, int(4 * g.quads)), i);
    const uniform = isZero(row) ? int(0) : w.bind(mul(paren(row), int(g.nPad)), 'i');
    return w.index(isZero(j) ? uniform : isZero(uniform) ? j : add(uniform, j));
  }
  const q = isZero(i) ? int(0) : w.div(i, 4);
  const c = isZero(i) ? int(0) : w.mod(i, 4);
  const row = isZero(z) ? (isZero(q) ? undefined : mul(q, int(g.nPad * 4))) : mul(paren(add(mul(z, int(g.quads)), q)), int(g.nPad * 4));
  const uniform = w.bind(row === undefined ? c : isZero(c) ? row : add(row, c), 'i');
  return w.index(isZero(j) ? uniform : isZero(uniform) ? mul(j, int(4)) : add(uniform, mul(j, int(4))));
}

/**
 * Dot product for one output element of a (batched) matmul. The k loop is unrolled by
 * MATMUL_UNROLL (independent loads per trip for the scheduler); the remainder is straight-line.
 */
export function matmulAt(w: KernelWriter, n: Node & { op: 'matmul' }, idx: Expr): Expr {
  const a = w.graph.node(n.a);
  const k = a.shape[a.shape.length - 1]!;
  const [m, nn] = n.shape.slice(-2) as [number, number];
  const rank = n.shape.length;
  const rootShape = w.graph.node(w.root).shape;
  const onGrid =
    w.grid !== undefined &&
    idx === w.grid.index &&
    // Stryker disable next-line ConditionalExpression: equivalent, the shape check below already makes the root's columns n
    w.grid.cols === nn &&
    // Stryker disable next-line ConditionalExpression: equivalent, a root of another rank never matches the shape check below (cols is a multiple of 4)
    rootShape.length === rank &&
    // Stryker disable next-line MethodExpression,ConditionalExpression: equivalent, read at the launch's own flat index with n columns, (y, x) gives its (batch, row) and column whatever the root's shape
    rootShape.every((d, i) => d === n.shape[i]);
  let batch: Expr;
  let row: Expr;
  let col: Expr;
  if (onGrid) {
    // thread.y enumerates (batch, row) pairs; only thread-y terms, so the A index stays uniform
    const rows = sizeOf(n.shape) / nn;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent for the rank test, at rank 2 rows = m
    batch = rank > 2 && rows > m ? w.div(thread('y'), m) : int(0);
    row = m === 1 ? int(0) : rows > m ? w.mod(thread('y'), m) : thread('y');
    // Stryker disable next-line ConditionalExpression: equivalent, a 2-D launch has a multiple of 4 columns, never 1
    col = nn === 1 ? int(0) : thread('x');
  } else {
    const c = w.coords(idx, n.shape);
    batch = rank > 2 ? w.div(idx, m * nn) : int(0);
    row = c[rank - 2]!;
    col = c[rank - 1]!;
  }
  const batchShape = n.shape.slice(0, -2);
  const batchCoords = isZero(batch) ? batchShape.map(() => int(0)) : w.coords(batch, batchShape);
  // Operand reads, per k segment: straight from the buffer at base + p·stride where the operand
  // is a view of one (a concat along k, like a look-around window, gives one segment per
  // piece); otherwise the operand's value at its logical flat index.
  type Read = (p: Expr) => Expr;
  /** A view operand walked by digits of its k factors: buffer index = origin + Σ digitⱼ·strideⱼ. */
  type Walk = { origin: Expr; factors: readonly Factor[]; param: string };
  /** `prepare` writes what the read holds (a base index) before any loop, where every later read sees it. */
  type Segment = { begin: number; read: Read; walk?: Walk; prepare?: () => void };
  const segments = (id: NodeId, outer: Expr, outerAxis: number, kAxis: number): Segment[] => {
    const decomposed = (): Read => {
      const strides = stridesOf(w.graph.node(id).shape);
      const base = w.hold(w.flat([...batchCoords, outer], [...strides.slice(0, -2), strides[outerAxis]!]), sizeOf(w.graph.node(id).shape));
      const step = strides[kAxis]!;
      return (p) => w.value(id, w.index(isZero(base) ? mul(w.iv(p), int(step)) : add(base, mul(w.iv(p), int(step)))));
    };
    // Stryker disable next-line ConditionalExpression: equivalent, an operand's view never reaches the group root (the graph is acyclic)
    const view = viewOf(w.graph, (x) => x !== w.root && w.plan.buffers.has(x), id);
    if (view === undefined) return [{ begin: 0, read: decomposed() }];
    const param = w.params.get(view.buffer);
    // Stryker disable next-line ConditionalExpression,StringLiteral: an internal invariant (every buffer a view reaches is one of the group's reads)
    if (param === undefined) throw new Error(`codegen internal: buffer %${view.buffer} is not a parameter of this kernel`);
    const coords = [...batchCoords, outerAxis === rank - 2 ? outer : int(0), outerAxis === rank - 1 ? outer : int(0)];
    // the pieces along k, each a view whose k axis has one stride
    const pieces: Array<{ begin: number; view: View }> =
      // Stryker disable next-line ConditionalExpression: equivalent for the kind test, a strided view has no concat axis
      view.kind === 'concat' && view.axis === kAxis ? [...view.parts] : [{ begin: 0, view }];
    const limit = sizeOf(w.graph.node(view.buffer).shape);
    // Stryker disable next-line ConditionalExpression: equivalent for the kind test, only a thread coordinate has an axis
    const lane = outer.kind === 'thread' && outer.axis === 'x';
    const originOf = (pv: View, shift: number): Expr => {
      // wide mode: the lane coordinate (thread.x, an i32) stays out of the held base, so the
      // lanes' indices are `base + thread.x·stride`, not rebuilt from float locals per read
      const laneStride = w.wide && lane ? axisStride(pv, outerAxis) : undefined;
      const base = w.viewIndex(pv, laneStride === undefined ? coords : coords.map((c) => (c === outer ? int(0) : c)));
      const held = w.hold(shift === 0 ? base : sub(base, int(shift)), limit);
      if (laneStride === undefined || laneStride === 0) return held;
      const laneTerm = mul(thread('x'), int(laneStride));
      return isZero(held) ? laneTerm : add(held, laneTerm);
    };
    if (pieces.some((pc) => axisStride(pc.view, kAxis) === undefined)) {
      // a k axis made of several factors (heads merged back into the model width): walkable
      // by nested loops when it is one piece; the flat read stays as the fallback
      const only = pieces.length === 1 ? pieces[0]!.view : undefined;
      if (only?.kind !== 'strided') return [{ begin: 0, read: decomposed() }];
      // the flat read is written only when the walk is not taken, and then before the loops: a
      // base held inside the first loop body would be out of scope in the straight-line rest
      let fallback: Read | undefined;
      const prepare = (): void => void (fallback ??= decomposed());
      const read: Read = (p) => {
        prepare();
        return fallback!(p);
      };
      return [{ begin: 0, read, prepare, walk: { origin: originOf(only, 0), factors: only.axes[kAxis]!, param } }];
    }
    return pieces.map(({ begin, view: pv }) => {
      const step = axisStride(pv, kAxis)!;
      // element p of the whole k axis is element p − begin of this piece
      const origin = originOf(pv, begin * step);
      const read: Read = (loopP) => {
        const p = w.iv(loopP);
        const term = step === 1 ? p : mul(p, int(step));
        const at = step === 0 ? origin : isZero(origin) ? term : add(origin, term);
        return w.bind(load(param, w.index(at)), 'v');
      };
      // Stryker disable next-line ConditionalExpression,ArrayDeclaration: equivalent, walks are read only for one-piece operands, and a k of 1 walks nothing either way
      const walk = pieces.length === 1 ? { origin, factors: k === 1 ? [] : [{ size: k, stride: step }], param } : undefined;
      return { begin, read, ...(walk ? { walk } : {}) };
    });
  };
  const segA = segments(n.a, row, rank - 2, rank - 1);
  const segB = segments(n.b, col, rank - 1, rank - 2);
  // Stryker disable next-line ConditionalExpression: equivalent, a segment of a several-piece operand carries no walk
  const walkA = segA.length === 1 ? segA[0]!.walk : undefined;
  // Stryker disable next-line ConditionalExpression: equivalent, a segment of a several-piece operand carries no walk
  const walkB = segB.length === 1 ? segB[0]!.walk : undefined;
  if (walkA && walkB && (walkA.factors.length > 1 || walkB.factors.length > 1)) {
    const digits = commonFactors(walkA.factors, walkB.factors);
    if (digits !== undefined) return walkedDot(w, walkA, walkB, digits);
  }
  for (const seg of [...segA, ...segB]) seg.prepare?.();
  const cuts = [...new Set([0, ...segA.map((x) => x.begin), ...segB.map((x) => x.begin), k])].sort((x, y) => x - y);
  const pick = (segs: Array<{ begin: number; read: Read }>, at: number): Read => segs.filter((x) => x.begin <= at).pop()!.read;
  const acc = w.declare('acc', float(0));
  // Stryker disable next-line EqualityOperator: equivalent, a pass past the last cut (to undefined) emits nothing
  for (let c = 0; c + 1 < cuts.length; c++) {
    const [from, to] = [cuts[c]!, cuts[c + 1]!];
    const readA = pick(segA, from);
    const readB = pick(segB, from);
    const term = (p: Expr): void => {
      const av = readA(p);
      const bv = readB(p);
      w.stmt({ kind: 'assign', name: acc, op: '+=', value: mul(av, bv) });
    };
    const len = to - from;
    const unroll = Math.min(MATMUL_UNROLL, len);
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent, cuts are distinct so every stretch has len >= 1
    const main = unroll > 0 ? Math.floor(len / unroll) * unroll : 0;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent, main >= unroll >= 1 for every stretch
    if (main > 0) {
      const p = w.fresh('p');
      w.loopBy(p, from, from + main, unroll, () => {
        for (let u = 0; u < unroll; u++) term(u === 0 ? local(p) : w.index(add(local(p), int(u))));
      });
    }
    for (let p = from + main; p < to; p++) term(int(p));
  }
  return local(acc);
}

/**
 * Σₖ A·B with k split into nested loops over `digits` (outermost first; the innermost unrolled),
 * each operand advancing by its own stride per digit. Summation order is k's order.
 */
function walkedDot(
  w: KernelWriter,
  a: { origin: Expr; param: string },
  b: { origin: Expr; param: string },
  digits: ReadonlyArray<{ size: number; sa: number; sb: number }>,
): Expr {
  const acc = w.declare('acc', float(0));
  const offset = (origin: Expr, terms: ReadonlyArray<Expr | undefined>): Expr =>
    sum([origin, ...terms].filter((t): t is Expr => t !== undefined && !isZero(t)));
  const level = (d: number, termsA: ReadonlyArray<Expr | undefined>, termsB: ReadonlyArray<Expr | undefined>): void => {
    const { size, sa, sb } = digits[d]!;
    const term = (loopV: Expr): [Expr | undefined, Expr | undefined] => {
      const v = w.iv(loopV);
      return [sa === 0 ? undefined : sa === 1 ? v : mul(v, int(sa)), sb === 0 ? undefined : sb === 1 ? v : mul(v, int(sb))];
    };
    if (d < digits.length - 1) {
      const v = w.fresh('q');
      w.loop(v, 0, size, () => {
        const [ta, tb] = term(local(v));
        level(d + 1, [...termsA, ta], [...termsB, tb]);
      });
      return;
    }
    const step = (p: Expr): void => {
      const [ta, tb] = term(p);
      const av = w.bind(load(a.param, w.index(offset(a.origin, [...termsA, ta]))), 'v');
      const bv = w.bind(load(b.param, w.index(offset(b.origin, [...termsB, tb]))), 'v');
      w.stmt({ kind: 'assign', name: acc, op: '+=', value: mul(av, bv) });
    };
    const unroll = Math.min(MATMUL_UNROLL, size);
    const main = Math.floor(size / unroll) * unroll;
    const p = w.fresh('p');
    w.loopBy(p, 0, main, unroll, () => {
      for (let u = 0; u < unroll; u++) step(u === 0 ? local(p) : paren(add(local(p), int(u))));
    });
    for (let r = main; r < size; r++) step(int(r));
  };
  level(0, [], []);
  return local(acc);
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
