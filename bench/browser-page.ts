/**
 * The workloads of the `browser` bench suite, runnable both in a page (this file is the entry of
 * the page bundle; it publishes `window.reformerBench`) and in Node (bench/browser.ts imports
 * `runWorkload`). Only the core is imported: no Node built-ins.
 */
import { flattenParams, InitKey, spec } from '../dsl/layer.ts';
import { hostTensor } from '../compiler/ir/host-tensor.ts';
import { lshAttention } from '../reformer/attention/api.ts';
import { validateRunConfig } from '../reformer/config.ts';
import { buildModel } from '../reformer/model.ts';
import { runTrainStep, trainObjective, type Batch } from '../reformer/train/objective.ts';
import type { ConcreteBackend } from '../runtime/backend.ts';
import { CompiledRunner } from '../runtime/compiled-runner.ts';

export type WorkloadName = 'train-step' | 'lsh-layer';

export interface WorkloadResult {
  readonly workload: WorkloadName;
  readonly backend: ConcreteBackend;
  /** What ran, e.g. `gpu.js webgpu (fused-encoder)`. */
  readonly description: string;
  /** The first call: kernel compilation plus one run. */
  readonly firstMs: number;
  readonly medianMs: number;
  readonly minMs: number;
  readonly runs: number;
  /** Result checksum (loss, or Σ output), so runtimes can be seen to compute the same thing. */
  readonly value: number;
  /** Logical processors the runtime reports (navigator.hardwareConcurrency or os.cpus()). */
  readonly cores: number;
}

/** A ReformerLM training step (L=64, d=64, 2 layers local+LSH, batch 4) and its sizes. */
export const TRAIN_STEP = {
  model: {
    seqLen: 64, dModel: 64, dFF: 128, nHeads: 2, dHead: 32, nLayers: 2, attention: ['local', 'lsh'], nHashes: 2,
    chunkLen: 16, ffChunkLen: 32, axialShape: [8, 8], axialDims: [32, 32], dropout: 0.05,
  },
  batchSize: 4,
} as const;

/** One LSH attention layer forward (causal, 2 hashes): [batch, heads, L, dK]. */
export const LSH_LAYER = { shape: [1, 2, 512, 32] as [number, number, number, number], nHashes: 2, chunkLen: 64, causal: true };

function lcgArray(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    return ((s >>> 8) & 0xffff) / 0x8000 - 1;
  });
}

function trainStepWorkload(): (runner: CompiledRunner) => Promise<number> {
  const config = validateRunConfig({ model: TRAIN_STEP.model, train: { batchSize: TRAIN_STEP.batchSize } });
  const L = config.model.seqLen;
  const B = TRAIN_STEP.batchSize;
  const model = buildModel(config.model);
  const tree = model.init(new InitKey(1), [spec([B, L], 'i32')]);
  const params = new Map(flattenParams(tree));
  const objective = trainObjective(model, tree, B, L);
  const tokens = Int32Array.from({ length: B * L }, (_, i) => 2 + ((i * 37 + (i >> 3)) % 96));
  const batch: Batch = { tokens: { shape: [B, L], dtype: 'i32', data: tokens }, weights: hostTensor([B, L], new Float64Array(B * L).fill(1)) };
  return async (runner) => (await runTrainStep(runner, objective, params, batch, 12345)).loss;
}

function lshWorkload(): (runner: CompiledRunner) => Promise<number> {
  const [B, h, L, dK] = LSH_LAYER.shape;
  const qk = lcgArray(B * h * L * dK, 3);
  const v = lcgArray(B * h * L * dK, 4);
  return async (runner) => {
    const r = await lshAttention(qk, v, { ...LSH_LAYER, seed: 5, runner });
    return r.output.reduce((a, b) => a + b, 0);
  };
}

/** Runs `workload` on a fresh runner for `backend`: one first call, then `runs` timed calls. */
export async function runWorkload(workload: WorkloadName, backend: ConcreteBackend, runs: number, cores: number): Promise<WorkloadResult> {
  const step = workload === 'train-step' ? trainStepWorkload() : lshWorkload();
  const runner = await CompiledRunner.create({ backend });
  try {
    let t = performance.now();
    let value = await step(runner);
    const firstMs = performance.now() - t;
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      t = performance.now();
      value = await step(runner);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const mid = times.length >> 1;
    const medianMs = times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
    return { workload, backend, description: runner.description, firstMs, medianMs, minMs: times[0]!, runs, value, cores };
  } finally {
    runner.destroy();
  }
}

if (typeof document !== 'undefined') {
  (globalThis as { reformerBench?: unknown }).reformerBench = {
    run: (workload: WorkloadName, backend: ConcreteBackend, runs: number) => runWorkload(workload, backend, runs, navigator.hardwareConcurrency),
  };
  document.title = 'reformer-ts bench: ready';
}
