/** What each runtime in a benchmark runs on: thread counts printed next to every ratio. */
import os from 'node:os';
import type { MatmulThreading } from '../../compiler/codegen/wasm-matmul-threads.ts';

// imported at run time: a --baseline checkout of an older tree may not have the threaded product
const matmulThreading: MatmulThreading | undefined = await import('../../compiler/codegen/wasm-matmul-threads.ts').then(
  (m) => m.matmulThreading(),
  () => undefined,
);

/** Threads our wasm SIMD matmul products run on (calling thread + helpers), and why only one when so; undefined in a tree without them. */
export function wasmMatmulThreads(): MatmulThreading | undefined {
  return matmulThreading;
}

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
  const parts = [`gpu.js webasm ${t.gpujs} worker threads`];
  if (matmulThreading !== undefined) {
    const { threads, reason } = matmulThreading;
    parts.push(`our wasm matmul products ${threads} thread${threads === 1 ? '' : 's'}${reason ? ` (${reason})` : ''}`);
  }
  if (t.tfjs !== undefined) parts.push(`TF.js wasm ${t.tfjs} thread${t.tfjs === 1 ? '' : 's'}`);
  if (t.torch !== undefined) parts.push(`PyTorch ${t.torch} thread${t.torch === 1 ? '' : 's'}`);
  return parts.join(', ');
}
