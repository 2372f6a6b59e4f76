/**
 * `npm run bench -- attention [--json] [--quick] [--max-len N] [--ref-max-len N] [--full-max-len N] [--budget-gb G] [--cell-s S] [--tfjs-cell-s S] [--only 'a,b']`:
 * forward+backward wall time and peak buffer bytes of ONE causal attention layer (4 heads,
 * dHead 64, batch 1, d_model 256) at L = 1K … 64K, for
 *
 * - our LSHSelfAttention (nHashes 2/4 × chunkLen 64/128, default nBuckets = 2L/c factorised
 *   'auto' so hashing costs O(√nb) per token) and FullAttention, traced in train mode,
 *   differentiated with compiler/grad (loss = Σ output ⊙ fixed random cotangent, w.r.t. every
 *   parameter and the input) and run on the compiled gpu.js runner (and on the float64
 *   ReferenceRunner up to --ref-max-len, where it is cheap enough);
 * - TF.js-wasm full attention (forward plus a hand-written backward, checked against finite
 *   differences in test/bench) on the same shapes, same process. It walks query rows in blocks of
 *   TFJS_BLOCK_ROWS (all L×L scores computed, as in whole-matrix attention, but only a block of them
 *   alive), so it fits the 4 GiB wasm32 heap up to 16K.
 *
 * Budgets: a compiled full-attention cell whose L×L score matrices (× heads × fwd+bwd copies)
 * exceed the memory budget is skipped before it runs; a cell whose first (warm-up, incl. compile)
 * run exceeds the time budget ends that method's row — larger L are printed as "over time
 * budget". TF.js has its own, larger time budget (`--tfjs-cell-s`); a TF.js cell predicted (× L²
 * from the last one) to exceed it is skipped, and a TF.js cell over a minute is timed once (it
 * compiles nothing, so its first run is a measurement).
 */
import { InitKey, flattenParams, ops, spec, trace, type Layer } from '../dsl/index.ts';
import { FullAttention, LSHSelfAttention } from '../reformer/attention/index.ts';
import { grad } from '../compiler/grad/grad.ts';
import { hostTensor, type HostTensor } from '../compiler/ir/host-tensor.ts';
import { CompiledRunner, createRunner } from '../runtime/compiled-runner.ts';
import { ReferenceRunner, type GraphRunner } from '../runtime/runner.ts';
import type { Suite, SuiteFlags } from './suites.ts';
import { formatTable, machineInfo } from './support/measure.ts';
import { loadTfWasm } from './support/tfjs.ts';
import { blockedPeakBytes, tfAttentionFwdBwd, type Tf } from './support/tfjs-attention.ts';
import { describeThreads, gpujsThreads } from './support/runtimes.ts';
import { peerRequested, runTorchPeer, type TorchPeerOutcome } from './support/torch-peer.ts';

const N_HEADS = 4;
const D_HEAD = 64;
const D_MODEL = N_HEADS * D_HEAD;
/** The most a wasm32 module (TF.js-wasm, gpu.js webasm) can address. */
const WASM32_HEAP_BYTES = 4 * 2 ** 30;
/** Room left for what a module keeps besides our buffers (code, stacks, staging copies). */
const WASM_RESERVE_BYTES = 512 * 2 ** 20;
/** Score-matrix copies alive in full attention fwd+bwd: logits, probabilities, their cotangent. */
const FULL_COPIES = 3;
/** Query rows per TF.js block: no slower than whole-matrix attention at 2K-4K, 0.5 GiB at 8K. */
const TFJS_BLOCK_ROWS = 512;
/** A TF.js cell whose first run takes longer than this is timed by that run alone. */
const TFJS_SINGLE_RUN_S = 60;

type Status = 'ok' | 'skipped (memory)' | 'over time budget' | 'failed';

