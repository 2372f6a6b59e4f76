/**
 * `npm run bench -- memory [--json] [--quick]`: memory of training with the memory schedules (the
 * path `reformer train` runs) side by side with plain backprop of the same graphs (`--no-reversible`).
 *
 * - graphs: bytes the backward keeps from the forward (saved activations, parameters excluded)
 *   and the node-order peak of one training graph, at depth 1–12 (static shapes, no evaluation);
 * - train: one real `reformer train` process per depth and path (webasm, L = 2048, d_model 128,
 *   LSH attention + chunked feed-forward, batch 1): the compiled runner's planned peak for the
 *   training graph, split into what the step holds by nature (parameters and the parameter
 *   gradients written by then) and the rest (activations, masks, workspace), the measured peak RSS
 *   of the whole process, and the median time of the steps after the first (which compiles). The
 *   optimiser state lives in the trainer's host arrays, outside the planned graph.
 * - planned: the same planned peak and split for longer sequences (L = 2048, 8192, 16384) at depth
 *   2/6/12, from compiling the training graphs only (no run, so no RSS): where activations
 *   outweigh parameters, how flat the scheduled peak stays in depth.
 *
 * - cpu: the CPU time of the same training steps run in this process (the trainer's step on the
 *   compiled runner), scheduled then plain at each depth: the step-time ratio that other jobs on
 *   the cores distort least.
 *
 * `--depths 6,12` picks the trained depths; `--no-rss` skips the `reformer train` processes (the
 * cpu part only); `--no-train` prints the static tables only.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InitKey, spec } from '../dsl/index.ts';
import { flattenParams } from '../dsl/layer.ts';
import { graphPeakBytes, savedActivationBytes } from '../compiler/grad/saved.ts';
import { defaultRunConfig, validateRunConfig, type RunConfig } from '../reformer/config.ts';
import { buildModel } from '../reformer/model.ts';
import { runTrainStep, trainObjective } from '../reformer/train/objective.ts';
import { CompiledRunner } from '../runtime/compiled-runner.ts';
import { BYTES_PER_ELEMENT } from '../runtime/memory-plan.ts';
import { sizeOf, type NodeId } from '../compiler/ir/types.ts';
import type { Suite, SuiteFlags } from './suites.ts';
import { formatTable } from './support/measure.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MiB = (b: number) => (b / 2 ** 20).toFixed(1);

/** The benchmarked model: LSH attention in every layer, chunked feed-forward. */
export function memoryBenchConfig(nLayers: number, L: number, steps: number): RunConfig {
  return validateRunConfig({
    model: {
      ...defaultRunConfig.model,
      seqLen: L,
      dModel: 128,
      dFF: 512,
      nHeads: 4,
      dHead: 32,
      nLayers,
      attention: ['lsh'],
      nHashes: 2,
      chunkLen: 64,
      ffChunkLen: Math.min(256, L / 2),
      axialShape: [L / 32, 32],
      axialDims: [64, 64],
    },
    train: { ...defaultRunConfig.train, batchSize: 1, steps, warmupSteps: 1, evalEvery: 1_000_000, evalBatches: 1, checkpointEvery: 1_000_000 },
  });
}

interface GraphRow {
  depth: number;
  savedScheduled: number;
  savedPlain: number;
  peakScheduled: number;
  peakPlain: number;
}

function graphRows(L: number, depths: readonly number[]): GraphRow[] {
  return depths.map((depth) => {
    const cfg = memoryBenchConfig(depth, L, 1);
    const model = buildModel(cfg.model);
    const params = model.init(new InitKey(0), [spec([1, L], 'i32')]);
    const at = (memorySchedules: boolean) => {
      const o = trainObjective(model, params, 1, L, { memorySchedules });
      return { saved: savedActivationBytes(o.graph, o.forwardCount), peak: graphPeakBytes(o.graph) };
    };
    const s = at(true);
    const p = at(false);
    return { depth, savedScheduled: s.saved, savedPlain: p.saved, peakScheduled: s.peak, peakPlain: p.peak };
  });
}

