/**
 * Runs step graphs (graphs whose attention layers read caches through `StepCollector`) over
 * consecutive positions, keeping the caches on the host: each run feeds them, then writes the
 * run's new rows at the run's positions. Graphs of several widths (one position, a block) share
 * the caches, which are named by their graph inputs.
 */
import type { Graph } from '../../compiler/ir/graph.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import type { CacheSlot } from './cache-slots.ts';

type Rows = Float64Array | Float32Array | Int32Array;

/** A traced step graph: outputs its result, then the slots' rows in slot order. */
export interface StepGraph {
  readonly graph: Graph;
  readonly slots: readonly CacheSlot[];
  /** Positions per run. */
  readonly width: number;
}

/** Writes `rows` (the cache shape with `width` along the position axis) from `position` on. */
function writeRows(cache: Rows, rows: Rows, slot: CacheSlot, position: number, width: number): void {
  const L = slot.shape[slot.positionAxis]!;
  const inner = slot.shape.slice(slot.positionAxis + 1).reduce((a, b) => a * b, 1);
  const outer = rows.length / (inner * width);
  for (let o = 0; o < outer; o++) cache.set(rows.subarray(o * width * inner, (o + 1) * width * inner), (o * L + position) * inner);
}

export class CachedSteps {
  private readonly caches = new Map<string, Rows>();
  private next = 0;

  /** `fixed` feeds every run (parameters, seed). */
  constructor(
    private readonly runner: GraphRunner,
    readonly seqLen: number,
    private readonly fixed: Readonly<Record<string, HostTensor>>,
  ) {}

  /** The position the next run starts at. */
  get position(): number {
    return this.next;
  }

  /** Starts a new window: cached rows are ignored from now on (rows at or after the position never count). */
  reset(): void {
    this.next = 0;
  }

  private cache(slot: CacheSlot): Rows {
    let rows = this.caches.get(slot.input);
    if (rows === undefined) {
      const n = slot.shape.reduce((a, b) => a * b, 1);
      this.caches.set(slot.input, (rows = slot.dtype === 'i32' ? new Int32Array(n) : new Float32Array(n)));
    }
    return rows;
  }

  /** Runs `step` on the next `step.width` positions with `feeds` (besides the fixed ones and the caches); returns its result. */
  async run(step: StepGraph, feeds: Readonly<Record<string, HostTensor>>): Promise<HostTensor> {
    if (this.next + step.width > this.seqLen) {
      throw new Error(`decode: the window of ${this.seqLen} positions is full (${this.next} decoded, ${step.width} more asked); reset() starts a new one`);
    }
    const all: Record<string, HostTensor> = { ...this.fixed, ...feeds, position: { shape: [], dtype: 'i32', data: Int32Array.of(this.next) } };
    for (const s of step.slots) all[s.input] = { shape: s.shape, dtype: s.dtype, data: this.cache(s) };
    const [result, ...rows] = await this.runner.run(step.graph, all);
    step.slots.forEach((s, i) => {
      const row = rows[i]!.data;
      let cache = this.cache(s);
      // the reference runner returns float64 rows: keep them so, and the cache stays exact
      if (row instanceof Float64Array && !(cache instanceof Float64Array)) this.caches.set(s.input, (cache = Float64Array.from(cache)));
      writeRows(cache, row, s, this.next, step.width);
    });
    this.next += step.width;
    return result!;
  }
}
