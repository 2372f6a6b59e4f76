/**
 * The fusion policy of compiler/fuse/plan.ts rule by rule, on small graphs whose plan is known
 * by hand: which nodes get a buffer (and from where), at each budget's boundary, and how kernel
 * groups are named, kinded and listed. Values are not run here (every plan gives the reference
 * values; test/compile checks that); this pins the schedule choices themselves.
 */
import { describe, expect, it } from 'vitest';
import { MAX_INLINED_NODES, planKernels, type KernelPlan } from '../../compiler/fuse/plan.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import type { NodeId } from '../../compiler/ir/types.ts';

/** Ids of the nodes a plan materialises as kernels, ascending. */
const kernels = (plan: KernelPlan): NodeId[] => [...plan.buffers].filter(([, s]) => s === 'kernel').map(([id]) => id).sort((a, b) => a - b);
/** Plan of `g` for the given outputs (also set as the graph's outputs). */
const planOf = (g: Graph, outs: readonly Tensor[], options = {}) => {
  g.outputs = outs.map((t) => t.id);
  return planKernels(g, g.outputs, options);
};
const exp2 = (x: Tensor) => P.unary('exp', P.unary('exp', x));

describe('fusion plan: where buffers come from', () => {
  it('inputs, multi-value constants and random draws are host buffers; scalar constants and iota are inlined', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const seed = g.input('seed', [], 'i32', 'seed');
    const c = P.constant(g, [1, 2, 3], [3]);
    const s = P.constant(g, 2);
    const r = P.random('normal', seed, 1, [2, 3]);
    const io = P.cast(P.iota(g, [2, 3], 1), 'f32');
    const out = P.binary('add', P.binary('add', P.binary('mul', x, s), P.binary('add', c, r)), io);
    const plan = planOf(g, [out]);
    expect([...plan.buffers].sort((a, b) => a[0] - b[0])).toEqual([
      [x.id, 'input'],
      [seed.id, 'input'],
      [c.id, 'constant'],
      [r.id, 'random'],
      [out.id, 'kernel'],
    ]);
  });

  it('reductions, argmax, argsort and scatterAdd always get a kernel of their own, named by kind', () => {
    const g = new Graph();
    const x = g.input('x', [2, 4]);
    const sum = P.reduce('sum', x, 1);
    const max = P.reduce('max', x, 1);
    const am = P.argmax(x, 1);
    const order = P.argsort(P.cast(x, 'i32'), 1);
    const spread = P.scatterAdd(x, order, 1, 4);
    const f = (t: Tensor) => P.cast(t, 'f32');
    const out = P.binary('add', P.binary('add', P.binary('add', sum, max), P.binary('add', f(am), f(P.reduce('sum', f(order), 1)))), P.reduce('sum', spread, 1));
    const plan = planOf(g, [out]);
    const byRoot = new Map(plan.groups.map((k) => [k.root, k]));
    expect(byRoot.get(sum.id)).toMatchObject({ kind: 'reduce', name: expect.stringMatching(/^k\d+_reduce_sum$/) });
    expect(byRoot.get(max.id)).toMatchObject({ kind: 'reduce', name: expect.stringMatching(/^k\d+_reduce_max$/) });
    expect(byRoot.get(am.id)).toMatchObject({ kind: 'argmax', name: expect.stringMatching(/^k\d+_argmax$/) });
    expect(byRoot.get(order.id)).toMatchObject({ kind: 'argsort', name: expect.stringMatching(/^k\d+_argsort$/) });
    expect(byRoot.get(spread.id)).toMatchObject({ kind: 'scatterAdd', name: expect.stringMatching(/^k\d+_scatterAdd$/) });
    expect(byRoot.get(out.id)).toMatchObject({ kind: 'elementwise', name: expect.stringMatching(/^k\d+_elementwise$/) });
    // groups are numbered in execution (node) order
    expect(plan.groups.map((k) => k.name)).toEqual(plan.groups.map((k, i) => k.name.replace(/^k\d+_/, `k${i}_`)));
    expect(plan.groups.map((k) => k.root)).toEqual([...plan.groups.map((k) => k.root)].sort((a, b) => a - b));
  });

  it('wanted nodes and nodes the graph marks for materialisation get kernels; dead nodes get nothing', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const a = P.unary('neg', x);
    const b = P.unary('tanh', a);
    const marked = P.unary('exp', b);
    const out = P.unary('neg', marked);
    const dead = P.reduce('sum', P.unary('exp', x), 0);
    g.materialize.add(marked.id);
    g.outputs = [out.id];
    expect(kernels(planKernels(g))).toEqual([marked.id, out.id]);
    // asking for an intermediate value materialises it; nothing after it is planned
    expect(kernels(planKernels(g, [b.id]))).toEqual([b.id]);
    expect(planKernels(g, [b.id]).wanted).toEqual([b.id]);
    expect(planKernels(g).buffers.has(dead.id)).toBe(false);
  });
});