interface TrainRow {
  depth: number;
  path: 'scheduled' | 'plain';
  plannedPeakBytes: number;
  /** Of the planned peak: parameters, and the parameter gradients written by the peak's kernel. */
  plannedParamsAndGradsBytes: number;
  peakRssBytes: number;
  stepSeconds: number;
}

/** The planned peak of one training graph, its parameter + gradient part, and the seconds tracing, differentiating and compiling took. */
function plannedPeak(cfg: RunConfig, memorySchedules: boolean, runner: CompiledRunner): { peak: number; paramsAndGrads: number; compileSeconds: number } {
  const started = performance.now();
  const model = buildModel(cfg.model);
  const params = model.init(new InitKey(0), [spec([1, cfg.model.seqLen], 'i32')]);
  const o = trainObjective(model, params, 1, cfg.model.seqLen, { memorySchedules });
  const { compiled, memory } = runner.compiled(o.graph);
  const bytes = (id: NodeId) => sizeOf(o.graph.node(id).shape) * BYTES_PER_ELEMENT;
  let paramsAndGrads = 0;
  for (const [id, source] of compiled.plan.buffers) {
    const n = o.graph.node(id);
    if (source === 'input' && n.op === 'input' && n.role === 'param') paramsAndGrads += bytes(id);
  }
  // Gradients are wanted outputs: alive from the kernel that writes them to the end.
  const writtenBy = new Map(compiled.kernels.map((k, i) => [k.output, i]));
  for (const id of new Set(o.graph.outputs.slice(1))) {
    const at = writtenBy.get(`%${id}`);
    if (at !== undefined && at <= memory.peakKernel) paramsAndGrads += bytes(id);
  }
  return { peak: memory.peakBytes, paramsAndGrads, compileSeconds: (performance.now() - started) / 1000 };
}

interface PlannedRow {
  L: number;
  depth: number;
  scheduled: ReturnType<typeof plannedPeak>;
  plain: ReturnType<typeof plannedPeak>;
}

/** Planned peaks from compiling the training graphs of both paths (nothing runs). */
async function plannedRows(lengths: readonly number[], depths: readonly number[], log: (m: string) => void): Promise<PlannedRow[]> {
  const rows: PlannedRow[] = [];
  for (const L of lengths) {
    // one runner per length: its kernel cache (thousands of sources at L = 16384) dies with it
    const runner = await CompiledRunner.create({ backend: 'webasm' });
    try {
      for (const depth of depths) {
        const cfg = memoryBenchConfig(depth, L, 1);
        const row = { L, depth, scheduled: plannedPeak(cfg, true, runner), plain: plannedPeak(cfg, false, runner) };
        rows.push(row);
        log(`planned L=${L} depth ${depth}: scheduled ${MiB(row.scheduled.peak)} MiB, plain ${MiB(row.plain.peak)} MiB (compiled in ${row.scheduled.compileSeconds.toFixed(1)} / ${row.plain.compileSeconds.toFixed(1)} s)`);
      }
    } finally {
      runner.destroy();
    }
  }
  return rows;
}

interface CpuRow {
  depth: number;
  path: 'scheduled' | 'plain';
  /** Process CPU seconds of one training step (mean of steps 2-3; step 1 compiles). */
  cpuSeconds: number;
  /** Wall seconds of the same steps. */
  wallSeconds: number;
}

/**
 * CPU time of the trainer's step (runTrainStep on a webasm compiled runner, as `reformer train`
 * runs it; the optimiser update, host arrays, is left out) in this process. Process CPU time
 * counts the work and not the waiting, so other jobs on the cores move it far less than the
 * wall time of the `reformer train` processes.
 */
