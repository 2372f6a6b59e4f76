/** The shape of a wasm SIMD product of [batch][m][k]·[batch][k][n], padded to whole 4×8 tiles. */
import type { WasmMatmulShape } from '../../compiler/codegen/wasm-matmul.ts';

/** Plain (row-major) operands by default, or operands already packed by pack kernels. */
export const shapeOf = (batch: number, m: number, k: number, n: number, packed = false): WasmMatmulShape => ({
  batch,
  m,
  mPad: 4 * Math.ceil(m / 4),
  k,
  n,
  nPad: 8 * Math.ceil(n / 8),
  packedA: packed,
  packedB: packed,
});
