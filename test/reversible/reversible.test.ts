import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Dense, Dup, Fn, InitKey, LayerNorm, Relu, Serial, ops, spec, trace } from '../../dsl/index.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { compileReversibleStack } from '../../compiler/reversible/compile.ts';
import { ordinaryBackprop } from '../../compiler/reversible/backprop.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { printSchedule } from '../../runtime/schedule/schedule.ts';
import { rng, uniform } from '../grad/check.ts';
import { expectClose } from '../support/numeric.ts';
import { arbResidual, buildResidual, worst, type ResidualSpec } from './support.ts';

const runner = new ReferenceRunner();

function network(blocks: ReadonlyArray<readonly [ResidualSpec, ResidualSpec]>, d: number, L: number, initSeed: number) {
  const stack = ReversibleStack(blocks.map(([f, g]) => Reversible(buildResidual(f, d), buildResidual(g, d))));
  const params = stack.init(new InitKey(initSeed), [spec([L, d]), spec([L, d])]);
  return { stack, params };
}

const arbNet = (maxDepth: number) =>
  fc.record({
    blocks: fc.array(fc.tuple(arbResidual, arbResidual), { minLength: 1, maxLength: maxDepth }),
    d: fc.integer({ min: 2, max: 4 }),
    L: fc.integer({ min: 1, max: 3 }),
    seed: fc.integer({ min: 0, max: 1_000_000 }),
  });

describe('reversible stack: inverse', () => {
  it('reverse(forward(x)) ≈ x for random F, G, up to 12 blocks (f64 reference)', async () => {
    await fc.assert(
      fc.asyncProperty(arbNet(12), async ({ blocks, d, L, seed }) => {
        const { stack, params } = network(blocks, d, L, seed);
        const c = compileReversibleStack(stack, params, { shape: [L, d] });
        const r = rng(seed);
        const x1 = uniform(r, [L, d], -1, 1);
        const x2 = uniform(r, [L, d], -1, 1);
        const { saved } = await c.forward(runner, { x1, x2, seed });
        const [rx1, rx2] = await c.reverse(runner, saved);
        expectClose(rx1.data, x1.data, 1e-9, 1e-9, 'X1');
        expectClose(rx2.data, x2.data, 1e-9, 1e-9, 'X2');
      }),
      { numRuns: 30, seed: 1 },
    );
  });

  it('the compiled forward equals a plain trace of the stack inside a model (same dropout masks)', async () => {
    const d = 3;
    const L = 4;
    const f: ResidualSpec = { norm: true, hidden: 0, act: 'tanh', dropout: true };
    const g: ResidualSpec = { norm: true, hidden: 5, act: 'relu', dropout: true };
    const stack = ReversibleStack([Reversible(buildResidual(f, d), buildResidual(g, d)), Reversible(buildResidual(f, d), buildResidual(g, d))]);
    const model = Serial(Dup(), stack);
    const params = model.init(new InitKey(4), [spec([L, d])]);
    const t = trace(model, params, [{ shape: [L, d] }], { mode: 'train' });
    const x = uniform(rng(9), [L, d], -1, 1);
    const feeds: Record<string, HostTensor> = { input0: x, seed: hostTensor([], [11], 'i32') };
    for (const n of t.graph.inputNodes()) if (n.role === 'param') feeds[n.name] = paramAt(params, n.name);
    const [y1, y2] = evaluate(t.graph, feeds);
    const stackParams = (params as readonly unknown[])[1] as Parameters<typeof compileReversibleStack>[1];
    const c = compileReversibleStack(stack, stackParams, { shape: [L, d] }, { scope: 'Serial[1]' });
    const { outputs } = await c.forward(runner, { x1: x, x2: x, seed: 11 });
    expect(Array.from(outputs[0].data)).toEqual(Array.from(y1!.data));
    expect(Array.from(outputs[1].data)).toEqual(Array.from(y2!.data));
  });
});

/** The host tensor at a `params.<path>` graph input name. */
function paramAt(params: unknown, name: string): HostTensor {
  let node = params as Record<string, unknown>;
  for (const k of name.split('.').slice(1)) node = node[k] as Record<string, unknown>;
  return node as unknown as HostTensor;
}

