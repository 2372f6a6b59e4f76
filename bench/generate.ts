/**
 * `npm run bench -- generate [--json] [--quick]`: bytes per second of sampling from the default
 * ReformerLM architecture (2 layers, d 64, local + LSH attention) at L = 128 / 512 / 2048, on the
 * compiled runner (webasm): the incremental path that `reformer generate` and the API use, and,
 * side by side in the same run, the whole-window reference (every byte reruns the whole window,
 * measured on a few bytes). Parameters are random: a step's cost does not depend on their values.
 * Each path runs once untimed first (a 20-byte prompt and one byte: it compiles the step and block
 * graphs; reported apart), then the timed runs repeat,
 * interleaved; the table gives the best and the median run. A run with an L/2-byte prompt and one
 * byte measures decoding a prompt; at L = 128 a longer run crosses window slides (every L/2 bytes
 * the last L/2 are decoded again).
 */
import { InitKey, flattenParams } from '../dsl/layer.ts';
import { defaultRunConfig, type ModelConfig } from '../reformer/config.ts';
import { generateWholeWindow } from '../reformer/decode/whole-window.ts';
import { generate, windowStart, type GenerateOptions } from '../reformer/generate.ts';
import { buildModel } from '../reformer/model.ts';
import { createRunner } from '../runtime/compiled-runner.ts';
import type { Suite, SuiteFlags } from './suites.ts';
import { formatTable, machineInfo } from './support/measure.ts';
import { describeThreads, gpujsThreads } from './support/runtimes.ts';

/** The default model at length L; axial shape [n1, L/n1] with n1 = 8 (L ≤ 128), 16 (≤ 512), 32. */
export function generateConfig(L: number): ModelConfig {
  const n1 = L <= 128 ? 8 : L <= 512 ? 16 : 32;
  return { ...defaultRunConfig.model, seqLen: L, axialShape: [n1, L / n1] };
}

interface GenerateRow {
  readonly seqLen: number;
  readonly path: 'incremental' | 'whole window';
  /** Bytes of the prompt, and bytes sampled after it, in each timed run. */
  readonly prompt: number;
  readonly bytes: number;
  /** Window slides inside each timed run. */
  readonly slides: number;
  /** The first, untimed run (one byte after a 20-byte prompt): compilation included. */
  readonly compileS: number;
  /** Seconds of each timed run. */
  readonly seconds: readonly number[];
  /** From the fastest run, and from the median run. */
  readonly bestBytesPerSec: number;
  readonly medianBytesPerSec: number;
}

const sampling: Omit<GenerateOptions, 'length'> = { temperature: 0.8, topK: 0, seed: 1 };

/** Window slides while sampling `bytes` after a prompt of `prompt` bytes (< L). */
function slidesIn(prompt: number, bytes: number, L: number): number {
  let start = 0;
  let slides = 0;
  for (let n = prompt; n < prompt + bytes; n++) {
    const next = windowStart(n, start, L);
    if (next !== start) slides++;
    start = next;
  }
  return slides;
}

/** A timed run: path, bytes sampled, prompt bytes. */
type Run = readonly [GenerateRow['path'], number, number];

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/**
 * Times the paths at length L on one runner, interleaved (each repeat runs every path once), so
 * that load on shared cores hits them alike; the best run is the figure least disturbed by it.
 */
