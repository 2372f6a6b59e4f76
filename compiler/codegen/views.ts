/**
 * Strided views: a chain of fused reshape / transpose / broadcast / slice nodes over a buffer,
 * described as an offset plus one stride per axis of the viewed shape (numpy's view rule), so a
 * kernel addresses element (c₀, c₁, …) as `offset + Σ cᵢ·strideᵢ` in the buffer directly.
 *
 * Matmul inner loops use it: walking the k axis of a view is then `base + p·stride` per step,
 * where decomposing a flat index through the chain would cost a division and a modulo per axis
 * per step. Reshapes that cannot be a view (merging axes that are not adjacent in memory) end
 * the chain, and the caller falls back to index decomposition.
 */
import type { KernelPlan } from '../fuse/plan.ts';
import type { NodeId, Shape } from '../ir/types.ts';
import { stridesOf } from '../reference/evaluate.ts';

export interface StridedView {
  /** The materialised buffer the view reads. */
  readonly buffer: NodeId;
  readonly offset: number;
  /** Per axis of the viewed node's shape; 0 on broadcast axes. */
  readonly strides: readonly number[];
}

/**
 * The view that node `id` is of a buffer, or undefined when something other than view ops lies
 * between them. `root` (the group's own output) is never a buffer to read.
 */
export function stridedView(plan: KernelPlan, root: NodeId, id: NodeId): StridedView | undefined {
  const g = plan.graph;
  const n = g.node(id);
  if (id !== root && plan.buffers.has(id)) return { buffer: id, offset: 0, strides: stridesOf(n.shape) };
  switch (n.op) {
    case 'stopGradient':
      return stridedView(plan, root, n.x);
    case 'reshape': {
      const v = stridedView(plan, root, n.x);
      if (v === undefined) return undefined;
      const strides = reshapeStrides(g.node(n.x).shape, v.strides, n.shape);
      return strides === undefined ? undefined : { ...v, strides };
    }
    case 'transpose': {
      const v = stridedView(plan, root, n.x);
      return v === undefined ? undefined : { ...v, strides: n.perm.map((p) => v.strides[p]!) };
    }
    case 'broadcast': {
      const v = stridedView(plan, root, n.x);
      if (v === undefined) return undefined;
      const xs = g.node(n.x).shape;
      const off = n.shape.length - xs.length;
      return { ...v, strides: n.shape.map((_, i) => (i < off || xs[i - off] === 1 ? 0 : v.strides[i - off]!)) };
    }
    case 'slice': {
      const v = stridedView(plan, root, n.x);
      if (v === undefined) return undefined;
      const offset = v.offset + n.begin.reduce((s, b, d) => s + b * v.strides[d]!, 0);
      return { ...v, offset };
    }
    default:
      return undefined;
  }
}

/**
 * Strides of `to` viewing the same elements as `from` with `strides`, or undefined when the
 * reshape merges axes that are not contiguous relative to each other. Size-1 axes take stride 0.
 */
export function reshapeStrides(from: Shape, strides: readonly number[], to: Shape): number[] | undefined {
  const out = new Array<number>(to.length).fill(0);
  const src = from.map((d, i) => ({ d, s: strides[i]! })).filter((a) => a.d !== 1);
  const dst = to.map((d, i) => ({ d, i })).filter((a) => a.d !== 1);
  let i = 0;
  let j = 0;
  while (i < src.length && j < dst.length) {
    // grow the two groups until their sizes agree
    let i1 = i + 1;
    let j1 = j + 1;
    let ps = src[i]!.d;
    let pd = dst[j]!.d;
    while (ps !== pd) {
      if (ps < pd) ps *= src[i1++]!.d;
      else pd *= dst[j1++]!.d;
    }
    // the source group must be one contiguous run: stride[a] = stride[a+1]·size[a+1]
    for (let a = i; a < i1 - 1; a++) if (src[a]!.s !== src[a + 1]!.s * src[a + 1]!.d) return undefined;
    let s = src[i1 - 1]!.s;
    for (let b = j1 - 1; b >= j; b--) {
      out[dst[b]!.i] = s;
      s *= dst[b]!.d;
    }
    i = i1;
    j = j1;
  }
  return out;
}