export interface AttentionCell {
  L: number;
  method: string;
  runner: 'compiled' | 'reference' | 'tfjs' | 'torch';
  status: Status;
  /** Median of the timed runs (after one warm-up that includes compilation), seconds. */
  medianS: number | null;
  /** First run (compile + run), seconds. */
  firstS: number | null;
  runs: number;
  /** Compiled runner: its memory plan's peak; TF.js: tf.profile peakBytes. */
  peakBytes: number | null;
  note?: string;
}

interface Method {
  name: string;
  runner: AttentionCell['runner'];
  /** Full attention needs L×L scores (memory budget applies). */
  quadratic: boolean;
  /** Builds a cell runner for length L: returns a function running fwd+bwd once and the peak bytes it saw. */
  prepare(L: number): Promise<{ step: () => Promise<void>; peak: () => number | null; dispose: () => void; plannedPeak?: number }>;
}

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** Our layer: trace (train), loss = Σ y ⊙ c, grad w.r.t. params and input; feeds built once. */
function ourMethod(name: string, make: () => Layer, runner: GraphRunner, kind: 'compiled' | 'reference', quadratic: boolean): Method {
  return {
    name,
    runner: kind,
    quadratic,
    async prepare(L) {
      const layer = make();
      const shape = [1, L, D_MODEL];
      const params = layer.init(new InitKey(7), [spec(shape)]);
      const t = trace(layer, params, [{ shape }], { mode: 'train' });
      const y = t.outputs[0]!;
      const cot = t.graph.input('cotangent', y.shape, 'f32');
      const loss = ops.sumAll(ops.mul(y, cot));
      const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.name === 'input0');
      const g = grad(t.graph, loss.id, wrt.map((n) => n.id));
      const feeds: Record<string, HostTensor> = {
        input0: hostTensor(shape, rand(L * D_MODEL, 11)),
        cotangent: hostTensor(y.shape, rand(y.shape.reduce((a, b) => a * b, 1), 13)),
        seed: hostTensor([], [42], 'i32'),
      };
      for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
      const needed = new Set(g.graph.inputNodes().map((n) => n.name));
      for (const k of Object.keys(feeds)) if (!needed.has(k)) delete feeds[k];
      // the compiled runner's memory plan is known before anything runs
      const plannedPeak = runner instanceof CompiledRunner ? runner.compiled(g.graph).memory.peakBytes : undefined;
      return {
        ...(plannedPeak !== undefined ? { plannedPeak } : {}),
        step: async () => {
          const outs = await runner.run(g.graph, feeds);
          if (!Number.isFinite(outs[0]!.data[0]!)) throw new Error(`${name} L=${L}: loss is not finite`);
        },
        peak: () => ('stats' in runner ? (runner as { stats: { peakBytes: number } }).stats.peakBytes : null),
        dispose: () => {},
      };
    },
  };
}

/** TF.js full causal attention with the same projections and shapes (bench/support/tfjs-attention.ts). */
function tfMethod(tf: Tf): Method {
  return {
    name: 'tfjs full',
    runner: 'tfjs',
    // time grows as L², memory (query-row blocks) as L: the L×L memory budget does not apply
    quadratic: false,
    async prepare(L) {
      const x = tf.tensor2d(rand(L * D_MODEL, 11), [L, D_MODEL]);
      const ws = [1, 2, 3, 4].map((s) => tf.tensor2d(rand(D_MODEL * D_MODEL, s).map((v) => v * 0.1), [D_MODEL, D_MODEL]));
      const cot = tf.tensor2d(rand(L * D_MODEL, 13), [L, D_MODEL]);
      const inputs = { L, nHeads: N_HEADS, dHead: D_HEAD, x, ws: ws as [typeof x, typeof x, typeof x, typeof x], cot, blockRows: TFJS_BLOCK_ROWS };
      const fwdBwd = () => tfAttentionFwdBwd(tf, inputs);
      let peak: number | null = null;
      const once = () => {
        const outs = tf.tidy(fwdBwd);
        for (const o of outs) o.dataSync();
        tf.dispose(outs);
      };
      return {
        step: async () => {
          if (peak === null) peak = (await tf.profile(once)).peakBytes;
          else once();
        },
        peak: () => peak,
        dispose: () => tf.dispose([x, cot, ...ws]),
      };
    },
  };
}