describe('fusion plan: matmul prologues', () => {
  const setup = () => {
    const g = new Graph();
    return { g, x: g.input('x', [4, 6]), w: g.input('w', [6, 3]) };
  };

  it('a matmul whose only consumer is pointwise is fused into it as a prologue', () => {
    const { g, x, w } = setup();
    const m = P.matmul(x, w);
    const out = P.unary('tanh', m);
    const plan = planOf(g, [out]);
    expect(kernels(plan)).toEqual([out.id]);
    expect(plan.groups).toEqual([{ name: 'k0_matmul_epilogue', kind: 'matmul', root: out.id, fused: [m.id], reads: [x.id, w.id], fusedMatmul: m.id }]);
  });

  it('a cheap matmul (cost 8, within the recompute budget) read by two pointwise consumers still gets its own kernel', () => {
    const g = new Graph();
    const x = g.input('x', [4, 4]);
    const m = P.matmul(x, g.input('w', [4, 3]));
    const plan = planOf(g, [P.binary('add', P.unary('tanh', m), P.unary('neg', m))]);
    expect(plan.buffers.get(m.id)).toBe('kernel');
  });

  it('a wanted input or random draw keeps its host source', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const r = P.random('uniform', g.input('seed', [], 'i32', 'seed'), 2, [3]);
    const out = P.binary('add', x, r);
    g.outputs = [out.id];
    const plan = planKernels(g, [x.id, r.id, out.id]);
    expect(plan.buffers.get(x.id)).toBe('input');
    expect(plan.buffers.get(r.id)).toBe('random');
  });

  it('a matmul read by a view, by a reduction, or by two consumers gets its own kernel', () => {
    for (const consume of [
      (m: Tensor) => [P.reshape(m, [12])],
      (m: Tensor) => [P.reduce('sum', m, 1)],
      (m: Tensor) => [P.binary('add', P.unary('tanh', m), P.unary('exp', m))],
    ]) {
      const { g, x, w } = setup();
      const m = P.matmul(x, w);
      const plan = planOf(g, consume(m));
      expect(plan.buffers.get(m.id)).toBe('kernel');
      const group = plan.groups.find((k) => k.root === m.id)!;
      expect(group).toEqual({ name: 'k0_matmul', kind: 'matmul', root: m.id, fused: [], reads: [x.id, w.id] });
    }
  });
});

describe('fusion plan: recomputation budgets', () => {
  it('a value with several consumers is recomputed up to cost 8 and materialised beyond (neg costs 1, other unaries 4)', () => {
    const g = new Graph();
    const x = g.input('x', [5]);
    const eight = exp2(x); // 4 + 4
    const nine = exp2(P.unary('neg', x)); // 1 + 4 + 4
    const twice = (t: Tensor) => P.binary('add', t, P.unary('neg', t));
    const plan = planOf(g, [twice(eight), twice(nine)]);
    expect(plan.buffers.has(eight.id)).toBe(false);
    expect(plan.buffers.get(nine.id)).toBe('kernel');
    // read once, a costly value is inlined
    const h = new Graph();
    const y = h.input('y', [5]);
    const once = exp2(exp2(y));
    expect(kernels(planOf(h, [P.unary('neg', once)]))).toEqual([h.outputs[0]]);
    // a binary op costs 1: 8 + 1 is over the budget
    const k = new Graph();
    const z = k.input('z', [5]);
    const nineByAdd = P.binary('add', exp2(z), z);
    expect(planOf(k, [twice(nineByAdd)]).buffers.get(nineByAdd.id)).toBe('kernel');
  });

  it('a concat piece costing more than 8 is materialised before its reshape; a cheaper piece is inlined', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const y = g.input('y', [6]);
    const costly = exp2(P.unary('neg', x));
    const cheap = exp2(y);
    const shaped = P.reshape(costly, [6]);
    const out = P.concat([shaped, cheap], 0);
    const plan = planOf(g, [out]);
    expect(kernels(plan)).toEqual([costly.id, out.id]);
  });

  it(`an expression tree of more than ${MAX_INLINED_NODES} nodes is cut: the ${MAX_INLINED_NODES + 1}st node is materialised`, () => {
    const g = new Graph();
    const chain: Tensor[] = [g.input('x', [3])];
    for (let i = 0; i < MAX_INLINED_NODES + 5; i++) chain.push(P.unary('neg', chain[chain.length - 1]!));
    const plan = planOf(g, [chain[chain.length - 1]!]);
    expect(kernels(plan)).toEqual([chain[MAX_INLINED_NODES + 1]!.id, chain[chain.length - 1]!.id]);
  });
});

