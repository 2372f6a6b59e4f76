/**
 * The chunking pass: turns `Chunked(layer, { axis, size })` into schedules that run the layer one
 * chunk at a time, forward and backward (a VJP per chunk, recomputing that chunk's forward and
 * accumulating parameter gradients), so that only one chunk's intermediates are alive at a time.
 *
 * @example
 * const c = compileChunked(Chunked(ff, { axis: 0, size: 64 }), params, { shape: [L, d] });
 * const y = await c.forward(runner, x);
 * const { dx, gradsByParamPath } = await c.backward(runner, x, dy);
 */
import { Graph } from '../ir/graph.ts';
import type { NodeId, Shape } from '../ir/types.ts';
import { vjp } from '../grad/grad.ts';
import { hostTensor, type HostTensor } from '../ir/host-tensor.ts';
import * as ops from '../../dsl/ops.ts';
import { flattenParams, paramInputs, traceContext, type InputSpec, type Params, type TensorSpec } from '../../dsl/layer.ts';
import { applyChunk, isChunked, resolveChunking, type ChunkedLayer } from '../../dsl/chunked.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import { runSchedule, validateSchedule, type Schedule, type ScheduleStep } from '../../runtime/schedule/schedule.ts';
import { concatSchedules, scheduleMemory, type MemoryReport } from '../../runtime/memory-accounting.ts';
import { ordinaryBackprop } from '../reversible/backprop.ts';

export interface ChunkedOptions {
  readonly mode?: 'train' | 'eval';
  /** The layer's path inside a larger model, so dropout salts match a trace of that model. */
  readonly scope?: string;
}

export interface CompiledChunked {
  readonly chunks: number;
  readonly forwardSchedule: Schedule;
  readonly backwardSchedule: Schedule;
  forward(runner: GraphRunner, x: HostTensor, seed?: number): Promise<HostTensor>;
  backward(runner: GraphRunner, x: HostTensor, dy: HostTensor, seed?: number): Promise<{ dx: HostTensor; gradsByParamPath: ReadonlyMap<string, HostTensor> }>;
  /** Memory of the chunked forward + backward, and of ordinary backprop of the unchunked layer. */
  memory(): { chunked: MemoryReport; unchunked: MemoryReport };
}

/** Binds parameter and seed inputs by their own names and the rest through `data`. */
function bind(label: string, graph: Graph, data: Readonly<Record<string, string>>, writes: Record<string, NodeId>): ScheduleStep {
  const reads: Record<string, string> = {};
  for (const n of graph.inputNodes()) {
    if (n.role === 'param' || n.role === 'seed') reads[n.name] = n.name;
    else if (n.name in data) reads[n.name] = data[n.name]!;
    else throw new Error(`${label}: graph input '${n.name}' has no buffer`);
  }
  graph.outputs = Object.values(writes);
  return { label, graph, reads, writes };
}

function scoped<T>(graph: Graph, scope: string | undefined, fn: () => T): T {
  return scope ? graph.withScope(scope, fn) : fn();
}

