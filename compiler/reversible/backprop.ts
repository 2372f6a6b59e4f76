/**
 * Ordinary backprop of a layer traced normally: one graph holding the forward pass and its VJP, so
 * every forward intermediate the backward reads stays alive. It is the baseline the reversible and
 * chunked schedules are checked against (values) and compared with (memory).
 */
import { Graph } from '../ir/graph.ts';
import { hostTensor, type HostTensor } from '../ir/host-tensor.ts';
import type { NodeId } from '../ir/types.ts';
import { vjp } from '../grad/grad.ts';
import { applyLayer, flattenParams, paramInputs, traceContext, type Layer, type Params, type TensorSpec } from '../../dsl/layer.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import { backpropMemory, type MemoryReport } from '../../runtime/memory-accounting.ts';

export interface BackpropOptions {
  readonly mode?: 'train' | 'eval';
  /** The layer's path inside a larger model, so dropout salts match a trace of that model. */
  readonly scope?: string;
}

export interface BackpropResult {
  readonly outputs: HostTensor[];
  /** Gradient with respect to each layer input. */
  readonly inputGrads: HostTensor[];
  /** Gradients by parameter path (as `flattenParams(params)` names them). */
  readonly gradsByParamPath: ReadonlyMap<string, HostTensor>;
}

export interface OrdinaryBackprop {
  /** Forward and VJP in one graph; inputs `x0..`, `params.*`, `seed`, `cotangent:<i>`. */
  readonly graph: Graph;
  /** Nodes below this id are the forward pass. */
  readonly forwardCount: number;
  run(runner: GraphRunner, inputs: readonly HostTensor[], cotangents: readonly HostTensor[], seed?: number): Promise<BackpropResult>;
  memory(): MemoryReport;
}

/** Traces `layer` on inputs of the given specs (one spec is used for every input) and differentiates it. */
export function ordinaryBackprop(layer: Layer, params: Params, specs: TensorSpec | readonly TensorSpec[], options: BackpropOptions = {}): OrdinaryBackprop {
  const list: readonly TensorSpec[] = Array.isArray(specs) ? specs : Array.from({ length: layer.nIn }, () => specs as TensorSpec);
  const graph = new Graph();
  const xs = list.map((s, i) => graph.input(`x${i}`, s.shape, s.dtype));
  const sym = paramInputs(graph, params);
  const ctx = traceContext(graph, options.mode ?? 'train', 'compute');
  const run = () => applyLayer(layer, sym, xs, ctx);
  const outs = options.scope ? graph.withScope(options.scope, run) : run();
  graph.outputs = outs.map((t) => t.id);
  const forwardCount = graph.nodes.length;
  const paramNodes = graph.inputNodes().filter((n) => n.role === 'param');
  const v = vjp(graph, graph.outputs, [...xs.map((x) => x.id), ...paramNodes.map((p) => p.id)]);
  const paramGradIds: NodeId[] = v.gradients.slice(xs.length);
  const paramFeeds = Object.fromEntries(flattenParams(params).map(([p, t]) => [`params.${p}`, t]));
  return {
    graph: v.graph,
    forwardCount,
    async run(runner, inputs, cotangents, seed = 0) {
      const feeds: Record<string, HostTensor> = { ...paramFeeds };
      inputs.forEach((t, i) => (feeds[`x${i}`] = t));
      v.cotangentInputs.forEach((name, i) => (feeds[name] = cotangents[i]!));
      if (v.graph.inputNodes().some((n) => n.name === 'seed')) feeds.seed = hostTensor([], [seed], 'i32');
      const values = await runner.run(v.graph, feeds, [...v.outputs, ...v.gradients]);
      const outputs = values.slice(0, v.outputs.length);
      const grads = values.slice(v.outputs.length);
      const byPath = new Map<string, HostTensor>();
      paramNodes.forEach((p, k) => byPath.set(p.name.slice('params.'.length), grads[xs.length + k]!));
      return { outputs, inputGrads: grads.slice(0, xs.length), gradsByParamPath: byPath };
    },
    memory: () => backpropMemory(v.graph, forwardCount, [...v.outputs, ...v.gradients], paramGradIds),
  };
}
