/**
 * Attention as plain functions on Float32Arrays laid out `[batch, heads, length, d]`. Each call
 * builds a graph from the same cores the layers use (hashBuckets + lshAttend, fullAttend) and runs
 * it on a GraphRunner: the compiled gpu.js runner unless told otherwise (pass a ReferenceRunner
 * for the float64 definition). Graphs are cached per configuration, so the runner's compilation
 * cache hits on repeated calls.
 *
 * @example
 * const { output, buckets } = await lshAttention(qk, v, { shape: [1, 2, 64, 16], nHashes: 4, chunkLen: 8, seed: 7 });
 */
import { Graph, OptionError, type Tensor } from '../../compiler/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import { fullAttend } from './full.ts';
import { drawRotations, hashBuckets, rotationShape } from './hashing.ts';
import { lshAttend } from './lsh.ts';
import { resolveLsh, type LshOptions, type ResolvedLsh } from './options.ts';

/** `[batch, heads, length, dK]` of the qk array. */
export type AttentionShape = readonly [number, number, number, number];

export interface LshAttentionOptions extends LshOptions {
  /** `[batch, heads, length, dK]`; v must have `batch·heads·length·dV` values. */
  readonly shape: AttentionShape;
  /**
   * Rotations `[batch, heads, dK, nHashes, nBuckets/2]` (with `bucketFactors`, the last axis is
   * Σ factor/2: each factor's rotations in turn); used exactly. Otherwise drawn from `seed`.
   */
  readonly rotations?: Float32Array;
  /** Seed of the random rotations (default 0). */
  readonly seed?: number;
  /** Default: the shared compiled runner (`defaultRunner()`). */
  readonly runner?: GraphRunner;
}

export interface LshAttentionResult {
  /** `[batch, heads, length, dV]`. */
  readonly output: Float32Array;
  /** `[batch, heads, nHashes, length]`, round offsets included. */
  readonly buckets: Int32Array;
}

function checkArrays(fn: string, qk: Float32Array, v: Float32Array, shape: AttentionShape): number {
  const ok = shape.length === 4 && shape.every((d) => Number.isInteger(d) && d > 0);
  if (!ok) throw new OptionError(`${fn}: option 'shape' must be 4 positive integers [batch, heads, length, dK], got [${shape.join(',')}]`);
  const [B, h, L, dK] = shape;
  if (qk.length !== B * h * L * dK) {
    throw new OptionError(`${fn}: qk has ${qk.length} values, shape [${shape.join(',')}] needs ${B * h * L * dK}`);
  }
  const dV = v.length / (B * h * L);
  if (!Number.isInteger(dV) || dV === 0) {
    throw new OptionError(`${fn}: v has ${v.length} values, not a positive multiple of batch·heads·length = ${B * h * L}`);
  }
  return dV;
}

/** A graph computing LSH attention: inputs `qk`, `v` (and `rotations` or `seed`); outputs `[output, buckets]`. */
export interface LshGraph {
  readonly graph: Graph;
  readonly options: ResolvedLsh;
  readonly qk: Tensor;
  readonly v: Tensor;
  readonly output: Tensor;
  readonly buckets: Tensor;
}

/**
 * Builds the LSH attention graph. With `fixedBuckets`, buckets are a graph input named `buckets`
 * (as in a replayed pass), so gradients and finite differences see a fixed hashing.
 */
export function buildLshGraph(
  shape: AttentionShape,
  dV: number,
  options: LshOptions & { readonly injectRotations?: boolean; readonly fixedBuckets?: boolean },
): LshGraph {
  const [B, h, L, dK] = shape;
  const graph = new Graph();
  const o = resolveLsh('lshAttention', '', options, L);
  const qk = graph.input('qk', [B, h, L, dK]);
  const v = graph.input('v', [B, h, L, dV]);
  let buckets: Tensor;
  if (options.fixedBuckets ?? false) {
    buckets = graph.input('buckets', [B, h, o.nHashes, L], 'i32', 'state');
  } else {
    const rotations = options.injectRotations
      ? graph.input('rotations', rotationShape(qk, o.nHashes, o.bucketFactors))
      : drawRotations(qk, graph.input('seed', [], 'i32', 'seed'), 0, o.nHashes, o.bucketFactors);
    buckets = hashBuckets(qk, rotations, o.nHashes, o.bucketFactors);
  }
  const output = lshAttend(qk, v, buckets, o);
  graph.outputs = [output.id, buckets.id];
  return { graph, options: o, qk, v, output, buckets };
}