export function compileChunked(layer: ChunkedLayer, params: Params, inputSpec: InputSpec | TensorSpec, options: ChunkedOptions = {}): CompiledChunked {
  if (!isChunked(layer)) throw new Error(`compileChunked: ${(layer as { name: string }).name} is not a Chunked layer`);
  const spec: TensorSpec = { shape: inputSpec.shape, dtype: inputSpec.dtype ?? 'f32' };
  const { axis, count } = resolveChunking(options.scope ? `${options.scope}.Chunked` : 'Chunked', spec.shape, layer.axis, layer.size);
  const mode = options.mode ?? 'train';
  const size = layer.size;
  const paramFeeds = new Map<string, HostTensor>(flattenParams(params).map(([p, t]) => [`params.${p}`, t]));
  const paramNames = [...paramFeeds.keys()];
  const chunkShape: Shape = spec.shape.map((d, i) => (i === axis ? size : d));

  /** A graph computing chunk `k` of the layer from the whole input `x`. */
  const chunkGraph = (k: number) => {
    const graph = new Graph();
    const x = graph.input('x', spec.shape, spec.dtype);
    const sym = paramInputs(graph, params);
    const ctx = traceContext(graph, mode, 'compute');
    // The chunk's slice of x is the node the VJP differentiates with respect to.
    const part = scoped(graph, options.scope, () => ops.sliceAxis(x, axis, k * size, size));
    const y = scoped(graph, options.scope, () => applyChunk(layer.inner, sym, part, axis, k, ctx));
    return { graph, y, part: part.id };
  };

  const concatStep = (label: string, prefix: string, out: string): ScheduleStep => {
    const graph = new Graph();
    const parts = Array.from({ length: count }, (_, k) => graph.input(`${prefix}.${k}`, chunkShape, spec.dtype));
    const data = Object.fromEntries(parts.map((_, k) => [`${prefix}.${k}`, `${prefix}.${k}`]));
    return bind(label, graph, data, { [out]: ops.concat(parts, axis).id });
  };

  const fwdSteps: ScheduleStep[] = [];
  for (let k = 0; k < count; k++) {
    const { graph, y } = chunkGraph(k);
    fwdSteps.push(bind(`chunk ${k} forward`, graph, { x: 'x' }, { [`y.${k}`]: y.id }));
  }
  fwdSteps.push(concatStep('concat outputs', 'y', 'y'));
  const forwardSchedule: Schedule = { name: 'chunked forward', steps: fwdSteps, inputs: ['x', 'seed', ...paramNames], outputs: ['y'] };

  const bwdSteps: ScheduleStep[] = [];
  {
    const graph = new Graph();
    const dy = graph.input('dy', spec.shape, spec.dtype);
    const writes: Record<string, NodeId> = {};
    for (let k = 0; k < count; k++) writes[`dy.${k}`] = ops.sliceAxis(dy, axis, k * size, size).id;
    bwdSteps.push(bind('split cotangent', graph, { dy: 'dy' }, writes));
  }
  const gradNames: string[] = [];
  for (let k = 0; k < count; k++) {
    const { graph: source, y, part } = chunkGraph(k);
    source.outputs = [y.id];
    const paramNodes = source.inputNodes().filter((n) => n.role === 'param');
    const v = vjp(source, [y.id], [part, ...paramNodes.map((p) => p.id)]);
    const graph = v.graph;
    const data: Record<string, string> = { x: 'x', 'cotangent:0': `dy.${k}` };
    const writes: Record<string, NodeId> = { [`dx.${k}`]: v.gradients[0]! };
    paramNodes.forEach((p, j) => {
      const path = p.name.slice('params.'.length);
      const buf = `grad.${path}`;
      let g = graph.tensor(v.gradients[j + 1]!);
      if (k > 0) {
        const acc = graph.input(`acc.${path}`, p.shape, p.dtype);
        data[`acc.${path}`] = buf;
        g = ops.add(acc, g);
      } else gradNames.push(buf);
      writes[buf] = g.id;
    });
    bwdSteps.push(bind(`chunk ${k} vjp`, graph, data, writes));
  }
  bwdSteps.push(concatStep('concat input gradients', 'dx', 'dx'));
  const backwardSchedule: Schedule = {
    name: 'chunked backward',
    steps: bwdSteps,
    inputs: ['x', 'dy', 'seed', ...paramNames],
    outputs: ['dx', ...gradNames],
  };
  validateSchedule(forwardSchedule);
  validateSchedule(backwardSchedule);

  const feeds = (entries: Array<[string, HostTensor]>, seed: number) =>
    new Map<string, HostTensor>([...paramFeeds, ['seed', hostTensor([], [seed], 'i32')], ...entries]);

  return {
    chunks: count,
    forwardSchedule,
    backwardSchedule,
    async forward(runner, x, seed = 0) {
      return (await runSchedule(forwardSchedule, runner, feeds([['x', x]], seed))).get('y')!;
    },
    async backward(runner, x, dy, seed = 0) {
      const out = await runSchedule(backwardSchedule, runner, feeds([['x', x], ['dy', dy]], seed));
      const grads = new Map(gradNames.map((g) => [g.slice('grad.'.length), out.get(g)!] as const));
      return { dx: out.get('dx')!, gradsByParamPath: grads };
    },
    memory() {
      const shapes = new Map<string, Shape>([...paramFeeds].map(([k, t]) => [k, t.shape]));
      shapes.set('x', spec.shape);
      shapes.set('dy', spec.shape);
      shapes.set('seed', []);
      const whole = concatSchedules('chunked forward+backward', forwardSchedule, backwardSchedule);
      const chunked = scheduleMemory(whole, shapes, forwardSchedule.steps.length, forwardSchedule.inputs);
      const unchunked = ordinaryBackprop(layer.inner, params, spec, { mode, scope: options.scope }).memory();
      return { chunked, unchunked };
    },
  };
}