describe('fusion plan: operands read many times per element', () => {
  it('a computed gather source is materialised; index remaps of a buffer are inlined while their index arithmetic is at most 2', () => {
    const g = new Graph();
    const x = g.input('x', [4, 5]);
    const idx = P.cast(P.iota(g, [4, 3], 1), 'i32');
    const computed = P.unary('exp', x);
    const threeSteps = P.transpose(P.slice(P.transpose(x, [1, 0]), [1, 0], [4, 4]), [1, 0]); // slice + 2 transposes: 3
    const twoSteps = P.transpose(P.transpose(x, [1, 0]), [1, 0]); // 2
    const outs = [computed, threeSteps, twoSteps].map((src) => P.gather(src, idx, 1));
    const plan = planOf(g, [P.binary('add', P.binary('add', outs[0]!, outs[1]!), outs[2]!)]);
    expect(plan.buffers.get(computed.id)).toBe('kernel');
    expect(plan.buffers.get(threeSteps.id)).toBe('kernel');
    expect(plan.buffers.has(twoSteps.id)).toBe(false);
    // the index operand is a remap use: an iota cast is inlined
    expect(plan.buffers.has(idx.id)).toBe(false);
  });

  it('a matmul operand that is a view of one buffer is inlined however much index arithmetic it has; a gather source is not', () => {
    const g = new Graph();
    const x = g.input('x', [8, 6]);
    const w = g.input('w', [6, 3]);
    // rows 0-3 and 4-7 swapped: a concat of two slices of x (index arithmetic 2 + 1 + 1)
    const swapped = P.concat([P.slice(x, [4, 0], [4, 6]), P.slice(x, [0, 0], [4, 6])], 0);
    const m = P.matmul(swapped, w);
    const idx = P.cast(P.iota(g, [8, 2], 1), 'i32');
    const picked = P.gather(swapped, idx, 1);
    const plan = planOf(g, [m, picked]);
    expect(kernels(plan)).toEqual([swapped.id, m.id, picked.id]);
    const h = new Graph();
    const hx = h.input('x', [8, 6]);
    const hs = P.concat([P.slice(hx, [4, 0], [4, 6]), P.slice(hx, [0, 0], [4, 6])], 0);
    const hm = P.matmul(hs, h.input('w', [6, 3]));
    expect(kernels(planOf(h, [hm]))).toEqual([hm.id]);
  });

  it('a computed value reaching a matmul through views is materialised before them, at its own size', () => {
    const g = new Graph();
    const x = g.input('x', [6, 4]);
    const w = g.input('w', [2, 4, 3]);
    const scaled = P.binary('mul', x, P.constant(g, 2));
    const view = P.broadcastTo(P.reshape(P.transpose(scaled, [1, 0]), [1, 4, 6]), [2, 4, 6]);
    const m = P.matmul(P.transpose(view, [0, 2, 1]), w);
    const plan = planOf(g, [m]);
    expect(kernels(plan)).toEqual([scaled.id, m.id]);
    // a pad (index arithmetic, not a view) before a transpose into a matmul is materialised too
    const h = new Graph();
    const padded = P.pad(h.input('x', [4, 4]), [0, 0], [0, 2]);
    const hm = P.matmul(P.transpose(padded, [1, 0]), h.input('w', [4, 3]));
    expect(kernels(planOf(h, [hm]))).toEqual([padded.id, hm.id]);
  });

  it('a computed value broadcast into a gather source is materialised before the broadcast (small), not after', () => {
    const g = new Graph();
    const x = g.input('x', [5]);
    const small = P.unary('exp', x);
    const wide = P.broadcastTo(P.reshape(small, [1, 5]), [4, 5]);
    const idx = P.cast(P.iota(g, [4, 2], 1), 'i32');
    const plan = planOf(g, [P.gather(wide, idx, 1)]);
    expect(kernels(plan)).toEqual([small.id, plan.graph.outputs[0]]);
  });
});