/** Least-squares slope of log t vs log L. */
export function growthExponent(points: ReadonlyArray<readonly [number, number]>): number | null {
  if (points.length < 2) return null;
  const xs = points.map(([L]) => Math.log(L));
  const ys = points.map(([, t]) => Math.log(t));
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  xs.forEach((x, i) => {
    num += (x - mx) * (ys[i]! - my);
    den += (x - mx) ** 2;
  });
  return den === 0 ? null : num / den;
}

function numberFlag(rest: readonly string[], flag: string, fallback: number): number {
  const i = rest.indexOf(flag);
  if (i < 0) return fallback;
  const v = Number(rest[i + 1]);
  if (!(v > 0)) throw new Error(`bench attention: ${flag} needs a positive number, got '${rest[i + 1]}'`);
  return v;
}

async function run(flags: SuiteFlags): Promise<unknown> {
  const maxLen = numberFlag(flags.rest, '--max-len', flags.quick ? 1024 : 65536);
  const refMaxLen = numberFlag(flags.rest, '--ref-max-len', 1024);
  const budgetBytes = numberFlag(flags.rest, '--budget-gb', 8) * 2 ** 30;
  const fullMaxLen = numberFlag(flags.rest, '--full-max-len', 4096);
  const cellBudgetS = numberFlag(flags.rest, '--cell-s', 300);
  const tfjsBudgetS = numberFlag(flags.rest, '--tfjs-cell-s', 900);
  const lengths = [1024, 2048, 4096, 8192, 16384, 65536].filter((L) => L <= maxLen);
  const log = (m: string) => {
    if (!flags.json) process.stderr.write(`  ${m}\n`);
  };

  const { tf, features } = await loadTfWasm();
  const compiled = await createRunner({ backend: 'auto' });
  const reference = new ReferenceRunner();
  const lshConfigs = flags.quick ? [[2, 64]] : [[2, 64], [2, 128], [4, 64], [4, 128]];
  const methods: Method[] = [tfMethod(tf)];
  for (const [kind, runner] of [['compiled', compiled], ['reference', reference]] as const) {
    for (const [nHashes, chunkLen] of lshConfigs) {
      const make = () =>
        LSHSelfAttention({ nHeads: N_HEADS, dHead: D_HEAD, nHashes: nHashes!, chunkLen: chunkLen!, causal: true, bucketFactors: 'auto' });
      methods.push(ourMethod(`lsh h${nHashes} c${chunkLen}`, make, runner, kind, false));
    }
    methods.push(ourMethod('full', () => FullAttention({ nHeads: N_HEADS, dHead: D_HEAD, causal: true }), runner, kind, true));
  }

  // --only 'lsh h4 c128,tfjs': the methods whose name or `name [runner]` contains one of the parts
  const onlyAt = flags.rest.indexOf('--only');
  const only = onlyAt < 0 ? undefined : (flags.rest[onlyAt + 1] ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (only !== undefined && only.length === 0) throw new Error("bench attention: --only needs a comma-separated list of method names, e.g. 'lsh h2 c64,tfjs'");
  const selected = only === undefined ? methods : methods.filter((m) => only.some((p) => `${m.name} [${m.runner}]`.includes(p)));
  if (selected.length === 0) throw new Error(`bench attention: --only '${only!.join(',')}' matches none of: ${methods.map((m) => `${m.name} [${m.runner}]`).join(', ')}`);

  const cells: AttentionCell[] = [];
  for (const m of selected) {
    let stopped = false;
    for (const L of lengths) {
      if (m.runner === 'reference' && L > refMaxLen) continue;
      if (m.runner === 'compiled' && m.quadratic && L > fullMaxLen) continue;
      const base = { L, method: m.name, runner: m.runner, medianS: null, firstS: null, runs: 0, peakBytes: null };
      if (stopped) {
        cells.push({ ...base, status: 'over time budget', note: 'a smaller L exceeded the per-cell budget' });
        continue;
      }
      const scoreBytes = L * L * 4 * N_HEADS * FULL_COPIES;
      if (m.quadratic && scoreBytes > budgetBytes) {
        const note = `L×L scores ×${N_HEADS} heads ×${FULL_COPIES} copies = ${(scoreBytes / 2 ** 30).toFixed(1)} GiB > ${(budgetBytes / 2 ** 30).toFixed(0)} GiB budget`;
        cells.push({ ...base, status: 'skipped (memory)', note });
        log(`${m.name} [${m.runner}] L=${L}: skipped, ${note}`);
        continue;
      }
      // TF.js-wasm lives in one wasm32 heap (at most 4 GiB); running past it corrupts the module
      // (and Emscripten's handlers then end the process), so predict the peak first.
      if (m.runner === 'tfjs') {
        const predicted = blockedPeakBytes(L, N_HEADS, D_HEAD, TFJS_BLOCK_ROWS);
        if (predicted > WASM32_HEAP_BYTES - WASM_RESERVE_BYTES) {
          const note = `predicted peak ${(predicted / 2 ** 30).toFixed(1)} GiB > the 4 GiB wasm32 heap less ${WASM_RESERVE_BYTES / 2 ** 20} MiB`;
          cells.push({ ...base, status: 'skipped (memory)', note });
          log(`${m.name} [${m.runner}] L=${L}: skipped, ${note}`);
          continue;
        }
        const prev = [...cells].reverse().find((c) => c.method === m.name && c.status === 'ok');
        const predictedS = prev === undefined ? 0 : prev.medianS! * (L / prev.L) ** 2;
        if (predictedS > tfjsBudgetS) {
          const note = `predicted ${predictedS.toFixed(0)} s (${prev!.medianS!.toFixed(1)} s at L=${prev!.L}, ×L²) > ${tfjsBudgetS} s budget`;
          cells.push({ ...base, status: 'over time budget', note });
          log(`${m.name} [${m.runner}] L=${L}: skipped, ${note}`);
          continue;
        }
      }
      try {
        const cell = await m.prepare(L);
        // gpu.js webasm keeps a pipeline's buffers in one wasm32 memory; past it the process dies
        if (cell.plannedPeak !== undefined && cell.plannedPeak > WASM32_HEAP_BYTES - WASM_RESERVE_BYTES) {
          const note = `planned peak ${(cell.plannedPeak / 2 ** 30).toFixed(2)} GiB > the 4 GiB wasm32 heap less ${WASM_RESERVE_BYTES / 2 ** 20} MiB`;
          cells.push({ ...base, status: 'skipped (memory)', peakBytes: cell.plannedPeak, note });
          log(`${m.name} [${m.runner}] L=${L}: skipped, ${note}`);
          cell.dispose();
          continue;
        }
        const t0 = performance.now();
        await cell.step();
        const firstS = (performance.now() - t0) / 1000;
        if (firstS > (m.runner === 'tfjs' ? tfjsBudgetS : cellBudgetS)) {
          stopped = true;
          cells.push({ ...base, status: 'over time budget', firstS, peakBytes: cell.peak(), note: `first run ${firstS.toFixed(1)} s > ${m.runner === 'tfjs' ? tfjsBudgetS : cellBudgetS} s` });
          log(`${m.name} [${m.runner}] L=${L}: first run ${firstS.toFixed(1)} s — over time budget`);
          cell.dispose();
          continue;
        }
        // Fewer repeats for slow cells keep the whole suite within the hour.
        const single = m.runner === 'tfjs' && firstS > TFJS_SINGLE_RUN_S;
        const runs = single ? 0 : firstS > 20 ? 1 : firstS > 5 ? 2 : 3;
        const ts: number[] = single ? [firstS] : [];
        for (let i = 0; i < runs; i++) {
          const s = performance.now();
          await cell.step();
          ts.push((performance.now() - s) / 1000);
        }
        ts.sort((a, b) => a - b);
        const mid = ts.length >> 1;
        const medianS = ts.length % 2 ? ts[mid]! : (ts[mid - 1]! + ts[mid]!) / 2;
        cells.push({ ...base, status: 'ok', medianS, firstS, runs: ts.length, peakBytes: cell.peak(), ...(single ? { note: 'one run (TF.js compiles nothing)' } : {}) });
        log(`${m.name} [${m.runner}] L=${L}: median ${medianS.toFixed(3)} s (first ${firstS.toFixed(1)} s), peak ${cell.peak() === null ? '-' : (cell.peak()! / 2 ** 20).toFixed(1)} MB`);
        cell.dispose();
      } catch (e) {
        stopped = true;
        const note = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 160);
        cells.push({ ...base, status: 'failed', note });
        log(`${m.name} [${m.runner}] L=${L}: failed — ${note}`);
      }
    }
  }

  // PyTorch peer: the compiled cells that ran, same shapes, our LSH layer and full attention in
  // PyTorch (bench/support/lsh_attention_torch.py), after ours
  let torch: TorchPeerOutcome | undefined;
  if (peerRequested(flags.rest)) {
    const ran = cells.filter((c) => c.runner === 'compiled' && c.status === 'ok');
    const peerCells = ran.map((c) => {
      const lsh = /^lsh h(\d+) c(\d+)$/.exec(c.method);
      return lsh ? { name: c.method, method: 'lsh', L: c.L, nHashes: Number(lsh[1]), chunkLen: Number(lsh[2]) } : { name: c.method, method: 'full', L: c.L };
    });
    log(`PyTorch peer: ${peerCells.length} cells`);
    torch = await runTorchPeer({ suite: 'attention', runs: 3, nHeads: N_HEADS, dHead: D_HEAD, dModel: D_MODEL, cells: peerCells });
    if ('results' in torch) {
      for (const r of torch.results) {
        const L = Number(r.L);
        cells.push({ L, method: r.op, runner: 'torch', status: 'ok', medianS: r.medianMs / 1000, firstS: null, runs: 3, peakBytes: null });
      }
    }
  }
  const torchAt = (c: AttentionCell) => cells.find((t) => t.runner === 'torch' && t.L === c.L && t.method === c.method)?.medianS ?? null;
  const threads = { gpujs: gpujsThreads(), tfjs: features.threads, ...(torch && 'threads' in torch ? { torch: torch.threads } : {}) };
  const metrics: Record<string, number> = {};
  for (const c of cells) if (c.runner === 'compiled' && c.status === 'ok') metrics[`${c.method} L=${c.L} fwd+bwd s`] = c.medianS!;
  const tfAt = (L: number) => cells.find((c) => c.runner === 'tfjs' && c.L === L && c.status === 'ok')?.medianS ?? null;
  // Where TF.js could not run, an estimate from its fitted growth (labelled as such everywhere).
  const tfPoints = cells.filter((c) => c.runner === 'tfjs' && c.status === 'ok').map((c) => [c.L, c.medianS!] as const);
  const tfExponent = growthExponent(tfPoints);
  const tfLast = tfPoints[tfPoints.length - 1];
  const tfEstimate = (L: number): number | null =>
    tfAt(L) === null && tfExponent !== null && tfLast !== undefined && L > tfLast[0] ? tfLast[1] * (L / tfLast[0]) ** tfExponent : null;
  const key = (c: AttentionCell) => `${c.method} [${c.runner}]`;
  const exponents = Object.fromEntries(
    [...new Set(cells.map(key))].map((k) => [
      k,
      growthExponent(cells.filter((c) => key(c) === k && c.status === 'ok').map((c) => [c.L, c.medianS!] as const)),
    ]),
  );
  const summary = {
    machine: machineInfo(),
    tfjs: features,
    gpujs: compiled.stats.backend,
    config: { nHeads: N_HEADS, dHead: D_HEAD, dModel: D_MODEL, batch: 1, causal: true, lengths, refMaxLen, fullMaxLen, budgetBytes, cellBudgetS, tfjsBudgetS, tfjsBlockRows: TFJS_BLOCK_ROWS },
    cells,
    exponents,
    tfjsEstimates: Object.fromEntries(lengths.flatMap((L) => (tfEstimate(L) === null ? [] : [[L, tfEstimate(L)]]))),
    threads,
    torch: torch ?? { skipped: 'not requested (--peer torch)' },
    metrics,
  };
  if (flags.json) {
    console.log(JSON.stringify(summary, null, 2));
    return summary;
  }
  const fmt = (v: number | null, d: number) => (v === null ? '-' : v.toFixed(d));
  const rows = [...cells]
    .sort((a, b) => a.L - b.L)
    .map((c) => {
      const tfs = tfAt(c.L);
      const est = tfEstimate(c.L);
      return [
        String(c.L),
        key(c),
        c.status === 'ok' ? fmt(c.medianS, 3) : c.status,
        fmt(c.peakBytes === null ? null : c.peakBytes / 2 ** 20, 1),
        c.status === 'ok' && tfs !== null ? fmt(tfs / c.medianS!, 2) : '-',
        c.status === 'ok' && est !== null && c.runner !== 'tfjs' ? `~${fmt(est / c.medianS!, 1)}` : '-',
        c.status === 'ok' && c.runner === 'compiled' && torchAt(c) !== null ? fmt(torchAt(c)! / c.medianS!, 3) : '-',
        c.status === 'ok' ? `${c.runs}${c.note ? ` (${c.note})` : ''}` : (c.note ?? ''),
      ];
    });
  const m0 = summary.machine;
  console.log(`attention benchmark — ${m0.date}, ${m0.cpu} ×${m0.cores}, node ${m0.node}; gpu.js ${summary.gpujs}, TF.js wasm simd=${features.simd} threads=${features.threads}`);
  console.log(
    `one causal layer, fwd+bwd, B=1, d_model=${D_MODEL}, ${N_HEADS} heads × dK ${D_HEAD}; memory budget ${(budgetBytes / 2 ** 30).toFixed(0)} GiB, cell budget ${cellBudgetS} s (TF.js ${tfjsBudgetS} s, query blocks of ${TFJS_BLOCK_ROWS})`,
  );
  console.log(`threads: ${describeThreads(threads)}`);
  if (torch !== undefined && 'skipped' in torch) console.log(`PyTorch peer not run: ${torch.skipped}`);
  if (torch !== undefined && 'blas' in torch) console.log(`PyTorch ${torch.version}, BLAS: ${torch.blas}; its LSH layer is ours written in PyTorch (bench/support/lsh_attention_torch.py)`);
  console.log(formatTable(['L', 'method', 'median s', 'peak MB', 'TF.js full ÷ this', 'est. TF.js ÷ this', 'PyTorch ÷ this', 'runs / note'], rows));
  if (tfExponent !== null && tfLast !== undefined) {
    console.log(
      `est.: where TF.js could not run, its time extrapolated from L=${tfLast[0]} with its fitted exponent ${tfExponent.toFixed(2)} (an estimate, not a measurement)`,
    );
  }
  console.log('growth exponent of time vs L (least squares on log-log, measured points only):');
  for (const [k, e] of Object.entries(exponents)) console.log(`  ${k}: ${e === null ? '- (fewer than 2 points)' : e.toFixed(2)}`);
  return summary;
}

export const attentionSuite: Suite = {
  name: 'attention',
  description: 'One attention layer fwd+bwd at L = 1K…64K: our LSH and full (compiled / reference) vs TF.js wasm full',
  run,
};
