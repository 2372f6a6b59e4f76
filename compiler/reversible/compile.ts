/**
 * The reversible-stack pass: turns `ReversibleStack(blocks)` into three schedules (forward,
 * inverse, memory-free backward) over named buffers, run by any `GraphRunner`.
 *
 * Between forward and backward only the final `(Y1, Y2)`, the per-layer states and the seed are
 * kept; the backward reconstructs each block's inputs from its outputs while it differentiates.
 *
 * @example
 * const c = compileReversibleStack(stack, params, { shape: [L, d] }, { mode: 'train' });
 * const { outputs, saved } = await c.forward(runner, { x1, x2, seed: 7 });
 * const { gradsByParamPath, dX1, dX2 } = await c.backward(runner, saved, [dY1, dY2]);
 * console.log(printSchedule(c.backwardSchedule));
 */
import { hostTensor, type HostTensor } from '../ir/host-tensor.ts';
import type { Shape } from '../ir/types.ts';
import { childParams, flattenParams, type InputSpec, type Params, type TensorSpec } from '../../dsl/layer.ts';
import { isReversibleStack, type ReversibleStackLayer } from '../../dsl/reversible.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import { runSchedule, validateSchedule, type Schedule, type ScheduleStep } from '../../runtime/schedule/schedule.ts';
import { concatSchedules, scheduleMemory, type MemoryReport } from '../../runtime/memory-accounting.ts';
import { buildBackwardF, buildBackwardG, buildForward, buildInverse, type BlockContext, type BuiltGraph, type TraceMode } from './build.ts';
import { ordinaryBackprop } from './backprop.ts';

export interface ReversibleOptions {
  /** 'train' (default) applies dropout; masks are replayed from the seed in the backward pass. */
  readonly mode?: TraceMode;
  /** The stack's layer path inside a larger model (e.g. `Serial[4]`), so salts and state names match. */
  readonly scope?: string;
}

/** What the forward pass leaves for the backward pass: nothing else is kept. */
export interface SavedForReversible {
  readonly y1: HostTensor;
  readonly y2: HostTensor;
  /** Per-layer states recorded in the forward pass, by `state:<path>`. */
  readonly states: ReadonlyMap<string, HostTensor>;
  readonly seed: number;
}

export interface ReversibleBackwardResult {
  /** Gradients by stack parameter path (as `flattenParams(params)` names them, e.g. `3.1.0.w`). */
  readonly gradsByParamPath: ReadonlyMap<string, HostTensor>;
  readonly dX1: HostTensor;
  readonly dX2: HostTensor;
  /** The reconstructed stack inputs. */
  readonly x1: HostTensor;
  readonly x2: HostTensor;
}

export interface CompiledReversibleStack {
  readonly depth: number;
  readonly forwardSchedule: Schedule;
  readonly inverseSchedule: Schedule;
  readonly backwardSchedule: Schedule;
  forward(runner: GraphRunner, feeds: { x1: HostTensor; x2: HostTensor; seed?: number }): Promise<{ outputs: [HostTensor, HostTensor]; saved: SavedForReversible }>;
  /** Inputs recomputed from outputs, block by block in reverse. */
  reverse(runner: GraphRunner, saved: SavedForReversible): Promise<[HostTensor, HostTensor]>;
  backward(runner: GraphRunner, saved: SavedForReversible, cotangents: readonly [HostTensor, HostTensor]): Promise<ReversibleBackwardResult>;
  /** Memory of forward + reconstructing backward, and of ordinary backprop of the same network. */
  memory(): { reversible: MemoryReport; backprop: MemoryReport };
}

const seedTensor = (seed: number): HostTensor => hostTensor([], [seed], 'i32');
const x1Buf = (i: number) => `x1.${i}`;
const x2Buf = (i: number) => `x2.${i}`;
const dx1Buf = (i: number) => `dx1.${i}`;
const dx2Buf = (i: number) => `dx2.${i}`;

/** Binds every graph input: parameters, seed and states by their own names, the rest by `data`. */
function step(label: string, built: BuiltGraph, data: Readonly<Record<string, string>>, writes: Readonly<Record<string, string>>): ScheduleStep {
  const reads: Record<string, string> = {};
  for (const n of built.graph.inputNodes()) {
    if (n.role === 'param' || n.role === 'seed' || n.role === 'state') reads[n.name] = n.name;
    else if (n.name in data) reads[n.name] = data[n.name]!;
    else throw new Error(`${label}: graph input '${n.name}' has no buffer`);
  }
  const w: Record<string, number> = {};
  for (const [role, id] of built.values) {
    if (role.startsWith('grad:')) w[`grad.${role.slice(5)}`] = id;
    else if (role.startsWith('state:')) w[role] = id;
    else if (role in writes) w[writes[role]!] = id;
  }
  return { label, graph: built.graph, reads, writes: w };
}

function normaliseSpec(spec: InputSpec | TensorSpec | readonly (InputSpec | TensorSpec)[]): TensorSpec {
  const list = Array.isArray(spec) ? (spec as readonly InputSpec[]) : [spec as InputSpec];
  const first = list[0];
  if (first === undefined) throw new Error('compileReversibleStack: needs the shape of the streams');
  return { shape: first.shape, dtype: first.dtype ?? 'f32' };
}

/**
 * Compiles a reversible stack for parameters `params` and streams of shape `inputSpecs` (one spec,
 * or `[X1, X2]` specs, which must agree).
 */
