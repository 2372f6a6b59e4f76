/**
 * The language-model objective as graphs: a training graph (weighted cross-entropy and its
 * gradients with respect to every parameter) and an evaluation graph (loss and accuracy).
 * Targets are the input tokens themselves: the model shifts right internally.
 */
import { grad } from '../../compiler/grad/grad.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import type { NodeId } from '../../compiler/ir/types.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import * as ops from '../../dsl/ops.ts';
import { applyLayer, paramInputs, traceContext, type Layer, type Params } from '../../dsl/layer.ts';
import { CrossEntropyLoss } from '../../dsl/layers/lm.ts';
import type { GraphRunner } from '../../runtime/runner.ts';

export interface Batch {
  /** Token ids [B, L]. */
  readonly tokens: HostTensor;
  /** Loss weights [B, L] (1 where the prediction counts). */
  readonly weights: HostTensor;
}

export interface ObjectiveGraph {
  readonly graph: Graph;
  readonly paramNames: readonly string[];
  /** Nodes below this id are the forward pass (the rest differentiates it). */
  readonly forwardCount: number;
}

function traceObjective(model: Layer, params: Params, batchSize: number, seqLen: number, mode: 'train' | 'eval') {
  const graph = new Graph();
  const sym = paramInputs(graph, params);
  const tokens = graph.input('tokens', [batchSize, seqLen], 'i32');
  const weights = graph.input('weights', [batchSize, seqLen], 'f32');
  const ctx = traceContext(graph, mode);
  const [logits] = applyLayer(model, sym, [tokens], ctx);
  const [loss] = applyLayer(CrossEntropyLoss({ weighted: true }), {}, [logits!, tokens, weights], ctx);
  const paramNames = graph.inputNodes().filter((n) => n.role === 'param').map((n) => n.name);
  return { graph, logits: logits!, loss: loss!, tokens, weights, paramNames };
}

/** Outputs: [loss, ...gradients in paramNames order]. */
export type TrainObjective = ObjectiveGraph;

export interface TrainObjectiveOptions {
  /**
   * Differentiate reversible stacks with the memory-free reversible backward and chunked layers
   * chunk by chunk (default true); false gives plain backprop of the same graph, for comparison.
   */
  readonly memorySchedules?: boolean;
}

export function trainObjective(model: Layer, params: Params, batchSize: number, seqLen: number, options: TrainObjectiveOptions = {}): TrainObjective {
  const t = traceObjective(model, params, batchSize, seqLen, 'train');
  const wrt: NodeId[] = t.paramNames.map((n) => t.graph.inputByName(n).id);
  const g = grad(t.graph, t.loss.id, wrt, { memorySchedules: options.memorySchedules ?? true });
  return { graph: g.graph, paramNames: t.paramNames, forwardCount: t.graph.nodes.length };
}

/** Outputs: [loss, correct-weighted count, weight sum]. */
export type EvalObjective = ObjectiveGraph;

export function evalObjective(model: Layer, params: Params, batchSize: number, seqLen: number): EvalObjective {
  const t = traceObjective(model, params, batchSize, seqLen, 'eval');
  const predicted = ops.argmax(t.logits, -1);
  const correct = ops.sumAll(ops.mul(ops.toFloat(ops.eq(predicted, t.tokens)), t.weights));
  t.graph.outputs = [t.loss.id, correct.id, ops.sumAll(t.weights).id];
  return { graph: t.graph, paramNames: t.paramNames, forwardCount: t.graph.nodes.length };
}

/** The logits graph used for sampling: tokens [B, L] -> logits [B, L, V]. */
export function logitsGraph(model: Layer, params: Params, batchSize: number, seqLen: number): ObjectiveGraph {
  const graph = new Graph();
  const sym = paramInputs(graph, params);
  const tokens = graph.input('tokens', [batchSize, seqLen], 'i32');
  const [logits] = applyLayer(model, sym, [tokens], traceContext(graph, 'eval'));
  graph.outputs = [logits!.id];
  return { graph, paramNames: graph.inputNodes().filter((n) => n.role === 'param').map((n) => n.name), forwardCount: graph.nodes.length };
}

/** Feeds for the inputs `graph` declares: parameters (`params.<path>`), batch and seed. */
export function objectiveFeeds(
  graph: Graph,
  params: ReadonlyMap<string, HostTensor>,
  batch: Batch | { readonly tokens: HostTensor },
  seed: number,
): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const node of graph.inputNodes()) {
    if (node.role === 'param') {
      const t = params.get(node.name.slice('params.'.length));
      if (t === undefined) throw new Error(`no value for parameter '${node.name}'`);
      feeds[node.name] = t;
    } else if (node.name === 'tokens') feeds.tokens = batch.tokens;
    else if (node.name === 'weights' && 'weights' in batch) feeds.weights = batch.weights;
    else if (node.name === 'seed') feeds.seed = { shape: [], dtype: 'i32', data: Int32Array.of(seed) };
  }
  return feeds;
}

export async function runTrainStep(
  runner: GraphRunner,
  objective: TrainObjective,
  params: ReadonlyMap<string, HostTensor>,
  batch: Batch,
  seed: number,
): Promise<{ loss: number; grads: Map<string, HostTensor> }> {
  const feeds = objectiveFeeds(objective.graph, params, batch, seed);
  const [loss, ...grads] = await runner.run(objective.graph, feeds);
  const byPath = new Map<string, HostTensor>();
  objective.paramNames.forEach((name, i) => byPath.set(name.slice('params.'.length), grads[i]!));
  return { loss: loss!.data[0]!, grads: byPath };
}

export async function runEvalStep(
  runner: GraphRunner,
  objective: EvalObjective,
  params: ReadonlyMap<string, HostTensor>,
  batch: Batch,
): Promise<{ loss: number; correct: number; weight: number }> {
  const feeds = objectiveFeeds(objective.graph, params, batch, 0);
  const [loss, correct, weight] = await runner.run(objective.graph, feeds);
  return { loss: loss!.data[0]!, correct: correct!.data[0]!, weight: weight!.data[0]! };
}
