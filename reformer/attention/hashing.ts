/**
 * Angular LSH (Andoni et al. 2015, as in the Reformer): project each shared query/key vector with a
 * random rotation and take the argmax over [xR, −xR]. Buckets carry per-round offsets, so round r
 * occupies [r·stride, (r+1)·stride) where stride = nb (nb + 1 with a padding mask: padded tokens
 * take the extra bucket nb and so sort to the end of each round).
 */
import { ShapeError, type Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';

/** Hashing factors: one bucket count, or the factors of a factorised nBuckets. */
export type BucketSpec = number | readonly number[];

const factorsOf = (spec: BucketSpec): readonly number[] => (typeof spec === 'number' ? [spec] : spec);

/** Shape of the rotations for qk `[B, h, L, dK]`: `[B, h, dK, nHashes, Σ f/2]` (nBuckets/2 unfactorised). */
export function rotationShape(qk: Tensor, nHashes: number, buckets: BucketSpec): number[] {
  const [B, h, , dK] = qk.shape as [number, number, number, number];
  return [B, h, dK, nHashes, factorsOf(buckets).reduce((s, f) => s + f / 2, 0)];
}

/** Standard-normal rotations drawn per (example, head) from a seed and salt. */
export function drawRotations(qk: Tensor, seed: Tensor, salt: number, nHashes: number, buckets: BucketSpec): Tensor {
  return ops.randomNormal(seed, salt, rotationShape(qk, nHashes, buckets));
}

export function checkRotations(qk: Tensor, rotations: Tensor, nHashes: number, buckets: BucketSpec): void {
  const want = rotationShape(qk, nHashes, buckets);
  const got = rotations.shape;
  if (got.length !== 5 || got.some((d, i) => d !== want[i])) {
    const dkNote = got.length === 5 && got[2] !== want[2] ? ` (rotations have dK=${got[2]}, qk has dK=${want[2]})` : '';
    throw new ShapeError(
      qk.graph.scope,
      `LSH rotations must have shape [B,h,dK,nHashes,${typeof buckets === 'number' || buckets.length === 1 ? 'nBuckets/2' : 'Σ factor/2'}] = [${want.join(',')}], got [${got.join(',')}]${dkNote}`,
    );
  }
}

/**
 * Buckets `[B, h, H, L]` (i32, round offsets included) of qk `[B, h, L, dK]`. No gradient flows
 * through hashing. `padMask` `[B, L]` (i32, nonzero = real token) sends padded tokens to bucket nb.
 */
export function hashBuckets(qk: Tensor, rotations: Tensor, nHashes: number, buckets: BucketSpec, padMask?: Tensor): Tensor {
  checkRotations(qk, rotations, nHashes, buckets);
  const [B, h, L, dK] = qk.shape as [number, number, number, number];
  const factors = factorsOf(buckets);
  const nBuckets = factors.reduce((a, b) => a * b, 1);
  const width = rotations.shape[4]!;
  const R = ops.reshape(ops.stopGradient(rotations), [B, h, dK, nHashes * width]);
  const rot = ops.matmul(ops.stopGradient(qk), R); // [B,h,L,H·Σf/2]
  const perRound = ops.transpose(ops.reshape(rot, [B, h, L, nHashes, width]), [0, 1, 3, 2, 4]); // [B,h,H,L,Σf/2]
  // bucket = a₁ + f₁·a₂ + f₁f₂·a₃ …, each aᵢ the argmax of its own slice of rotations
  let bucket: Tensor | undefined;
  let offset = 0;
  let scale = 1;
  for (const f of factors) {
    // Stryker disable next-line ConditionalExpression: with one factor the slice is the whole axis, which sliceAxis returns as is
    const part = factors.length === 1 ? perRound : ops.sliceAxis(perRound, 4, offset, f / 2);
    const a = ops.argmax(ops.concat([part, ops.neg(part)], 4), 4); // [B,h,H,L]
    // Stryker disable next-line ConditionalExpression: multiplying by a scale of 1 changes no bucket
    const term = scale === 1 ? a : ops.mul(a, scale);
    bucket = bucket === undefined ? term : ops.add(bucket, term);
    offset += f / 2;
    scale *= f;
  }
  let stride = nBuckets;
  if (padMask !== undefined) {
    const real = ops.broadcastTo(ops.reshape(ops.ne(padMask, 0), [B, 1, 1, L]), [B, h, nHashes, L]);
    bucket = ops.where(real, bucket!, nBuckets);
    stride = nBuckets + 1;
  }
  const round = ops.iota(qk.graph, [B, h, nHashes, L], 2);
  return ops.add(bucket!, ops.mul(round, stride));
}
