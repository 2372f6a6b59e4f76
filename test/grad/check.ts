/**
 * Gradient checking for the grad tests: reduce any output to a scalar with fixed random weights,
 * differentiate, and compare with central finite differences, all in float64 on the reference
 * evaluator. Also a tiny seeded PRNG so fast-check only has to generate seeds and shapes.
 */
import { grad } from '../../compiler/grad/grad.ts';
import type { Graph, Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { Shape } from '../../compiler/ir/types.ts';
import { sizeOf } from '../../compiler/ir/types.ts';
import { expectClose, finiteDifference } from '../support/numeric.ts';
import { flattenParams, InitKey, spec, trace, type Layer } from '../../dsl/layer.ts';

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
 * Builds `loss = Σ sum(out · W)` over the outputs, differentiates it with respect to the named inputs, and checks the
 * result against central finite differences. Throws (with the input name) on a mismatch.
 */
export function checkGradients(
  graph: Graph,
  out: Tensor | readonly Tensor[],
  feeds: Record<string, HostTensor>,
  wrt: readonly string[],
  r: Rand,
  tol: { rtol?: number; atol?: number } = {},
): GradCheckResult {
  const outs = Array.isArray(out) ? (out as readonly Tensor[]) : [out as Tensor];
  const loss = outs.map((o) => weightedLoss(o, r)).reduce((a, b) => P.binary('add', a, b));
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

export interface LayerCheckOptions {
  readonly mode?: 'train' | 'eval';
  /** Initialisation seed, data seed and the per-step RNG seed fed as `seed`. */
  readonly seed?: number;
  readonly rtol?: number;
  readonly atol?: number;
  /** Half-width of the uniform noise added to the initial parameters (default 0.3). */
  readonly jitter?: number;
}

/**
 * Initialises and traces `layer` on f32 inputs of the given shapes, then checks the gradients of
 * every parameter and every input against finite differences. Returns the checked names.
 */
export function checkLayerGradients(layer: Layer, shapes: readonly Shape[], options: LayerCheckOptions = {}): string[] {
  const seed = options.seed ?? 1;
  const r = rng(seed);
  const params = layer.init(new InitKey(seed), shapes.map((s) => spec(s)));
  const t = trace(layer, params, shapes.map((shape) => ({ shape })), { mode: options.mode ?? 'eval' });
  const feeds: Record<string, HostTensor> = {};
  // Jitter the initial parameters: initial biases are (near) zero, and a Relu evaluated exactly at
  // its kink (e.g. after a width-1 LayerNorm, whose output is its bias) has no derivative for
  // finite differences to agree with.
  const jitter = options.jitter ?? 0.3;
  for (const [path, p] of flattenParams(params)) {
    const data = p.dtype === 'f32' ? Array.from(p.data, (v) => v + jitter * (2 * r() - 1)) : p.data;
    feeds[path ? `params.${path}` : 'params'] = hostTensor(p.shape, data, p.dtype);
  }
  shapes.forEach((s, i) => (feeds[`input${i}`] = uniform(r, s, -1.5, 1.5)));
  if (t.graph.inputNodes().some((n) => n.name === 'seed')) feeds.seed = hostTensor([], [seed * 7919], 'i32');
  const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data').map((n) => n.name);
  checkGradients(t.graph, t.outputs, feeds, wrt, r, options);
  return wrt;
}
