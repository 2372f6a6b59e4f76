/**
 * How the backward pass replays memory-schedule regions (compiler/grad/grad.ts): what a replay
 * copies and what it reads where it stands (inputs, stored layer state, data-free nodes), which
 * gradient sums it marks `materialize`, and that a reversible block with LSH attention reads its
 * stored buckets instead of hashing again.
 */
import { describe, expect, it } from 'vitest';
import { grad, vjp } from '../../compiler/grad/grad.ts';
import { Graph, liveNodes, type Tensor } from '../../compiler/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { operands, type NodeId } from '../../compiler/ir/types.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { Dense, Dup, Fn, InitKey, LayerNorm, Serial, flattenParams, ops, spec, trace } from '../../dsl/index.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { LSHSelfAttention } from '../../reformer/attention/layers.ts';
import { rng, uniform } from './check.ts';
import { expectClose } from '../support/numeric.ts';

const sumAll = (t: Tensor) => P.reshape(P.reduce('sum', P.reshape(t, [-1]), 0), []);

/** Nodes of the backward part (ids ≥ forwardCount) that are live, and the forward ids they read. */
function backwardReads(graph: Graph, forwardCount: number): Set<NodeId> {
  const live = liveNodes(graph, graph.outputs);
  const read = new Set<NodeId>();
  for (const n of graph.nodes.slice(forwardCount)) if (live.has(n.id)) for (const o of operands(n)) if (o < forwardCount) read.add(o);
  return read;
}

describe('replay: what a replayed region copies', () => {
  /**
   * A recompute region holding a parameter input, a stored value, a random draw, a constant and an
   * iota, each multiplied into the region's result so that the backward reads every one of them.
   */
  function regionWithLeaves() {
    const g = new Graph();
    const x = g.input('x', [3]);
    const seed = g.input('seed', [], 'i32', 'seed');
    const leaves = g.recompute('R', () => {
      const w = g.input('w', [3], 'f32', 'param');
      const stored = g.store(P.stopGradient(P.unary('exp', x)));
      const noise = P.random('normal', seed, 7, [3]);
      const c = P.constant(g, [1.5, -2, 0.5], [3]);
      const i = P.iota(g, [3], 0);
      const y = [w, stored, noise, c, P.cast(i, 'f32')].reduce((acc, t) => P.binary('mul', acc, t), P.unary('tanh', x));
      return { w, stored, noise, c, i, y };
    });
    const loss = sumAll(P.binary('mul', leaves.y, leaves.y));
    return { g, x, seed, loss, ...leaves };
  }
  const feeds = { x: hostTensor([3], [0.3, -0.7, 1.1]), w: hostTensor([3], [2, -1, 0.5]), seed: hostTensor([], [5], 'i32') };

  it('reads inputs, stored state, constants and iotas where they stand (no copies); draws random again', () => {
    const r = regionWithLeaves();
    const forwardCount = r.g.nodes.length;
    const out = grad(r.g, r.loss.id, [r.x.id, r.w.id]);
    const reads = backwardReads(out.graph, forwardCount);
    for (const [name, t] of Object.entries({ w: r.w, stored: r.stored, c: r.c, i: r.i })) expect(reads.has(t.id), name).toBe(true);
    // the forward's draw is not read: the replay draws the same (seed, salt) again beside its reader
    expect(reads.has(r.noise.id)).toBe(false);
    const added = out.graph.nodes.slice(forwardCount);
    const redrawn = added.filter((n) => n.op === 'random');
    expect(redrawn).toHaveLength(1);
    expect(redrawn[0]).toMatchObject({ dist: 'normal', seed: r.seed.id, salt: 7, shape: [3] });
    // and the region itself was replayed: tanh is recomputed in the backward
    const copies = added.filter((n) => n.op === 'unary' && n.fn === 'tanh');
    expect(copies).toHaveLength(1);
    // no node was added that duplicates an input or an iota; nothing live recomputes the stored exp
    expect(added.filter((n) => n.op === 'input' || n.op === 'iota')).toEqual([]);
    const live = liveNodes(out.graph, out.graph.outputs);
    expect(added.filter((n) => live.has(n.id) && (n.op === 'stopGradient' || (n.op === 'unary' && n.fn === 'exp')))).toEqual([]);
    expect(out.graph.inputNodes().map((n) => n.name)).toEqual(['x', 'seed', 'w']);
  });

  it('gives the gradients of plain backprop (f64, exactly)', () => {
    const r = regionWithLeaves();
    const s = evaluate(grad(r.g, r.loss.id, [r.x.id, r.w.id]).graph, feeds);
    const p = evaluate(grad(r.g, r.loss.id, [r.x.id, r.w.id], { memorySchedules: false }).graph, feeds);
    expect(s.map((t) => Array.from(t.data))).toEqual(p.map((t) => Array.from(t.data)));
  });

  it('a region whose values carry no gradient is not replayed', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const k = g.recompute('ints', () => P.cast(P.argmax(P.reshape(P.unary('exp', x), [3, 1]), 1), 'f32'));
    const loss = sumAll(P.binary('mul', x, P.stopGradient(k)));
    const n = g.nodes.length;
    const out = grad(g, loss.id, [x.id]);
    expect(out.graph.nodes.slice(n).filter((m) => m.op === 'argmax' || (m.op === 'unary' && m.fn === 'exp'))).toEqual([]);
  });
});

