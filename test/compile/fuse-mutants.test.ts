/**
 * Fusion-policy and view details that mutation testing (`npm run mutate -- fuse`) found unpinned:
 * how each use is counted (reductions, gather indices, dead consumers, broadcasts that grow or
 * not), the cost of each op at the budgets' boundaries, the paths by which a value is materialised
 * before a broadcast, a concat or a matmul view, heavy operands, the maxReads tie, the node-count
 * cap, the plan's text form, and the view of a chain addressed element by element against the
 * reference evaluator (concat views, broadcasts of them, cuts past 2^24).
 */
import { describe, expect, it } from 'vitest';
import { planKernels, printPlan, type KernelPlan } from '../../compiler/fuse/plan.ts';
import { isMovableCut, stridedView, viewOf, viewStart, type View } from '../../compiler/fuse/views.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import { hostTensor, stridesOf } from '../../compiler/ir/host-tensor.ts';
import * as P from '../../compiler/ir/primitives.ts';
import type { NodeId } from '../../compiler/ir/types.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';

/** Roots of the plan's kernels, in order (node order). */
const roots = (plan: KernelPlan): NodeId[] => plan.groups.map((k) => k.root);
/** Node ids in node order. */
const ordered = (ids: readonly NodeId[]): NodeId[] => [...ids].sort((a, b) => a - b);
/** Plan of `g` for `outs` (also set as the graph's outputs). */
const planOf = (g: Graph, outs: readonly Tensor[], options = {}): KernelPlan => {
  g.outputs = outs.map((t) => t.id);
  return planKernels(g, g.outputs, options);
};
/** `fn` applied `times` times. */
const repeat = (x: Tensor, times: number, fn: (t: Tensor) => Tensor): Tensor => Array.from({ length: times }).reduce<Tensor>((t) => fn(t), x);
const exp = (x: Tensor) => P.unary('exp', x);
const neg = (x: Tensor) => P.unary('neg', x);

describe('fusion plan: which uses count', () => {
  it('a costly value read by a reduction and by another consumer is written once', () => {
    const g = new Graph();
    const e = repeat(g.input('x', [3, 4]), 3, exp);
    const r = P.reduce('sum', e, 1);
    const o = neg(e);
    expect(roots(planOf(g, [r, o]))).toEqual([e.id, r.id, o.id]);
  });

  it('a costly index read by a gather and by another consumer is written once', () => {
    const g = new Graph();
    const x = g.input('x', [3, 4]);
    const ix = P.cast(repeat(g.input('f', [3, 4]), 3, exp), 'i32');
    const gathered = P.gather(x, ix, 1);
    const o = P.cast(ix, 'f32');
    expect(roots(planOf(g, [gathered, o]))).toEqual([ix.id, gathered.id, o.id]);
  });

  it('consumers that are not live do not count', () => {
    const g = new Graph();
    const e = repeat(g.input('x', [3]), 3, exp);
    const o = neg(e);
    P.unary('tanh', e); // dead
    expect(roots(planOf(g, [o]))).toEqual([o.id]);
  });

  it('a broadcast that grows its operand caps the operand cost; one that only adds size-1 axes does not', () => {
    const g = new Graph();
    const grown = repeat(g.input('v', [4]), 3, exp);
    const a = neg(P.broadcastTo(grown, [3, 4]));
    const same = repeat(g.input('w', [4]), 3, exp);
    const b = neg(P.broadcastTo(same, [1, 4]));
    expect(roots(planOf(g, [a, b]))).toEqual([grown.id, a.id, b.id]);
  });
});

describe('fusion plan: op costs at the recompute budget', () => {
  it('neg costs 1: eight negations are recomputed by two consumers, nine are written once', () => {
    const g = new Graph();
    const eight = repeat(g.input('x', [3]), 8, neg);
    const nine = repeat(g.input('y', [3]), 9, neg);
    const outs = [exp(eight), P.unary('tanh', eight), exp(nine), P.unary('tanh', nine)];
    expect(roots(planOf(g, outs))).toEqual([nine.id, ...outs.map((t) => t.id)]);
  });

  it('compare and where cost 1: two exps and one of them exceed the budget', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const y = g.input('y', [3]);
    const cmp = P.compare('gt', exp(exp(x)), y);
    const sel = P.where(g.input('m', [3], 'i32'), exp(exp(y)), x);
    const outs = [P.cast(cmp, 'f32'), neg(P.cast(cmp, 'f32')), exp(sel), neg(sel)];
    expect(roots(planOf(g, outs))).toEqual(ordered([cmp.id, sel.id, ...outs.map((t) => t.id)]));
  });
});

