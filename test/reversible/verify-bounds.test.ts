/**
 * `checkReversibleCase` / `verifyReversible` (reformer/verify.ts) on a float32-style runner whose
 * errors the test plants: the runner computes exactly (the float64 evaluator behind another
 * class, so verify takes its float32 path) and then adds a known error to one value. The ratios
 * and messages are then checked against the documented bounds: 16 (slack) × blocks ×
 * amplification × the larger of the runner's own error on the plain graph and float32 epsilon ×
 * the values' size. Also: the random inputs verify feeds (float scale, i32 range, cotangents) and
 * what the report carries.
 */
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../compiler/ir/graph.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { NodeId } from '../../compiler/ir/types.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { Dense, Dropout, Dup, Embedding, Fn, InitKey, LayerNorm, Serial, ops, spec, type Layer } from '../../dsl/index.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { checkReversibleCase, prepareReversibleCheck, verifyReversible, type ReversibleCheck, type VerifyReversibleOptions } from '../../reformer/verify.ts';
import { ReferenceRunner, type Feeds, type GraphRunner } from '../../runtime/runner.ts';

const F32_EPS = 2 ** -24;
const d = 3;
const options: VerifyReversibleOptions = { inputs: [{ shape: [2, d] }, { shape: [2, d] }] };
const aCase = { dataSeed: 7, stepSeed: 3, scale: 1 };

/** Two blocks of Dense F and G on two `[2, d]` streams (with dropout in F when asked, so the graph reads the seed). */
function denseStack(dropout = false) {
  const f = () => (dropout ? Serial(Dense(d), Dropout(0.3)) : Dense(d));
  const stack = ReversibleStack([Reversible(f(), Dense(d)), Reversible(f(), Dense(d))]);
  const params = stack.init(new InitKey(4), [spec([2, d]), spec([2, d])]);
  return { stack, params, check: prepareReversibleCheck(stack, params, options) };
}

/** Where an error is planted: which graph, which of the wanted values, and how much is added to its first element. */
interface Plant {
  readonly graph: 'scheduled' | 'plain';
  readonly index: number;
  readonly error: number;
}

/** Exact values (not a ReferenceRunner, so verify treats it as a float32 runner) plus planted errors; records the feeds. */
class PlantedRunner implements GraphRunner {
  readonly description = 'exact with planted errors';
  readonly feeds: Feeds[] = [];
  constructor(
    private readonly check: ReversibleCheck,
    private readonly plants: readonly Plant[] = [],
  ) {}
  async run(graph: Graph, feeds: Feeds, wanted?: readonly NodeId[]): Promise<HostTensor[]> {
    this.feeds.push(feeds);
    const which = graph === this.check.scheduled.graph ? 'scheduled' : 'plain';
    const values = evaluate(graph, feeds, wanted);
    for (const p of this.plants.filter((q) => q.graph === which)) values[p.index]!.data[0] = values[p.index]!.data[0]! + p.error;
    return values;
  }
}

const maxAbs = (t: HostTensor) => Math.max(...Array.from(t.data, Math.abs));

/** The exact plain-backprop values verify compares against: gradients, then block outputs. */
async function plainValues(check: ReversibleCheck) {
  const runner = new PlantedRunner(check);
  await checkReversibleCase(check, aCase, runner, options);
  const feeds = runner.feeds[1]!;
  return evaluate(check.plain.graph, feeds, [...check.plain.gradients, ...check.blockOutputs]);
}

