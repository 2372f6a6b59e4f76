/**
 * Incremental decoding: one compiled step graph (`step-model.ts`) run once per position, with each
 * attention layer's keys, values (and LSH buckets) kept on the host between steps. A step costs
 * O(L) attention per layer instead of a whole-window forward pass.
 */
import { Graph } from '../../compiler/ir/graph.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { applyLayer, paramInputs, traceContext, type Params } from '../../dsl/layer.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import type { ModelConfig } from '../config.ts';
import { buildModel } from '../model.ts';
import { StepCollector, type CacheSlot } from './cache-slots.ts';
import { CachedSteps } from './cached-steps.ts';
import { cachedPerModel } from './graph-cache.ts';
import { stepModel } from './step-model.ts';

/** The decode step graph of a model: token and position in, logits and new cache rows out. */
export interface StepGraph {
  readonly graph: Graph;
  readonly slots: readonly CacheSlot[];
}

const stepGraphs = new WeakMap<Params, Map<string, StepGraph>>();

/** The step graph of `buildModel(cfg)` with parameters shaped like `paramTree`, built once per pair. */
export function buildStepGraph(cfg: ModelConfig, paramTree: Params): StepGraph {
  return cachedPerModel(stepGraphs, paramTree, cfg, () => traceStepGraph(cfg, paramTree));
}

function traceStepGraph(cfg: ModelConfig, paramTree: Params): StepGraph {
  const graph = new Graph();
  const params = paramInputs(graph, paramTree);
  const token = graph.input('token', [1, 1], 'i32');
  const collector = new StepCollector(graph, cfg.seqLen);
  const [logits] = applyLayer(stepModel(buildModel(cfg), cfg, collector), params, [token], traceContext(graph, 'eval'));
  graph.outputs = [logits!.id, ...collector.slots.map((s) => s.row.id)];
  return { graph, slots: collector.slots };
}

/**
 * Decodes one position at a time within a window of the model's length L. `step(token)` runs the
 * next position (fed the token before it, or the padding id at position 0) and returns its logits.
 */
export class IncrementalDecoder {
  private readonly steps: CachedSteps;

  constructor(
    runner: GraphRunner,
    cfg: ModelConfig,
    params: ReadonlyMap<string, HostTensor>,
    paramTree: Params,
    /** The seed the whole-window path feeds (LSH rotations are drawn from it). */
    seed = 0,
  ) {
    const { graph, slots } = buildStepGraph(cfg, paramTree);
    const fixed: Record<string, HostTensor> = {};
    for (const node of graph.inputNodes()) {
      if (node.role !== 'param') continue;
      const value = params.get(node.name.slice('params.'.length));
      if (value === undefined) throw new Error(`decode: no value for parameter '${node.name}'`);
      fixed[node.name] = value;
    }
    if (graph.inputNodes().some((n) => n.name === 'seed')) fixed.seed = { shape: [], dtype: 'i32', data: Int32Array.of(seed) };
    this.steps = new CachedSteps(runner, graph, slots, cfg.seqLen, fixed);
  }

  /** The position the next `step` decodes. */
  get position(): number {
    return this.steps.position;
  }

  get graph(): Graph {
    return this.steps.graph;
  }

  /** Starts a new window at position 0. */
  reset(): void {
    this.steps.reset();
  }

  async step(token: number): Promise<Float64Array | Float32Array> {
    const logits = await this.steps.run({ token: { shape: [1, 1], dtype: 'i32', data: Int32Array.of(token) } });
    return logits.data instanceof Int32Array ? Float64Array.from(logits.data) : logits.data;
  }
}