describe('replay: gradient sums into values defined before a region are marked materialize', () => {
  it('recompute region: the sum into a value read both inside and after the region, and nothing else', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const w = g.input('w', [2, 3], 'f32', 'param');
    const a = P.binary('mul', x, w);
    const z = P.unary('exp', x); // defined before the region, read only after it: its cotangent does not change there
    const { sq, inner } = g.recompute('R', () => {
      const sq = P.binary('mul', a, a); // the region's first node, also read after the region
      const h = P.unary('tanh', sq);
      return { sq, inner: P.binary('mul', h, h) };
    });
    expect(sq.id).toBe(g.recomputeRegions[0]!.start);
    const after = P.binary('add', P.binary('add', inner, P.binary('mul', a, P.constant(g, 3))), P.binary('add', z, sq));
    const loss = sumAll(P.binary('mul', after, inner));
    const out = grad(g, loss.id, [x.id, w.id, a.id, z.id]);
    const gradA = out.gradients[2]!;
    expect(out.graph.node(gradA)).toMatchObject({ op: 'binary', fn: 'add' });
    expect([...out.graph.materialize]).toEqual([gradA]);
    expect(grad(g, loss.id, [x.id, w.id, a.id, z.id], { memorySchedules: false }).graph.materialize.size).toBe(0);
    // a value only the region reads gets its first cotangent there: no sum, no mark
    const g2 = new Graph();
    const x2 = g2.input('x', [2]);
    const b = P.unary('exp', x2);
    const r2 = g2.recompute('R', () => P.unary('tanh', P.binary('mul', b, P.constant(g2, 2))));
    expect(grad(g2, sumAll(r2).id, [x2.id]).graph.materialize.size).toBe(0);
  });

  it('reversible region: the sum into a block input also read after the block', () => {
    const g = new Graph();
    const x = g.input('x', [2, 2]);
    const x1 = P.unary('exp', x);
    const x2 = P.unary('tanh', x);
    const [y1, y2] = g.reversible('B', x1, x2, (t) => P.unary('tanh', t), (t) => P.binary('mul', t, P.constant(g, 0.5)));
    const loss = sumAll(P.binary('add', P.binary('mul', y1, y2), P.binary('mul', x1, x1)));
    const out = grad(g, loss.id, [x.id, x1.id]);
    const gradX1 = out.gradients[1]!;
    expect(out.graph.materialize.has(gradX1)).toBe(true);
    expect([...out.graph.materialize].every((id) => out.graph.node(id).op === 'binary')).toBe(true);
    const feeds = { x: hostTensor([2, 2], [0.1, -0.4, 0.8, 0.3]) };
    const s = evaluate(out.graph, feeds);
    const p = evaluate(grad(g, loss.id, [x.id, x1.id], { memorySchedules: false }).graph, feeds);
    s.forEach((v, k) => expectClose(v.data, p[k]!.data, 1e-12, 1e-12, `output ${k}`));
  });
});

