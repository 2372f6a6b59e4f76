/**
 * `verifyReversible`: checks, on random inputs at the model's own shapes and with its own
 * parameters, that the reversible schedule the trainer runs is right:
 *
 * 1. structure: the backward pass reads no forward value inside a reversible block or at a
 *    block's inputs (only stack outputs, stored layer state, parameters, inputs and the seed);
 * 2. inverse: the block inputs the backward rebuilds from the outputs equal the forward values;
 * 3. gradients: the scheduled VJP equals plain backprop of the same graph, for every parameter
 *    and float input, with the same seed.
 *
 * Tolerances come from the arithmetic actually used. Both graphs first run on the float64
 * reference: there the rebuild must keep six digits (a wrong schedule keeps none), the gradients
 * must agree to 1e-9 relative, and the rebuild's error in units of float64 epsilon measures how
 * much the inverse amplifies rounding (its conditioning; 1 for a well-conditioned stack). On a
 * float32 runner each error is then divided by a bound: 16 × blocks × that amplification × the
 * larger of the forward pass's own float32 error at the block outputs (the compiled forward against
 * the float64 one on the same inputs) and float32 epsilon × the values' size. The report gives the
 * worst ratio of error to bound (≤ 1 passes) and the amplification.
 *
 * Where reconstruction is ill-conditioned (LayerNorm on tiny or nearly constant inputs amplifies
 * rounding block after block), the float64 run measures it and the float32 bounds widen with it,
 * and the report says so rather than failing a correct model; a wrong schedule still fails in
 * float64.
 *
 * @example
 * const report = await verifyReversible(model, params, { inputs: [{ shape: [1, 128], dtype: 'i32' }], intHigh: 258 });
 * if (!report.passed) console.error(report.counterexample);
 */
import fc from 'fast-check';
import { vjp, type VjpGraph } from '../compiler/grad/grad.ts';
import { reversibleLeaks } from '../compiler/grad/saved.ts';
import { hostTensor, type HostTensor } from '../compiler/ir/host-tensor.ts';
import { mix32 } from '../compiler/ir/random.ts';
import type { NodeId } from '../compiler/ir/types.ts';
import { sizeOf } from '../compiler/ir/types.ts';
import { flattenParams, trace, type InputSpec, type Layer, type Params } from '../dsl/layer.ts';
import { ReferenceRunner, type GraphRunner } from '../runtime/runner.ts';

export interface VerifyReversibleOptions {
  /** The layer's inputs; i32 inputs get integers in [0, intHigh). */
  readonly inputs: readonly InputSpec[];
  readonly intHigh?: number;
  /** Number of random cases (default 20). */
  readonly numRuns?: number;
  /** fast-check seed, for reproducible runs (default: random). */
  readonly seed?: number;
  /** 'train' (default) checks with dropout on, masks replayed from the seed. */
  readonly mode?: 'train' | 'eval';
  /** Where to run the graphs (default the float64 reference evaluator). */
  readonly runner?: GraphRunner;
  /** Safety factor on the float32 bound (default 16). */
  readonly slack?: number;
}

export interface ReversibleCase {
  /** Seeds the random inputs and cotangents. */
  readonly dataSeed: number;
  /** The dropout / hashing seed of the step. */
  readonly stepSeed: number;
  /** Float inputs are uniform in [−scale, scale]. */
  readonly scale: number;
}

export interface ReversibleCounterexample extends ReversibleCase {
  /** Which property failed, and by how much. */
  readonly failure: string;
}

export interface VerifyReversibleResult {
  readonly passed: boolean;
  /** The shrunk failing case, or null. */
  readonly counterexample: ReversibleCounterexample | null;
  /** Worst error / bound over all checks and runs (≤ 1 passes). */
  readonly worstRatio: number;
  /** Where the worst ratio was seen. */
  readonly worst: string;
  /**
   * Largest factor by which reconstruction amplified rounding relative to the forward pass (1 when
   * well conditioned; large for LayerNorm on tiny inputs). Gradient bounds are scaled by it, since
   * gradients computed from rebuilt inputs inherit it; the rebuilt inputs are still held to the
   * forward's own bound.
   */
  readonly amplification: number;
  readonly blocks: number;
  readonly runs: number;
}

