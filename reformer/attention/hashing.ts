/**
 * Angular LSH (Andoni et al. 2015, as in the Reformer): project each shared query/key vector with a
 * random rotation and take the argmax over [xR, −xR]. Buckets carry per-round offsets, so round r
 * occupies [r·stride, (r+1)·stride) where stride = nb (nb + 1 with a padding mask: padded tokens
 * take the extra bucket nb and so sort to the end of each round).
 */
import { ShapeError, type Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';

/** Shape of the rotations for qk `[B, h, L, dK]`: `[B, h, dK, nHashes, nBuckets / 2]`. */
export function rotationShape(qk: Tensor, nHashes: number, nBuckets: number): number[] {
  const [B, h, , dK] = qk.shape as [number, number, number, number];
  return [B, h, dK, nHashes, nBuckets / 2];
}

/** Standard-normal rotations drawn per (example, head) from a seed and salt. */
export function drawRotations(qk: Tensor, seed: Tensor, salt: number, nHashes: number, nBuckets: number): Tensor {
  return ops.randomNormal(seed, salt, rotationShape(qk, nHashes, nBuckets));
}

export function checkRotations(qk: Tensor, rotations: Tensor, nHashes: number, nBuckets: number): void {
  const want = rotationShape(qk, nHashes, nBuckets);
  const got = rotations.shape;
  if (got.length !== 5 || got.some((d, i) => d !== want[i])) {
    const dkNote = got.length === 5 && got[2] !== want[2] ? ` (rotations have dK=${got[2]}, qk has dK=${want[2]})` : '';
    throw new ShapeError(
      qk.graph.scope,
      `LSH rotations must have shape [B,h,dK,nHashes,nBuckets/2] = [${want.join(',')}], got [${got.join(',')}]${dkNote}`,
    );
  }
}

/**
 * Buckets `[B, h, H, L]` (i32, round offsets included) of qk `[B, h, L, dK]`. No gradient flows
 * through hashing. `padMask` `[B, L]` (i32, nonzero = real token) sends padded tokens to bucket nb.
 */
export function hashBuckets(qk: Tensor, rotations: Tensor, nHashes: number, nBuckets: number, padMask?: Tensor): Tensor {
  checkRotations(qk, rotations, nHashes, nBuckets);
  const [B, h, L, dK] = qk.shape as [number, number, number, number];
  const half = nBuckets / 2;
  const R = ops.reshape(ops.stopGradient(rotations), [B, h, dK, nHashes * half]);
  const rot = ops.matmul(ops.stopGradient(qk), R); // [B,h,L,H·nb/2]
  const perRound = ops.transpose(ops.reshape(rot, [B, h, L, nHashes, half]), [0, 1, 3, 2, 4]);
  let bucket = ops.argmax(ops.concat([perRound, ops.neg(perRound)], 4), 4); // [B,h,H,L]
  let stride = nBuckets;
  if (padMask !== undefined) {
    const real = ops.broadcastTo(ops.reshape(ops.ne(padMask, 0), [B, 1, 1, L]), [B, h, nHashes, L]);
    bucket = ops.where(real, bucket, nBuckets);
    stride = nBuckets + 1;
  }
  const round = ops.iota(qk.graph, [B, h, nHashes, L], 2);
  return ops.add(bucket, ops.mul(round, stride));
}
