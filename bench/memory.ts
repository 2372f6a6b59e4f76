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
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InitKey, spec } from '../dsl/index.ts';
import { graphPeakBytes, savedActivationBytes } from '../compiler/grad/saved.ts';
import { defaultRunConfig, validateRunConfig, type RunConfig } from '../reformer/config.ts';
import { buildModel } from '../reformer/model.ts';
import { trainObjective } from '../reformer/train/objective.ts';
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

/** The planned peak of one training graph and its parameter + gradient part. */
function plannedPeak(cfg: RunConfig, memorySchedules: boolean, runner: CompiledRunner): { peak: number; paramsAndGrads: number } {
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
  return { peak: memory.peakBytes, paramsAndGrads };
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

export async function runMemoryBench(flags: { json?: boolean; quick?: boolean }): Promise<{ config: object; graphs: GraphRow[]; train: TrainRow[] }> {
  const L = flags.quick ? 512 : 2048;
  const depths = flags.quick ? [2, 6] : [2, 6, 12];
  const log = (m: string) => {
    if (!flags.json) process.stderr.write(`  ${m}\n`);
  };
  const graphs = graphRows(L, [1, 2, 6, 12]);
  const runner = await CompiledRunner.create({ backend: 'webasm' });
  const train: TrainRow[] = [];
  for (const depth of depths) {
    const cfg = memoryBenchConfig(depth, L, 3);
    for (const memorySchedules of [true, false]) {
      const planned = plannedPeak(cfg, memorySchedules, runner);
      const { rss, stepSeconds } = await trainProcess(cfg, memorySchedules);
      const row: TrainRow = { depth, path: memorySchedules ? 'scheduled' : 'plain', plannedPeakBytes: planned.peak, plannedParamsAndGradsBytes: planned.paramsAndGrads, peakRssBytes: rss, stepSeconds };
      train.push(row);
      log(`depth ${depth} ${row.path}: planned ${MiB(planned.peak)} MiB (${plannedSplit(row)}), RSS ${MiB(rss)} MiB, ${stepSeconds.toFixed(2)} s/step`);
    }
  }
  const config = { L, dModel: 128, dFF: 512, heads: 4, attention: 'lsh (2 hashes, chunk 64)', ffChunkLen: Math.min(256, L / 2), batch: 1, backend: 'webasm', threads: os.cpus().length };
  if (flags.json) {
    console.log(JSON.stringify({ config, graphs, train }, null, 2));
  } else {
    console.log(`memory: L=${L}, d_model 128, d_ff 512, LSH + chunked FF, batch 1; gpu.js webasm (${config.threads} threads)\n`);
    console.log('training graph, static (MiB; saved = forward values the backward reads, parameters excluded):');
    console.log(
      formatTable(
        ['depth', 'saved scheduled', 'saved plain', 'node-order peak scheduled', 'node-order peak plain'],
        graphs.map((r) => [String(r.depth), MiB(r.savedScheduled), MiB(r.savedPlain), MiB(r.peakScheduled), MiB(r.peakPlain)]),
      ),
    );
    console.log('\none `reformer train` process per cell (3 steps; step time = median of steps 2-3; planned peak = parameters + their gradients + the rest):');
    const rows = depths.map((depth) => {
      const s = train.find((r) => r.depth === depth && r.path === 'scheduled')!;
      const p = train.find((r) => r.depth === depth && r.path === 'plain')!;
      return [String(depth), MiB(s.plannedPeakBytes), plannedSplit(s), MiB(p.plannedPeakBytes), plannedSplit(p), MiB(s.peakRssBytes), MiB(p.peakRssBytes), s.stepSeconds.toFixed(2), p.stepSeconds.toFixed(2), (s.stepSeconds / p.stepSeconds).toFixed(2)];
    });
    console.log(
      formatTable(['depth', 'planned scheduled', 'params+grads / rest', 'planned plain', 'params+grads / rest', 'RSS scheduled', 'RSS plain', 's/step scheduled', 's/step plain', 'time ratio'], rows),
    );
    const scheduled = train.filter((r) => r.path === 'scheduled');
    if (scheduled.length >= 2) {
      const a = scheduled[0]!;
      const b = scheduled[scheduled.length - 1]!;
      const growth = (from: number, to: number) => `${(((to - from) / from) * 100).toFixed(1)}%`;
      const rest = (r: TrainRow) => r.plannedPeakBytes - r.plannedParamsAndGradsBytes;
      console.log(
        `\nscheduled, depth ${a.depth} → ${b.depth}: planned peak ${growth(a.plannedPeakBytes, b.plannedPeakBytes)} ` +
          `(params+grads ${growth(a.plannedParamsAndGradsBytes, b.plannedParamsAndGradsBytes)}, rest ${growth(rest(a), rest(b))}), RSS ${growth(a.peakRssBytes, b.peakRssBytes)}`,
      );
    }
  }
  return { config, graphs, train };
}

/** `params+grads / rest` of a row's planned peak, in MiB. */
function plannedSplit(r: TrainRow): string {
  return `${MiB(r.plannedParamsAndGradsBytes)} / ${MiB(r.plannedPeakBytes - r.plannedParamsAndGradsBytes)}`;
}

export const memorySuite: Suite = {
  name: 'memory',
  description: 'training memory and step time: memory schedules (reversible, chunked) vs plain backprop, by depth',
  run: (flags: SuiteFlags) => runMemoryBench(flags),
};
