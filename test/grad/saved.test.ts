/**
 * The memory accounting of compiler/grad/saved.ts on small hand-built graphs whose answers can be
 * counted by hand: which forward values the backward keeps, how many bytes of them are activations
 * (parameters and constants excluded, random draws and data counted), which reads a reversible
 * schedule forbids, and the peak of values alive in node order.
 */
import { describe, expect, it } from 'vitest';
import { grad, vjp } from '../../compiler/grad/grad.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { bytesOf, graphPeakBytes, reversibleLeaks, savedActivationBytes, savedForBackward } from '../../compiler/grad/saved.ts';

const sumAll = (t: Tensor) => P.reshape(P.reduce('sum', P.reshape(t, [-1]), 0), []);

describe('bytesOf', () => {
  it('counts 4 bytes an element, 4 for a scalar', () => {
    expect(bytesOf([2, 3, 5])).toBe(120);
    expect(bytesOf([])).toBe(4);
    expect(bytesOf([7, 0])).toBe(0);
  });
});

describe('savedForBackward and savedActivationBytes', () => {
  /** loss = Σ (x·w + c)·r·i with x data [2,3], w param [2,3], c const, r random, i iota (as f32). */
  function mixed() {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const w = g.input('w', [2, 3], 'f32', 'param');
    const seed = g.input('seed', [], 'i32', 'seed');
    const c = P.constant(g, [1, 2, 3, 4, 5, 6], [2, 3]);
    const r = P.random('uniform', seed, 3, [2, 3]);
    const i = P.cast(P.iota(g, [2, 3], 1), 'f32');
    const xw = P.binary('mul', x, w);
    const t = P.binary('mul', P.binary('mul', P.binary('add', xw, c), r), i);
    const loss = sumAll(t);
    return { g, x, w, c, r, i, xw, t, loss };
  }

  it('lists the forward values live backward nodes read, in id order, each once', () => {
    const m = mixed();
    const n = m.g.nodes.length;
    const out = grad(m.g, m.loss.id, [m.x.id, m.w.id]);
    const saved = savedForBackward(out.graph, n).map((s) => s.id);
    expect(saved).toEqual([...saved].sort((a, b) => a - b));
    expect(new Set(saved).size).toBe(saved.length);
    // x and w (for the product's VJP), r and i (multiplied in) are read; c and xw are not
    for (const t of [m.x, m.w, m.r, m.i]) expect(saved).toContain(t.id);
    expect(saved).not.toContain(m.xw.id);
    expect(saved.every((id) => id < n)).toBe(true);
  });

  it('ignores dead backward nodes: gradients nobody asked for read nothing', () => {
    const m = mixed();
    const n = m.g.nodes.length;
    const onlyX = grad(m.g, m.loss.id, [m.x.id]);
    // x̄ = ḡ·r·i·w: w is read, x itself is not (it is only needed for w̄)
    const saved = savedForBackward(onlyX.graph, n).map((s) => s.id);
    expect(saved).toContain(m.w.id);
    expect(saved).not.toContain(m.x.id);
    // a dead backward node reading x changes nothing
    P.binary('mul', onlyX.graph.tensor(m.x.id), onlyX.graph.tensor(m.x.id));
    expect(savedForBackward(onlyX.graph, n).map((s) => s.id)).toEqual(saved);
  });

  it('activation bytes leave out parameters, constants and iotas; data inputs and random draws count', () => {
    const m = mixed();
    const n = m.g.nodes.length;
    const out = grad(m.g, m.loss.id, [m.x.id, m.w.id]);
    const saved = savedForBackward(out.graph, n);
    const kinds = saved.map((s) => (s.op === 'input' ? `input:${s.role}` : s.op));
    // x, w, r are [2,3] (24 bytes each); i (a cast of the iota) is a computed value and counts
    expect(kinds).toEqual(expect.arrayContaining(['input:data', 'input:param', 'random', 'cast']));
    const expected = saved.filter((s) => !(s.op === 'input' && s.role === 'param') && s.op !== 'const' && s.op !== 'iota').reduce((a, s) => a + bytesOf(s.shape), 0);
    expect(savedActivationBytes(out.graph, n)).toBe(expected);
    expect(expected).toBe(24 * saved.filter((s) => s.id !== m.w.id && s.shape.length === 2).length);
  });

  it('a saved constant or iota read directly costs nothing; a saved parameter costs nothing; a saved data input does', () => {
    const g = new Graph();
    const x = g.input('x', [4]);
    const w = g.input('w', [4], 'f32', 'param');
    const c = P.constant(g, [1, 2, 3, 4], [4]);
    const iota = P.iota(g, [4], 0);
    const y = P.where(P.compare('lt', iota, P.constant(g, 2, [], 'i32')), P.binary('mul', x, c), P.binary('mul', x, w));
    const loss = sumAll(y);
    const n = g.nodes.length;
    const out = grad(g, loss.id, [x.id]);
    const ids = savedForBackward(out.graph, n).map((s) => s.id);
    expect(ids).toEqual(expect.arrayContaining([c.id, w.id]));
    expect(ids).not.toContain(x.id);
    // c, w and the mask (computed from the iota, i32 [4]) are read: only the mask counts
    const mask = ids.map((id) => out.graph.node(id)).filter((s) => s.op === 'compare');
    expect(mask).toHaveLength(1);
    expect(savedActivationBytes(out.graph, n)).toBe(16);
    // with respect to w as well, x is read (w̄ = ḡ·x) and counts
    const both = grad(g, loss.id, [x.id, w.id]);
    expect(savedActivationBytes(both.graph, n)).toBe(32);
  });
});

