/**
 * Shared plumbing for hand-written kernel templates: a template is gpu.js kernel source TEXT plus
 * the settings it needs (output size, return type, loop bound). Keeping it text makes generated
 * kernels diffable and snapshot-testable; `buildKernel` turns it into a callable that always
 * returns a flat Float32Array (Promise, since kernels run under the async contract so the webasm
 * backend may split them across its worker pool).
 */
import type { GPU } from 'gpu.js';
import { flattenResult } from '../../compiler/codegen/flat-output.ts';

/** Everything needed to build one gpu.js kernel from a template. */
export interface KernelSource {
  /** `function(a, b, …) { … }` in the gpu.js kernel dialect. */
  source: string;
  /** gpu.js output size, x first (x is the SIMD lane axis on webasm). */
  output: number[];
  /** Number of floats each thread returns (1 = scalar, 2/4 = `Array(n)`). */
  components: 1 | 2 | 4;
  /** Upper bound on any loop trip count inside the kernel. */
  loopMaxIterations: number;
}

/** A built template: call with flat Float32Array arguments (scalars allowed), get flat floats. */
export type FlatKernel = ((...args: Array<Float32Array | number>) => Promise<Float32Array>) & {
  /** Which gpu.js backend actually ran the last call (`webasm`, `cpu`, …); null before a call. */
  backend(): string | null;
  destroy(): void;
};

/** Formats an integer constant for kernel text (the gpu.js parser types it as Integer). */
export const int = (v: number): string => {
  if (!Number.isInteger(v)) throw new RangeError(`kernel template: expected an integer constant, got ${v}`);
  return String(v);
};

/** Formats a float constant so gpu.js types it as Float (always has a `.` or an exponent). */
export const float = (v: number): string => {
  const s = String(v);
  return /[.eE]/.test(s) || !Number.isFinite(v) ? s : `${s}.0`;
};

/**
 * Builds a kernel from a template. On webasm the stock result shaping builds one subarray per
 * output cell for `Array(n)` returns (millions of objects for a large matmul); we replace it on
 * the backend kernel instance with the identity so the flat buffer comes back as is. Every other
 * backend (or a fallback to cpu) goes through the generic flattening path instead.
 */
export function buildKernel(gpu: GPU, ks: KernelSource): FlatKernel {
  const settings: Record<string, unknown> = {
    output: ks.output,
    loopMaxIterations: Math.max(1, ks.loopMaxIterations),
    asyncMode: true,
    tactic: 'precision',
    precision: 'single',
  };
  if (ks.components > 1) settings.returnType = `Array(${ks.components})`;
  // createKernel accepts source strings at runtime; its typings only admit functions
  const kernel = gpu.createKernel(ks.source as never, settings as never) as unknown as {
    (...args: unknown[]): unknown;
    kernel?: { _shapeOutput?: unknown; constructor: { mode?: string } };
    destroy(): void;
  };
  const expected = ks.output.reduce((p, d) => p * d, 1) * ks.components;
  const run = (async (...args: Array<Float32Array | number>) => {
    const inner = kernel.kernel;
    if (inner && typeof inner._shapeOutput === 'function' && !(inner as { _flatShape?: boolean })._flatShape) {
      inner._shapeOutput = (data: Float32Array) => data;
      (inner as { _flatShape?: boolean })._flatShape = true;
    }
    const result = await kernel(...args);
    const flat = flattenResult(result, expected);
    return flat;
  }) as FlatKernel;
  run.backend = () => kernel.kernel?.constructor.mode ?? null;
  run.destroy = () => kernel.destroy();
  return run;
}
