/**
 * LSH attention options: defaults (trax v2 semantics) and build-time validation with errors that
 * name the layer, the option and the sizes involved.
 */
import { OptionError, ShapeError } from '../../compiler/ir/graph.ts';

export interface LshOptions {
  /** Hashing rounds H. */
  readonly nHashes: number;
  /** Buckets per round (even); default 2·L / chunkLen. */
  readonly nBuckets?: number;
  /**
   * Factorised hashing (as trax's list-valued n_buckets): nBuckets = f₁·f₂·…, each factor even,
   * hashed with its own f/2 rotations, bucket = a₁ + f₁·(a₂ + f₂·(…)). Rotations cost O(Σ f)
   * instead of O(nb) per token, which matters at long L where nb = 2L/c grows with L. `'auto'`
   * splits nBuckets into two even factors near √nb when nBuckets > 64 (else one factor).
   */
  readonly bucketFactors?: readonly number[] | 'auto';
  /** Chunk length c; L must be a multiple of it. */
  readonly chunkLen: number;
  /** Mask keys after the query (default false). */
  readonly causal?: boolean;
  /** Chunks each chunk looks back at (default 1). */
  readonly nChunksBefore?: number;
  /** Chunks each chunk looks ahead at (default 0). */
  readonly nChunksAfter?: number;
  /** false: subtract log(count) so each key counts once across rounds (paper-time). Default true. */
  readonly allowDuplicateAttention?: boolean;
  /** false: mask window keys hashed to another bucket (paper-time). Default true. */
  readonly attendAcrossBuckets?: boolean;
  /**
   * The chunk schedule: query chunks (of the H·L/chunkLen sorted chunks) attended per group. Each
   * group's scores are recomputed in the backward pass rather than stored, so memory holds one
   * group's scores at a time. `'auto'` (default): as many as keep a group's score block within
   * 2^24 elements. Results do not depend on it, except that attention dropout draws a stream per
   * group.
   */
  readonly chunksPerGroup?: number | 'auto';
  /**
   * With several window groups: recompute each group's scores in the backward pass (true) or keep
   * them from the forward pass (false). `'auto'` (default): recompute when all windows' scores
   * together exceed 2^26 elements (256 MiB a copy), i.e. trade one more forward of the groups for
   * memory only where memory is what limits.
   */
  readonly recomputeScores?: boolean | 'auto';
}

/** Options with defaults filled in and checked against the sequence length. */
export interface ResolvedLsh {
  readonly nHashes: number;
  readonly nBuckets: number;
  /** The hashing factors, product nBuckets (one factor when not factorised). */
  readonly bucketFactors: readonly number[];
  readonly chunkLen: number;
  readonly causal: boolean;
  readonly nChunksBefore: number;
  readonly nChunksAfter: number;
  readonly allowDuplicateAttention: boolean;
  readonly attendAcrossBuckets: boolean;
  readonly chunksPerGroup: number | 'auto';
  readonly recomputeScores: boolean | 'auto';
}