describe('verify: float32 bounds on a planted runner', () => {
  it('an exact runner passes with ratio at float64 rounding level; amplification is 1 for Dense blocks', async () => {
    const { check } = denseStack();
    const r = await checkReversibleCase(check, aCase, new PlantedRunner(check), options);
    expect(r.ratio).toBeLessThan(1e-3);
    expect(r.amplification).toBeGreaterThanOrEqual(1);
    expect(r.amplification).toBeLessThan(16);
  });

  it('a gradient off by δ: ratio δ / (16 × blocks × amplification × ε32 × |gradient|), named with its parameter', async () => {
    const { check } = denseStack();
    const plain = await plainValues(check);
    const k = 1;
    const size = maxAbs(plain[k]!);
    const delta = 1e-3 * size;
    const r = await checkReversibleCase(check, aCase, new PlantedRunner(check, [{ graph: 'scheduled', index: k, error: delta }]), options);
    const bound = 16 * 2 * r.amplification * F32_EPS * size;
    expect(r.ratio / (delta / bound)).toBeCloseTo(1, 6);
    const name = [...check.paramFeeds.keys()][k]!;
    expect(r.where).toBe(`gradient of ${name}: scheduled vs plain ${delta.toExponential(2)}, bound ${bound.toExponential(2)}`);
    // the slack scales the bound
    const slack = await checkReversibleCase(check, aCase, new PlantedRunner(check, [{ graph: 'scheduled', index: k, error: delta }]), { ...options, slack: 32 });
    expect(slack.ratio / r.ratio).toBeCloseTo(0.5, 6);
  });

  it("the runner's own error on the plain gradient widens that gradient's bound", async () => {
    const { check } = denseStack();
    const plain = await plainValues(check);
    const k = 0;
    const own = 0.5 * maxAbs(plain[k]!);
    // the plain gradient is off by `own` on this runner, the scheduled one is exact: error = own, bound = 32·amp·own
    const r = await checkReversibleCase(check, aCase, new PlantedRunner(check, [{ graph: 'plain', index: k, error: own }]), options);
    expect(r.ratio * r.amplification * 32).toBeCloseTo(1, 6);
    expect(r.where).toMatch(new RegExp(`^gradient of ${[...check.paramFeeds.keys()][k]!.replace(/[.[\]]/g, '\\$&')}: `));
  });

  it('a rebuilt block input off by δ: ratio δ / (16 × blocks × amplification × max(forward error, ε32 × stream size))', async () => {
    const { check } = denseStack();
    const plain = await plainValues(check);
    const nGrads = check.plain.gradients.length;
    const streamSize = Math.max(...check.blockOutputs.map((_, j) => maxAbs(plain[nGrads + j]!)));
    const [x] = [...check.scheduled.rebuilt][0]!;
    const delta = 1e-2 * streamSize;
    const rebuiltAt = { graph: 'scheduled', index: nGrads, error: delta } as const;
    const r = await checkReversibleCase(check, aCase, new PlantedRunner(check, [rebuiltAt]), options);
    const bound = 16 * 2 * r.amplification * F32_EPS * streamSize;
    expect(r.ratio / (delta / bound)).toBeCloseTo(1, 6);
    expect(r.where).toBe(`rebuilt input %${x} of a block: error ${delta.toExponential(2)}, bound ${bound.toExponential(2)}`);
    // the forward's own float32 error at the block outputs (the plain graph's) widens the bound
    const fwdError = 10 * delta;
    const blockOutputAt = { graph: 'plain', index: nGrads + 1, error: fwdError } as const;
    const wide = await checkReversibleCase(check, aCase, new PlantedRunner(check, [rebuiltAt, blockOutputAt]), options);
    expect(wide.ratio * 32 * wide.amplification * 10).toBeCloseTo(1, 6);
  });

  it('a planted float64 break (the rebuilt value read from another node) fails in float64 before the float32 checks', async () => {
    const { check } = denseStack();
    const [[x, r0], [, r1]] = [...check.scheduled.rebuilt] as [[NodeId, NodeId], [NodeId, NodeId]];
    const swapped = { ...check, scheduled: { ...check.scheduled, rebuilt: new Map([[x, r1], ...[...check.scheduled.rebuilt].slice(1)]) } };
    const runner = new PlantedRunner(swapped);
    const r = await checkReversibleCase(swapped, aCase, runner, options);
    expect(r0).not.toBe(r1);
    // error relative to the forward value's size, against six digits
    const [rebuilt, forward] = evaluate(check.scheduled.graph, runner.feeds[0]!, [r1, x]);
    const err = Math.max(...Array.from(rebuilt!.data, (v, i) => Math.abs(v - forward!.data[i]!)));
    expect(r.ratio / (err / (1e-6 * maxAbs(forward!)))).toBeCloseTo(1, 6);
    expect(r.where).toBe(`rebuilt input %${x} of a block in float64: error ${err.toExponential(2)} on values of size ${maxAbs(forward!).toExponential(2)}`);
  });
});

