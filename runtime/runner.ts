/**
 * The contract every executor meets: run a graph on host feeds and return its outputs. The float64
 * reference evaluator and the compiled gpu.js runtime both implement it, so orchestration code
 * (reversible backward passes, chunked schedules, training steps) is written once.
 */
import type { Graph } from '../compiler/ir/graph.ts';
import type { NodeId } from '../compiler/ir/types.ts';
import { evaluate } from '../compiler/reference/evaluate.ts';
import { type HostTensor } from '../compiler/ir/host-tensor.ts';

export type Feeds = Readonly<Record<string, HostTensor>>;

export interface GraphRunner {
  /** Human-readable name of what runs the graph, e.g. `reference-f64` or `gpu.js webasm (fused-threaded)`. */
  readonly description: string;
  /** Runs `graph` and returns the values of `wanted` (default: the graph's outputs). */
  run(graph: Graph, feeds: Feeds, wanted?: readonly NodeId[]): Promise<HostTensor[]>;
}

/** Runs graphs on the float64 reference evaluator. */
export class ReferenceRunner implements GraphRunner {
  readonly description = 'reference-f64';
  async run(graph: Graph, feeds: Feeds, wanted?: readonly NodeId[]): Promise<HostTensor[]> {
    return evaluate(graph, feeds, wanted);
  }
}