describe('reversible stack: reconstructing backward', () => {
  it('equals ordinary backprop of the same two-stream network, for inputs and every weight', async () => {
    await fc.assert(
      fc.asyncProperty(arbNet(5), async ({ blocks, d, L, seed }) => {
        const { stack, params } = network(blocks, d, L, seed);
        const c = compileReversibleStack(stack, params, { shape: [L, d] });
        const r = rng(seed + 1);
        const [x1, x2, dy1, dy2] = [0, 1, 2, 3].map(() => uniform(r, [L, d], -1, 1)) as [HostTensor, HostTensor, HostTensor, HostTensor];
        const { outputs, saved } = await c.forward(runner, { x1, x2, seed });
        const rev = await c.backward(runner, saved, [dy1, dy2]);
        const ref = await ordinaryBackprop(stack, params, spec([L, d])).run(runner, [x1, x2], [dy1, dy2], seed);
        expect(worst([[outputs[0], ref.outputs[0]!], [outputs[1], ref.outputs[1]!]], 1e-12, 1e-12)).toBeLessThanOrEqual(1);
        expectClose(rev.dX1.data, ref.inputGrads[0]!.data, 1e-8, 1e-10, 'dX1');
        expectClose(rev.dX2.data, ref.inputGrads[1]!.data, 1e-8, 1e-10, 'dX2');
        expect([...rev.gradsByParamPath.keys()].sort()).toEqual([...ref.gradsByParamPath.keys()].sort());
        for (const [path, gr] of rev.gradsByParamPath) expectClose(gr.data, ref.gradsByParamPath.get(path)!.data, 1e-8, 1e-10, path);
      }),
      { numRuns: 25, seed: 2 },
    );
  });

  it('NEGATIVE: new dropout masks (another seed) in the backward break reconstruction and gradients', async () => {
    const d = 4;
    const L = 3;
    const drop: ResidualSpec = { norm: true, hidden: 5, act: 'relu', dropout: true };
    const { stack, params } = network([[drop, drop], [drop, drop]], d, L, 5);
    const c = compileReversibleStack(stack, params, { shape: [L, d] });
    const r = rng(17);
    const [x1, x2, dy1, dy2] = [0, 1, 2, 3].map(() => uniform(r, [L, d], -1, 1)) as [HostTensor, HostTensor, HostTensor, HostTensor];
    const { saved } = await c.forward(runner, { x1, x2, seed: 3 });
    const ref = await ordinaryBackprop(stack, params, spec([L, d])).run(runner, [x1, x2], [dy1, dy2], 3);
    const good = await c.backward(runner, saved, [dy1, dy2]);
    const bad = await c.backward(runner, { ...saved, seed: 4 }, [dy1, dy2]);
    const gradPairs = (res: typeof good) => [...res.gradsByParamPath].map(([p, g]) => [g, ref.gradsByParamPath.get(p)!] as const);
    expect(worst([[good.x1, x1], [good.x2, x2]], 1e-9, 1e-9)).toBeLessThanOrEqual(1);
    expect(worst(gradPairs(good), 1e-8, 1e-10)).toBeLessThanOrEqual(1);
    // The same checks fail, clearly, when the masks differ.
    expect(worst([[bad.x1, x1], [bad.x2, x2]], 1e-5, 1e-5)).toBeGreaterThan(100);
    expect(worst(gradPairs(bad), 1e-4, 1e-6)).toBeGreaterThan(100);
    const [rx1] = await c.reverse(runner, { ...saved, seed: 4 });
    expect(worst([[rx1, x1]], 1e-5, 1e-5)).toBeGreaterThan(100);
  });

  it('F = G = 0 gives [x, x] after Dup, and passes cotangents through unchanged', async () => {
    const zero = () => Fn('Zero', (x) => ops.mul(x, 0));
    const stack = ReversibleStack([Reversible(zero(), zero()), Reversible(zero(), zero()), Reversible(zero(), zero())]);
    const model = Serial(Dup(), stack);
    const x = uniform(rng(3), [2, 3], -2, 2);
    const t = trace(model, model.init(new InitKey(0), [spec([2, 3])]), [{ shape: [2, 3] }]);
    const [a, b] = evaluate(t.graph, { input0: x });
    expect(Array.from(a!.data)).toEqual(Array.from(x.data));
    expect(Array.from(b!.data)).toEqual(Array.from(x.data));
    const c = compileReversibleStack(stack, stack.init(new InitKey(0), [spec([2, 3]), spec([2, 3])]), { shape: [2, 3] });
    const { outputs, saved } = await c.forward(runner, { x1: x, x2: x });
    expect(Array.from(outputs[1].data)).toEqual(Array.from(x.data));
    const dy1 = uniform(rng(4), [2, 3], -1, 1);
    const dy2 = uniform(rng(5), [2, 3], -1, 1);
    const back = await c.backward(runner, saved, [dy1, dy2]);
    expect(Array.from(back.dX1.data)).toEqual(Array.from(dy1.data));
    expect(Array.from(back.dX2.data)).toEqual(Array.from(dy2.data));
  });
});