describe('fusion plan: index arithmetic of operands read many times', () => {
  it('three slices, a pad over a slice, a concat over a slice exceed the gather budget; two slices do not', () => {
    const g = new Graph();
    const x = g.input('x', [8, 8]);
    const cut = (t: Tensor) => P.slice(t, [1, 0], [t.shape[0]! - 1, 8]);
    const three = repeat(x, 3, cut);
    const two = repeat(g.input('x2', [8, 8]), 2, cut);
    const padded = P.pad(cut(g.input('x3', [8, 8])), [0, 1], [0, 0]);
    const joined = P.concat([cut(g.input('x4', [8, 8])), g.input('y4', [1, 8])], 0);
    const ix = (t: Tensor) => g.input(`i${t.id}`, [t.shape[0]!, 3], 'i32');
    const outs = [three, two, padded, joined].map((t) => P.gather(t, ix(t), 1));
    const plan = planOf(g, outs);
    expect(roots(plan)).toEqual(ordered([three.id, padded.id, joined.id, ...outs.map((t) => t.id)]));
  });

  it('a gathered matmul operand is written once; two pads are not a view and are written once too', () => {
    const g = new Graph();
    const gathered = P.gather(g.input('x', [4, 5]), g.input('ix', [4, 3], 'i32'), 1);
    const mm = P.matmul(gathered, g.input('w', [3, 2]));
    const pads = P.pad(P.pad(g.input('y', [3, 3]), [1, 0], [0, 0]), [0, 0], [0, 1]);
    const mm2 = P.matmul(pads, g.input('w2', [4, 2]));
    expect(roots(planOf(g, [mm, mm2]))).toEqual([gathered.id, mm.id, pads.id, mm2.id]);
  });
});

describe('fusion plan: values written before a broadcast, a concat or a matmul view', () => {
  it('before two reshapes into a gather, not before a reshape that a transpose reads', () => {
    const g = new Graph();
    const ix = g.input('ix', [4, 2], 'i32');
    const m = exp(g.input('x', [2, 6]));
    const twice = P.gather(P.reshape(P.reshape(m, [12]), [4, 3]), ix, 1);
    const m2 = exp(g.input('y', [2, 6]));
    const t = P.transpose(P.reshape(m2, [3, 4]), [1, 0]);
    const viaTranspose = P.gather(t, ix, 1);
    expect(roots(planOf(g, [twice, viaTranspose]))).toEqual([m.id, twice.id, t.id, viaTranspose.id]);
  });

  it('before a reshape or a broadcast into a gather even when another consumer reads it too', () => {
    const g = new Graph();
    const m = exp(g.input('x', [3, 4]));
    const gathered = P.gather(P.reshape(m, [4, 3]), g.input('ix', [4, 2], 'i32'), 1);
    const o = neg(m);
    const v = exp(g.input('v', [4]));
    const spread = P.gather(P.broadcastTo(v, [3, 4]), g.input('iy', [3, 2], 'i32'), 1);
    expect(roots(planOf(g, [gathered, o, spread]))).toEqual([m.id, gathered.id, o.id, v.id, spread.id]);
  });

  it('a cost-free transpose before a broadcast into a gather stays inlined', () => {
    const g = new Graph();
    const t = P.transpose(g.input('x', [3, 4]), [1, 0]);
    const out = P.gather(P.broadcastTo(t, [2, 4, 3]), g.input('ix', [2, 4, 2], 'i32'), 2);
    expect(roots(planOf(g, [out]))).toEqual([out.id]);
  });

  it('a costly piece reaching a concat through a reshape that is also read elsewhere is written before the reshape', () => {
    const g = new Graph();
    const m = repeat(g.input('x', [2, 6]), 3, exp);
    const n = P.reshape(m, [12]);
    const joined = P.concat([n, g.input('y', [3])], 0);
    const o = neg(n);
    expect(roots(planOf(g, [joined, o]))).toEqual([m.id, joined.id, o.id]);
  });

  it('a computed value under a transposed matmul operand is written, even when also read elsewhere; a cast is free', () => {
    const g = new Graph();
    const m = exp(g.input('x', [3, 4]));
    const mm = P.matmul(P.transpose(m, [1, 0]), g.input('w', [3, 2]));
    const o = neg(m);
    const cast = P.cast(g.input('k', [3, 4], 'i32'), 'f32');
    const mm2 = P.matmul(P.transpose(cast, [1, 0]), g.input('w2', [3, 2]));
    expect(roots(planOf(g, [mm, o, mm2]))).toEqual([m.id, mm.id, o.id, mm2.id]);
  });
});