describe('reversibleLeaks', () => {
  /** Two blocks, x → (x1 = exp x, x2 = tanh x) → B0 → B1 → loss; F and G non-linear. */
  function twoBlocks(leakyF = false) {
    const g = new Graph();
    const x = g.input('x', [3]);
    const seed = g.input('seed', [], 'i32', 'seed');
    const x1 = P.unary('exp', x);
    const x2 = P.unary('tanh', x);
    const f = (t: Tensor) => P.unary('tanh', leakyF ? P.binary('mul', t, x1) : t);
    const g1 = (t: Tensor) => P.binary('mul', P.unary('tanh', t), P.random('uniform', seed, 1, [3]));
    const [a1, a2] = g.reversible('B0', x1, x2, f, g1);
    const [b1, b2] = g.reversible('B1', a1, a2, (t) => P.binary('mul', t, t), (t) => P.unary('tanh', t));
    // the first node after the stack is a tanh, which its own VJP reads
    const loss = sumAll(P.binary('mul', b1, P.unary('tanh', b2)));
    return { g, x, x1, x2, a1, a2, b1, b2, loss };
  }

  it('none under the reversible schedule; plain backprop reads inside both blocks and at their inputs', () => {
    const m = twoBlocks();
    const n = m.g.nodes.length;
    expect(reversibleLeaks(grad(m.g, m.loss.id, [m.x.id]).graph, n)).toEqual([]);
    const leaks = reversibleLeaks(grad(m.g, m.loss.id, [m.x.id], { memorySchedules: false }).graph, n);
    expect(new Set(leaks.map((l) => l.block))).toEqual(new Set(['B0', 'B1']));
    expect(leaks.some((l) => l.where === 'inside')).toBe(true);
    // B0's outputs are B1's inputs: reading them is a leak at B1's inputs (and inside B0)
    const atA2 = leaks.filter((l) => l.node.id === m.a2.id);
    expect(atA2.map((l) => `${l.block}:${l.where}`).sort()).toEqual(['B0:inside', 'B1:input']);
    // the stack's final outputs leave it: reading them is allowed
    expect(leaks.some((l) => l.node.id === m.b1.id || l.node.id === m.b2.id)).toBe(false);
    // plain backprop reads G's forward dropout mask inside B0 (the schedule draws it again)
    expect(leaks.filter((l) => l.node.op === 'random').map((l) => `${l.block}:${l.where}`)).toEqual(['B0:inside']);
    // every leak lies in its block's range or at its inputs; F's first node (tanh, read by its own VJP) is one
    for (const l of leaks) {
      const b = m.g.reversibleRegions.find((r) => r.label === l.block)!;
      if (l.where === 'inside') expect(l.node.id >= b.start && l.node.id < b.end, `%${l.node.id} in ${l.block}`).toBe(true);
      else expect([b.x1, b.x2]).toContain(l.node.id);
    }
    const b0 = m.g.reversibleRegions[0]!;
    expect(leaks.some((l) => l.block === 'B0' && l.node.id === b0.start)).toBe(true);
    // the node right after the stack (read by its VJP) is no block's
    const b1 = m.g.reversibleRegions[1]!;
    expect(m.g.node(b1.end)).toMatchObject({ op: 'unary', fn: 'tanh' });
    expect(savedForBackward(grad(m.g, m.loss.id, [m.x.id], { memorySchedules: false }).graph, n).map((s) => s.id)).toContain(b1.end);
    expect(leaks.some((l) => l.node.id >= b1.end)).toBe(false);
  });

  it('an F that closes over X1 leaks X1 at the block inputs, with the block named', () => {
    const m = twoBlocks(true);
    const n = m.g.nodes.length;
    const leaks = reversibleLeaks(grad(m.g, m.loss.id, [m.x.id]).graph, n);
    expect(leaks).toContainEqual(expect.objectContaining({ block: 'B0', where: 'input', node: expect.objectContaining({ id: m.x1.id }) }));
  });

  it('stored state and inputs read by the backward are allowed', () => {
    const g = new Graph();
    const x1 = g.input('x1', [2]);
    const x2 = g.input('x2', [2]);
    const w = g.input('w', [2], 'f32', 'param');
    let stored: Tensor | undefined;
    const [y1, y2] = g.reversible(
      'S',
      x1,
      x2,
      (t) => {
        stored = g.store(P.stopGradient(P.unary('exp', t)));
        return P.binary('mul', P.binary('mul', t, w), stored);
      },
      (t) => P.unary('tanh', t),
    );
    const loss = sumAll(P.binary('mul', y1, y2));
    const n = g.nodes.length;
    const out = vjp(g, [loss.id], [x1.id, x2.id, w.id], { seed: 'ones' });
    const saved = savedForBackward(out.graph, n).map((s) => s.id);
    expect(saved).toContain(stored!.id);
    expect(saved).toContain(w.id);
    expect(reversibleLeaks(out.graph, n)).toEqual([]);
  });
});