function count(layer: string, name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new OptionError(`${layer}: option '${name}' must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/** Checks the options that do not depend on L (so layers fail at construction). */
export function checkLshOptions(layer: string, o: LshOptions): void {
  count(layer, 'nHashes', o.nHashes, 1);
  count(layer, 'chunkLen', o.chunkLen, 1);
  count(layer, 'nChunksBefore', o.nChunksBefore ?? 1, 0);
  count(layer, 'nChunksAfter', o.nChunksAfter ?? 0, 0);
  if (o.chunksPerGroup !== undefined && o.chunksPerGroup !== 'auto') count(layer, 'chunksPerGroup', o.chunksPerGroup, 1);
  if (o.recomputeScores !== undefined && o.recomputeScores !== 'auto' && typeof o.recomputeScores !== 'boolean') {
    throw new OptionError(`${layer}: option 'recomputeScores' must be true, false or 'auto', got ${String(o.recomputeScores)}`);
  }
  if (Array.isArray(o.bucketFactors)) {
    const fs = o.bucketFactors as readonly number[];
    if (fs.length === 0) throw new OptionError(`${layer}: option 'bucketFactors' must list at least one factor`);
    for (const f of fs) {
      if (!Number.isInteger(f) || f < 2 || f % 2 !== 0) {
        throw new OptionError(`${layer}: option 'bucketFactors' must be even integers >= 2, got [${fs.join(',')}]`);
      }
    }
    const product = fs.reduce((a, b) => a * b, 1);
    if (o.nBuckets !== undefined && o.nBuckets !== product) {
      throw new OptionError(`${layer}: option 'bucketFactors' [${fs.join(',')}] multiplies to ${product}, but nBuckets is ${o.nBuckets}`);
    }
  } else if (o.bucketFactors !== undefined && o.bucketFactors !== 'auto') {
    throw new OptionError(`${layer}: option 'bucketFactors' must be a list of even factors or 'auto', got ${String(o.bucketFactors)}`);
  }
  if (o.nBuckets !== undefined) {
    count(layer, 'nBuckets', o.nBuckets, 2);
    if (o.nBuckets % 2 !== 0) {
      throw new OptionError(`${layer}: option 'nBuckets' must be even (hashing uses argmax over [xR, -xR]), got ${o.nBuckets}`);
    }
  }
}

/** Fills defaults for a sequence of length L; `scope` is the layer path for shape errors. */
export function resolveLsh(layer: string, scope: string, o: LshOptions, L: number): ResolvedLsh {
  checkLshOptions(layer, o);
  if (L % o.chunkLen !== 0) {
    throw new ShapeError(scope, `${layer}: sequence length L=${L} is not a multiple of chunkLen=${o.chunkLen}`);
  }
  const factors = o.bucketFactors;
  const nBuckets = o.nBuckets ?? (Array.isArray(factors) ? factors.reduce((a: number, b: number) => a * b, 1) : (2 * L) / o.chunkLen);
  if (!Number.isInteger(nBuckets) || nBuckets < 2 || nBuckets % 2 !== 0) {
    throw new ShapeError(scope, `${layer}: nBuckets = 2·L/chunkLen = ${nBuckets} for L=${L}, chunkLen=${o.chunkLen} must be an even integer; set option 'nBuckets'`);
  }
  // Buckets (with round offsets, < H·(nb + 1)) travel as float32 values: exact below 2^24.
  if (o.nHashes * (nBuckets + 1) > 2 ** 24) {
    throw new ShapeError(scope, `${layer}: nHashes·(nBuckets+1) = ${o.nHashes * (nBuckets + 1)} exceeds 2^24 (nHashes=${o.nHashes}, nBuckets=${nBuckets})`);
  }
  return {
    nHashes: o.nHashes,
    nBuckets,
    bucketFactors: resolveFactors(factors, nBuckets),
    chunkLen: o.chunkLen,
    causal: o.causal ?? false,
    nChunksBefore: o.nChunksBefore ?? 1,
    nChunksAfter: o.nChunksAfter ?? 0,
    allowDuplicateAttention: o.allowDuplicateAttention ?? true,
    attendAcrossBuckets: o.attendAcrossBuckets ?? true,
    chunksPerGroup: o.chunksPerGroup ?? 'auto',
    recomputeScores: o.recomputeScores ?? 'auto',
  };
}

/** The factors for `bucketFactors` (see LshOptions); nBuckets is even here. */
function resolveFactors(factors: LshOptions['bucketFactors'], nBuckets: number): number[] {
  if (Array.isArray(factors)) return [...(factors as readonly number[])];
  if (factors !== 'auto' || nBuckets <= 64) return [nBuckets];
  // two even factors, the smaller as close to √nb as the divisors allow
  let best = 0;
  for (let f = 2; f * f <= nBuckets; f += 2) if (nBuckets % f === 0 && (nBuckets / f) % 2 === 0) best = f;
  return best === 0 ? [nBuckets] : [best, nBuckets / best];
}
