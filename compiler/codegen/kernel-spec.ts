/** What a compiled kernel is: its source text, the buffers it reads and writes, its launch shape. */
import type { NodeId } from '../ir/types.ts';
import { printKernel, type Expr, type Kernel } from './kernel-ir.ts';
import type { WasmMatmulShape } from './wasm-matmul.ts';

/** Integers (values, float-typed indices) are exact in float32 up to this magnitude. */
export const FLOAT32_EXACT_INT = 2 ** 24;

/** Wide-mode (i32) kernel indices reach this far. */
export const MAX_ELEMENTS = 2 ** 31 - 1;

/** A buffer key: `%12` for a node's buffer, `k5_argsort.rank` for a kernel's scratch buffer. */
export type BufferKey = string;

export const nodeKey = (id: NodeId): BufferKey => `%${id}`;

export interface KernelSource {
  /** Unique within a compiled graph, e.g. `k3_reduce_sum` or `k5_argsort.rank`. */
  readonly name: string;
  /** The plan group it implements. */
  readonly group: string;
  /** gpu.js kernel source: `function (b0, b3) { ... }`. */
  readonly source: string;
  /** The kernel IR `source` was printed from (absent for the wasm product, whose source is written directly). */
  readonly ir?: Kernel;
  /** Buffers passed as arguments, in parameter order. */
  readonly params: readonly BufferKey[];
  /**
   * Numbers passed after the buffers (where slices and pads cut their axes: the source names them,
   * the values differ between kernels that share it); none when absent.
   */
  readonly scalars?: readonly number[];
  readonly output: BufferKey;
  /** Number of output elements (launch cells × components). */
  readonly size: number;
  /**
   * Values each thread returns: 1, or 4 for a register-tiled matmul product (`Array(4)`, stored
   * cell-major: component c of cell i at 4i + c). gpu.js's fused webasm pipeline cannot pass an
   * `Array(4)` result to another step, so the runtime runs these kernels between pipeline segments.
   */
  readonly components: 1 | 4;
  /**
   * Set for a packed matmul's product that runs as our own WebAssembly SIMD module on webasm
   * (wasm-matmul.ts): `source` computes the same product one dot per thread and carries this shape,
   * and the runtime has gpu.js assemble the module in its place, as an ordinary pipeline step.
   */
  readonly native?: WasmMatmulShape;
  /**
   * gpu.js launch shape, x first; its product times `components` is `size`, and the output is
   * row-major either way. `[size]` except for matmul groups, which launch `[cols, rows]` (see
   * `gridFor`), and packed products (`[cols, rowQuads, batch]`).
   */
  readonly dims: readonly number[];
  /** Largest constant loop bound in the source (gpu.js needs loopMaxIterations above it). */
  readonly loopMax: number;
}

/**
 * A kernel from its writer: the source text with one parameter per buffer read (`[buffer,
 * parameter name]`, in parameter order), the output buffer and the launch shape.
 */
export function kernelSource(spec: {
  readonly name: string;
  readonly group: string;
  readonly writer: { finish(paramNames: readonly string[], result: Expr): Kernel; readonly loopMax: number; readonly scalars: readonly number[] };
  readonly result: Expr;
  readonly reads: ReadonlyArray<readonly [BufferKey, string]>;
  readonly output: BufferKey;
  readonly dims: readonly number[];
}): KernelSource {
  const ir = spec.writer.finish(spec.reads.map(([, name]) => name), spec.result);
  return {
    name: spec.name,
    group: spec.group,
    source: printKernel(ir),
    ir,
    params: spec.reads.map(([key]) => key),
    ...(spec.writer.scalars.length > 0 ? { scalars: [...spec.writer.scalars] } : {}),
    output: spec.output,
    size: spec.dims.reduce((a, b) => a * b, 1),
    dims: spec.dims,
    components: 1,
    loopMax: spec.writer.loopMax,
  };
}