async function stepCpu(cfg: RunConfig, memorySchedules: boolean): Promise<{ cpuSeconds: number; wallSeconds: number }> {
  const L = cfg.model.seqLen;
  const model = buildModel(cfg.model);
  const tree = model.init(new InitKey(0), [spec([1, L], 'i32')]);
  const params = new Map(flattenParams(tree));
  const objective = trainObjective(model, tree, 1, L, { memorySchedules });
  const batch = {
    tokens: { shape: [1, L], dtype: 'i32' as const, data: Int32Array.from({ length: L }, (_, i) => (i * 7919) % 256) },
    weights: { shape: [1, L], dtype: 'f32' as const, data: new Float32Array(L).fill(1) },
  };
  const runner = await CompiledRunner.create({ backend: 'webasm' });
  const cpu: number[] = [];
  const wall: number[] = [];
  try {
    for (let step = 0; step < 3; step++) {
      const [c0, w0] = [process.cpuUsage(), performance.now()];
      await runTrainStep(runner, objective, params, batch, step + 1);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1e6);
      wall.push((performance.now() - w0) / 1000);
    }
  } finally {
    runner.destroy();
  }
  const afterFirst = (xs: readonly number[]) => (xs[1]! + xs[2]!) / 2;
  return { cpuSeconds: afterFirst(cpu), wallSeconds: afterFirst(wall) };
}

