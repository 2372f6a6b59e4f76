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
}

/** Options with defaults filled in and checked against the sequence length. */
export interface ResolvedLsh {
  readonly nHashes: number;
  readonly nBuckets: number;
  readonly chunkLen: number;
  readonly causal: boolean;
  readonly nChunksBefore: number;
  readonly nChunksAfter: number;
  readonly allowDuplicateAttention: boolean;
  readonly attendAcrossBuckets: boolean;
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
  const nBuckets = o.nBuckets ?? (2 * L) / o.chunkLen;
  // Sort keys are L·bucket + position with bucket < H·(nb + 1): they must fit an i32.
  if (L * o.nHashes * (nBuckets + 1) > 2 ** 31 - 1) {
    throw new ShapeError(scope, `${layer}: sort keys overflow i32 for L=${L}, nHashes=${o.nHashes}, nBuckets=${nBuckets}`);
  }
  return {
    nHashes: o.nHashes,
    nBuckets,
    chunkLen: o.chunkLen,
    causal: o.causal ?? false,
    nChunksBefore: o.nChunksBefore ?? 1,
    nChunksAfter: o.nChunksAfter ?? 0,
    allowDuplicateAttention: o.allowDuplicateAttention ?? true,
    attendAcrossBuckets: o.attendAcrossBuckets ?? true,
  };
}
