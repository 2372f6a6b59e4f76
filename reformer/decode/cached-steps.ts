/**
 * Runs a step graph (one whose attention layers read caches through `StepCollector`) position by
 * position, keeping the caches on the host: each run feeds them, then writes the run's new rows at
 * the run's position.
 */
import type { Graph } from '../../compiler/ir/graph.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import type { CacheSlot } from './cache-slots.ts';

type Rows = Float64Array | Float32Array | Int32Array;

/** Writes `row` (the cache shape with the position axis of size 1) at `position` of `cache`. */
function writeRow(cache: Rows, row: Rows, slot: CacheSlot, position: number): void {
  const L = slot.shape[slot.positionAxis]!;
  const inner = slot.shape.slice(slot.positionAxis + 1).reduce((a, b) => a * b, 1);
  const outer = row.length / inner;
  for (let o = 0; o < outer; o++) cache.set(row.subarray(o * inner, (o + 1) * inner), (o * L + position) * inner);
}

export class CachedSteps {
  private readonly caches: Rows[];
  private next = 0;

  /**
   * `graph`'s outputs are its result, then the slots' rows in slot order; `fixed` feeds every run
   * (parameters, seed).
   */
  constructor(
    private readonly runner: GraphRunner,
    readonly graph: Graph,
    private readonly slots: readonly CacheSlot[],
    readonly seqLen: number,
    private readonly fixed: Readonly<Record<string, HostTensor>>,
  ) {
    this.caches = slots.map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      return s.dtype === 'i32' ? new Int32Array(n) : new Float32Array(n);
    });
  }

  /** The position the next `run` decodes. */
  get position(): number {
    return this.next;
  }

  /** Starts a new window: cached rows are ignored from now on (rows at or after the position never count). */
  reset(): void {
    this.next = 0;
  }

  /** Runs the next position with `feeds` (besides the fixed ones and the caches); returns the graph's result. */
  async run(feeds: Readonly<Record<string, HostTensor>>): Promise<HostTensor> {
    if (this.next >= this.seqLen) throw new Error(`decode: the window of ${this.seqLen} positions is full; reset() starts a new one`);
    const all: Record<string, HostTensor> = { ...this.fixed, ...feeds, position: { shape: [], dtype: 'i32', data: Int32Array.of(this.next) } };
    this.slots.forEach((s, i) => (all[s.input] = { shape: s.shape, dtype: s.dtype, data: this.caches[i]! }));
    const [result, ...rows] = await this.runner.run(this.graph, all);
    this.slots.forEach((s, i) => {
      const row = rows[i]!.data;
      // the reference runner returns float64 rows: keep them so, and the cache stays exact
      if (row instanceof Float64Array && !(this.caches[i] instanceof Float64Array)) this.caches[i] = Float64Array.from(this.caches[i]!);
      writeRow(this.caches[i]!, row, s, this.next);
    });
    this.next++;
    return result!;
  }
}