describe('graphPeakBytes', () => {
  it('counts computed values alive at once in node order, freeing each after its last reader; inputs are free', () => {
    const g = new Graph();
    const x = g.input('x', [10]); // 40 bytes, not counted
    const a = P.unary('exp', x); // 40
    const b = P.unary('tanh', a); // 40, a still needed below
    const c = P.binary('add', a, b); // 40: a, b, c alive = 120, then a and b die
    const s = P.reduce('sum', c, 0); // 4: c alive with it = 44
    g.outputs = [s.id];
    expect(graphPeakBytes(g)).toBe(120);
    // a wanted value is kept to the end
    expect(graphPeakBytes(g, [s.id, a.id])).toBe(120);
    expect(graphPeakBytes(g, [b.id])).toBe(80);
  });

  it('a value read twice by one node is freed once; dead nodes are not counted', () => {
    const g = new Graph();
    const x = g.input('x', [10]);
    const a = P.unary('exp', x); // 40
    const sq = P.binary('mul', a, a); // 40 → 80, then a is freed once
    const d = P.unary('neg', sq); // 40 → 80, then sq freed
    const e = P.unary('exp', d); // 40 → 80, then d freed: 40 left
    const f = P.unary('tanh', e); // 40 → 80
    P.reshape(P.unary('exp', P.unary('exp', x)), [2, 5]); // dead, never counted
    g.outputs = [f.id];
    expect(graphPeakBytes(g)).toBe(80);
  });

  it('an output of a wide intermediate sets the peak; the reference is the same graph without it', () => {
    const g = new Graph();
    const x = g.input('x', [4]);
    const wide = P.broadcastTo(P.reshape(x, [4, 1]), [4, 100]); // 1600
    const narrow = P.reduce('sum', wide, 1); // 16
    g.outputs = [narrow.id];
    expect(graphPeakBytes(g)).toBe(1616);
    expect(graphPeakBytes(g, [P.unary('exp', x).id])).toBe(16);
  });
});