/** Runs `reformer train` in a child process; returns its peak RSS and the median step time after the first. */
async function trainProcess(cfg: RunConfig, memorySchedules: boolean): Promise<{ rss: number; stepSeconds: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'reformer-bench-memory-'));
  try {
    const config = path.join(dir, 'config.json');
    writeFileSync(config, JSON.stringify(cfg));
    const out = path.join(dir, 'run');
    const args = ['--import', path.join(root, 'bench/support/report-rss.mjs'), path.join(root, 'bin/reformer.js'), 'train', '--config', config, '--out', out, '--backend', 'webasm', '--no-progress'];
    if (!memorySchedules) args.push('--no-reversible');
    const stderr = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(err) : reject(new Error(`reformer train exited ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`))));
    });
    const kb = Number(/PEAK_RSS_KB=(\d+)/.exec(stderr)?.[1]);
    const steps = readFileSync(path.join(out, 'run-log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { type: string; step: number; seconds?: number })
      .filter((r) => r.type === 'train' && r.step > 1)
      .map((r) => r.seconds ?? NaN)
      .sort((a, b) => a - b);
    return { rss: kb * 1024, stepSeconds: steps[steps.length >> 1] ?? NaN };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `--depths 6,12`: the trained depths (default 2, 6, 12; `--quick`: 2, 6). */
function depthsFlag(rest: readonly string[], fallback: readonly number[]): readonly number[] {
  const i = rest.indexOf('--depths');
  if (i < 0) return fallback;
  const depths = (rest[i + 1] ?? '').split(',').map(Number);
  if (depths.length === 0 || depths.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`bench memory: --depths needs positive integers like 6,12, got '${rest[i + 1] ?? ''}'`);
  return depths;
}

const growth = (from: number, to: number) => `${(((to - from) / from) * 100).toFixed(1)}%`;

export async function runMemoryBench(flags: { json?: boolean; quick?: boolean; rest?: readonly string[] }): Promise<{ config: object; graphs: GraphRow[]; planned: PlannedRow[]; train: TrainRow[]; cpu: CpuRow[] }> {
  const rest = flags.rest ?? [];
  const L = flags.quick ? 512 : 2048;
  const depths = rest.includes('--no-train') ? [] : depthsFlag(rest, flags.quick ? [2, 6] : [2, 6, 12]);
  const log = (m: string) => {
    if (!flags.json) process.stderr.write(`  ${m}\n`);
  };
  const graphs = graphRows(L, [1, 2, 6, 12]);
  const planned = await plannedRows(flags.quick ? [2048, 8192] : [2048, 8192, 16384], flags.quick ? [2, 12] : [2, 6, 12], log);
  const runner = await CompiledRunner.create({ backend: 'webasm' });
  const train: TrainRow[] = [];
  const cpu: CpuRow[] = [];
  for (const depth of depths) {
    const cfg = memoryBenchConfig(depth, L, 3);
    for (const memorySchedules of rest.includes('--no-rss') ? [] : [true, false]) {
      const which = memorySchedules ? 'scheduled' : 'plain';
      const plan = plannedPeak(cfg, memorySchedules, runner);
      const { rss, stepSeconds } = await trainProcess(cfg, memorySchedules);
      const row: TrainRow = { depth, path: which, plannedPeakBytes: plan.peak, plannedParamsAndGradsBytes: plan.paramsAndGrads, peakRssBytes: rss, stepSeconds };
      train.push(row);
      log(`depth ${depth} ${which}: planned ${MiB(plan.peak)} MiB (${plannedSplit(row.plannedPeakBytes, row.plannedParamsAndGradsBytes)}), RSS ${MiB(rss)} MiB, ${stepSeconds.toFixed(2)} s/step`);
    }
    for (const memorySchedules of [true, false]) {
      const row: CpuRow = { depth, path: memorySchedules ? 'scheduled' : 'plain', ...(await stepCpu(cfg, memorySchedules)) };
      cpu.push(row);
      log(`depth ${depth} ${row.path}: ${row.cpuSeconds.toFixed(2)} CPU s/step, ${row.wallSeconds.toFixed(2)} wall s/step in process`);
    }
  }
  runner.destroy();
  const config = { L, dModel: 128, dFF: 512, heads: 4, attention: 'lsh (2 hashes, chunk 64)', ffChunkLen: Math.min(256, L / 2), batch: 1, backend: 'webasm', threads: os.cpus().length };
  if (flags.json) {
    console.log(JSON.stringify({ config, graphs, planned, train, cpu }, null, 2));
    return { config, graphs, planned, train, cpu };
  }
  console.log(`memory: L=${L}, d_model 128, d_ff 512, LSH + chunked FF, batch 1; gpu.js webasm (${config.threads} threads)\n`);
  console.log('training graph, static (MiB; saved = forward values the backward reads, parameters excluded):');
  console.log(
    formatTable(
      ['depth', 'saved scheduled', 'saved plain', 'node-order peak scheduled', 'node-order peak plain'],
      graphs.map((r) => [String(r.depth), MiB(r.savedScheduled), MiB(r.savedPlain), MiB(r.peakScheduled), MiB(r.peakPlain)]),
    ),
  );
  printPlanned(planned);
  if (train.length > 0) printTrain(train, depths);
  if (cpu.length > 0) printCpu(cpu, depths);
  return { config, graphs, planned, train, cpu };
}

/** The compile-only table: planned peaks by length and depth, and the scheduled growth from the least to the most layers. */
function printPlanned(planned: readonly PlannedRow[]): void {
  console.log('\nplanned peak of the training graph by length (compiled memory plan only, nothing runs: planned, not measured RSS; MiB, params+grads / rest):');
  console.log(
    formatTable(
      ['L', 'depth', 'planned scheduled', 'params+grads / rest', 'planned plain', 'params+grads / rest', 'compile s scheduled / plain'],
      planned.map((r) => [
        String(r.L),
        String(r.depth),
        MiB(r.scheduled.peak),
        plannedSplit(r.scheduled.peak, r.scheduled.paramsAndGrads),
        MiB(r.plain.peak),
        plannedSplit(r.plain.peak, r.plain.paramsAndGrads),
        `${r.scheduled.compileSeconds.toFixed(1)} / ${r.plain.compileSeconds.toFixed(1)}`,
      ]),
    ),
  );
  for (const L of new Set(planned.map((r) => r.L))) {
    const rows = planned.filter((r) => r.L === L);
    const [a, b] = [rows[0]!, rows[rows.length - 1]!];
    const up = (b.scheduled.peak - a.scheduled.peak) / a.scheduled.peak;
    console.log(`L=${L}, scheduled planned peak, depth ${a.depth} → ${b.depth}: ${growth(a.scheduled.peak, b.scheduled.peak)} (${up <= 0.15 ? 'within' : 'over'} 15%); plain ${growth(a.plain.peak, b.plain.peak)}`);
  }
}

/** The training table: one `reformer train` process per depth and path. */
function printTrain(train: readonly TrainRow[], depths: readonly number[]): void {
  console.log('\none `reformer train` process per cell (3 steps; step time = median of steps 2-3; planned peak = parameters + their gradients + the rest):');
  const rows = depths.map((depth) => {
    const s = train.find((r) => r.depth === depth && r.path === 'scheduled')!;
    const p = train.find((r) => r.depth === depth && r.path === 'plain')!;
    return [
      String(depth),
      MiB(s.plannedPeakBytes),
      plannedSplit(s.plannedPeakBytes, s.plannedParamsAndGradsBytes),
      MiB(p.plannedPeakBytes),
      plannedSplit(p.plannedPeakBytes, p.plannedParamsAndGradsBytes),
      MiB(s.peakRssBytes),
      MiB(p.peakRssBytes),
      s.stepSeconds.toFixed(2),
      p.stepSeconds.toFixed(2),
      (s.stepSeconds / p.stepSeconds).toFixed(2),
    ];
  });
  console.log(formatTable(['depth', 'planned scheduled', 'params+grads / rest', 'planned plain', 'params+grads / rest', 'RSS scheduled', 'RSS plain', 's/step scheduled', 's/step plain', 'time ratio'], rows));
  const scheduled = train.filter((r) => r.path === 'scheduled');
  if (scheduled.length < 2) return;
  const [a, b] = [scheduled[0]!, scheduled[scheduled.length - 1]!];
  const rest = (r: TrainRow) => r.plannedPeakBytes - r.plannedParamsAndGradsBytes;
  console.log(
    `\nscheduled, depth ${a.depth} → ${b.depth}: planned peak ${growth(a.plannedPeakBytes, b.plannedPeakBytes)} ` +
      `(params+grads ${growth(a.plannedParamsAndGradsBytes, b.plannedParamsAndGradsBytes)}, rest ${growth(rest(a), rest(b))}), RSS ${growth(a.peakRssBytes, b.peakRssBytes)}`,
  );
}

/** The in-process table: CPU and wall seconds per step, and the scheduled / plain ratio of each. */
function printCpu(cpu: readonly CpuRow[], depths: readonly number[]): void {
  console.log('\nthe training step in this process, scheduled and plain one after the other (mean of steps 2-3; CPU = process CPU time):');
  const rows = depths.map((depth) => {
    const s = cpu.find((r) => r.depth === depth && r.path === 'scheduled')!;
    const p = cpu.find((r) => r.depth === depth && r.path === 'plain')!;
    return [String(depth), s.cpuSeconds.toFixed(2), p.cpuSeconds.toFixed(2), (s.cpuSeconds / p.cpuSeconds).toFixed(2), s.wallSeconds.toFixed(2), p.wallSeconds.toFixed(2), (s.wallSeconds / p.wallSeconds).toFixed(2)];
  });
  console.log(formatTable(['depth', 'CPU s scheduled', 'CPU s plain', 'CPU ratio', 'wall s scheduled', 'wall s plain', 'wall ratio'], rows));
}

/** `params+grads / rest` of a planned peak, in MiB. */
function plannedSplit(peak: number, paramsAndGrads: number): string {
  return `${MiB(paramsAndGrads)} / ${MiB(peak - paramsAndGrads)}`;
}

export const memorySuite: Suite = {
  name: 'memory',
  description: 'training memory and step time: memory schedules (reversible, chunked) vs plain backprop, by depth',
  run: (flags: SuiteFlags) => runMemoryBench(flags),
};