describe('reversible: build-time errors', () => {
  it('names the layer and both shapes when F or G changes the shape', () => {
    const bad = Reversible(Serial(LayerNorm(), Dense(5)), Dense(4));
    expect(() => bad.init(new InitKey(0), [spec([2, 4]), spec([2, 4])])).toThrow(/F \(Serial\) output \[2,5\] does not match its input \[2,4\]/);
    const badG = Reversible(Dense(4), Serial(Dense(6), Relu()));
    expect(() => badG.init(new InitKey(0), [spec([2, 4]), spec([2, 4])])).toThrow(/G \(Serial\) output \[2,6\] does not match its input \[2,4\]/);
    // A parameter-free F is only checked when traced: the error carries the layer path.
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

describe('reversible: memory accounting', () => {
  const d = 8;
  const L = 16;
  const block = () => Reversible(Serial(LayerNorm(), Dense(d)), Serial(LayerNorm(), Dense(4 * d), Relu(), Dense(d)));
  const memoryAt = (depth: number) => {
    const stack = ReversibleStack(Array.from({ length: depth }, block));
    const params = stack.init(new InitKey(1), [spec([L, d]), spec([L, d])]);
    return compileReversibleStack(stack, params, { shape: [L, d] }).memory();
  };

  it('retained activations of 12 reversible blocks are within 10% of 1 block; ordinary backprop grows linearly', () => {
    const depths = [1, 2, 4, 8, 12];
    const reports = depths.map(memoryAt);
    const rev = reports.map((m) => m.reversible.retainedActivationBytes);
    const bp = reports.map((m) => m.backprop.retainedActivationBytes);
    // Y1 and Y2 only: two [L, d] f32 tensors.
    expect(rev[0]).toBe(2 * L * d * 4);
    expect(Math.abs(rev[4]! - rev[0]!) / rev[0]!).toBeLessThanOrEqual(0.1);
    const perBlock = bp[1]! - bp[0]!;
    expect(perBlock).toBeGreaterThan(0);
    depths.forEach((n, i) => expect(bp[i]).toBe(bp[0]! + (n - 1) * perBlock));
    // Peak live activations: flat for the reversible schedule, growing for backprop.
    const revPeak = reports.map((m) => m.reversible.peakBytes);
    expect(revPeak[4]).toBe(revPeak[1]);
    expect(reports[4]!.backprop.peakBytes).toBeGreaterThan(4 * revPeak[4]!);
  });

  it('prints the backward schedule: G then F per block, in reverse', () => {
    const stack = ReversibleStack([block(), block()]);
    const params = stack.init(new InitKey(1), [spec([L, d]), spec([L, d])]);
    const text = printSchedule(compileReversibleStack(stack, params, { shape: [L, d] }).backwardSchedule);
    const labels = text.split('\n').filter((l) => /^\s+\d+ {2}/.test(l)).map((l) => l.split(':')[0]!.trim());
    expect(labels).toEqual(['0  block 1 G vjp', '1  block 1 F vjp', '2  block 0 G vjp', '3  block 0 F vjp']);
    expect(text).toContain('block 1 F vjp: x2.1 dx1.1 x1.2 dx2.2 (4 params) → x1.1[16,8] dx2.1[16,8]');
  });
});
