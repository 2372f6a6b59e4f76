/**
 * `npm run bench -- kernels [--json] [--quick]`: Dense forward/backward, LayerNorm and softmax on
 * the gpu.js webasm backend — our templates vs the naive one-output-per-thread matmul vs
 * TF.js (tfjs-backend-wasm, XNNPACK) — on the same shapes in the same process.
 */
import { GPU } from 'gpu.js';
import { createMatmulKernel } from '../compiler/codegen/templates/matmul.ts';
import { createLayerNormKernel, createSoftmaxKernel } from '../compiler/codegen/templates/rows.ts';
import { buildKernel, int } from '../compiler/codegen/templates/kernel-source.ts';
import type { Suite, SuiteFlags } from './suites.ts';
import { formatTable, machineInfo, PEAK_GFLOPS, timeIt, type Timing } from './support/measure.ts';
import { loadTfWasm } from './support/tfjs.ts';

interface Row {
  op: string;
  shape: string;
  impl: 'ours' | 'naive' | 'tfjs';
  medianMs: number;
  gflops: number | null;
  gbps: number | null;
}

const rand = (n: number) => {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
};

async function run(flags: SuiteFlags): Promise<unknown> {
  const { m, k, n, rows, cols, runs } = flags.quick
    ? { m: 512, k: 256, n: 512, rows: 512, cols: 512, runs: 3 }
    : { m: 4096, k: 512, n: 2048, rows: 4096, cols: 2048, runs: 5 };
  const gpu = new GPU({ mode: 'webasm' } as never);
  const { tf, features } = await loadTfWasm();
  const out: Row[] = [];
  const log = (msg: string) => {
    if (!flags.json) process.stderr.write(`  ${msg}\n`);
  };
  const add = (op: string, shape: string, impl: Row['impl'], t: Timing, flop: number | null, bytes: number | null) => {
    out.push({
      op,
      shape,
      impl,
      medianMs: t.medianMs,
      gflops: flop === null ? null : flop / t.medianMs / 1e6,
      gbps: bytes === null ? null : bytes / t.medianMs / 1e6,
    });
    log(`${op} ${impl}: ${t.medianMs.toFixed(1)} ms`);
  };

  // ---- Dense: y = xW + b;  dx = dy Wᵀ, dW = xᵀ dy, db = Σ_rows dy
  const x = rand(m * k);
  const w = rand(k * n);
  const b = rand(n);
  const dy = rand(m * n);
  const denseShape = `x[${m}×${k}]·W[${k}×${n}]`;
  const fwdFlop = 2 * m * k * n;
  const bwdFlop = 2 * fwdFlop + m * n;
  // db as a column sum: lanes are adjacent columns, one pass down the rows
  const colSum = buildKernel(gpu, {
    source: `function(d) {
  let s = 0.0;
  for (let r = 0; r < ${int(m)}; r++) { s += d[r * ${int(n)} + this.thread.x]; }
  return s;
}`,
    output: [n],
    components: 1,
    loopMaxIterations: m,
  });
  for (const impl of ['ours', 'naive'] as const) {
    const naive = impl === 'naive';
    const fwd = createMatmulKernel(gpu, { m, k, n, bias: true, naive });
    const dxK = createMatmulKernel(gpu, { m, k: n, n: k, transB: true, naive });
    const dwK = createMatmulKernel(gpu, { m: k, k: m, n, transA: true, naive });
    add('dense fwd', denseShape, impl, await timeIt(() => fwd(x, w, b), runs), fwdFlop, null);
    add('dense bwd', denseShape, impl, await timeIt(() => Promise.all([dxK(dy, w), dwK(x, dy), colSum(dy)]), runs), bwdFlop, null);
    if (fwd.backend() !== 'webasm') throw new Error(`bench: ${impl} matmul ran on ${fwd.backend()}, not webasm`);
    fwd.destroy();
    dxK.destroy();
    dwK.destroy();
  }
  {
    const tx = tf.tensor2d(x, [m, k]);
    const tw = tf.tensor2d(w, [k, n]);
    const tb = tf.tensor1d(b);
    const tdy = tf.tensor2d(dy, [m, n]);
    const sync = (ts: Array<{ dataSync(): unknown; dispose(): void }>) => {
      for (const t of ts) {
        t.dataSync();
        t.dispose();
      }
    };
    add('dense fwd', denseShape, 'tfjs', await timeIt(async () => sync([tf.tidy(() => tf.add(tf.matMul(tx, tw), tb))]), runs), fwdFlop, null);
    add(
      'dense bwd',
      denseShape,
      'tfjs',
      await timeIt(async () => sync([tf.matMul(tdy, tw, false, true), tf.matMul(tx, tdy, true, false), tf.sum(tdy, 0)]), runs),
      bwdFlop,
      null,
    );
    tf.dispose([tx, tw, tb, tdy]);
  }

  // ---- LayerNorm and softmax over rows; bytes = read x once + write y once (the minimum)
  const xr = rand(rows * cols);
  const g = rand(cols);
  const be = rand(cols);
  const rowShape = `[${rows}×${cols}]`;
  const rowBytes = 2 * 4 * rows * cols;
  const ln = createLayerNormKernel(gpu, { rows, cols, eps: 1e-5 });
  add('layernorm', rowShape, 'ours', await timeIt(() => ln(xr, g, be), runs), 8 * rows * cols, rowBytes);
  const sm = createSoftmaxKernel(gpu, { rows, cols });
  add('softmax', rowShape, 'ours', await timeIt(() => sm(xr), runs), 5 * rows * cols, rowBytes);
  ln.destroy();
  sm.destroy();
  {
    const tx = tf.tensor2d(xr, [rows, cols]);
    const tg = tf.tensor1d(g);
    const tbe = tf.tensor1d(be);
    const lnTf = () =>
      tf.tidy(() => {
        const { mean, variance } = tf.moments(tx, -1, true);
        return tf.add(tf.mul(tf.mul(tf.sub(tx, mean), tf.rsqrt(tf.add(variance, 1e-5))), tg), tbe);
      });
    add('layernorm', rowShape, 'tfjs', await timeIt(async () => { const t = lnTf(); t.dataSync(); t.dispose(); }, runs), 8 * rows * cols, rowBytes);
    add('softmax', rowShape, 'tfjs', await timeIt(async () => { const t = tf.softmax(tx); t.dataSync(); t.dispose(); }, runs), 5 * rows * cols, rowBytes);
    tf.dispose([tx, tg, tbe]);
  }
  colSum.destroy();
  gpu.destroy();

  const ratio = (op: string, impl: Row['impl']) => {
    const ours = out.find((r) => r.op === op && r.impl === 'ours');
    const other = out.find((r) => r.op === op && r.impl === impl);
    return ours && other ? other.medianMs / ours.medianMs : null;
  };
  const ops = [...new Set(out.map((r) => r.op))];
  const denseTotal = (impl: Row['impl']) =>
    out.filter((r) => r.op.startsWith('dense') && r.impl === impl).reduce((s, r) => s + r.medianMs, 0);
  const summary = {
    machine: machineInfo(),
    tfjs: features,
    gpujs: { backend: 'webasm', threads: 'worker pool (asyncMode)', runs, quick: flags.quick },
    results: out,
    speedups: Object.fromEntries(ops.map((op) => [op, { oursVsTfjs: ratio(op, 'tfjs'), oursVsNaive: ratio(op, 'naive') }])),
    denseFwdBwdVsNaive: denseTotal('naive') / denseTotal('ours'),
    denseFwdBwdVsTfjs: denseTotal('tfjs') / denseTotal('ours'),
  };
  if (flags.json) {
    console.log(JSON.stringify(summary, null, 2));
    return summary;
  }
  const fmt = (v: number | null, d = 1) => (v === null ? '-' : v.toFixed(d));
  const tableRows = out.map((r) => [
    r.op,
    r.shape,
    r.impl,
    fmt(r.medianMs),
    fmt(r.gflops, 2),
    fmt(r.gbps, 2),
    r.gflops === null ? '-' : `${((100 * r.gflops) / PEAK_GFLOPS).toFixed(1)}%`,
    r.impl === 'ours' ? fmt(ratio(r.op, 'tfjs'), 2) : '',
    r.impl === 'ours' ? fmt(ratio(r.op, 'naive'), 2) : '',
  ]);
  const m0 = summary.machine;
  console.log(`kernels benchmark — ${m0.date}, ${m0.cpu} ×${m0.cores}, node ${m0.node}, median of ${runs} runs after 1 warm-up`);
  console.log(`gpu.js webasm (SIMD, worker threads) vs TF.js wasm (simd=${features.simd}, threads=${features.threads}); peak reference ≈ ${PEAK_GFLOPS} GFLOP/s fp32`);
  console.log(formatTable(['op', 'shape', 'impl', 'median ms', 'GFLOP/s', 'GB/s', '% peak', 'ours/TF.js', 'ours/naive'], tableRows));
  console.log(`ratios are speedups (time of the other ÷ ours; > 1 means ours is faster)`);
  console.log(`dense fwd+bwd: ${summary.denseFwdBwdVsNaive.toFixed(2)}× vs naive gpu.js, ${summary.denseFwdBwdVsTfjs.toFixed(2)}× vs TF.js`);
  return summary;
}

export const kernelsSuite: Suite = {
  name: 'kernels',
  description: 'Dense fwd/bwd, LayerNorm, softmax: gpu.js webasm templates vs naive vs TF.js wasm',
  run,
};