describe('fusion plan: heavy operands, maxReads ties, the node cap', () => {
  it('of two padded computations or two fused matmuls added together, the first is written; plain pads are not heavy', () => {
    const g = new Graph();
    const p1 = P.pad(exp(g.input('x', [3])), [1], [0]);
    const p2 = P.pad(exp(g.input('y', [3])), [0], [1]);
    const sum = P.binary('add', p1, p2);
    const plain = P.binary('add', P.pad(g.input('u', [3]), [1], [0]), P.pad(g.input('v', [3]), [0], [1]));
    const m1 = P.matmul(g.input('a', [2, 3]), g.input('b', [3, 2]));
    const m2 = P.matmul(g.input('c', [2, 3]), g.input('d', [3, 2]));
    const mms = P.binary('add', m1, m2);
    expect(roots(planOf(g, [sum, plain, mms]))).toEqual([p1.id, sum.id, plain.id, m1.id, mms.id]);
  });

  it('maxReads: of operands reading equally many buffers, the first is written', () => {
    const g = new Graph();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => g.input(n, [3]));
    const left = P.binary('add', a!, b!);
    const out = P.binary('mul', left, P.binary('add', c!, d!));
    expect(roots(planOf(g, [out], { maxReads: 3 }))).toEqual([left.id, out.id]);
  });

  it('the node cap counts both operands of a binary node, and a concat as its largest piece', () => {
    const g = new Graph();
    const sum = P.binary('add', repeat(g.input('x', [3]), 20, neg), repeat(g.input('y', [3]), 20, neg));
    const o = exp(sum);
    // pieces of 15 cost-free transposes each: 16 nodes with the concat, not 46
    const flip = (t: Tensor) => P.transpose(t, [1, 0]);
    const joined = P.concat(['p', 'q', 'r'].map((n) => repeat(g.input(n, [2, 3]), 15, flip)), 0);
    const o2 = exp(joined);
    // pieces of 40: the concat is the 41st node
    const wide = P.concat(['s', 't'].map((n) => repeat(g.input(n, [2, 2]), 40, flip)), 0);
    const o3 = exp(wide);
    expect(roots(planOf(g, [o, o2, o3]))).toEqual([sum.id, o.id, o2.id, wide.id, o3.id]);
  });
});

describe('fusion plan: text form', () => {
  it('a kernel reading no buffer shows -, one fusing nothing shows no fuses, outputs are listed', () => {
    const g = new Graph();
    const o1 = neg(g.input('x', [3]));
    const o2 = P.cast(P.iota(g, [2, 3], 1), 'f32');
    expect(printPlan(planOf(g, [o1, o2]))).toBe(
      ["host input 'x' %0:f32[3]", 'k0_elementwise  %1:f32[3] <- %0', 'k1_elementwise  %3:f32[2,3] <- -  fuses %2', 'outputs %1 %3'].join('\n'),
    );
  });
});

/** Buffer position a view gives coordinates `coords` of the viewed node. */
function address(v: View, coords: readonly number[]): number {
  if (v.kind === 'concat') {
    const c = coords[v.axis]!;
    const part = [...v.parts].reverse().find((p) => p.begin <= c)!;
    return address(part.view, coords.map((x, a) => (a === v.axis ? x - part.begin : x)));
  }
  let at = viewStart(v);
  v.axes.forEach((factors, a) => {
    let c = coords[a]!;
    for (let j = factors.length - 1; j >= 0; j--) {
      at += (c % factors[j]!.size) * factors[j]!.stride;
      c = Math.floor(c / factors[j]!.size);
    }
  });
  return at;
}

