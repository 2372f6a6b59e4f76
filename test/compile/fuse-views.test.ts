/**
 * The view rule of compiler/fuse/views.ts on hand-checked chains: single strides per axis
 * (`axisStride`), concat views (which pieces, which axis after a transpose or broadcast, when a
 * concat is not a view), and the chains that end a view. test/compile/views.test.ts checks every
 * strided view against the reference evaluator; this pins the cases a random chain rarely builds.
 */
import { describe, expect, it } from 'vitest';
import { axisStride, stridedView, viewOf, type ConcatView, type View } from '../../compiler/fuse/views.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';

/** A graph with buffers `names` of the given shapes; `view(t)` is t's view with only those buffers materialised. */
function setup(shapes: Record<string, number[]>) {
  const g = new Graph();
  const inputs = Object.fromEntries(Object.entries(shapes).map(([name, shape]) => [name, g.input(name, shape)]));
  const ids = new Set(Object.values(inputs).map((t) => t.id));
  const view = (t: Tensor): View | undefined => viewOf(g, (id) => ids.has(id), t.id);
  return { g, inputs, view };
}

describe('axisStride', () => {
  it('is the single stride of an evenly spaced axis, 0 for a size-1 or broadcast axis, undefined for two factors', () => {
    const { inputs, view } = setup({ x: [3, 4, 1] });
    const x = inputs.x!;
    const v = view(x)!;
    expect([0, 1, 2].map((a) => axisStride(v, a))).toEqual([4, 1, 0]);
    const merged = view(P.reshape(P.transpose(x, [1, 0, 2]), [12]))!; // 4 × 3, not adjacent
    expect(axisStride(merged, 0)).toBeUndefined();
    const widened = view(P.broadcastTo(x, [3, 4, 5]))!;
    expect(axisStride(widened, 2)).toBe(0);
  });

  it('of a concat view: undefined along the concat axis, the shared stride elsewhere, undefined when pieces differ', () => {
    const { inputs, view } = setup({ x: [4, 6] });
    const x = inputs.x!;
    const rows = view(P.concat([P.slice(x, [2, 0], [2, 6]), P.slice(x, [0, 0], [2, 6])], 0))!;
    expect(rows.kind).toBe('concat');
    expect(axisStride(rows, 0)).toBeUndefined();
    expect(axisStride(rows, 1)).toBe(1);
    // one piece read directly (stride 1 along axis 1), the other a column broadcast along it (stride 0)
    const mixed = view(P.concat([P.slice(x, [0, 0], [2, 6]), P.broadcastTo(P.slice(x, [0, 0], [2, 1]), [2, 6])], 0))!;
    expect(mixed.kind).toBe('concat');
    expect(axisStride(mixed, 1)).toBeUndefined();
  });
});