/** The two gradient graphs of one traced layer: the scheduled one the trainer runs, and plain backprop. */
export interface ReversibleCheck {
  readonly scheduled: VjpGraph;
  readonly plain: VjpGraph;
  readonly forwardCount: number;
  readonly blocks: number;
  /** Block output node ids (forward values whose float32 error sets the bound). */
  readonly blockOutputs: readonly NodeId[];
  readonly paramFeeds: ReadonlyMap<string, HostTensor>;
  readonly dataInputs: ReadonlyArray<{ readonly name: string; readonly shape: readonly number[]; readonly dtype: 'f32' | 'i32' }>;
}

/** Traces `layer` and differentiates it both ways. Throws when it holds no reversible block. */
export function prepareReversibleCheck(layer: Layer, params: Params, options: VerifyReversibleOptions): ReversibleCheck {
  const t = trace(layer, params, options.inputs, { mode: options.mode ?? 'train' });
  const regions = t.graph.reversibleRegions;
  if (regions.length === 0) throw new Error(`verifyReversible: ${layer.name} holds no Reversible block to verify`);
  const f32Outputs = t.outputs.filter((o) => o.dtype === 'f32');
  const wrt = t.graph.inputNodes().filter((n) => n.dtype === 'f32' && (n.role === 'param' || n.role === 'data'));
  const outs = f32Outputs.map((o) => o.id);
  const ids = wrt.map((n) => n.id);
  return {
    scheduled: vjp(t.graph, outs, ids),
    plain: vjp(t.graph, outs, ids, { memorySchedules: false }),
    forwardCount: t.graph.nodes.length,
    blocks: regions.length,
    blockOutputs: regions.flatMap((r) => [r.y1, r.y2]),
    paramFeeds: new Map(flattenParams(params).map(([p, v]) => [`params.${p}`, v])),
    // Stryker disable next-line ConditionalExpression,StringLiteral: a trace's inputs are input nodes; the fallback only narrows the type
    dataInputs: t.inputs.map((i) => ({ name: i.node.op === 'input' ? i.node.name : '', shape: i.shape, dtype: i.dtype })),
  };
}

function randomTensor(shape: readonly number[], seed: number, stream: number, scale: number): HostTensor {
  const n = sizeOf(shape);
  const data = new Float64Array(n);
  // Stryker disable next-line EqualityOperator: a Float64Array drops the write one past its end
  for (let i = 0; i < n; i++) data[i] = scale * (2 * (mix32(mix32(seed ^ Math.imul(stream + 1, 0x9e3779b9)) ^ i) / 2 ** 32) - 1);
  return hostTensor(shape, data);
}

function randomInts(shape: readonly number[], seed: number, stream: number, high: number): HostTensor {
  const n = sizeOf(shape);
  const data = new Int32Array(n);
  // Stryker disable next-line EqualityOperator: an Int32Array drops the write one past its end
  for (let i = 0; i < n; i++) data[i] = mix32(mix32(seed ^ Math.imul(stream + 1, 0x85ebca6b)) ^ i) % high;
  return { shape: [...shape], dtype: 'i32', data };
}

const maxAbs = (t: HostTensor) => {
  let m = 0;
  for (const v of t.data) m = Math.max(m, Math.abs(v));
  return m;
};
const maxDiff = (a: HostTensor, b: HostTensor) => {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return Number.isNaN(m) ? Infinity : m;
};

const F32_EPS = 2 ** -24;
const F64_EPS = 2 ** -53;
/** A correct rebuild in float64 keeps at least six digits even when badly conditioned; a wrong one keeps none. */
const F64_REBUILD_RTOL = 1e-6;
/** Gradients in float64: at least this relative agreement, more where the rebuild is well conditioned. */
const F64_GRAD_RTOL = 1e-9;

