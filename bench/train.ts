/**
 * `npm run bench -- train [--json] [--quick] [--steps N] [--peer torch]`: tokens per second of
 * `reformer train` steps (forward, backward with the memory schedules, gradient clipping, the
 * optimiser update) through the compiled runner on webasm, for the default config (reformer/config.ts
 * defaultRunConfig) and a d=256, L=2048 config. Batches come from the synthetic duplication task
 * (no corpus to load; a step's cost does not depend on the token values). The first step compiles
 * and is not timed; the figure is the median over the timed steps. `--peer torch` times the same
 * ReformerLM's training step in PyTorch (bench/support/reformer_lm_torch.py) in its own process.
 * Then the per-kernel dispatch cost on webasm (`dispatchCost`).
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
import { peerRequested, runTorchPeer, type TorchPeerOutcome } from './support/torch-peer.ts';

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
  readonly parameters: number;
  readonly tokensPerStep: number;
  readonly steps: number;
  readonly medianStepS: number;
  readonly tokensPerSec: number;
  /** How the runner ran a step: its executor, kernels, and pipelines / standalone (wasm matmul) segments. */
  readonly execution: string;
  /** The same model's step in PyTorch, when the peer ran. */
  readonly torch?: { readonly parameters: number; readonly medianStepS: number; readonly tokensPerSec: number };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Runs `timed + 1` steps of `config` (the first compiles): the timed steps' seconds and the parameter count. */