describe('views addressed element by element', () => {
  it('every element of each chain is the buffer element its view addresses', () => {
    const g = new Graph();
    const x = g.input('x', [4, 6]);
    const col = P.slice(x, [0, 2], [4, 1]);
    const rows = P.concat([P.slice(x, [3, 0], [1, 6]), P.slice(x, [0, 0], [0, 6]), P.slice(x, [0, 0], [3, 6])], 0);
    const cols = P.concat([P.slice(col, [2, 0], [2, 1]), P.slice(col, [0, 0], [1, 1]), P.slice(col, [3, 0], [1, 1])], 0);
    const chains: Tensor[] = [
      x,
      P.transpose(x, [1, 0]),
      P.slice(x, [1, 2], [3, 3]),
      P.reshape(P.transpose(x, [1, 0]), [3, 8]),
      P.reshape(P.reshape(x, [2, 2, 6]), [4, 3, 2]),
      P.broadcastTo(col, [4, 5]),
      P.broadcastTo(x, [3, 4, 6]),
      P.broadcastTo(P.reshape(x, [1, 4, 6]), [2, 4, 6]),
      P.slice(P.broadcastTo(x, [3, 4, 6]), [1, 1, 0], [2, 2, 6]),
      P.slice(P.transpose(P.broadcastTo(col, [4, 5]), [1, 0]), [1, 1], [3, 2]),
      P.stopGradient(P.transpose(x, [1, 0])),
      rows,
      P.transpose(rows, [1, 0]),
      P.broadcastTo(rows, [2, 4, 6]),
      P.broadcastTo(cols, [4, 3]),
      P.broadcastTo(P.transpose(cols, [1, 0]), [2, 1, 4]),
      P.broadcastTo(P.reshape(x, [4, 6, 1]), [2, 4, 6, 1]),
      P.reshape(P.broadcastTo(x, [3, 4, 6]), [72]),
      P.reshape(P.slice(x, [0, 0], [4, 4]), [4, 2, 2]),
      P.slice(P.reshape(x, [1, 24]), [0, 0], [0, 24]),
    ];
    const feeds = { x: hostTensor([4, 6], Float64Array.from({ length: 24 }, (_, i) => i)) };
    const values = evaluate(g, feeds, chains.map((t) => t.id));
    chains.forEach((t, i) => {
      const v = viewOf(g, (id) => id === x.id, t.id);
      expect(v, `chain ${i}`).toBeDefined();
      expect(v!.buffer).toBe(x.id);
      const strides = stridesOf(t.shape);
      const got = Array.from(values[i]!.data, (_, flat) => address(v!, t.shape.map((d, a) => Math.floor(flat / strides[a]!) % d)));
      expect(got, `chain ${i}`).toEqual(Array.from(values[i]!.data));
    });
  });

  it('stridedView is the view of a single piece, and none for a concat view', () => {
    const g = new Graph();
    const x = g.input('x', [4, 6]);
    const isBuffer = (id: NodeId) => id === x.id;
    const t = P.transpose(x, [1, 0]);
    expect(stridedView(g, isBuffer, t.id)).toEqual(viewOf(g, isBuffer, t.id));
    expect(stridedView(g, isBuffer, t.id)?.kind).toBe('strided');
    const rows = P.concat([P.slice(x, [2, 0], [2, 6]), P.slice(x, [0, 0], [2, 6])], 0);
    expect(viewOf(g, isBuffer, rows.id)?.kind).toBe('concat');
    expect(stridedView(g, isBuffer, rows.id)).toBeUndefined();
  });

  it('chains that are not views of one buffer have none', () => {
    const g = new Graph();
    const x = g.input('x', [4, 6]);
    const y = g.input('y', [4, 6]);
    const z = g.input('z', [3, 2]);
    const isBuffer = (id: NodeId) => id === x.id || id === y.id || id === z.id;
    const none = [
      P.reshape(P.transpose(z, [1, 0]), [3, 2]), // a 2-stride factor cannot be split into a 3 axis
      P.reshape(exp(x), [24]),
      P.transpose(exp(x), [1, 0]),
      P.slice(exp(x), [1, 0], [2, 6]),
      P.concat([P.slice(x, [0, 0], [0, 6]), P.slice(y, [1, 0], [0, 6])], 0), // only empty pieces
      P.concat([x, y], 0),
      P.concat([x, exp(x)], 0),
      P.reshape(P.concat([P.slice(x, [2, 0], [2, 6]), P.slice(x, [0, 0], [2, 6])], 0), [24]),
      P.slice(P.reshape(P.transpose(x, [1, 0]), [2, 12]), [0, 1], [2, 3]),
      exp(x),
    ];
    expect(none.map((t) => viewOf(g, isBuffer, t.id))).toEqual(none.map(() => undefined));
  });

  it('a cut of an axis longer than 2^24 is a literal offset; a shorter one is a kernel argument; a broadcast axis has none', () => {
    expect([isMovableCut(2 ** 24), isMovableCut(2 ** 24 + 1)]).toEqual([true, false]);
    const g = new Graph();
    const long = g.input('long', [2 ** 24 + 4, 2]);
    const short = g.input('short', [2, 8]);
    const isBuffer = (id: NodeId) => id === long.id || id === short.id;
    const far = P.slice(long, [3, 0], [2 ** 24, 2]);
    expect(viewOf(g, isBuffer, far.id)).toMatchObject({ kind: 'strided', offset: 6, cuts: [] });
    const spread = P.slice(P.broadcastTo(short, [3, 2, 8]), [1, 0, 0], [2, 2, 8]);
    expect(viewOf(g, isBuffer, spread.id)).toMatchObject({ kind: 'strided', offset: 0, cuts: [] });
    const near = P.slice(short, [1, 2], [1, 5]);
    expect(viewOf(g, isBuffer, near.id)).toMatchObject({ kind: 'strided', offset: 0, cuts: [{ node: near.id, axis: 0, begin: 1, stride: 8 }, { node: near.id, axis: 1, begin: 2, stride: 1 }] });
  });
});