describe('fusion plan: broadcasts that expand', () => {
  it('an expanded operand is inlined up to cost 8 and index arithmetic 2, else written at its small size', () => {
    const g = new Graph();
    const x = g.input('x', [3, 1]);
    const y = g.input('y', [3, 4]);
    const eight = exp2(x);
    const nine = exp2(P.unary('neg', x));
    const z = g.input('z', [6, 1]);
    const threeIndex = P.transpose(P.slice(P.transpose(z, [1, 0]), [0, 1], [1, 3]), [1, 0]); // 3
    const twoIndex = P.slice(z, [2, 0], [3, 1]); // 1
    const expand = (t: Tensor) => P.binary('add', P.broadcastTo(t, [3, 4]), y);
    const plan = planOf(g, [P.binary('add', P.binary('add', expand(eight), expand(nine)), P.binary('add', expand(threeIndex), expand(twoIndex)))]);
    expect(plan.buffers.has(eight.id)).toBe(false);
    expect(plan.buffers.get(nine.id)).toBe('kernel');
    expect(plan.buffers.get(threeIndex.id)).toBe('kernel');
    expect(plan.buffers.has(twoIndex.id)).toBe(false);
  });

  it('a broadcast that does not grow the element count is a remap, not an expansion', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const costly = exp2(P.unary('neg', x));
    const same = P.broadcastTo(P.reshape(costly, [1, 3]), [1, 3]);
    const plan = planOf(g, [P.unary('neg', same)]);
    expect(kernels(plan)).toEqual([plan.graph.outputs[0]]);
  });
});

describe('fusion plan: maxReads', () => {
  it('materialises the inlined operand reading the most buffers until a kernel reads at most maxReads', () => {
    const g = new Graph();
    const [a, b, c] = ['a', 'b', 'c'].map((n) => g.input(n, [4]));
    const wide = P.binary('add', a!, b!); // reads a, b
    const narrow = P.unary('neg', c!); // reads c
    const out = P.binary('mul', narrow, wide);
    expect(kernels(planOf(g, [out]))).toEqual([out.id]);
    const plan = planOf(g, [out], { maxReads: 2 });
    expect(kernels(plan)).toEqual([wide.id, out.id]);
    expect(plan.groups.find((k) => k.root === out.id)!.reads).toEqual([c!.id, wide.id]);
    // exactly maxReads is allowed
    expect(kernels(planOf(g, [out], { maxReads: 3 }))).toEqual([out.id]);
  });

  it('stops when every operand is already a buffer, even above the bound', () => {
    const g = new Graph();
    const [cond, a, b] = [g.input('c', [4], 'i32'), g.input('a', [4]), g.input('b', [4])];
    const out = P.where(cond, a, b);
    const plan = planOf(g, [out], { maxReads: 2 });
    expect(plan.groups).toEqual([{ name: 'k0_elementwise', kind: 'elementwise', root: out.id, fused: [], reads: [cond.id, a.id, b.id] }]);
  });
});

describe('fusion plan: groups', () => {
  it('list fused nodes once each and reads ascending, whatever order the walk meets them in', () => {
    const g = new Graph();
    const b = g.input('b', [3]);
    const a = g.input('a', [3]);
    const na = P.unary('neg', a);
    const nb = P.unary('neg', b);
    const out = P.binary('add', P.binary('mul', na, nb), P.binary('sub', nb, na));
    const plan = planOf(g, [out]);
    expect(plan.groups).toHaveLength(1);
    const [k] = plan.groups;
    expect(k!.reads).toEqual([b.id, a.id]);
    expect(k!.fused).toEqual([na.id, nb.id, out.id - 2, out.id - 1]);
    expect(k!.fusedMatmul).toBeUndefined();
    expect('fusedMatmul' in k!).toBe(false);
  });
});
