/**
 * `npm run bench -- train [--json] [--quick] [--steps N]`: tokens per second of `reformer train`
 * steps (forward, backward with the memory schedules, gradient clipping, the optimiser update)
 * through the compiled runner on webasm, for the default config (reformer/config.ts
 * defaultRunConfig) and a d=256, L=2048 config. Batches come from the synthetic duplication task
 * (no corpus to load; a step's cost does not depend on the token values). The first step compiles
 * and is not timed; the figure is the median over the timed steps. Then the per-kernel dispatch
 * cost on webasm (`dispatchCost`).
 */
import { defaultRunConfig, type RunConfig } from '../reformer/config.ts';
import { duplicationDataSource } from '../reformer/train/data-source.ts';
import { train } from '../reformer/train/trainer.ts';
import { Graph } from '../compiler/ir/graph.ts';
import { hostTensor } from '../compiler/ir/host-tensor.ts';
import * as P from '../compiler/ir/primitives.ts';
import { createRunner } from '../runtime/compiled-runner.ts';
import { timeIt } from './support/measure.ts';
import type { Suite, SuiteFlags } from './suites.ts';
import { formatTable, machineInfo } from './support/measure.ts';
import { describeThreads, gpujsThreads } from './support/runtimes.ts';

/** d_model 256, L = 2048: the default architecture scaled up (batch 1). */
export const wideLongConfig: RunConfig = {
  model: {
    ...defaultRunConfig.model,
    seqLen: 2048,
    dModel: 256,
    dFF: 512,
    nHeads: 4,
    dHead: 64,
    chunkLen: 64,
    ffChunkLen: 512,
    axialShape: [32, 64],
    axialDims: [128, 128],
  },
  train: { ...defaultRunConfig.train, batchSize: 1 },
};

interface TrainRow {
  readonly config: string;
  readonly tokensPerStep: number;
  readonly steps: number;
  readonly medianStepS: number;
  readonly tokensPerSec: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Runs `timed + 1` steps of `config` (the first compiles) and returns the timed steps' seconds. */
async function stepSeconds(config: RunConfig, timed: number): Promise<number[]> {
  const runner = await createRunner({ backend: 'webasm' });
  const seconds: number[] = [];
  let done = 0;
  try {
    await train({
      // steps and evalEvery past the stopping point: no evaluation, no checkpoint is timed
      config: { ...config, train: { ...config.train, steps: timed + 1000, evalEvery: 1_000_000, checkpointEvery: 1_000_000 } },
      data: duplicationDataSource(config.model.vocabSize),
      runner,
      seed: 1,
      onRecord: (r) => {
        if (r.type !== 'train') return;
        done++;
        if (done > 1 && r.seconds !== undefined) seconds.push(r.seconds);
      },
      shouldStop: () => done >= timed + 1,
    });
  } finally {
    runner.destroy();
  }
  return seconds;
}

/**
 * Per-kernel dispatch cost on webasm: a chain of `kernels` tiny elementwise kernels (each made a
 * buffer of its own) over `cells` elements, as one pipeline; the slope between 1 and 65 kernels is
 * the cost of one more kernel (below 4096 cells the pipeline runs fused-sync, from 4096 on
 * fused-threaded with a barrier between steps). Kernel by kernel (`pipeline: false`) as well.
 */
export async function dispatchCost(cells: number, pipeline: boolean): Promise<{ cells: number; executor: string; msPerKernel: number }> {
  const runner = await createRunner({ backend: 'webasm', pipeline });
  const chain = (kernels: number) => {
    const g = new Graph();
    let y = g.input('x', [cells]);
    for (let i = 0; i < kernels; i++) {
      y = P.binary('mul', y, P.broadcastTo(P.constant(g, 0.999), [cells]));
      g.materialize.add(y.id);
    }
    g.outputs = [y.id];
    return g;
  };
  const feeds = { x: hostTensor([cells], new Float32Array(cells).fill(1)) };
  const [one, many] = [chain(1), chain(65)];
  try {
    const t1 = await timeIt(() => runner.run(one, feeds), 15, 2);
    const t65 = await timeIt(() => runner.run(many, feeds), 15, 2);
    return { cells, executor: runner.stats.executor, msPerKernel: (t65.medianMs - t1.medianMs) / 64 };
  } finally {
    runner.destroy();
  }
}

async function run(flags: SuiteFlags): Promise<unknown> {
  const i = flags.rest.indexOf('--steps');
  const timed = i >= 0 ? Number(flags.rest[i + 1]) : flags.quick ? 2 : 5;
  if (!Number.isInteger(timed) || timed < 1) throw new Error(`bench train: --steps must be a positive integer, got '${flags.rest[i + 1]}'`);
  const configs: Array<[string, RunConfig]> = [['default (d 64, L 128, batch 8)', defaultRunConfig]];
  if (!flags.quick) configs.push(['d 256, L 2048, batch 1', wideLongConfig]);
  const rows: TrainRow[] = [];
  for (const [name, config] of configs) {
    if (!flags.json) process.stderr.write(`  ${name}: ${timed + 1} steps…\n`);
    const s = await stepSeconds(config, timed);
    const tokens = config.train.batchSize * config.model.seqLen;
    rows.push({ config: name, tokensPerStep: tokens, steps: s.length, medianStepS: median(s), tokensPerSec: tokens / median(s) });
  }
  const dispatch = flags.quick ? [] : [await dispatchCost(16, true), await dispatchCost(16384, true), await dispatchCost(16, false)];
  const threads = { gpujs: gpujsThreads() };
  const metrics: Record<string, number> = Object.fromEntries(rows.map((r) => [`train ${r.config} tok/s`, r.tokensPerSec]));
  for (const d of dispatch) metrics[`dispatch ${d.executor} ${d.cells} cells ms/kernel`] = d.msPerKernel;
  const summary = { machine: machineInfo(), threads, rows, dispatch, metrics };
  if (flags.json) {
    console.log(JSON.stringify(summary, null, 2));
    return summary;
  }
  console.log(`train benchmark — ${summary.machine.date}, ${summary.machine.cpu} ×${summary.machine.cores}, node ${summary.machine.node}`);
  console.log(`threads: ${describeThreads(threads)}; median over timed steps after one compiling step; Adam, memory schedules on`);
  console.log(
    formatTable(
      ['config', 'tokens/step', 'timed steps', 'median s/step', 'tokens/s'],
      rows.map((r) => [r.config, String(r.tokensPerStep), String(r.steps), r.medianStepS.toFixed(3), r.tokensPerSec.toFixed(0)]),
    ),
  );
  if (dispatch.length > 0) {
    console.log('dispatch cost of one more kernel (slope of a 1- vs 65-kernel chain, medians of 15 runs):');
    console.log(formatTable(['executor', 'cells', 'ms / kernel'], dispatch.map((d) => [d.executor, String(d.cells), d.msPerKernel.toFixed(3)])));
  }
  return summary;
}

export const trainSuite: Suite = {
  name: 'train',
  description: 'tokens/s of training steps through the compiled runner: default config and d=256, L=2048',
  run,
};