describe('replay: a reversible block with LSH attention reads its stored buckets', () => {
  function lshStack(mode: 'train' | 'eval') {
    const d = 4;
    const attention = () => Serial(LayerNorm(), LSHSelfAttention({ nHeads: 1, dHead: d, nHashes: 2, chunkLen: 2, causal: true, dropout: 0.2 }));
    const model = Serial(
      Dup(),
      ReversibleStack([Reversible(attention(), Dense(d)), Reversible(attention(), Dense(d))]),
      Fn('Concat', (a, b) => ops.concat([a!, b!], -1), 2),
    );
    const params = model.init(new InitKey(3), [spec([1, 8, d])]);
    const t = trace(model, params, [{ shape: [1, 8, d] }], { mode });
    const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data').map((n) => n.id);
    const feeds: Record<string, HostTensor> = { input0: uniform(rng(4), [1, 8, d], -1, 1), seed: hostTensor([], [11], 'i32'), 'cotangent:0': uniform(rng(5), [1, 8, 2 * d], -1, 1) };
    for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
    return { t, wrt, feeds };
  }

  it('the live backward hashes nothing again: no argmax, no random rotations; it reads every stored bucket tensor', () => {
    const { t, wrt } = lshStack('train');
    const forwardCount = t.graph.nodes.length;
    expect(t.graph.stored.size).toBe(2);
    const out = vjp(t.graph, t.graph.outputs, wrt);
    const live = liveNodes(out.graph, out.graph.outputs);
    const backward = out.graph.nodes.slice(forwardCount).filter((n) => live.has(n.id));
    const rotationSalts = new Set(t.graph.nodes.flatMap((n) => (n.op === 'random' && n.dist === 'normal' ? [n.salt] : [])));
    expect(rotationSalts.size).toBe(2);
    expect(backward.filter((n) => n.op === 'argmax' || (n.op === 'random' && rotationSalts.has(n.salt)))).toEqual([]);
    // the dropout masks are drawn again beside their replayed readers
    expect(backward.some((n) => n.op === 'random')).toBe(true);
    const reads = backwardReads(out.graph, forwardCount);
    for (const id of t.graph.stored) expect(reads.has(id), `stored %${id}`).toBe(true);
    // plain backprop of the same graph reads the buckets too, and neither hashes twice
    const plain = vjp(t.graph, t.graph.outputs, wrt, { memorySchedules: false });
    expect(plain.graph.nodes.slice(forwardCount).some((n) => n.op === 'argmax')).toBe(false);
  });

  it('scheduled gradients equal plain backprop (f64), in train and in eval mode', () => {
    for (const mode of ['train', 'eval'] as const) {
      const { t, wrt, feeds } = lshStack(mode);
      expect(t.graph.nodes.some((n) => n.op === 'random' && n.shape.length === 5), mode).toBe(true); // rotations
      expect(t.graph.nodes.filter((n) => n.op === 'random').length > 2, mode).toBe(mode === 'train'); // + dropout masks
      const s = vjp(t.graph, t.graph.outputs, wrt);
      const p = vjp(t.graph, t.graph.outputs, wrt, { memorySchedules: false });
      const sv = evaluate(s.graph, feeds, s.gradients);
      const pv = evaluate(p.graph, feeds, p.gradients);
      sv.forEach((v, k) => expectClose(v.data, pv[k]!.data, 1e-10, 1e-10, `${mode} gradient ${k}`));
    }
  });
});

