/**
 * Reversible regions (`Graph.reversible`, traced by `Reversible` blocks): reverse-mode
 * differentiation rebuilds each block's inputs from its outputs and replays F and G on them. The
 * scheduled gradients must equal plain backprop of the same graph, the backward must read no
 * forward value inside a block or at its inputs, and saved memory must not grow with depth.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Dense, Dup, Fn, InitKey, LayerNorm, Relu, Serial, noParams, ops, spec, trace, type Layer } from '../../dsl/index.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { vjp } from '../../compiler/grad/grad.ts';
import { reversibleLeaks, savedActivationBytes, graphPeakBytes } from '../../compiler/grad/saved.ts';
import { compile } from '../../compiler/codegen/compile.ts';
import { sizeOf, type NodeId } from '../../compiler/ir/types.ts';
import { planMemory } from '../../runtime/memory-plan.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { checkReversibleCase, prepareReversibleCheck } from '../../reformer/verify.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { rng, uniform } from '../grad/check.ts';
import { expectClose } from '../support/numeric.ts';
import { arbStack, differentiate, feedsFor, twoStreamModel, SEQ } from './schedules.ts';

describe('reversible regions: gradients', () => {
  it('equal plain backprop within 1e-10 (f64) on random stacks with LSH attention, dropout and chunked feed-forward', () => {
    fc.assert(
      fc.property(arbStack(5), ({ blocks, d, seed }) => {
        const { scheduled, plain, feeds } = differentiate(twoStreamModel(blocks, d), d, seed);
        const s = evaluate(scheduled.graph, feedsFor(scheduled, feeds), scheduled.gradients);
        const p = evaluate(plain.graph, feedsFor(plain, feeds), plain.gradients);
        s.forEach((g, k) => expectClose(g.data, p[k]!.data, 1e-10, 1e-10, `gradient ${k}`));
      }),
      { numRuns: 25, seed: 11 },
    );
  });

  it('rebuild every block input from the outputs (f64, up to 12 blocks)', () => {
    fc.assert(
      fc.property(arbStack(12), ({ blocks, d, seed }) => {
        const { scheduled, feeds } = differentiate(twoStreamModel(blocks, d), d, seed);
        const pairs = [...scheduled.rebuilt];
        expect(pairs.length).toBeGreaterThan(0);
        const v = evaluate(scheduled.graph, feedsFor(scheduled, feeds), [...pairs.map(([x]) => x), ...pairs.map(([, r]) => r)]);
        pairs.forEach((_, k) => expectClose(v[pairs.length + k]!.data, v[k]!.data, 1e-9, 1e-9, `rebuilt input ${k}`));
      }),
      { numRuns: 20, seed: 12 },
    );
  });

  it('F = G = 0 gives [x, x] after Dup and passes cotangents through unchanged', () => {
    const zero = () => Fn('Zero', (x) => ops.mul(x, 0));
    const model = Serial(Dup(), ReversibleStack([Reversible(zero(), zero()), Reversible(zero(), zero())]));
    const x = uniform(rng(3), [2, 3], -2, 2);
    const t = trace(model, model.init(new InitKey(0), [spec([2, 3])]), [{ shape: [2, 3] }]);
    const [a, b] = evaluate(t.graph, { input0: x });
    expect(Array.from(a!.data)).toEqual(Array.from(x.data));
    expect(Array.from(b!.data)).toEqual(Array.from(x.data));
  });
});

describe('reversible regions: what the backward reads', () => {
  it('no forward value inside a block or at its inputs: only stack outputs, stored buckets, parameters, inputs and the seed', () => {
    fc.assert(
      fc.property(arbStack(4), ({ blocks, d, seed }) => {
        const { scheduled, plain, forwardCount } = differentiate(twoStreamModel(blocks, d), d, seed);
        expect(reversibleLeaks(scheduled.graph, forwardCount)).toEqual([]);
        // The same check is not vacuous: plain backprop of the same graph reads block internals.
        if (blocks.some((b) => b.lsh || b.chunked || b.f.norm || b.g.norm || b.f.hidden > 0)) {
          expect(reversibleLeaks(plain.graph, forwardCount).length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 25, seed: 13 },
    );
  });

  it('NEGATIVE: F that reads X1 (a value outside its own input) is reported as a leak at the block inputs', () => {
    // A hand-built block whose F closes over X1: values are right, but the backward must keep X1.
    const leaky: Layer = {
      name: 'Leaky',
      nIn: 2,
      nOut: 2,
      init: () => noParams,
      apply: (_p, [x1, x2]) => x1!.graph.reversible('Leaky', x1!, x2!, (x) => ops.mul(x, x1!), (y) => ops.tanh(y)),
    };
    const model = Serial(Dup(), Fn('Double', (x) => ops.mul(x, 2)), leaky);
    const { scheduled, forwardCount, blocks } = prepareReversibleCheck(model, model.init(new InitKey(0), [spec([3])]), { inputs: [{ shape: [3] }] });
    expect(blocks).toBe(1);
    const leaks = reversibleLeaks(scheduled.graph, forwardCount);
    expect(leaks.map((l) => l.where)).toContain('input');
  });

  it('NEGATIVE: a G whose replay draws fresh randomness rebuilds other inputs, and verify fails', async () => {
    const d = 3;
    const model = twoStreamModel([{ f: { norm: true, hidden: 0, act: 'tanh', dropout: false }, g: { norm: false, hidden: 4, act: 'relu', dropout: true }, lsh: false, chunked: false }], d);
    const params = model.init(new InitKey(5), [spec([1, SEQ, d])]);
    const options = { inputs: [{ shape: [1, SEQ, d] }] };
    const runner = new ReferenceRunner();
    const c = { dataSeed: 3, stepSeed: 9, scale: 1 };
    const sound = prepareReversibleCheck(model, params, options);
    expect((await checkReversibleCase(sound, c, runner, options)).ratio).toBeLessThanOrEqual(1);
    // Replays draw the forward's (seed, salt) again; plant the bug by hand: G's replayed dropout
    // mask draws another salt.
    const t = trace(model, params, options.inputs, { mode: 'train' });
    const mask = t.graph.nodes.find((n) => n.op === 'random')!;
    const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data').map((n) => n.id);
    const scheduled = vjp(t.graph, t.graph.outputs, wrt);
    const forwardCount = t.graph.nodes.length;
    let planted = 0;
    scheduled.graph.nodes.forEach((n, i) => {
      if (i < forwardCount || n.op !== 'random' || mask.op !== 'random' || n.salt !== mask.salt) return;
      scheduled.graph.nodes[i] = { ...n, salt: 12345 };
      planted++;
    });
    expect(planted).toBeGreaterThan(0);
    const broken = { ...sound, scheduled, forwardCount };
    const r = await checkReversibleCase(broken, c, runner, options);
    expect(r.ratio).toBeGreaterThan(1e3);
    // The rebuilt inputs themselves differ from the forward's.
    const feeds: Record<string, HostTensor> = Object.fromEntries(sound.paramFeeds);
    feeds.input0 = uniform(rng(1), [1, SEQ, d], -1, 1);
    feeds.seed = hostTensor([], [9], 'i32');
    feeds['cotangent:0'] = uniform(rng(2), [1, SEQ, 2 * d], -1, 1);
    const [x, rebuiltX] = [...scheduled.rebuilt].find(([, r]) => r !== undefined)!;
    const [fwd, back] = evaluate(scheduled.graph, feeds, [x, rebuiltX]);
    expect(Math.max(...Array.from(fwd!.data, (v, i) => Math.abs(v - back!.data[i]!)))).toBeGreaterThan(1e-3);
  });

  it('NEGATIVE: a wrong sign in the inverse (X2 = Y2 + G(Y1)) is caught', async () => {
    const d = 3;
    const model = twoStreamModel([{ f: { norm: true, hidden: 0, act: 'tanh', dropout: false }, g: { norm: true, hidden: 4, act: 'relu', dropout: false }, lsh: false, chunked: false }], d);
    const params = model.init(new InitKey(6), [spec([1, SEQ, d])]);
    const options = { inputs: [{ shape: [1, SEQ, d] }] };
    const check = prepareReversibleCheck(model, params, options);
    const g = check.scheduled.graph;
    const x2 = check.scheduled.rebuilt.get(g.reversibleRegions[0]!.x2)!;
    const node = g.nodes[x2]!;
    expect(node.op === 'binary' && node.fn === 'sub').toBe(true);
    g.nodes[x2] = { ...node, fn: 'add' } as typeof node;
    const r = await checkReversibleCase(check, { dataSeed: 1, stepSeed: 2, scale: 1 }, new ReferenceRunner(), options);
    expect(r.ratio).toBeGreaterThan(1e3);
  });
});

describe('reversible regions: memory flat in depth', () => {
  const d = 8;
  const L = 16;
  const block = () => Reversible(Serial(LayerNorm(), Dense(d)), Serial(LayerNorm(), Dense(4 * d), Relu(), Dense(d)));
  const at = (depth: number) => {
    const model = Serial(Dup(), ReversibleStack(Array.from({ length: depth }, block)), Fn('Concat', (a, b) => ops.concat([a!, b!], -1), 2));
    const params = model.init(new InitKey(1), [spec([L, d])]);
    const t = trace(model, params, [{ shape: [L, d] }], { mode: 'train' });
    const wrt = t.graph.inputNodes().filter((n) => n.role === 'param').map((n) => n.id);
    const s = vjp(t.graph, t.graph.outputs, wrt);
    const p = vjp(t.graph, t.graph.outputs, wrt, { memorySchedules: false });
    const n = t.graph.nodes.length;
    const activations = (w: typeof s) => graphPeakBytes(w.graph, w.outputs.concat(w.gradients));
    return { saved: savedActivationBytes(s.graph, n), plainSaved: savedActivationBytes(p.graph, n), peak: activations(s), plainPeak: activations(p), text: s.graph.toString(), scheduled: s };
  };

  it('saved activations of 12 blocks equal those of 1 block (the stack outputs); plain backprop grows linearly', () => {
    const depths = [1, 2, 4, 8, 12].map(at);
    // The stack outputs only (no dropout here: with dropout, each layer's mask is read by its replay).
    expect(depths.every((m) => m.saved === depths[0]!.saved)).toBe(true);
    const perBlock = depths[1]!.plainSaved - depths[0]!.plainSaved;
    expect(perBlock).toBeGreaterThan(0);
    expect(depths[4]!.plainSaved).toBe(depths[0]!.plainSaved + 11 * perBlock);
    // Peak bytes in node order (parameter gradients included, which grow with depth for both).
    expect(depths[4]!.plainPeak - depths[4]!.peak).toBeGreaterThan(8 * (depths[1]!.plainPeak - depths[1]!.peak));
  });

  it('block outputs and rebuilt inputs are buffers: no kernel reads the insides of two blocks, and activations of the compiled plan do not grow', () => {
    // F and G end in a view of a matmul (as attention's output projection does): the residual sum
    // reading it is cheap, so fusion would inline a chain of them through the whole stack.
    const viewed = (layer: Layer) => Serial(layer, Dense(d, { bias: false }), Fn('View', (x) => ops.reshape(ops.reshape(x, [L * d]), [L, d])));
    const viewBlock = () => Reversible(viewed(LayerNorm()), viewed(Serial(LayerNorm(), Dense(4 * d), Relu())));
    const activationPeak = (depth: number) => {
      const model = Serial(Dup(), ReversibleStack(Array.from({ length: depth }, viewBlock)), Fn('Concat', (a, b) => ops.concat([a!, b!], -1), 2));
      const t = trace(model, model.init(new InitKey(1), [spec([L, d])]), [{ shape: [L, d] }], { mode: 'train' });
      const params = t.graph.inputNodes().filter((n) => n.role === 'param').map((n) => n.id);
      const scheduled = vjp(t.graph, t.graph.outputs, params);
      const g = scheduled.graph;
      const blocks = g.reversibleRegions;
      const compiled = compile(g, g.outputs);
      const insides = (id: NodeId) => blocks.flatMap((b, k) => (id >= b.start && id < b.end && id !== b.y1 && id !== b.y2 ? [k] : []));
      for (const group of compiled.plan.groups) expect(new Set(group.reads.flatMap(insides)).size, `kernel of %${group.root}`).toBeLessThanOrEqual(1);
      // parameters and their gradients grow with depth by nature; the rest must not
      const bytes = (id: NodeId) => sizeOf(g.node(id).shape) * 4;
      const paramsAndGrads = [...params, ...new Set(scheduled.gradients)].reduce((a, id) => a + bytes(id), 0);
      return planMemory(compiled).peakBytes - paramsAndGrads;
    };
    expect(activationPeak(12)).toBeLessThanOrEqual(activationPeak(2));
  });

  it('prints each block as a region with its streams and F/G ranges', () => {
    const { text } = at(2);
    const lines = text.split('\n').filter((l) => l.startsWith('reversible '));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^reversible %\d+…%\d+ \(%\d+, %\d+\) -> \(%\d+, %\d+\) F %\d+…%\d+ G %\d+…%\d+ {2}# Serial\[1\]\.ReversibleStack\[0\]\.Reversible$/);
  });
});

describe('reversible: build-time errors', () => {
  it('names the layer path and both shapes when F or G changes the shape', () => {
    const bad = Reversible(Serial(LayerNorm(), Dense(5)), Dense(4));
    expect(() => bad.init(new InitKey(0), [spec([2, 4]), spec([2, 4])])).toThrow(/F \(Serial\) output \[2,5\] does not match its input \[2,4\]/);
    const badG = Reversible(Dense(4), Serial(Dense(6), Relu()));
    expect(() => badG.init(new InitKey(0), [spec([2, 4]), spec([2, 4])])).toThrow(/G \(Serial\) output \[2,6\] does not match its input \[2,4\]/);
    const widen = ReversibleStack([Reversible(Fn('Widen', (x) => ops.concat([x, x], -1)), Dense(4))]);
    expect(() => trace(widen, [[{}, {}]], [{ shape: [2, 4] }, { shape: [2, 4] }])).toThrow(
      /ReversibleStack\[0\]\.Reversible: F \(Widen\) output \[2,8\] does not match its input \[2,4\]/,
    );
  });

  it('rejects F or G that are not one-in one-out, and streams of different shapes', () => {
    expect(() => Reversible(Dup(), Dense(3))).toThrow(/F \(Dup\) must map one tensor to one tensor, got 1 → 2/);
    expect(() => Reversible(Dense(3), Fn('Add', (a, b) => ops.add(a, b), 2))).toThrow(/G \(Add\) must map one tensor to one tensor, got 2 → 1/);
    expect(() => Reversible(Dense(3), Dense(3)).init(new InitKey(0), [spec([2, 3]), spec([2, 4])])).toThrow(
      /streams must have the same shape, got X1 f32\[2,3\] and X2 f32\[2,4\]/,
    );
  });
});
