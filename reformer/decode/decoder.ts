/**
 * Incremental decoding: a compiled step graph (`step-model.ts`) run once per position, with each
 * attention layer's keys, values (and LSH buckets) kept on the host between runs. A step costs
 * O(L) attention per layer instead of a whole-window forward pass.
 */
import { Graph } from '../../compiler/ir/graph.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { applyLayer, paramInputs, traceContext, type Params } from '../../dsl/layer.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import type { ModelConfig } from '../config.ts';
import { buildModel } from '../model.ts';
import { StepCollector } from './cache-slots.ts';
import { CachedSteps, type StepGraph } from './cached-steps.ts';
import { cachedPerModel } from './graph-cache.ts';
import { stepModel } from './step-model.ts';

const stepGraphs = new WeakMap<Params, Map<string, StepGraph>>();

/**
 * The step graph of `buildModel(cfg)` for runs of `width` positions (tokens `[1, width]` and the
 * first position in; logits `[1, width, V]` and the new cache rows out), with parameters shaped
 * like `paramTree`; built once per (tree, config, width).
 */
export function buildStepGraph(cfg: ModelConfig, paramTree: Params, width = 1): StepGraph {
  return cachedPerModel(stepGraphs, paramTree, { ...cfg, width }, () => {
    const graph = new Graph();
    const params = paramInputs(graph, paramTree);
    const tokens = graph.input('tokens', [1, width], 'i32');
    const collector = new StepCollector(graph, cfg.seqLen, width);
    const [logits] = applyLayer(stepModel(buildModel(cfg), cfg, collector), params, [tokens], traceContext(graph, 'eval'));
    graph.outputs = [logits!.id, ...collector.slots.map((s) => s.row.id)];
    return { graph, slots: collector.slots, width };
  });
}

type LogitRow = Float64Array | Float32Array;

/**
 * Positions per block run at window length L. A block's attention is dense over the cache and the
 * block, so its cost per position grows with its width times L, while a single step's is mostly
 * dispatch. Measured per position on loaded 2-core webasm (best of 3): at L = 2048, single steps
 * 7.9 ms, blocks of 4 / 16 / 64 4.5 / 7.0 / 12.6 ms; at L = 512, 5.1 ms and 2.5 / 1.3 / 1.6 ms.
 * So the width is about 8192 / L (a power of two), at most L/2; none from L = 8192 on.
 */
export function blockWidth(L: number): number {
  return Math.max(1, Math.min(Math.floor(L / 2), 2 ** Math.floor(Math.log2(8192 / L))));
}

/**
 * Decodes positions in order within a window of the model's length L, each fed the token before it
 * (the padding id at position 0). Long runs (a prompt, the half window decoded again after a slide)
 * go through a block graph, `blockWidth(L)` positions per run; the rest one position per step.
 */
export class IncrementalDecoder {
  private readonly steps: CachedSteps;
  private readonly single: StepGraph;
  private readonly block?: StepGraph;

  constructor(
    runner: GraphRunner,
    cfg: ModelConfig,
    params: ReadonlyMap<string, HostTensor>,
    paramTree: Params,
    /** The seed the whole-window path feeds (LSH rotations are drawn from it). */
    seed = 0,
  ) {
    this.single = buildStepGraph(cfg, paramTree);
    const width = blockWidth(cfg.seqLen);
    if (width > 1) this.block = buildStepGraph(cfg, paramTree, width);
    const fixed: Record<string, HostTensor> = {};
    for (const node of this.single.graph.inputNodes()) {
      if (node.role !== 'param') continue;
      const value = params.get(node.name.slice('params.'.length));
      if (value === undefined) throw new Error(`decode: no value for parameter '${node.name}'`);
      fixed[node.name] = value;
    }
    if (this.single.graph.inputNodes().some((n) => n.name === 'seed')) fixed.seed = { shape: [], dtype: 'i32', data: Int32Array.of(seed) };
    this.steps = new CachedSteps(runner, cfg.seqLen, fixed);
  }

  /** The position the next token decodes at. */
  get position(): number {
    return this.steps.position;
  }

  get graph(): Graph {
    return this.single.graph;
  }

  /** Starts a new window at position 0. */
  reset(): void {
    this.steps.reset();
  }

  /** Decodes one position per token of `inputs`, from `position` on; returns each position's logits. */
  async decode(inputs: readonly number[]): Promise<LogitRow[]> {
    const L = this.steps.seqLen;
    if (this.position + inputs.length > L) {
      throw new Error(`decode: the window of ${L} positions is full (${this.position} decoded, ${inputs.length} more asked); reset() starts a new one`);
    }
    const rows: LogitRow[] = [];
    let done = 0;
    while (done < inputs.length) {
      const block = this.block !== undefined && inputs.length - done >= this.block.width ? this.block : this.single;
      const tokens = Int32Array.from(inputs.slice(done, done + block.width));
      const logits = await this.steps.run(block, { tokens: { shape: [1, block.width], dtype: 'i32', data: tokens } });
      const data = logits.data instanceof Int32Array ? Float64Array.from(logits.data) : logits.data;
      const V = data.length / block.width;
      for (let k = 0; k < block.width; k++) rows.push(data.subarray(k * V, (k + 1) * V));
      done += block.width;
    }
    return rows;
  }

  /** Decodes the next position, fed `token`; returns its logits. */
  async step(token: number): Promise<LogitRow> {
    return (await this.decode([token]))[0]!;
  }
}