async function stepSeconds(config: RunConfig, timed: number): Promise<{ seconds: number[]; parameters: number; execution: string }> {
  const runner = await createRunner({ backend: 'webasm' });
  const seconds: number[] = [];
  let done = 0;
  try {
    const result = await train({
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
    let parameters = 0;
    for (const t of result.params.values()) parameters += t.data.length;
    const { executor, kernels } = runner.stats;
    // `--baseline` runs this harness against older commits, whose runner may not report segments.
    const segments = (runner.stats as { readonly segments?: { readonly pipelines: number; readonly standalone: number; readonly threaded?: number } }).segments;
    const threaded = segments?.threaded === undefined ? '' : `, ${segments.threaded} pipelines on a worker pool`;
    const cut = segments === undefined ? '' : `, ${segments.pipelines} pipelines + ${segments.standalone} standalone segments${threaded}`;
    return { seconds, parameters, execution: `${executor}, ${kernels} kernels${cut}` };
  } finally {
    runner.destroy();
  }
}

export interface DispatchCost {
  readonly cells: number;
  readonly executor: string;
  /** Kernels the short and the long chain compiled to. */
  readonly kernels: readonly [number, number];
  /** Slope between the two chains: from their median times, and from their minima (the floor under load). */
  readonly msPerKernelMedian: number;
  readonly msPerKernelMin: number;
}

/**
 * Per-kernel dispatch cost on webasm: a chain of tiny elementwise kernels (each made a buffer of
 * its own) over `cells` elements, run as one graph; the slope between a 1-kernel and a 257-kernel
 * chain is the cost of one more kernel launch, including its `cells` of trivial work. With
 * `pipeline` the runner runs the chain as one gpu.js pipeline (fused-sync below 4096 cells,
 * fused-threaded with a barrier between steps from 4096 on), else kernel by kernel with a host
 * call per kernel.
 */
export async function dispatchCost(cells: number, pipeline: boolean, runs = 21): Promise<DispatchCost> {
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
  try {
    const measure = async (length: number) => {
      const graph = chain(length);
      const t = await timeIt(() => runner.run(graph, feeds), runs, 2);
      return { ...t, kernels: runner.stats.kernels };
    };
    const short = await measure(1);
    const long = await measure(257);
    const extra = long.kernels - short.kernels;
    if (extra <= 0) throw new Error(`bench train: the dispatch chains compiled to ${short.kernels} and ${long.kernels} kernels; fusion merged them`);
    return {
      cells,
      executor: runner.stats.executor,
      kernels: [short.kernels, long.kernels],
      msPerKernelMedian: (long.medianMs - short.medianMs) / extra,
      msPerKernelMin: (long.minMs - short.minMs) / extra,
    };
  } finally {
    runner.destroy();
  }
}

/** The PyTorch peer's step for each config, by config name. */
async function torchSteps(configs: ReadonlyArray<[string, RunConfig]>, timed: number): Promise<TorchPeerOutcome> {
  return runTorchPeer({ suite: 'train', runs: timed, configs: configs.map(([name, c]) => ({ name, model: c.model, train: c.train })) });
}

async function run(flags: SuiteFlags): Promise<unknown> {
  const i = flags.rest.indexOf('--steps');
  const timed = i >= 0 ? Number(flags.rest[i + 1]) : flags.quick ? 2 : 5;
  if (!Number.isInteger(timed) || timed < 1) throw new Error(`bench train: --steps must be a positive integer, got '${flags.rest[i + 1]}'`);
  const configs: Array<[string, RunConfig]> = [['default (d 64, L 128, batch 8)', defaultRunConfig]];
  if (!flags.quick) configs.push(['d 256, L 2048, batch 1', wideLongConfig]);
  const ours: Array<Omit<TrainRow, 'torch'>> = [];
  for (const [name, config] of configs) {
    if (!flags.json) process.stderr.write(`  ${name}: ${timed + 1} steps…\n`);
    const { seconds, parameters, execution } = await stepSeconds(config, timed);
    const tokens = config.train.batchSize * config.model.seqLen;
    ours.push({ config: name, parameters, execution, tokensPerStep: tokens, steps: seconds.length, medianStepS: median(seconds), tokensPerSec: tokens / median(seconds) });
  }
  // ---- PyTorch peer: the same configs in a python process, after ours
  let peer: TorchPeerOutcome | undefined;
  if (peerRequested(flags.rest)) {
    if (!flags.json) process.stderr.write(`  PyTorch peer: ${timed + 1} steps per config…\n`);
    peer = await torchSteps(configs, timed);
  }
  const rows: TrainRow[] = ours.map((r) => {
    const p = peer && 'results' in peer ? peer.results.find((x) => x.op === r.config) : undefined;
    if (p === undefined) return r;
    const parameters = Number(p.parameters);
    return { ...r, torch: { parameters, medianStepS: p.medianMs / 1000, tokensPerSec: r.tokensPerStep / (p.medianMs / 1000) } };
  });
  const dispatch: DispatchCost[] = [];
  if (!flags.quick) for (const cells of [16, 16384]) for (const pipeline of [true, false]) dispatch.push(await dispatchCost(cells, pipeline));
  const threads = { gpujs: gpujsThreads(), ...(peer && 'threads' in peer ? { torch: peer.threads } : {}) };
  const metrics: Record<string, number> = Object.fromEntries(rows.map((r) => [`train ${r.config} tok/s`, r.tokensPerSec]));
  for (const d of dispatch) metrics[`dispatch ${d.executor} ${d.cells} cells ms/kernel`] = d.msPerKernelMin;
  const summary = { machine: machineInfo(), threads, rows, dispatch, torch: peer ?? { skipped: 'not requested (--peer torch)' }, metrics };
  if (flags.json) {
    console.log(JSON.stringify(summary, null, 2));
    return summary;
  }
  console.log(`train benchmark — ${summary.machine.date}, ${summary.machine.cpu} ×${summary.machine.cores}, node ${summary.machine.node}`);
  console.log(`threads: ${describeThreads(threads)}; median over timed steps after one untimed step; memory schedules on`);
  const withPeer = rows.some((r) => r.torch !== undefined);
  const mismatch = (r: TrainRow) => (r.torch !== undefined && r.torch.parameters !== r.parameters ? ' (differs!)' : '');
  console.log(
    formatTable(
      ['config', 'optimizer', 'parameters', 'tokens/step', 'timed steps', 'median s/step', 'tokens/s', ...(withPeer ? ['PyTorch s/step', 'PyTorch tokens/s', 'PyTorch ÷ ours'] : [])],
      rows.map((r, k) => [
        r.config,
        configs[k]![1].train.optimizer,
        `${r.parameters}${r.torch ? ` / ${r.torch.parameters}${mismatch(r)}` : ''}`,
        String(r.tokensPerStep),
        String(r.steps),
        r.medianStepS.toFixed(3),
        r.tokensPerSec.toFixed(0),
        ...(r.torch ? [r.torch.medianStepS.toFixed(3), r.torch.tokensPerSec.toFixed(0), (r.torch.tokensPerSec / r.tokensPerSec).toFixed(2)] : withPeer ? ['', '', ''] : []),
      ]),
    ),
  );
  if (withPeer) console.log('parameters: ours / PyTorch peer; PyTorch ÷ ours: its tokens/s over ours (> 1: PyTorch is faster)');
  // the runner threads at most a few pipelines per graph (runtime/compiled-runner.ts), so say how each step ran
  for (const r of rows) console.log(`${r.config}: ${r.execution}`);
  if (peer !== undefined && 'skipped' in peer) console.log(`PyTorch peer not run: ${peer.skipped}`);
  if (peer !== undefined && 'blas' in peer) console.log(`PyTorch ${peer.version}, ${peer.threads} threads, BLAS: ${peer.blas}`);
  if (dispatch.length > 0) {
    console.log('dispatch cost of one more kernel (slope between a 1- and a 257-kernel chain of elementwise kernels, 21 runs each):');
    console.log(
      formatTable(
        ['executor', 'cells', 'kernels', 'µs / kernel (minima)', 'µs / kernel (medians)'],
        dispatch.map((d) => [d.executor, String(d.cells), d.kernels.join(' / '), (d.msPerKernelMin * 1000).toFixed(2), (d.msPerKernelMedian * 1000).toFixed(2)]),
      ),
    );
  }
  return summary;
}

export const trainSuite: Suite = {
  name: 'train',
  description: 'tokens/s of training steps through the compiled runner: default config and d=256, L=2048',
  run,
};
