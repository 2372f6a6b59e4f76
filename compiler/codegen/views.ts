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
 */
import type { KernelPlan } from '../fuse/plan.ts';
import type { NodeId } from '../ir/types.ts';
import { stridesOf } from '../reference/evaluate.ts';

export interface Factor {
  readonly size: number;
  readonly stride: number;
}

export interface StridedView {
  /** The materialised buffer the view reads. */
  readonly buffer: NodeId;
  readonly offset: number;
  /** Per axis of the viewed node's shape: its factors, outermost first (empty for size 1). */
  readonly axes: ReadonlyArray<readonly Factor[]>;
}

/** The axis's single stride when its elements are evenly spaced (0 for size-1 axes), else undefined. */
export function axisStride(view: StridedView, axis: number): number | undefined {
  const f = view.axes[axis]!;
  if (f.length === 0) return 0;
  return f.length === 1 ? f[0]!.stride : undefined;
}

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
  const queue = axes.flat().filter((f) => f.size !== 1);
  const out: Factor[][] = [];
  let q = 0;
  for (const d of shape) {
    const group: Factor[] = [];
    let need = d;
    while (need > 1) {
      const f = queue[q];
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
  return q === queue.length ? out : undefined;
}

/**
 * The view that node `id` is of a buffer, or undefined when something other than view ops lies
 * between them. `root` (the group's own output) is never a buffer to read.
 */
export function stridedView(plan: KernelPlan, root: NodeId, id: NodeId): StridedView | undefined {
  const g = plan.graph;
  const n = g.node(id);
  if (id !== root && plan.buffers.has(id)) {
    const strides = stridesOf(n.shape);
    return { buffer: id, offset: 0, axes: n.shape.map((d, a) => simplify([{ size: d, stride: strides[a]! }])) };
  }
  switch (n.op) {
    case 'stopGradient':
      return stridedView(plan, root, n.x);
    case 'reshape': {
      const v = stridedView(plan, root, n.x);
      const axes = v === undefined ? undefined : regroup(v.axes, n.shape);
      return v === undefined || axes === undefined ? undefined : { ...v, axes };
    }
    case 'transpose': {
      const v = stridedView(plan, root, n.x);
      return v === undefined ? undefined : { ...v, axes: n.perm.map((p) => v.axes[p]!) };
    }
    case 'broadcast': {
      const v = stridedView(plan, root, n.x);
      if (v === undefined) return undefined;
      const xs = g.node(n.x).shape;
      const off = n.shape.length - xs.length;
      // a broadcast axis repeats one element: stride 0
      return { ...v, axes: n.shape.map((d, i) => (i < off || xs[i - off] === 1 ? (d === 1 ? [] : [{ size: d, stride: 0 }]) : v.axes[i - off]!)) };
    }
    case 'slice': {
      const v = stridedView(plan, root, n.x);
      if (v === undefined) return undefined;
      let offset = v.offset;
      const axes: Factor[][] = [];
      for (let a = 0; a < n.shape.length; a++) {
        const f = v.axes[a]!;
        if (n.begin[a] === 0 && n.shape[a] === g.node(n.x).shape[a]) {
          axes.push([...f]);
          continue;
        }
        if (f.length > 1) return undefined;
        const stride = f[0]?.stride ?? 0;
        offset += n.begin[a]! * stride;
        axes.push(simplify([{ size: n.shape[a]!, stride }]));
      }
      return { ...v, offset, axes };
    }
    default:
      return undefined;
  }
}
