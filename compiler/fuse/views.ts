/**
 * Strided views: a chain of fused reshape / transpose / broadcast / slice nodes over a buffer,
 * described per axis of the viewed shape as mixed-radix factors `(size, stride)`, so a kernel
 * addresses coordinate c of an axis with factors (S₁,t₁)…(Sₙ,tₙ) as Σⱼ (⌊c / Sⱼ₊₁⋯Sₙ⌋ mod Sⱼ)·tⱼ
 * in the buffer directly. An axis whose elements are evenly spaced has one factor: c·t.
 *
 * Matmul inner loops use it: when the k axis of an operand has one factor, walking it is
 * `base + p·t` per step and only the per-thread base pays for decomposition, where decomposing a
 * flat index through the chain would cost a division and a modulo per axis per step. Heads split
 * out of a model dimension and transposed (`[L, h·d] → [h, L, d]`, and back) are such views.
 * Reshapes that would cut a factor unevenly, and slices of multi-factor axes, end the chain; the
 * caller then decomposes flat indices as before.
 *
 * A concat of views of one buffer is a piecewise view (`ConcatView`): addressing it picks the
 * piece by the coordinate along the concat axis. When that axis is not a matmul's k axis the
 * choice is made once per thread, so the look-around key/value windows of chunked attention (a
 * concat of rolled chunks of one buffer) are read in place instead of being copied out first.
 *
 * Where a slice cuts an axis, its begin is kept symbolic (`Cut`): kernels receive it as an argument
 * instead of a literal, so views that differ only in where they cut (the chunks of a Chunked layer)
 * give one kernel source.
 */
import type { Graph } from '../ir/graph.ts';
import type { NodeId } from '../ir/types.ts';
import { stridesOf } from '../ir/host-tensor.ts';

export interface Factor {
  readonly size: number;
  readonly stride: number;
}

/** A slice's begin along one of its axes, whose elements lie `stride` apart in the buffer. */
export interface Cut {
  readonly node: NodeId;
  readonly axis: number;
  readonly begin: number;
  readonly stride: number;
}

export interface StridedView {
  readonly kind: 'strided';
  /** The materialised buffer the view reads. */
  readonly buffer: NodeId;
  /** Buffer position of the view's first element: `offset` plus each cut's begin·stride. */
  readonly offset: number;
  readonly cuts: readonly Cut[];
  /** Per axis of the viewed node's shape: its factors, outermost first (empty for size 1). */
  readonly axes: ReadonlyArray<readonly Factor[]>;
}

/** Pieces of one buffer, concatenated along `axis`; piece i covers [begin_i, begin_(i+1)). */
export interface ConcatView {
  readonly kind: 'concat';
  readonly buffer: NodeId;
  readonly axis: number;
  readonly parts: ReadonlyArray<{ readonly begin: number; readonly view: View }>;
}

export type View = StridedView | ConcatView;

/**
 * The axis's single stride when its elements are evenly spaced (0 for size-1 axes), else
 * undefined; for a concat view, the stride all pieces share on a non-concat axis.
 */
export function axisStride(view: View, axis: number): number | undefined {
  if (view.kind === 'concat') {
    if (axis === view.axis) return undefined;
    const strides = view.parts.map((p) => axisStride(p.view, axis));
    // Stryker disable next-line ConditionalExpression: when every stride is undefined, strides[0] is undefined too
    return strides.every((t) => t !== undefined && t === strides[0]) ? strides[0] : undefined;
  }
  const f = view.axes[axis]!;
  if (f.length === 0) return 0;
  return f.length === 1 ? f[0]!.stride : undefined;
}

/**
 * Whether a slice's begin (a pad's before) on an axis of this length reaches kernels as an argument
 * (below 2^24, exact in the float32 a kernel argument is) or stays a literal in the source. A rule on
 * lengths only, so that the slices of every chunk decide alike.
 */
export const isMovableCut = (axisLength: number): boolean => axisLength <= 2 ** 24;

/** The buffer position of a view's first element. */
export const viewStart = (view: StridedView): number => view.cuts.reduce((at, c) => at + c.begin * c.stride, view.offset);

/** Drops size-1 factors and merges neighbours that are contiguous (tⱼ = tⱼ₊₁·Sⱼ₊₁). */
function simplify(factors: readonly Factor[]): Factor[] {
  const out: Factor[] = [];
  for (const f of factors) {
    if (f.size === 1) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last.stride === f.stride * f.size) out[out.length - 1] = { size: last.size * f.size, stride: f.stride };
    else out.push(f);
  }
  return out;
}

/** Regroups the row-major factor list of all axes into axes of the given sizes, or undefined. */
function regroup(axes: ReadonlyArray<readonly Factor[]>, shape: readonly number[]): Factor[][] | undefined {
  // Stryker disable next-line MethodExpression,ConditionalExpression: axes never hold size-1 factors (simplify drops them), so the filter keeps all
  const queue = axes.flat().filter((f) => f.size !== 1);
  const out: Factor[][] = [];
  let q = 0;
  for (const d of shape) {
    const group: Factor[] = [];
    let need = d;
    while (need > 1) {
      const f = queue[q];
      // Stryker disable next-line ConditionalExpression: a reshape keeps the element count, so the factors never run out first
      if (f === undefined) return undefined;
      if (f.size <= need) {
        if (need % f.size !== 0) return undefined;
        group.push(f);
        need /= f.size;
        q++;
      } else {
        // the axis ends inside this factor: it takes the factor's outer `need` values (stride
        // t·S/need) and leaves the inner S/need values (stride t) to the next axes
        if (f.size % need !== 0) return undefined;
        group.push({ size: need, stride: f.stride * (f.size / need) });
        queue[q] = { size: f.size / need, stride: f.stride };
        need = 1;
      }
    }
    out.push(simplify(group));
  }
  // Stryker disable next-line ConditionalExpression: equal element counts leave no factor over
  return q === queue.length ? out : undefined;
}