describe('verify: the random case it feeds', () => {
  /** Embedding (i32 tokens) into two streams through one block. */
  function tokenModel(): { model: Layer; check: ReversibleCheck; inputs: VerifyReversibleOptions['inputs'] } {
    const model = Serial(Embedding(50, d), Dup(), ReversibleStack([Reversible(Dense(d), Dense(d))]));
    const inputs = [{ shape: [4, 8], dtype: 'i32' as const }];
    const params = model.init(new InitKey(1), [spec([4, 8], 'i32')]);
    return { model, inputs, check: prepareReversibleCheck(model, params, { inputs }) };
  }

  it('float inputs lie in [−scale, scale] and fill it; cotangents in [−1, 1]; the seed is the step seed', async () => {
    const { check } = denseStack(true);
    const runner = new PlantedRunner(check);
    await checkReversibleCase(check, { dataSeed: 5, stepSeed: 11, scale: 0.25 }, runner, options);
    const feeds = runner.feeds[0]!;
    for (const name of ['input0', 'input1']) {
      const m = maxAbs(feeds[name]!);
      expect(m).toBeLessThanOrEqual(0.25);
      expect(m).toBeGreaterThan(0.1);
    }
    // the two streams draw different values
    expect(Array.from(feeds.input0!.data)).not.toEqual(Array.from(feeds.input1!.data));
    expect(check.scheduled.cotangentInputs.length).toBeGreaterThan(0);
    for (const name of check.scheduled.cotangentInputs) {
      expect(maxAbs(feeds[name]!)).toBeLessThanOrEqual(1);
      expect(maxAbs(feeds[name]!)).toBeGreaterThan(0.3);
    }
    expect(Array.from(feeds.seed!.data)).toEqual([11]);
    // the plain graph gets only the inputs it declares (no cotangent of another graph missing)
    const plainNames = new Set(check.plain.graph.inputNodes().map((n) => n.name));
    expect(Object.keys(runner.feeds[1]!).every((n) => plainNames.has(n))).toBe(true);
  });

  it('i32 inputs are integers in [0, intHigh), 0 or 1 by default; token inputs get no gradient', async () => {
    const { check, inputs } = tokenModel();
    expect(check.dataInputs).toEqual([{ name: 'input0', shape: [4, 8], dtype: 'i32' }]);
    const seen = async (intHigh?: number) => {
      const runner = new PlantedRunner(check);
      const r = await checkReversibleCase(check, aCase, runner, intHigh === undefined ? { inputs } : { inputs, intHigh });
      expect(r.ratio).toBeLessThan(1e-3);
      return new Set(Array.from(runner.feeds[0]!.input0!.data));
    };
    expect([...(await seen())].sort()).toEqual([0, 1]);
    const wide = await seen(50);
    expect([...wide].every((v) => Number.isInteger(v) && v >= 0 && v < 50)).toBe(true);
    expect(wide.size).toBeGreaterThan(10);
    // gradients only for the float parameters (embedding table, F and G weights and biases)
    expect(check.plain.gradients).toHaveLength(check.paramFeeds.size);
  });

  it('verifyReversible: 20 runs by default, reproducible from its seed, passing on an exact runner', async () => {
    const { stack, params, check } = denseStack();
    const a = await verifyReversible(stack, params, { ...options, seed: 9, runner: new PlantedRunner(check) }, check);
    const b = await verifyReversible(stack, params, { ...options, seed: 9, runner: new PlantedRunner(check) }, check);
    expect(a.runs).toBe(20);
    expect(a.passed).toBe(true);
    expect(a.counterexample).toBeNull();
    expect(a.blocks).toBe(2);
    expect(b.worstRatio).toBe(a.worstRatio);
    expect(b.worst).toBe(a.worst);
    expect(a.amplification).toBeGreaterThanOrEqual(1);
  });

  it('verifyReversible on a runner with a planted gradient error fails, giving the case and the failure with its ratio', async () => {
    const { stack, params, check } = denseStack();
    const runner = new PlantedRunner(check, [{ graph: 'scheduled', index: 0, error: 1 }]);
    const report = await verifyReversible(stack, params, { ...options, numRuns: 4, seed: 2, runner }, check);
    expect(report.passed).toBe(false);
    const c = report.counterexample!;
    expect(c).toMatchObject({ dataSeed: expect.any(Number), stepSeed: expect.any(Number), scale: expect.any(Number) });
    expect(c.failure).toMatch(/^gradient of params\.\S+: scheduled vs plain \S+, bound \S+ \(ratio \d\.\d\de\+\d+\)$/);
    expect(report.worstRatio).toBeGreaterThan(1);
    expect(report.worst).toMatch(/^gradient of params\./);
  });
});

