/**
 * Test helpers for attention: seeded data and an independent, loop-by-loop JS model of LSH
 * attention given buckets (sorting, chunk windows, masks), used to check the graph's results.
 */
import { defaultRunner, type AttentionShape } from '../../reformer/attention/api.ts';
import { ReferenceRunner, type GraphRunner } from '../../runtime/runner.ts';

export { rng } from '../grad/check.ts';
import { rng } from '../grad/check.ts';

export function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

export function randomArray(seed: number, n: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => scale * gaussian(r));
}

export interface WindowSlot {
  /** Original position of the key. */
  readonly kv: number;
  /** Buckets (with round offsets) of the query copy and of the key copy. */
  readonly qBucket: number;
  readonly kvBucket: number;
}

/**
 * For one (example, head) with buckets `[H, L]` (flat, round offsets included): every window slot
 * that each query position sees, over all rounds, with duplicates.
 */
export function windowsOf(buckets: ArrayLike<number>, H: number, L: number, c: number, before = 1, after = 0): WindowSlot[][] {
  const n = H * L;
  const order = Array.from({ length: n }, (_, i) => i);
  const key = (i: number) => buckets[i]! * L + (i % L);
  order.sort((a, b) => key(a) - key(b));
  const nC = n / c;
  const slots: WindowSlot[][] = Array.from({ length: L }, () => []);
  for (let s = 0; s < n; s++) {
    const j = Math.floor(s / c);
    const qCopy = order[s]!;
    for (let o = -before; o <= after; o++) {
      const cj = (((j + o) % nC) + nC) % nC;
      for (let t = 0; t < c; t++) {
        const kvCopy = order[cj * c + t]!;
        slots[qCopy % L]!.push({ kv: kvCopy % L, qBucket: buckets[qCopy]!, kvBucket: buckets[kvCopy]! });
      }
    }
  }
  return slots;
}

/** Slice of one (example, head) of a `[B, h, L, d]` array, as rows. */
export function rowsOf(x: ArrayLike<number>, shape: AttentionShape | readonly number[], b: number, head: number, d = shape[3]!): number[][] {
  const [, h, L] = shape as [number, number, number];
  const base = (b * h + head) * L * d;
  return Array.from({ length: L }, (_, t) => Array.from({ length: d }, (_, e) => x[base + t * d + e]!));
}

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

export function normalizedKey(k: number[]): number[] {
  const s = 1 / Math.sqrt(dot(k, k) + 1e-6 * k.length);
  return k.map((x) => x * s);
}

/** Softmax-weighted sum over the listed keys with the given logits (max subtracted first). */
export function softmaxSum(logits: number[], values: number[][]): number[] {
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  const z = e.reduce((a, b) => a + b, 0);
  const out = new Array<number>(values[0]!.length).fill(0);
  e.forEach((p, i) => values[i]!.forEach((x, k) => (out[k]! += (p / z) * x)));
  return out;
}

export interface NaiveMasks {
  readonly causal?: boolean;
  readonly attendAcrossBuckets?: boolean;
}

/** Shared-QK logit of query i and key j with the LSH masks. */
export function maskedLogit(qk: number[][], i: number, slot: WindowSlot, m: NaiveMasks): number {
  let l = dot(qk[i]!, normalizedKey(qk[slot.kv]!));
  if ((m.causal ?? false) && slot.kv > i) l -= 1e9;
  if (slot.kv === i) l -= 1e5;
  if (!(m.attendAcrossBuckets ?? true) && slot.kv !== -1 && slot.qBucket !== slot.kvBucket) l -= 1e9;
  return l;
}

/** One softmax over every window slot of every round (duplicates counted): the round-combination identity. */
export function naiveAllSlots(qk: number[][], v: number[][], windows: WindowSlot[][], m: NaiveMasks): number[][] {
  return windows.map((slots, i) => softmaxSum(slots.map((s) => maskedLogit(qk, i, s, m)), slots.map((s) => v[s.kv]!)));
}

/** Whether a window slot is open for query i under the hard masks (causal, bucket equality); the self mask is soft. */
export function slotOpen(i: number, slot: WindowSlot, m: NaiveMasks): boolean {
  if ((m.causal ?? false) && slot.kv > i) return false;
  return (m.attendAcrossBuckets ?? true) || slot.qBucket === slot.kvBucket;
}

/**
 * Exact softmax over the union of the neighbour keys that some open window slot holds for the
 * query, each key once (with the self penalty on the query's own key). Keys seen only in masked
 * slots get no weight.
 */
export function naiveUnion(qk: number[][], v: number[][], windows: WindowSlot[][], m: NaiveMasks): number[][] {
  return windows.map((slots, i) => {
    const keys = [...new Set(slots.filter((s) => slotOpen(i, s, m)).map((s) => s.kv))];
    return softmaxSum(keys.map((j) => maskedLogit(qk, i, { kv: j, qBucket: 0, kvBucket: 0 }, m)), keys.map((j) => v[j]!));
  });
}

/** Largest absolute difference. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(m) ? Infinity : m;
}

/** The runners the attention properties run on, with their tolerances and a share of the property runs. */
export interface RunnerCase {
  readonly name: string;
  readonly runner: GraphRunner;
  /** Absolute tolerance against float64 models. */
  readonly tol: number;
  /** Property runs for a reference count `n` (compiling every new configuration costs time). */
  runs(n: number): number;
}

export const runnerCases: readonly RunnerCase[] = [
  { name: 'reference-f64', runner: new ReferenceRunner(), tol: 1e-5, runs: (n) => n },
  { name: 'compiled (default runner)', runner: await defaultRunner(), tol: 1e-4, runs: (n) => Math.max(3, Math.round(n / 4)) },
];
