/**
 * The contract of `grad` and `vjp` (compiler/grad/grad.ts) seen from a caller: which losses are
 * accepted, how cotangents are seeded ('inputs': one graph input per output; 'ones'), what the
 * returned graph's outputs are, and that `memorySchedules: false` is plain backprop of the same
 * graph with the same values.
 */
import { describe, expect, it } from 'vitest';
import { grad, vjp } from '../../compiler/grad/grad.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import { hostTensor } from '../../compiler/ir/host-tensor.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { Dense, Dropout, Dup, Fn, InitKey, LayerNorm, Recompute, Relu, Serial, flattenParams, ops, spec, trace } from '../../dsl/index.ts';
import { Chunked } from '../../dsl/chunked.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { rng, uniform, weightedLoss } from './check.ts';
import { expectClose } from '../support/numeric.ts';

/** `y1 = x·w` ([3]), `y2 = Σ x` (scalar), `k = argmax x` (i32): two differentiable outputs and one not. */
function twoOutputs() {
  const g = new Graph();
  const x = g.input('x', [3]);
  const w = g.input('w', [3], 'f32', 'param');
  const y1 = P.binary('mul', x, w);
  const y2 = P.reshape(P.reduce('sum', x, 0), []);
  const k = P.argmax(x, 0);
  return { g, x, w, y1, y2, k };
}

const X = [0.5, -1.25, 2];
const W = [3, -0.5, 1.5];
const values = (t: { data: ArrayLike<number> }) => Array.from(t.data);

describe('grad: the loss', () => {
  it('rejects a loss that is not a scalar, naming its shape', () => {
    const { g, x, y1 } = twoOutputs();
    expect(() => grad(g, y1.id, [x.id])).toThrow('grad: loss must be a scalar, got shape [3]');
    const one = P.reshape(y1, [3, 1]);
    expect(() => grad(g, P.slice(one, [0, 0], [1, 1]).id, [x.id])).toThrow('grad: loss must be a scalar, got shape [1,1]');
  });

  it('accepts a scalar loss: outputs are [loss, ...gradients], seeded with 1 (no cotangent inputs)', () => {
    const { g, x, w, y1 } = twoOutputs();
    const loss = P.reshape(P.reduce('sum', y1, 0), []);
    const r = grad(g, loss.id, [x.id, w.id]);
    expect(r.cotangentInputs).toEqual([]);
    expect(r.graph.inputNodes().map((n) => n.name)).toEqual(['x', 'w']);
    expect(r.graph.outputs).toEqual([loss.id, ...r.gradients]);
    const [l, gx, gw] = evaluate(r.graph, { x: hostTensor([3], X), w: hostTensor([3], W) });
    expect(l!.data[0]).toBeCloseTo(X.reduce((s, v, i) => s + v * W[i]!, 0), 12);
    expect(values(gx!)).toEqual(W);
    expect(values(gw!)).toEqual(X);
  });
});

