/**
 * The primitive set is closed: every OpName must have a shape rule (a constructor in
 * primitives.ts), a reference implementation and a VJP rule. `allOps` is typed as a record over
 * OpName, so adding an op to the union without listing it here is a type error, and the sample
 * graph below must then exercise it.
 */
import { describe, expect, it } from 'vitest';
import { vjpRules } from '../../compiler/grad/vjp-rules.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import type { OpName } from '../../compiler/ir/types.ts';
import { operands, sizeOf } from '../../compiler/ir/types.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor } from '../../compiler/ir/host-tensor.ts';

const allOps: Record<OpName, 'differentiable' | 'none' | 'leaf'> = {
  input: 'leaf',
  const: 'leaf',
  iota: 'leaf',
  unary: 'differentiable',
  binary: 'differentiable',
  compare: 'none',
  where: 'differentiable',
  cast: 'none',
  matmul: 'differentiable',
  reduce: 'differentiable',
  broadcast: 'differentiable',
  reshape: 'differentiable',
  transpose: 'differentiable',
  slice: 'differentiable',
  pad: 'differentiable',
  concat: 'differentiable',
  gather: 'differentiable',
  scatterAdd: 'differentiable',
  argmax: 'none',
  argsort: 'none',
  random: 'none',
  stopGradient: 'none',
};

/** One graph using every primitive at least once, with its feeds. */
function sampleGraph() {
  const g = new Graph();
  const x = g.input('x', [2, 3]);
  const seed = g.input('seed', [], 'i32', 'seed');
  const c = P.constant(g, [1, 2, 3], [3]);
  const ix = P.iota(g, [2, 3], 1);
  const u = P.unary('exp', x);
  const b = P.binary('add', u, c); // inserts a broadcast
  const cmp = P.compare('gt', x, P.constant(g, 0));
  const w = P.where(cmp, b, x);
  const cs = P.cast(cmp, 'f32');
  const mm = P.matmul(w, P.transpose(x, [1, 0]));
  const red = P.reduce('max', mm, 1);
  const rs = P.reshape(red, [1, 2]);
  const sl = P.slice(x, [0, 1], [2, 2]);
  const pd = P.pad(sl, [0, 1], [0, 0]);
  const cc = P.concat([pd, cs], 1);
  const idx = P.argsort(P.binary('mod', P.binary('add', ix, P.constant(g, 1, [], 'i32')), P.constant(g, 3, [], 'i32')), 1);
  const ga = P.gather(x, idx, 1);
  const sa = P.scatterAdd(ga, idx, 1, 4);
  const am = P.argmax(x, 1);
  const rn = P.random('uniform', seed, 3, [2, 3]);
  const sg = P.stopGradient(rn);
  g.outputs = [cc.id, rs.id, sa.id, am.id, sg.id];
  const feeds = { x: hostTensor([2, 3], [0.5, -1, 2, -0.25, 1.5, 0.75]), seed: hostTensor([], [42], 'i32') };
  return { g, feeds, parts: { x, ga, sa, idx, cc } as Record<string, Tensor> };
}

describe('primitive coverage', () => {
  it('the sample graph exercises every OpName', () => {
    const { g } = sampleGraph();
    const seen = new Set(g.nodes.map((n) => n.op));
    expect([...seen].sort()).toEqual(Object.keys(allOps).sort());
  });

  it('every OpName has a VJP rule, and non-differentiable ones return no cotangent', () => {
    expect(Object.keys(vjpRules).sort()).toEqual(Object.keys(allOps).sort());
    const { g } = sampleGraph();
    // Snapshot the nodes: calling a rule appends to the graph.
    for (const node of [...g.nodes]) {
      const rule = vjpRules[node.op];
      expect(typeof rule).toBe('function');
      if (allOps[node.op] === 'differentiable') continue;
      const args = operands(node).map((o) => g.tensor(o));
      const ct = P.broadcastTo(P.constant(g, 1), node.shape);
      const parts = rule({ node, out: g.tensor(node.id), args, g: ct });
      expect(parts.length).toBe(args.length);
      expect(parts.every((p) => p === null)).toBe(true);
    }
  });

  it('the reference evaluator implements every node, with the declared shape and dtype', () => {
    const { g, feeds } = sampleGraph();
    const values = evaluate(g, feeds, g.nodes.map((n) => n.id));
    g.nodes.forEach((n, i) => {
      const v = values[i]!;
      expect(v.shape, `${n.op} shape`).toEqual(n.shape);
      expect(v.dtype, `${n.op} dtype`).toBe(n.dtype);
      expect(v.data.length).toBe(sizeOf(n.shape));
      expect(v.data.every(Number.isFinite), `${n.op} values finite`).toBe(true);
    });
  });

  it('reference values of the indexing primitives match a hand computation', () => {
    const { g, feeds, parts } = sampleGraph();
    const [idx, ga, sa, cc] = evaluate(g, feeds, [parts.idx!.id, parts.ga!.id, parts.sa!.id, parts.cc!.id]);
    // keys (i+1) mod 3 per row = [1, 2, 0]: the stable argsort is [2, 0, 1].
    expect(Array.from(idx!.data)).toEqual([2, 0, 1, 2, 0, 1]);
    expect(Array.from(ga!.data)).toEqual([2, 0.5, -1, 0.75, -0.25, 1.5]);
    // scattering back by the same permutation restores x, plus an untouched zero column.
    expect(Array.from(sa!.data)).toEqual([0.5, -1, 2, 0, -0.25, 1.5, 0.75, 0]);
    // pad(slice(x)) then the 0/1 mask of x > 0.
    expect(Array.from(cc!.data)).toEqual([0, -1, 2, 1, 0, 1, 0, 1.5, 0.75, 0, 1, 1]);
  });

  it('integer div floors and mod is non-negative', () => {
    const g = new Graph();
    const a = g.input('a', [4], 'i32');
    const b = P.constant(g, 3, [], 'i32');
    g.outputs = [P.binary('div', a, b).id, P.binary('mod', a, b).id];
    const [q, m] = evaluate(g, { a: hostTensor([4], [-4, -1, 2, 7], 'i32') });
    expect(Array.from(q!.data)).toEqual([-2, -1, 0, 2]);
    expect(Array.from(m!.data)).toEqual([2, 2, 2, 1]);
  });
});
