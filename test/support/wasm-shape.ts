/** Shapes of the wasm SIMD product, and the product run as its module over a fresh memory. */
import { productCells, productModule, type ALayout, type BLayout, type WasmMatmulShape } from '../../compiler/codegen/wasm-matmul.ts';

/** [batch][m][k]·[batch][k][n] padded to whole 4×8 tiles; row-major operands by default. */
export const shapeOf = (batch: number, m: number, k: number, n: number, a: ALayout = 'rows', b: BLayout = 'rows'): WasmMatmulShape => ({
  batch,
  m,
  mPad: 4 * Math.ceil(m / 4),
  k,
  n,
  nPad: 8 * Math.ceil(n / 8),
  a,
  b,
});

/**
 * Runs the module as gpu.js's pipeline would: operands and result at 16-byte-aligned offsets of
 * one memory (with gpu.js's 16 slack pages), `run` once per cell range (default: all cells at
 * once). The memory starts NaN-filled, so anything the module reads out of place shows.
 */
export function runProductModule(s: WasmMatmulShape, a: ArrayLike<number>, b: ArrayLike<number>, ranges?: ReadonlyArray<readonly [number, number]>): Float32Array {
  const cells = productCells(s);
  const align = (x: number) => Math.ceil(x / 16) * 16;
  const at = { a: 0, b: align(a.length * 4), c: 0 };
  at.c = align(at.b + b.length * 4);
  const pages = Math.ceil((at.c + cells * 4) / 65536) + 16;
  const memory = new WebAssembly.Memory({ initial: pages });
  const f32 = new Float32Array(memory.buffer);
  f32.fill(NaN);
  f32.set(a, at.a / 4);
  f32.set(b, at.b / 4);
  const module = new WebAssembly.Module(productModule(s, at, false));
  const run = new WebAssembly.Instance(module, { env: { memory } }).exports.run as (start: number, end: number, seed: number) => void;
  for (const [start, end] of ranges ?? [[0, cells]]) run(start, end, 0);
  return f32.slice(at.c / 4, at.c / 4 + cells);
}