describe('vjp: seeding', () => {
  it("default 'inputs': one cotangent input per output, named cotangent:<i>, shaped like the output", () => {
    const { g, x, w, y1, y2, k } = twoOutputs();
    const r = vjp(g, [y1.id, y2.id, k.id], [x.id, w.id]);
    expect(r.cotangentInputs).toEqual(['cotangent:0', 'cotangent:1', 'cotangent:2']);
    const cts = r.graph.inputNodes().filter((n) => n.role === 'cotangent');
    expect(cts.map((n) => [n.name, n.shape, n.dtype])).toEqual([
      ['cotangent:0', [3], 'f32'],
      ['cotangent:1', [], 'f32'],
      ['cotangent:2', [1], 'i32'],
    ]);
    expect(r.outputs).toEqual([y1.id, y2.id, k.id]);
    expect(r.graph.outputs).toEqual([y1.id, y2.id, k.id, ...r.gradients]);
    // the source graph is not touched
    expect(g.inputNodes()).toHaveLength(2);
  });

  it("default 'inputs': gradients are the cotangents pulled back (x̄ = c0·w + c1, w̄ = c0·x)", () => {
    const { g, x, w, y1, y2, k } = twoOutputs();
    const r = vjp(g, [y1.id, y2.id, k.id], [x.id, w.id]);
    const c0 = [0.25, -2, 1];
    const c1 = 0.75;
    const [gx, gw] = evaluate(
      r.graph,
      { x: hostTensor([3], X), w: hostTensor([3], W), 'cotangent:0': hostTensor([3], c0), 'cotangent:1': hostTensor([], [c1]), 'cotangent:2': hostTensor([1], [5], 'i32') },
      r.gradients,
    );
    expect(values(gx!)).toEqual(W.map((wi, i) => c0[i]! * wi + c1));
    expect(values(gw!)).toEqual(X.map((xi, i) => c0[i]! * xi));
  });

  it("'ones': no cotangent inputs, every differentiable output seeded with ones (x̄ = w + 1, w̄ = x)", () => {
    const { g, x, w, y1, y2, k } = twoOutputs();
    const r = vjp(g, [y1.id, y2.id, k.id], [x.id, w.id], { seed: 'ones' });
    expect(r.cotangentInputs).toEqual([]);
    expect(r.graph.inputNodes().some((n) => n.role === 'cotangent')).toBe(false);
    const [gx, gw] = evaluate(r.graph, { x: hostTensor([3], X), w: hostTensor([3], W) }, r.gradients);
    expect(values(gx!)).toEqual(W.map((wi) => wi + 1));
    expect(values(gw!)).toEqual(X);
  });

  it('an i32 input asked for gets zeros, also when it is itself an output', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    const n = g.input('n', [2], 'i32');
    const y = P.binary('mul', x, P.cast(n, 'f32'));
    for (const seed of ['ones', 'inputs'] as const) {
      const r = vjp(g, [y.id, n.id], [x.id, n.id], { seed });
      const feeds = { x: hostTensor([2], [1, 2]), n: hostTensor([2], [3, 4], 'i32'), 'cotangent:0': hostTensor([2], [1, 1]), 'cotangent:1': hostTensor([2], [7, 7], 'i32') };
      const [gx, gn] = evaluate(r.graph, seed === 'ones' ? { x: feeds.x, n: feeds.n } : feeds, r.gradients);
      expect(values(gx!)).toEqual([3, 4]);
      expect(values(gn!)).toEqual([0, 0]);
    }
  });

  it('an output that does not depend on wrt contributes nothing, and a wrt node no output reads gets zeros', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    const unused = g.input('unused', [2, 2]);
    const other = g.input('other', [2]);
    const y = P.unary('exp', other);
    const r = vjp(g, [y.id], [x.id, unused.id], { seed: 'ones' });
    const out = evaluate(r.graph, { x: hostTensor([2], [1, 2]), unused: hostTensor([2, 2], [1, 2, 3, 4]), other: hostTensor([2], [0, 1]) }, r.gradients);
    expect(out.map((t) => [t.shape, values(t)])).toEqual([
      [[2], [0, 0]],
      [[2, 2], [0, 0, 0, 0]],
    ]);
  });

  it('stopGradient blocks the flow: a path through it adds nothing', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    const y = P.binary('add', P.binary('mul', x, x), P.binary('mul', P.stopGradient(x), x));
    const r = vjp(g, [y.id], [x.id], { seed: 'ones' });
    const [gx] = evaluate(r.graph, { x: hostTensor([2], [1.5, -2]) }, r.gradients);
    // d/dx (x² + sg(x)·x) = 2x + x
    expect(values(gx!)).toEqual([4.5, -6]);
  });
});