describe('verify: the float64 gradient check and the report', () => {
  it('a scheduled gradient read from another input fails in float64, naming that input and the float64 bound', async () => {
    const { check } = denseStack();
    const g = [...check.scheduled.gradients];
    const n = g.length;
    // the last two gradients are those of the data inputs input0 and input1 (same shape): swap them
    [g[n - 2], g[n - 1]] = [g[n - 1]!, g[n - 2]!];
    const swapped = { ...check, scheduled: { ...check.scheduled, gradients: g } };
    const r = await checkReversibleCase(swapped, aCase, new ReferenceRunner(), options);
    const plain = await plainValues(check);
    const bounds = [n - 2, n - 1].map((k) => {
      const err = Math.max(...Array.from(plain[k]!.data, (v, i) => Math.abs(v - plain[2 * n - 3 - k]!.data[i]!)));
      const bound = maxAbs(plain[k]!) * Math.max(1e-9, 16 * 2 * r.amplification * 2 ** -53);
      return { k, err, bound, ratio: err / bound };
    });
    const worst = bounds.reduce((a, b) => (b.ratio > a.ratio ? b : a));
    expect(r.ratio / worst.ratio).toBeCloseTo(1, 6);
    expect(r.where).toBe(`gradient of input${worst.k - (n - 2)} in float64: scheduled vs plain ${worst.err.toExponential(2)}, bound ${worst.bound.toExponential(2)}`);
  });

  it("reports the worst ratio over all runs, not the last run's", async () => {
    const { stack, params, check } = denseStack();
    let calls = 0;
    // the third case's scheduled run gets a gradient error worth ratio ≈ 0.5 (amplification 1), the others none
    const runner: GraphRunner = {
      description: 'planted on one case',
      async run(graph, feeds, wanted) {
        const values = evaluate(graph, feeds, wanted);
        if (graph === check.scheduled.graph && ++calls === 3) values[0]!.data[0] = values[0]!.data[0]! + 0.5 * 32 * F32_EPS * maxAbs(values[0]!);
        return values;
      },
    };
    const report = await verifyReversible(stack, params, { ...options, numRuns: 6, seed: 3, runner }, check);
    expect(report.passed).toBe(true);
    expect(report.worstRatio).toBeGreaterThan(0.4);
    expect(report.worstRatio).toBeLessThan(0.6);
    expect(report.worst).toMatch(/^gradient of params\./);
  });

  it('the report carries the largest amplification any run measured', async () => {
    const d2 = 8;
    const branch = () => Serial(LayerNorm(), Dense(d2));
    const stack = ReversibleStack([Reversible(branch(), branch()), Reversible(branch(), branch())]);
    const params = stack.init(new InitKey(1), [spec([4, d2]), spec([4, d2])]);
    const opts = { inputs: [{ shape: [4, d2] }, { shape: [4, d2] }], numRuns: 5, seed: 1 };
    const check = prepareReversibleCheck(stack, params, opts);
    const report = await verifyReversible(stack, params, opts, check);
    expect(report.passed).toBe(true);
    expect(report.amplification).toBeGreaterThan(1);
  });

  it('differentiates only the float outputs, and refuses a layer without a reversible block', () => {
    const model = Serial(Dup(), ReversibleStack([Reversible(Dense(d), Dense(d))]), Fn('Pick', (a, b) => [a!, ops.argmax(b!, -1)], 2, 2));
    const params = model.init(new InitKey(2), [spec([2, d])]);
    const check = prepareReversibleCheck(model, params, { inputs: [{ shape: [2, d] }] });
    expect(check.scheduled.outputs).toHaveLength(1);
    expect(check.scheduled.cotangentInputs).toHaveLength(1);
    expect(() => prepareReversibleCheck(Dense(3), Dense(3).init(new InitKey(0), [spec([2, 3])]), { inputs: [{ shape: [2, 3] }] })).toThrow(
      new Error('verifyReversible: Dense holds no Reversible block to verify'),
    );
  });
});
