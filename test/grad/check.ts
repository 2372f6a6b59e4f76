/**
 * Gradient checking for the grad tests: reduce any output to a scalar with fixed random weights,
 * differentiate, and compare with central finite differences, all in float64 on the reference
 * evaluator. Also a tiny seeded PRNG so fast-check only has to generate seeds and shapes.
 */
import { grad } from '../../compiler/grad/grad.ts';
import type { Graph, Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { evaluate, hostTensor, type HostTensor } from '../../compiler/reference/evaluate.ts';
import type { Shape } from '../../compiler/ir/types.ts';
import { sizeOf } from '../../compiler/ir/types.ts';
import { expectClose, finiteDifference } from '../support/numeric.ts';

/** mulberry32: small, seedable, good enough to make test data. */
export function rng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = () => number;

export function uniform(r: Rand, shape: Shape, lo: number, hi: number): HostTensor {
  return hostTensor(shape, Array.from({ length: sizeOf(shape) }, () => lo + (hi - lo) * r()));
}

/** Values bounded away from zero: |v| in [lo, hi], random sign. */
export function awayFromZero(r: Rand, shape: Shape, lo: number, hi: number): HostTensor {
  return hostTensor(shape, Array.from({ length: sizeOf(shape) }, () => (r() < 0.5 ? -1 : 1) * (lo + (hi - lo) * r())));
}

/**
 * Pairwise distinct values on a lattice `step·k + offset` (shuffled), so max/min/argmax never tie
 * and a finite-difference step never crosses a tie. Values are integer multiples of `step` plus
 * `offset`, so two tensors with offsets 0 and step/2 never share a value either.
 */
export function distinct(r: Rand, shape: Shape, offset = 0, step = 0.2): HostTensor {
  const n = sizeOf(shape);
  const ks = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [ks[i], ks[j]] = [ks[j]!, ks[i]!];
  }
  return hostTensor(shape, ks.map((k) => (k - Math.floor(n / 2)) * step + offset));
}

export function randomInts(r: Rand, shape: Shape, below: number): HostTensor {
  return hostTensor(shape, Array.from({ length: sizeOf(shape) }, () => Math.floor(r() * below)), 'i32');
}

/** Random dims in [1, maxDim], keeping the total size at most `maxSize` (so FD stays cheap). */
export function randomShape(r: Rand, rank: number, maxDim = 7, maxSize = 120): number[] {
  const shape: number[] = [];
  let size = 1;
  for (let i = 0; i < rank; i++) {
    const cap = Math.max(1, Math.min(maxDim, Math.floor(maxSize / size)));
    const d = 1 + Math.floor(r() * cap);
    shape.push(d);
    size *= d;
  }
  return shape;
}

/** `sum(out · W)` with W fixed random weights: every output element gets its own cotangent. */
export function weightedLoss(out: Tensor, r: Rand): Tensor {
  const g = out.graph;
  const f = out.dtype === 'f32' ? out : P.cast(out, 'f32');
  const w = P.constant(g, Array.from({ length: sizeOf(f.shape) }, () => 2 * r() - 1), f.shape);
  const prod = P.binary('mul', f, w);
  return P.reshape(P.reduce('sum', P.reshape(prod, [-1]), 0), []);
}

export interface GradCheckResult {
  /** Analytic gradients by input name. */
  readonly analytic: Record<string, Float64Array>;
  /** Finite-difference gradients by input name. */
  readonly numeric: Record<string, Float64Array>;
}

/**
 * Builds `loss = sum(out · W)`, differentiates it with respect to the named inputs, and checks the
 * result against central finite differences. Throws (with the input name) on a mismatch.
 */
export function checkGradients(
  graph: Graph,
  out: Tensor,
  feeds: Record<string, HostTensor>,
  wrt: readonly string[],
  r: Rand,
  tol: { rtol?: number; atol?: number } = {},
): GradCheckResult {
  const loss = weightedLoss(out, r);
  const g = grad(graph, loss.id, wrt.map((n) => graph.inputByName(n).id));
  const values = evaluate(g.graph, feeds);
  const analytic: Record<string, Float64Array> = {};
  const numeric: Record<string, Float64Array> = {};
  wrt.forEach((name, k) => {
    const a = Float64Array.from(values[k + 1]!.data);
    const fd = finiteDifference(graph, feeds, name, loss.id);
    analytic[name] = a;
    numeric[name] = fd;
    expectClose(a, fd, tol.rtol ?? 1e-5, tol.atol ?? 1e-7, `d loss / d ${name}`);
  });
  return { analytic, numeric };
}