describe('concat views', () => {
  it('list their pieces with where each begins along the concat axis; empty pieces are skipped', () => {
    const { inputs, view } = setup({ x: [6, 2] });
    const x = inputs.x!;
    const empty = P.slice(x, [0, 0], [0, 2]);
    const v = view(P.concat([P.slice(x, [4, 0], [2, 2]), empty, P.slice(x, [0, 0], [4, 2])], 0)) as ConcatView;
    expect(v).toMatchObject({ kind: 'concat', buffer: x.id, axis: 0 });
    expect(v.parts.map((p) => p.begin)).toEqual([0, 2]);
    expect(v.parts.map((p) => p.view.kind)).toEqual(['strided', 'strided']);
    // a concat of one non-empty piece is that piece's view
    const piece = P.slice(x, [1, 0], [3, 2]);
    const one = view(P.concat([empty, piece], 0))!;
    expect(one.kind).toBe('strided');
    expect(one).toEqual(view(piece));
  });

  it('are not views when their pieces read different buffers or one piece is computed', () => {
    const { inputs, view } = setup({ x: [2, 3], y: [2, 3] });
    const { x, y } = inputs as { x: Tensor; y: Tensor };
    expect(view(P.concat([x, y], 0))).toBeUndefined();
    expect(view(P.concat([x, P.unary('neg', x)], 0))).toBeUndefined();
    expect(view(P.concat([P.unary('neg', x), x], 0))).toBeUndefined();
  });

  it('move their axis with a transpose and past the new leading axes of a broadcast', () => {
    const { inputs, view } = setup({ x: [4, 3] });
    const x = inputs.x!;
    const rows = P.concat([P.slice(x, [2, 0], [2, 3]), P.slice(x, [0, 0], [2, 3])], 0); // [4,3] along 0
    const t = view(P.transpose(rows, [1, 0])) as ConcatView;
    expect(t.kind).toBe('concat');
    expect(t.axis).toBe(1);
    expect(t.parts.map((p) => p.begin)).toEqual([0, 2]);
    expect(t.parts.map((p) => axisStride(p.view, 0))).toEqual([1, 1]);
    const b = view(P.broadcastTo(P.reshape(rows, [1, 4, 3]), [5, 4, 3]));
    // a reshape of a concat view ends the chain
    expect(b).toBeUndefined();
    const wide = view(P.broadcastTo(P.concat([P.slice(x, [0, 0], [4, 1]), P.slice(x, [0, 2], [4, 1])], 1), [2, 4, 2])) as ConcatView;
    expect(wide.kind).toBe('concat');
    expect(wide.axis).toBe(2);
    expect(wide.parts.map((p) => p.begin)).toEqual([0, 1]);
    expect(wide.parts.map((p) => axisStride(p.view, 0))).toEqual([0, 0]);
  });

  it('end at a slice (only strided views are sliced) and at any computed op', () => {
    const { inputs, view } = setup({ x: [4, 3] });
    const x = inputs.x!;
    const rows = P.concat([P.slice(x, [2, 0], [2, 3]), P.slice(x, [0, 0], [2, 3])], 0);
    expect(view(P.slice(rows, [1, 0], [2, 3]))).toBeUndefined();
    expect(view(P.unary('exp', x))).toBeUndefined();
    expect(stridedView(inputs.x!.graph, (id) => id === x.id, rows.id)).toBeUndefined();
  });
});

describe('strided views through other ops', () => {
  it('pass through stopGradient and reshapes that regroup factors evenly', () => {
    const { inputs, view } = setup({ x: [4, 6] });
    const x = inputs.x!;
    expect(view(P.stopGradient(x))).toEqual(view(x));
    expect(view(P.reshape(x, [2, 12]))).toMatchObject({ kind: 'strided', offset: 0, axes: [[{ size: 2, stride: 12 }], [{ size: 12, stride: 1 }]] });
    // [6,4] transposed, split into [3,2,4]: the first axis splits a stride-1 axis of 6
    expect(view(P.reshape(P.transpose(x, [1, 0]), [3, 2, 4]))!).toMatchObject({
      axes: [[{ size: 3, stride: 2 }], [{ size: 2, stride: 1 }], [{ size: 4, stride: 6 }]],
    });
    // a reshape that cuts a factor unevenly is not a view
    expect(view(P.reshape(P.transpose(x, [1, 0]), [4, 6]))).toBeUndefined();
  });

  it('a slice of a multi-factor axis ends the chain; a slice of an untouched axis keeps its factors', () => {
    const { inputs, view } = setup({ x: [3, 4] });
    const x = inputs.x!;
    const merged = P.reshape(P.transpose(x, [1, 0]), [12, 1]); // two factors on axis 0
    expect(view(P.slice(merged, [1, 0], [6, 1]))).toBeUndefined();
    const merged2 = P.reshape(P.transpose(x, [1, 0]), [1, 12]);
    const sliced = view(P.slice(P.broadcastTo(merged2, [2, 12]), [1, 0], [1, 12]))!;
    expect(sliced).toMatchObject({ kind: 'strided', axes: [[], [{ size: 4, stride: 1 }, { size: 3, stride: 4 }]] });
  });

  it('other ops and non-buffer leaves are not views', () => {
    const { g, inputs, view } = setup({ x: [2, 3] });
    const x = inputs.x!;
    expect(view(P.pad(x, [0, 1], [0, 0]))).toBeUndefined();
    expect(view(P.gather(x, P.iota(g, [2, 2], 1), 1))).toBeUndefined();
    expect(viewOf(g, () => false, x.id)).toBeUndefined();
  });
});