/** Runs the checks of one case; returns the worst ratio and where it was. */
export async function checkReversibleCase(
  check: ReversibleCheck,
  c: ReversibleCase,
  runner: GraphRunner,
  options: VerifyReversibleOptions,
): Promise<{ ratio: number; where: string; amplification: number }> {
  const leaks = reversibleLeaks(check.scheduled.graph, check.forwardCount);
  if (leaks.length > 0) {
    const l = leaks[0]!;
    return { ratio: Infinity, amplification: 1, where: `the backward reads forward value %${l.node.id} (${l.node.scope || l.node.op}) ${l.where === 'input' ? 'at the inputs of' : 'inside'} ${l.block}` };
  }
  const feeds: Record<string, HostTensor> = Object.fromEntries(check.paramFeeds);
  check.dataInputs.forEach((d, k) => {
    feeds[d.name] = d.dtype === 'i32' ? randomInts(d.shape, c.dataSeed, k, options.intHigh ?? 2) : randomTensor(d.shape, c.dataSeed, k, c.scale);
  });
  feeds.seed = hostTensor([], [c.stepSeed], 'i32');
  const { scheduled, plain } = check;
  const outputs = scheduled.outputs.map((id) => scheduled.graph.node(id));
  // Stryker disable next-line ArithmeticOperator: any stream apart from the inputs' (0, 1, …) serves; 100 − k is another such
  scheduled.cotangentInputs.forEach((name, k) => (feeds[name] = randomTensor(outputs[k]!.shape, c.dataSeed, 100 + k, 1)));
  // Stryker disable next-line MethodExpression,ConditionalExpression,EqualityOperator: both graphs come from one forward graph and declare the same inputs, so the filter drops nothing here
  const declared = (g: VjpGraph) => Object.fromEntries(Object.entries(feeds).filter(([n]) => g.graph.inputNodes().some((i) => i.name === n)));

  const rebuilt = [...scheduled.rebuilt];
  const scheduledWanted = [...scheduled.gradients, ...rebuilt.map(([, r]) => r), ...rebuilt.map(([x]) => x)];
  const plainWanted = [...plain.gradients, ...check.blockOutputs];
  const exact = runner instanceof ReferenceRunner;
  const reference = exact ? runner : new ReferenceRunner();
  // Both graphs in float64 (the schedule's exact behaviour), and on the runner under test.
  const rs = await reference.run(scheduled.graph, declared(scheduled), scheduledWanted);
  const rp = await reference.run(plain.graph, declared(plain), plainWanted);
  const s = exact ? rs : await runner.run(scheduled.graph, declared(scheduled), scheduledWanted);
  const p = exact ? rp : await runner.run(plain.graph, declared(plain), plainWanted);

  const nGrads = plain.gradients.length;
  const nRebuilt = rebuilt.length;
  const nBlocks = check.blocks;
  const streamSize = Math.max(...check.blockOutputs.map((_, k) => maxAbs(rp[nGrads + k]!)), 1e-30);
  const fwdError = exact ? 0 : Math.max(...check.blockOutputs.map((_, k) => maxDiff(p[nGrads + k]!, rp[nGrads + k]!)));
  const slack = options.slack ?? 16;

  let worst = { ratio: 0, where: 'nothing checked', amplification: 1 };
  const note = (ratio: number, where: string) => {
    if (!(ratio <= worst.ratio)) worst = { ...worst, ratio: Number.isNaN(ratio) ? Infinity : ratio, where };
  };

  // 1. The schedule in float64. Its rebuild differs from the forward only by rounding, amplified by
  // the inverse's conditioning; a wrong schedule (fresh randomness, a wrong sign, a value read from
  // elsewhere) is off by the values' own size. Six correct digits separate the two.
  let amplification = 1;
  rebuilt.forEach(([x], k) => {
    const fwd = rs[nGrads + nRebuilt + k]!;
    const err = maxDiff(rs[nGrads + k]!, fwd);
    note(err / (F64_REBUILD_RTOL * Math.max(maxAbs(fwd), 1e-30)), `rebuilt input %${x} of a block in float64: error ${err.toExponential(2)} on values of size ${maxAbs(fwd).toExponential(2)}`);
    // How many times float64 epsilon (relative to the streams) the rebuild lost: the conditioning.
    amplification = Math.max(amplification, err / (F64_EPS * streamSize));
  });
  const names = [...check.paramFeeds.keys(), ...check.dataInputs.filter((d) => d.dtype === 'f32').map((d) => d.name)];
  for (let k = 0; k < nGrads; k++) {
    const size = Math.max(maxAbs(rp[k]!), 1e-30);
    const err = maxDiff(rs[k]!, rp[k]!);
    const bound = size * Math.max(F64_GRAD_RTOL, slack * nBlocks * amplification * F64_EPS);
    note(err / bound, `gradient of ${names[k] ?? `#${k}`} in float64: scheduled vs plain ${err.toExponential(2)}, bound ${bound.toExponential(2)}`);
  }
  worst = { ...worst, amplification };
  if (exact) return worst;

  // 2. On the float32 runner: the forward's own float32 error at the block outputs, times the
  // conditioning measured above, times the number of blocks the error travels through.
  const ill = amplification * F32_EPS > 0.01 ? ` (reconstruction ill-conditioned here: ×${amplification.toExponential(1)} rounding amplification)` : '';
  const recBound = slack * nBlocks * amplification * Math.max(fwdError, F32_EPS * streamSize);
  rebuilt.forEach(([x], k) => {
    const err = maxDiff(s[nGrads + k]!, s[nGrads + nRebuilt + k]!);
    note(err / recBound, `rebuilt input %${x} of a block: error ${err.toExponential(2)}, bound ${recBound.toExponential(2)}${ill}`);
  });
  for (let k = 0; k < nGrads; k++) {
    const bound = slack * nBlocks * amplification * Math.max(maxDiff(p[k]!, rp[k]!), F32_EPS * maxAbs(rp[k]!));
    const err = maxDiff(s[k]!, p[k]!);
    note(err / bound, `gradient of ${names[k] ?? `#${k}`}: scheduled vs plain ${err.toExponential(2)}, bound ${bound.toExponential(2)}${ill}`);
  }
  return worst;
}

/** Runs the reversibility properties on `layer` with `params`; never throws for a failing property. */
export async function verifyReversible(layer: Layer, params: Params, options: VerifyReversibleOptions, check = prepareReversibleCheck(layer, params, options)): Promise<VerifyReversibleResult> {
  const runner = options.runner ?? new ReferenceRunner();
  let worst = { ratio: 0, where: 'nothing checked' };
  let amplification = 1;
  const run = async (c: ReversibleCase) => {
    const r = await checkReversibleCase(check, c, runner, options);
    if (!(r.ratio <= worst.ratio)) worst = r;
    amplification = Math.max(amplification, r.amplification);
    return r;
  };
  const arbCase = fc.record({
    // Stryker disable next-line ObjectLiteral: any integer seeds the data streams (mix32 takes all 32 bits)
    dataSeed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    // Seeds are i32 inputs; float32 kernels carry integers exactly only up to 2^24.
    stepSeed: fc.integer({ min: 0, max: 2 ** 24 }),
    scale: fc.double({ min: 1e-3, max: 4, noNaN: true }),
  });
  const details = await fc.check(
    fc.asyncProperty(arbCase, async (c) => (await run(c)).ratio <= 1),
    { numRuns: options.numRuns ?? 20, ...(options.seed === undefined ? {} : { seed: options.seed }) },
  );
  let counterexample: ReversibleCounterexample | null = null;
  // Stryker disable next-line LogicalOperator: fast-check gives a counterexample exactly when the property failed
  if (details.failed && details.counterexample) {
    const c = details.counterexample[0];
    const r = await checkReversibleCase(check, c, runner, options);
    counterexample = { ...c, failure: `${r.where} (ratio ${r.ratio.toExponential(2)})` };
  }
  return { passed: !details.failed, counterexample, worstRatio: worst.ratio, worst: worst.where, amplification, blocks: check.blocks, runs: details.numRuns };
}