export function compileReversibleStack(
  stack: ReversibleStackLayer,
  params: Params,
  inputSpecs: InputSpec | TensorSpec | readonly (InputSpec | TensorSpec)[],
  options: ReversibleOptions = {},
): CompiledReversibleStack {
  if (!isReversibleStack(stack)) throw new Error(`compileReversibleStack: ${(stack as { name: string }).name} is not a ReversibleStack`);
  const spec = normaliseSpec(inputSpecs);
  const mode = options.mode ?? 'train';
  const prefix = options.scope ?? '';
  const n = stack.blocks.length;
  const blocks: BlockContext[] = stack.blocks.map((block, index) => ({
    index,
    block,
    params: childParams(params, index, 'ReversibleStack'),
    spec,
    mode,
    prefix,
  }));
  const paramFeeds = new Map<string, HostTensor>(flattenParams(params).map(([p, t]) => [`params.${p}`, t]));
  const paramNames = [...paramFeeds.keys()];

  const fwdSteps = blocks.map((b, i) => step(`block ${i} forward`, buildForward(b), { x1: x1Buf(i), x2: x2Buf(i) }, { y1: x1Buf(i + 1), y2: x2Buf(i + 1) }));
  const stateNames = fwdSteps.flatMap((s) => Object.keys(s.writes).filter((w) => w.startsWith('state:')));
  const forwardSchedule: Schedule = {
    name: 'reversible forward',
    steps: fwdSteps,
    inputs: [x1Buf(0), x2Buf(0), 'seed', ...paramNames],
    outputs: [x1Buf(n), x2Buf(n), ...stateNames],
  };

  const inverseSchedule: Schedule = {
    name: 'reversible inverse',
    steps: [...blocks].reverse().map((b) =>
      step(`block ${b.index} inverse`, buildInverse(b), { y1: x1Buf(b.index + 1), y2: x2Buf(b.index + 1) }, { x1: x1Buf(b.index), x2: x2Buf(b.index) }),
    ),
    inputs: [x1Buf(n), x2Buf(n), 'seed', ...paramNames, ...stateNames],
    outputs: [x1Buf(0), x2Buf(0)],
  };

  const bwdSteps: ScheduleStep[] = [];
  for (const b of [...blocks].reverse()) {
    const i = b.index;
    bwdSteps.push(
      step(`block ${i} G vjp`, buildBackwardG(b), { x: x1Buf(i + 1), 'cotangent:0': dx2Buf(i + 1), dy1: dx1Buf(i + 1), y2: x2Buf(i + 1) }, { x2: x2Buf(i), dy1p: dx1Buf(i) }),
      step(`block ${i} F vjp`, buildBackwardF(b), { x: x2Buf(i), 'cotangent:0': dx1Buf(i), y1: x1Buf(i + 1), dy2: dx2Buf(i + 1) }, { x1: x1Buf(i), dx2: dx2Buf(i) }),
    );
  }
  const gradNames = bwdSteps.flatMap((s) => Object.keys(s.writes).filter((w) => w.startsWith('grad.')));
  const backwardSchedule: Schedule = {
    name: 'reversible backward',
    steps: bwdSteps,
    inputs: [x1Buf(n), x2Buf(n), dx1Buf(n), dx2Buf(n), 'seed', ...paramNames, ...stateNames],
    outputs: [x1Buf(0), x2Buf(0), dx1Buf(0), dx2Buf(0), ...gradNames],
  };
  for (const s of [forwardSchedule, inverseSchedule, backwardSchedule]) validateSchedule(s);

  const withParams = (extra: Iterable<[string, HostTensor]>) => new Map<string, HostTensor>([...paramFeeds, ...extra]);
  const savedFeeds = (saved: SavedForReversible): Array<[string, HostTensor]> => [
    [x1Buf(n), saved.y1],
    [x2Buf(n), saved.y2],
    ['seed', seedTensor(saved.seed)],
    ...saved.states,
  ];

  return {
    depth: n,
    forwardSchedule,
    inverseSchedule,
    backwardSchedule,
    async forward(runner, feeds) {
      const seed = feeds.seed ?? 0;
      const out = await runSchedule(forwardSchedule, runner, withParams([[x1Buf(0), feeds.x1], [x2Buf(0), feeds.x2], ['seed', seedTensor(seed)]]));
      const y1 = out.get(x1Buf(n))!;
      const y2 = out.get(x2Buf(n))!;
      const states = new Map(stateNames.map((s) => [s, out.get(s)!] as const));
      return { outputs: [y1, y2], saved: { y1, y2, states, seed } };
    },
    async reverse(runner, saved) {
      const out = await runSchedule(inverseSchedule, runner, withParams(savedFeeds(saved)));
      return [out.get(x1Buf(0))!, out.get(x2Buf(0))!];
    },
    async backward(runner, saved, [dY1, dY2]) {
      const out = await runSchedule(backwardSchedule, runner, withParams([...savedFeeds(saved), [dx1Buf(n), dY1], [dx2Buf(n), dY2]]));
      const grads = new Map<string, HostTensor>();
      for (const g of gradNames) grads.set(g.slice('grad.'.length), out.get(g)!);
      return { gradsByParamPath: grads, dX1: out.get(dx1Buf(0))!, dX2: out.get(dx2Buf(0))!, x1: out.get(x1Buf(0))!, x2: out.get(x2Buf(0))! };
    },
    memory() {
      const shapes = new Map<string, Shape>([...paramFeeds].map(([k, t]) => [k, t.shape]));
      for (const b of [x1Buf(0), x2Buf(0), dx1Buf(n), dx2Buf(n)]) shapes.set(b, spec.shape);
      shapes.set('seed', []);
      const whole = concatSchedules('reversible forward+backward', forwardSchedule, backwardSchedule);
      const reversible = scheduleMemory(whole, shapes, forwardSchedule.steps.length, forwardSchedule.inputs);
      const backprop = ordinaryBackprop(stack, params, spec, options).memory();
      return { reversible, backprop };
    },
  };
}