let sharedRunner: Promise<GraphRunner> | undefined;
/** The default runner: one compiled gpu.js runner per process, on the best backend available. */
export function defaultRunner(): Promise<GraphRunner> {
  return (sharedRunner ??= CompiledRunner.create());
}

/** Built graphs by configuration; graphs are never modified after building, so sharing is safe. */
const graphCache = new Map<string, unknown>();
function cached<T>(key: string, build: () => T): T {
  if (graphCache.has(key)) return graphCache.get(key) as T;
  const value = build();
  if (graphCache.size >= 64) graphCache.delete(graphCache.keys().next().value!);
  graphCache.set(key, value);
  return value;
}

/** LSH self-attention (shared QK) on host arrays. */
export async function lshAttention(qk: Float32Array, v: Float32Array, options: LshAttentionOptions): Promise<LshAttentionResult> {
  const dV = checkArrays('lshAttention', qk, v, options.shape);
  const injected = options.rotations !== undefined;
  const graphOptions: LshOptions & { injectRotations: boolean } = {
    nHashes: options.nHashes,
    nBuckets: options.nBuckets,
    bucketFactors: options.bucketFactors,
    chunkLen: options.chunkLen,
    causal: options.causal,
    nChunksBefore: options.nChunksBefore,
    nChunksAfter: options.nChunksAfter,
    allowDuplicateAttention: options.allowDuplicateAttention,
    attendAcrossBuckets: options.attendAcrossBuckets,
    chunksPerGroup: options.chunksPerGroup,
    recomputeScores: options.recomputeScores,
    injectRotations: injected,
  };
  const key = JSON.stringify(['lsh', options.shape, dV, graphOptions]);
  const built = cached(key, () => buildLshGraph(options.shape, dV, graphOptions));
  const feeds: Record<string, HostTensor> = {
    qk: hostTensor(built.qk.shape, qk),
    v: hostTensor(built.v.shape, v),
  };
  if (injected) {
    const rshape = rotationShape(built.qk, built.options.nHashes, built.options.bucketFactors);
    const n = rshape.reduce((a, b) => a * b, 1);
    if (options.rotations!.length !== n) {
      throw new OptionError(
        `lshAttention: rotations have ${options.rotations!.length} values, [batch,heads,dK,nHashes,nBuckets/2 or Σ factor/2] = [${rshape.join(',')}] needs ${n}`,
      );
    }
    feeds.rotations = hostTensor(rshape, options.rotations!);
  } else {
    feeds.seed = hostTensor([], [options.seed ?? 0], 'i32');
  }
  const runner = options.runner ?? (await defaultRunner());
  const [out, buckets] = await runner.run(built.graph, feeds);
  return { output: Float32Array.from(out!.data), buckets: Int32Array.from(buckets!.data) };
}

export interface FullAttentionFnOptions {
  readonly shape: AttentionShape;
  readonly causal?: boolean;
  readonly runner?: GraphRunner;
}

/** Full shared-QK attention (normalised keys, self mask) on host arrays: LSH attention's exact counterpart. */
export async function fullAttention(qk: Float32Array, v: Float32Array, options: FullAttentionFnOptions): Promise<Float32Array> {
  const dV = checkArrays('fullAttention', qk, v, options.shape);
  const [B, h, L, dK] = options.shape;
  const causal = options.causal ?? false;
  const { graph, q, vt } = cached(JSON.stringify(['full', options.shape, dV, causal]), () => {
    const graph = new Graph();
    const q = graph.input('qk', [B, h, L, dK]);
    const vt = graph.input('v', [B, h, L, dV]);
    graph.outputs = [fullAttend(q, q, vt, { causal, sharedQK: true }).id];
    return { graph, q, vt };
  });
  const runner = options.runner ?? (await defaultRunner());
  const [out] = await runner.run(graph, { qk: hostTensor(q.shape, qk), v: hostTensor(vt.shape, v) });
  return Float32Array.from(out!.data);
}
