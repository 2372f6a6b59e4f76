/**
 * The decode step graph's per-layer cache: each attention layer declares graph inputs holding the
 * rows of the positions already decoded and returns the new position's rows as graph outputs. The
 * host keeps the caches (`IncrementalDecoder`) and writes each step's rows back at the step's position.
 */
import type { Graph, Tensor } from '../../compiler/ir/graph.ts';
import type { DType } from '../../compiler/ir/types.ts';
import * as ops from '../../dsl/ops.ts';

/** One cached tensor of one layer: `[1, h, L, d]` keys or values, or `[1, h, nHashes, L]` buckets. */
export interface CacheSlot {
  /** Graph input holding the rows of every cached position (rows at or after the step's position are ignored). */
  readonly input: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** The axis positions run along (2 for keys/values, 3 for buckets). */
  readonly positionAxis: number;
  /** Graph output: the run's rows, the cache shape with the position axis of the run's width. */
  readonly row: Tensor;
}

/**
 * Collects the cache slots of a step graph while it is traced, in layer order. A step graph
 * decodes `width` consecutive positions in one run, from the graph's `position` input (an i32
 * scalar, the run's first position) on.
 */
export class StepCollector {
  readonly slots: CacheSlot[] = [];
  private layers = 0;
  private positionInput?: Tensor;

  constructor(
    readonly graph: Graph,
    /** The window length L: caches hold L positions. */
    readonly seqLen: number,
    /** Positions per run. */
    readonly width = 1,
  ) {}

  /** The run's first position. */
  get position(): Tensor {
    return (this.positionInput ??= this.graph.input('position', [], 'i32', 'data'));
  }

  /** The run's positions along `axis` of a tensor of rank `rank` (size 1 elsewhere). */
  positions(rank: number, axis: number): Tensor {
    const shape = Array.from({ length: rank }, (_, i) => (i === axis ? this.width : 1));
    return ops.add(ops.iota(this.graph, shape, axis), this.position);
  }

  /** A fresh layer index, naming that layer's cache inputs `cache.<i>.<what>`. */
  nextLayer(): number {
    return this.layers++;
  }

  /**
   * The cache input of layer `layer` named `what` (the shape of `rows`, with the position axis of
   * length L), holding the rows of the positions before the run's; `rows`, the run's (`width`
   * along the position axis), become a graph output that the host writes into the cache.
   */
  cached(layer: number, what: string, rows: Tensor, positionAxis: number): Tensor {
    const shape = rows.shape.map((d, i) => (i === positionAxis ? this.seqLen : d));
    const name = `cache.${layer}.${what}`;
    this.slots.push({ input: name, shape, dtype: rows.dtype, positionAxis, row: rows });
    return this.graph.input(name, shape, rows.dtype, 'data');
  }
}
