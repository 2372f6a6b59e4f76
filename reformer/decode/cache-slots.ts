/**
 * The decode step graph's per-layer cache: each attention layer declares graph inputs holding the
 * rows of the positions already decoded and returns the new position's rows as graph outputs. The
 * host keeps the caches (`IncrementalDecoder`) and writes each step's rows back at the step's position.
 */
import type { Graph, Tensor } from '../../compiler/ir/graph.ts';
import type { DType } from '../../compiler/ir/types.ts';

/** One cached tensor of one layer: `[1, h, L, d]` keys or values, or `[1, h, nHashes, L]` buckets. */
export interface CacheSlot {
  /** Graph input holding the rows of every cached position (rows at or after the step's position are ignored). */
  readonly input: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** The axis positions run along (2 for keys/values, 3 for buckets). */
  readonly positionAxis: number;
  /** Graph output: this step's rows, the cache shape with the position axis of size 1. */
  readonly row: Tensor;
}

/**
 * Collects the cache slots of a step graph while it is traced, in layer order, and owns the
 * graph's `position` input (the step's position in the window, an i32 scalar).
 */
export class StepCollector {
  readonly slots: CacheSlot[] = [];
  private layers = 0;
  private positionInput?: Tensor;

  constructor(
    readonly graph: Graph,
    /** The window length L: caches hold L positions. */
    readonly seqLen: number,
  ) {}

  get position(): Tensor {
    return (this.positionInput ??= this.graph.input('position', [], 'i32', 'data'));
  }

  /** A fresh layer index, naming that layer's cache inputs `cache.<i>.<what>`. */
  nextLayer(): number {
    return this.layers++;
  }

  /**
   * The cache input of layer `layer` named `what` (the shape of `row`, with the position axis of
   * length L), holding the rows of the positions before the step's; `row`, this step's, becomes a
   * graph output that the host writes into the cache at the step's position.
   */
  cached(layer: number, what: string, row: Tensor, positionAxis: number): Tensor {
    const shape = row.shape.map((d, i) => (i === positionAxis ? this.seqLen : d));
    const name = `cache.${layer}.${what}`;
    this.slots.push({ input: name, shape, dtype: row.dtype, positionAxis, row });
    return this.graph.input(name, shape, row.dtype, 'data');
  }
}