/** Whether a node is a materialised buffer the kernel reads (not the kernel's own output). */
export type IsBuffer = (id: NodeId) => boolean;

/**
 * The strided (single-piece) view that node `id` is of a buffer, or undefined when something
 * other than view ops lies between them.
 */
export function stridedView(graph: Graph, isBuffer: IsBuffer, id: NodeId): StridedView | undefined {
  const v = viewOf(graph, isBuffer, id);
  return v?.kind === 'strided' ? v : undefined;
}

/** The view (strided or piecewise) that node `id` is of one buffer, or undefined. */
export function viewOf(graph: Graph, isBuffer: IsBuffer, id: NodeId): View | undefined {
  const g = graph;
  const n = g.node(id);
  if (isBuffer(id)) {
    const strides = stridesOf(n.shape);
    return { kind: 'strided', buffer: id, offset: 0, cuts: [], axes: n.shape.map((d, a) => simplify([{ size: d, stride: strides[a]! }])) };
  }
  const inner = (x: NodeId) => viewOf(graph, isBuffer, x);
  switch (n.op) {
    // Stryker disable next-line ConditionalExpression: falling through to the reshape case regroups the same shape: the same view
    case 'stopGradient':
      return inner(n.x);
    case 'reshape': {
      const v = inner(n.x);
      if (v?.kind !== 'strided') return undefined;
      const axes = regroup(v.axes, n.shape);
      return axes === undefined ? undefined : { ...v, axes };
    }
    case 'transpose': {
      const v = inner(n.x);
      return v === undefined ? undefined : transposeView(v, n.perm);
    }
    case 'broadcast': {
      const v = inner(n.x);
      return v === undefined ? undefined : broadcastView(v, g.node(n.x).shape, n.shape);
    }
    case 'slice': {
      const v = inner(n.x);
      if (v?.kind !== 'strided') return undefined;
      let offset = v.offset;
      const cuts = [...v.cuts];
      const axes: Factor[][] = [];
      for (let a = 0; a < n.shape.length; a++) {
        const f = v.axes[a]!;
        if (n.begin[a] === 0 && n.shape[a] === g.node(n.x).shape[a]) {
          axes.push([...f]);
          continue;
        }
        if (f.length > 1) return undefined;
        const stride = f[0]?.stride ?? 0;
        if (isMovableCut(g.node(n.x).shape[a]!)) {
          if (stride !== 0) cuts.push({ node: n.id, axis: a, begin: n.begin[a]!, stride });
        } else offset += n.begin[a]! * stride;
        axes.push(simplify([{ size: n.shape[a]!, stride }]));
      }
      return { ...v, offset, cuts, axes };
    }
    case 'concat': {
      const parts: Array<{ begin: number; view: View }> = [];
      let begin = 0;
      for (const x of n.xs) {
        const len = g.node(x).shape[n.axis]!;
        if (len === 0) continue;
        const v = inner(x);
        if (v === undefined || (parts.length > 0 && v.buffer !== parts[0]!.view.buffer)) return undefined;
        parts.push({ begin, view: v });
        begin += len;
      }
      if (parts.length === 0) return undefined;
      return parts.length === 1 ? parts[0]!.view : { kind: 'concat', buffer: parts[0]!.view.buffer, axis: n.axis, parts };
    }
    // Stryker disable next-line ConditionalExpression: without the case the function returns undefined all the same
    default:
      return undefined;
  }
}

function transposeView(v: View, perm: readonly number[]): View {
  if (v.kind === 'strided') return { ...v, axes: perm.map((p) => v.axes[p]!) };
  return { ...v, axis: perm.indexOf(v.axis), parts: v.parts.map((p) => ({ begin: p.begin, view: transposeView(p.view, perm) })) };
}

function broadcastView(v: View, from: readonly number[], to: readonly number[]): View | undefined {
  const off = to.length - from.length;
  if (v.kind === 'concat') {
    // the concat axis itself must not be the one broadcast
    // Stryker disable next-line ConditionalExpression,EqualityOperator,ArithmeticOperator: a concat view has two non-empty pieces, so its axis is never 1 long
    if (from[v.axis] === 1 && to[v.axis + off] !== 1) return undefined;
    const parts: Array<{ begin: number; view: View }> = [];
    for (const [i, p] of v.parts.entries()) {
      // Stryker disable next-line ArithmeticOperator,LogicalOperator: a piece's extent only feeds the size-1 test, and a piece 1 long has no factors on that axis either way
      const size = (v.parts[i + 1]?.begin ?? from[v.axis]!) - p.begin;
      // Stryker disable next-line ArrowFunction,ConditionalExpression,EqualityOperator: as above, the extent only decides [] against a stride-0 factor for a piece 1 long
      const pFrom = from.map((d, i) => (i === v.axis ? size : d));
      // Stryker disable next-line ArrowFunction,ConditionalExpression,EqualityOperator,ArithmeticOperator: as above
      const pTo = to.map((d, i) => (i === v.axis + off ? size : d));
      const b = broadcastView(p.view, pFrom, pTo);
      // Stryker disable next-line ConditionalExpression: a piece is never a concat broadcast along its own axis (see above)
      if (b === undefined) return undefined;
      parts.push({ begin: p.begin, view: b });
    }
    return { ...v, axis: v.axis + off, parts };
  }
  // a broadcast axis repeats one element: stride 0
  return { ...v, axes: to.map((d, i) => (i < off || from[i - off] === 1 ? (d === 1 ? [] : [{ size: d, stride: 0 }]) : v.axes[i - off]!)) };
}