describe('vjp: memorySchedules', () => {
  /** A model with all three schedules: a Recompute region, a reversible stack, a chunked feed-forward, with dropout. */
  function scheduledModel() {
    const d = 3;
    const ff = () => Chunked(Serial(LayerNorm(), Dense(5), Relu(), Dense(d)), { axis: 0, size: 2 });
    const block = () => Reversible(Serial(LayerNorm(), Dense(d), Dropout(0.3)), ff());
    const model = Serial(
      Recompute(Dense(d), Relu()),
      Dup(),
      ReversibleStack([block(), block()]),
      Fn('Concat', (a, b) => ops.concat([a!, b!], -1), 2),
    );
    const params = model.init(new InitKey(4), [spec([4, d])]);
    const t = trace(model, params, [{ shape: [4, d] }], { mode: 'train' });
    const loss = weightedLoss(t.outputs[0]!, rng(9));
    const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data').map((n) => n.id);
    const feeds: Record<string, ReturnType<typeof hostTensor>> = { input0: uniform(rng(2), [4, d], -1, 1), seed: hostTensor([], [17], 'i32') };
    for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
    return { t, loss, wrt, feeds };
  }

  it('false is plain backprop of the same graph: same loss and gradients (f64), no replays, no rebuilt inputs, no materialize marks', () => {
    const { t, loss, wrt, feeds } = scheduledModel();
    expect(t.graph.recomputeRegions.length).toBeGreaterThan(1);
    expect(t.graph.reversibleRegions).toHaveLength(2);
    const scheduled = grad(t.graph, loss.id, wrt);
    const plain = grad(t.graph, loss.id, wrt, { memorySchedules: false });
    const s = evaluate(scheduled.graph, feeds);
    const p = evaluate(plain.graph, feeds);
    expect(s).toHaveLength(wrt.length + 1);
    expect(s[0]!.data[0]).toBe(p[0]!.data[0]);
    s.forEach((v, k) => expectClose(v.data, p[k]!.data, 1e-12, 1e-12, `output ${k}`));
    // the default honours the schedules: both blocks' inputs are rebuilt (Dup feeds block 0 one
    // node as X1 and X2), regions are replayed
    expect(scheduled.rebuilt.size).toBe(3);
    expect(scheduled.graph.materialize.size).toBeGreaterThan(0);
    expect(scheduled.graph.nodes.length).toBeGreaterThan(plain.graph.nodes.length);
    expect(plain.rebuilt.size).toBe(0);
    expect(plain.graph.materialize.size).toBe(0);
    // plain backprop appends only VJP nodes; the scheduled graph also replays forward nodes (their own scopes)
    const replayed = (r: typeof plain) => r.graph.nodes.slice(t.graph.nodes.length).filter((n) => n.scope !== '' && !n.scope.startsWith('grad(')).length;
    expect(replayed(plain)).toBe(0);
    expect(replayed(scheduled)).toBeGreaterThan(0);
  });

  it('true is the default of both grad and vjp', () => {
    const { t, loss, wrt } = scheduledModel();
    const byDefault = grad(t.graph, loss.id, wrt);
    const explicit = grad(t.graph, loss.id, wrt, { memorySchedules: true });
    expect(byDefault.graph.toString()).toBe(explicit.graph.toString());
    const v = vjp(t.graph, [loss.id], wrt, { seed: 'ones' });
    expect(v.graph.toString()).toBe(explicit.graph.toString());
  });
});

describe('vjp: only what carries a gradient is differentiated', () => {
  /** Backward nodes (ids past the forward) whose scope says they differentiate `scope`. */
  const vjpNodesOf = (r: ReturnType<typeof vjp>, forwardCount: number, scope: string) => r.graph.nodes.slice(forwardCount).filter((n) => n.scope === `grad(${scope})`);

  it('no VJP nodes for values reached from wrt only through stopGradient or i32, nor for values not reached from wrt', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const c = g.input('c', [3]);
    const viaStop = g.withScope('viaStop', () => P.unary('exp', P.stopGradient(x)));
    const viaInt = g.withScope('viaInt', () => P.unary('tanh', P.cast(P.argmax(P.reshape(x, [3, 1]), 1), 'f32')));
    const notFromX = g.withScope('notFromX', () => P.unary('exp', c));
    const y = P.binary('mul', P.binary('add', P.binary('add', viaStop, P.reshape(viaInt, [3])), notFromX), x);
    const n = g.nodes.length;
    const r = vjp(g, [y.id], [x.id], { seed: 'ones' });
    for (const scope of ['viaStop', 'viaInt', 'notFromX']) expect(vjpNodesOf(r, n, scope), scope).toEqual([]);
    expect(vjpNodesOf(r, n, 'binary').length).toBeGreaterThan(0);
    const feeds = { x: hostTensor([3], [0.5, -1, 2]), c: hostTensor([3], [0.1, 0.2, 0.3]) };
    const [gx] = evaluate(r.graph, feeds, r.gradients);
    // ∂/∂x of (s + t + u)·x with s, t, u constant in x
    const [s, t, u] = evaluate(g, feeds, [viaStop.id, viaInt.id, notFromX.id]);
    expect(values(gx!)).toEqual([0, 1, 2].map((i) => s!.data[i]! + t!.data[i]! + u!.data[i]!));
  });

  it('no VJP nodes for values that depend on wrt but reach no output', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    g.withScope('dead', () => P.unary('tanh', P.unary('exp', x)));
    const y = P.binary('mul', x, x);
    const n = g.nodes.length;
    const r = vjp(g, [y.id], [x.id], { seed: 'ones' });
    expect(vjpNodesOf(r, n, 'dead')).toEqual([]);
  });

  it('VJP nodes carry the scope grad(<layer path>) of the node they differentiate, grad(<op>) at top level', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    const h = g.withScope('Serial[0].Dense', () => P.unary('tanh', x));
    const y = P.binary('mul', h, h);
    const n = g.nodes.length;
    const r = vjp(g, [y.id], [x.id], { seed: 'ones' });
    const scopes = new Set(r.graph.nodes.slice(n).map((m) => m.scope));
    expect(scopes).toContain('grad(Serial[0].Dense)');
    expect(scopes).toContain('grad(binary)');
    expect([...scopes].every((s) => s === '' || s.startsWith('grad('))).toBe(true);
  });
});
