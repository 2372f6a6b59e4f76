/**
 * `npm run bench -- train [--json] [--quick] [--steps N]`: tokens per second of `reformer train`
 * steps (forward, backward with the memory schedules, gradient clipping, the optimiser update)
 * through the compiled runner on webasm, for the default config (reformer/config.ts
 * defaultRunConfig) and a d=256, L=2048 config. Batches come from the synthetic duplication task
 * (no corpus to load; a step's cost does not depend on the token values). The first step compiles
 * and is not timed; the figure is the median over the timed steps.
 */
import { defaultRunConfig, type RunConfig } from '../reformer/config.ts';
import { duplicationDataSource } from '../reformer/train/data-source.ts';
import { train } from '../reformer/train/trainer.ts';
import { createRunner } from '../runtime/compiled-runner.ts';
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
  const threads = { gpujs: gpujsThreads() };
  const metrics = Object.fromEntries(rows.map((r) => [`train ${r.config} tok/s`, r.tokensPerSec]));
  const summary = { machine: machineInfo(), threads, rows, metrics };
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
  return summary;
}

export const trainSuite: Suite = {
  name: 'train',
  description: 'tokens/s of training steps through the compiled runner: default config and d=256, L=2048',
  run,
};