describe('replay: which regions are entered', () => {
  const block = (g: Graph, x1: Tensor, x2: Tensor) =>
    g.reversible('B', x1, x2, (t) => g.withScope('F', () => P.unary('tanh', t)), (t) => g.withScope('G', () => P.unary('tanh', P.binary('mul', t, P.constant(g, 0.5)))));

  it('Recompute around a reversible block: both are honoured, the outer first (F replayed by each)', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const [x1, x2] = [P.unary('exp', x), P.unary('neg', x)];
    const [y1, y2] = g.recompute('R', () => block(g, x1, x2));
    // the two regions are the same nodes: same start, same end
    expect([g.recomputeRegions[0]!.start, g.recomputeRegions[0]!.end]).toEqual([g.reversibleRegions[0]!.start, g.reversibleRegions[0]!.end]);
    const loss = sumAll(P.binary('mul', y1, y2));
    const n = g.nodes.length;
    const out = grad(g, loss.id, [x.id]);
    const fCopies = (r: typeof out) => r.graph.nodes.slice(n).filter((m) => m.scope === 'F' && m.op === 'unary').length;
    expect(fCopies(out)).toBe(2);
    expect(out.rebuilt.size).toBe(2);
    const plain = grad(g, loss.id, [x.id], { memorySchedules: false });
    expect(fCopies(plain)).toBe(0);
    const feeds = { x: hostTensor([3], [0.2, -0.5, 1]) };
    expectClose(evaluate(out.graph, feeds)[1]!.data, evaluate(plain.graph, feeds)[1]!.data, 1e-12, 1e-12, 'gradient');
  });

  it('a block whose outputs carry no gradient is not rebuilt; one output carrying it is enough', () => {
    const feeds = { x: hostTensor([3], [0.2, -0.5, 1]), c: hostTensor([3], [1, 2, 3]) };
    // dead block: its outputs reach no output
    const g1 = new Graph();
    const x1 = g1.input('x', [3]);
    block(g1, P.unary('exp', x1), P.unary('neg', x1));
    expect(grad(g1, sumAll(P.binary('mul', x1, x1)).id, [x1.id]).rebuilt.size).toBe(0);
    // block fed by a value that does not depend on wrt: its outputs reach the loss, but carry no gradient
    const g2 = new Graph();
    const x2 = g2.input('x', [3]);
    const c2 = g2.input('c', [3]);
    const [b1, b2] = block(g2, P.unary('exp', c2), P.unary('neg', c2));
    expect(grad(g2, sumAll(P.binary('mul', P.binary('add', b1, b2), x2)).id, [x2.id]).rebuilt.size).toBe(0);
    // outputs that reach the loss only through stopGradient: active, but no cotangent arrives
    const g4 = new Graph();
    const x4 = g4.input('x', [3]);
    const [s1, s2] = block(g4, P.unary('exp', x4), P.unary('neg', x4));
    expect(grad(g4, sumAll(P.binary('mul', P.stopGradient(P.binary('add', s1, s2)), x4)).id, [x4.id]).rebuilt.size).toBe(0);
    // only Y1 is used: the block is still rebuilt and differentiated
    const g3 = new Graph();
    const x3 = g3.input('x', [3]);
    const [u1] = block(g3, P.unary('exp', x3), P.unary('neg', x3));
    const loss3 = sumAll(P.binary('mul', u1, u1));
    const s = grad(g3, loss3.id, [x3.id]);
    expect(s.rebuilt.size).toBe(2);
    const [, gs] = evaluate(s.graph, feeds);
    const [, gp] = evaluate(grad(g3, loss3.id, [x3.id], { memorySchedules: false }).graph, feeds);
    expectClose(gs!.data, gp!.data, 1e-12, 1e-12, 'gradient');
    expect(Array.from(gs!.data).some((v) => v !== 0)).toBe(true);
  });

  it('rebuilt inputs are computed in the scope reverse(<block label>)', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const [y1, y2] = block(g, P.unary('exp', x), P.unary('neg', x));
    const out = grad(g, sumAll(P.binary('mul', y1, y2)).id, [x.id]);
    for (const id of out.rebuilt.values()) expect(out.graph.node(id).scope).toBe('reverse(B)');
  });
});
