/** What each runtime in a benchmark runs on: thread counts printed next to every ratio. */
import os from 'node:os';
/** gpu.js's webasm worker pool defaults to hardwareConcurrency workers; a pipeline step splits its cells across them from 4096 cells on. */
export function gpujsThreads(): number {
  return typeof navigator !== 'undefined' && navigator.hardwareConcurrency ? navigator.hardwareConcurrency : os.cpus().length;
}

export interface RuntimeThreads {
  readonly gpujs: number;
  readonly tfjs?: number;
  readonly torch?: number;
}

export function describeThreads(t: RuntimeThreads): string {
  const parts = [`gpu.js webasm ${t.gpujs} worker threads (our wasm matmul products run on them, as pipeline steps)`];
  if (t.tfjs !== undefined) parts.push(`TF.js wasm ${t.tfjs} thread${t.tfjs === 1 ? '' : 's'}`);
  if (t.torch !== undefined) parts.push(`PyTorch ${t.torch} thread${t.torch === 1 ? '' : 's'}`);
  return parts.join(', ');
}