async function measureLength(L: number, plan: ReadonlyArray<Run>, repeats: number): Promise<GenerateRow[]> {
  const config = generateConfig(L);
  const paramTree = buildModel(config).init(new InitKey(0), [{ shape: [1, L], dtype: 'i32' }]);
  const params = new Map(flattenParams(paramTree));
  const runner = await createRunner({ backend: 'webasm' });
  const sampler = (path: GenerateRow['path']) => (path === 'incremental' ? generate : generateWholeWindow);
  const timed = async (path: GenerateRow['path'], length: number, prompt: number) => {
    const t0 = performance.now();
    await sampler(path)(runner, config, params, paramTree, new Array<number>(prompt).fill(84), { ...sampling, length });
    return (performance.now() - t0) / 1000;
  };
  try {
    // the untimed first run's 20-byte prompt also compiles the incremental path's block graph
    const compile = new Map<GenerateRow['path'], number>();
    for (const [path] of plan) if (!compile.has(path)) compile.set(path, await timed(path, 1, 20));
    const seconds = plan.map(() => [] as number[]);
    for (let r = 0; r < repeats; r++) for (const [k, [path, bytes, prompt]] of plan.entries()) seconds[k]!.push(await timed(path, bytes, prompt));
    return plan.map(([path, bytes, prompt], k) => ({
      seqLen: L,
      path,
      prompt,
      bytes,
      slides: slidesIn(prompt, bytes, L),
      compileS: compile.get(path)!,
      seconds: seconds[k]!,
      bestBytesPerSec: bytes / Math.min(...seconds[k]!),
      medianBytesPerSec: bytes / median(seconds[k]!),
    }));
  } finally {
    runner.destroy();
  }
}

async function run(flags: SuiteFlags): Promise<unknown> {
  const lengths = flags.quick ? [128] : [128, 512, 2048];
  const repeats = flags.quick ? 2 : 3;
  const rows: GenerateRow[] = [];
  for (const L of lengths) {
    const plan: Run[] = [
      ['incremental', flags.quick ? 40 : 120, 1],
      ['whole window', L <= 512 ? 4 : 2, 1],
    ];
    if (!flags.quick) plan.push(['incremental', 1, L / 2]);
    if (L === 128 && !flags.quick) plan.push(['incremental', 400, 1]);
    if (!flags.json) process.stderr.write(`  L=${L}: ${plan.map(([p, b, q]) => `${p} ${q}+${b} bytes`).join(', ')}, ${repeats} times interleaved…\n`);
    rows.push(...(await measureLength(L, plan, repeats)));
  }
  const speedups = lengths.map((L) => {
    const inc = rows.find((r) => r.seqLen === L && r.path === 'incremental' && r.prompt === 1 && r.slides === 0)!;
    const whole = rows.find((r) => r.seqLen === L && r.path === 'whole window')!;
    return { seqLen: L, best: inc.bestBytesPerSec / whole.bestBytesPerSec, median: inc.medianBytesPerSec / whole.medianBytesPerSec };
  });
  const threads = { gpujs: gpujsThreads() };
  const metrics: Record<string, number> = {};
  for (const r of rows) metrics[`generate L=${r.seqLen} ${r.path} ${r.prompt}+${r.bytes} bytes: bytes/s`] = r.bestBytesPerSec;
  const summary = { machine: machineInfo(), threads, repeats, rows, speedups, metrics };
  if (flags.json) {
    console.log(JSON.stringify(summary, null, 2));
    return summary;
  }
  console.log(`generate benchmark — ${summary.machine.date}, ${summary.machine.cpu} ×${summary.machine.cores}, node ${summary.machine.node}`);
  console.log(`threads: ${describeThreads(threads)}; default architecture (2 layers, d 64, local + LSH), random parameters`);
  console.log(
    formatTable(
      ['L', 'path', 'prompt', 'bytes', 'window slides', 'untimed first run s', 'timed runs s', 'bytes/s best', 'bytes/s median'],
      rows.map((r) => [
        String(r.seqLen),
        r.path,
        String(r.prompt),
        String(r.bytes),
        String(r.slides),
        r.compileS.toFixed(2),
        r.seconds.map((x) => x.toFixed(2)).join(' '),
        r.bestBytesPerSec.toFixed(1),
        r.medianBytesPerSec.toFixed(1),
      ]),
    ),
  );
  console.log(`incremental ÷ whole window (bytes/s, no slides; best / median): ${speedups.map((s) => `L=${s.seqLen} ${s.best.toFixed(1)}× / ${s.median.toFixed(1)}×`).join(', ')}`);
  return summary;
}

export const generateSuite: Suite = {
  name: 'generate',
  description: 'bytes/s of sampling: incremental decoding vs rerunning the whole window, L = 128 / 512 / 2048',
  run,
};
