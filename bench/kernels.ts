/**
 * `npm run bench -- kernels [--json] [--quick] [--runs N] [--peer torch] [--baseline <git-ref>]`: matmuls through the compiled
 * runner (the path models take) next to TF.js (tfjs-backend-wasm, XNNPACK) and, with
 * `--peer torch`, PyTorch CPU, on the same shapes in the same run:
 * - matmul 2048×256×1024: the runner as it runs models (`matmul: 'auto'`: packed panels and our
 *   WebAssembly SIMD product), with the gpu.js `Array(4)` product (`'packed'`), and with one dot
 *   product per thread (`'dot'`, what it did before packed groups); then our wasm product alone
 *   (no runner), on one thread and on all it may use, timed in turns;
 * - Dense forward (y = xW + b) and backward (dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ dy) at
 *   x[4096×512]·W[512×2048], one graph each;
 * - LayerNorm and softmax over [4096×2048] rows with the row templates.
 * Times include moving arguments into and results out of wasm memory. Thread counts of every
 * runtime are printed with the table.
 */
import { GPU } from 'gpu.js';
import { Graph } from '../compiler/ir/graph.ts';
import { hostTensor, type HostTensor } from '../compiler/ir/host-tensor.ts';
import * as P from '../compiler/ir/primitives.ts';
import { createRunner, type CompiledRunner } from '../runtime/compiled-runner.ts';
import type { Suite, SuiteFlags } from './suites.ts';
import { formatTable, machineInfo, PEAK_GFLOPS, timeIt, type Timing } from './support/measure.ts';
import { describeThreads, gpujsThreads } from './support/runtimes.ts';
import { loadTfWasm } from './support/tfjs.ts';
import { peerRequested, runTorchPeer, type TorchPeerResult } from './support/torch-peer.ts';

type Impl = 'ours' | 'packed' | 'dot' | 'product-1' | 'tfjs' | 'torch';

interface Row {
  op: string;
  shape: string;
  impl: Impl;
  medianMs: number;
  gflops: number | null;
  gbps: number | null;
}

const IMPL_LABEL: Record<Impl, string> = {
  ours: 'ours',
  dot: 'runner, one dot/thread',
  packed: 'runner, gpu.js Array(4)',
  'product-1': 'wasm product module alone, 1 thread',
  tfjs: 'TF.js wasm',
  torch: 'PyTorch',
};

const rand = (n: number) => {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
};

/** The graphs the runner times: plain matmul, Dense forward, Dense backward. */
function matmulGraph(m: number, k: number, n: number): Graph {
  const g = new Graph();
  g.outputs = [P.matmul(g.input('a', [m, k]), g.input('b', [k, n])).id];
  return g;
}

function denseForward(m: number, k: number, n: number): Graph {
  const g = new Graph();
  const y = P.binary('add', P.matmul(g.input('x', [m, k]), g.input('w', [k, n])), P.broadcastTo(g.input('b', [n]), [m, n]));
  g.outputs = [y.id];
  return g;
}

function denseBackward(m: number, k: number, n: number): Graph {
  const g = new Graph();
  const x = g.input('x', [m, k]);
  const w = g.input('w', [k, n]);
  const dy = g.input('dy', [m, n]);
  g.outputs = [P.matmul(dy, P.transpose(w, [1, 0])).id, P.matmul(P.transpose(x, [1, 0]), dy).id, P.reduce('sum', dy, 0).id];
  return g;
}

async function run(flags: SuiteFlags): Promise<unknown> {
  const sizes = flags.quick
    ? { m: 512, k: 256, n: 512, rows: 512, cols: 512, runs: 3 }
    : { m: 4096, k: 512, n: 2048, rows: 4096, cols: 2048, runs: 5 };
  const { m, k, n, rows, cols } = sizes;
  const runsAt = flags.rest.indexOf('--runs');
  const runs = runsAt < 0 ? sizes.runs : Number(flags.rest[runsAt + 1]);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`bench kernels: --runs must be a positive integer, got '${flags.rest[runsAt + 1]}'`);
  const mm = flags.quick ? { m: 512, k: 256, n: 512 } : { m: 2048, k: 256, n: 1024 };
  const { tf, features } = await loadTfWasm();
  const runners: Record<'ours' | 'packed' | 'dot', CompiledRunner> = {
    ours: await createRunner({ backend: 'webasm', matmul: 'auto' }),
    packed: await createRunner({ backend: 'webasm', matmul: 'packed' }),
    dot: await createRunner({ backend: 'webasm', matmul: 'dot' }),
  };
  const out: Row[] = [];
  const failures: string[] = [];
  const log = (msg: string) => {
    if (!flags.json) process.stderr.write(`  ${msg}\n`);
  };
  const add = (op: string, shape: string, impl: Impl, t: Timing, flop: number | null, bytes: number | null) => {
    out.push({ op, shape, impl, medianMs: t.medianMs, gflops: flop === null ? null : flop / t.medianMs / 1e6, gbps: bytes === null ? null : bytes / t.medianMs / 1e6 });
    log(`${op} ${impl}: ${t.medianMs.toFixed(1)} ms`);
  };
  const timeRunner = async (op: string, shape: string, g: Graph, feeds: Record<string, HostTensor>, flop: number, impls: ReadonlyArray<'ours' | 'packed' | 'dot'> = ['ours', 'dot']) => {
    for (const impl of impls) {
      const r = runners[impl];
      try {
        add(op, shape, impl, await timeIt(() => r.run(g, feeds), runs), flop, null);
      } catch (e) {
        // e.g. gpu.js's 60 s barrier backstop when one pipeline step outlasts it on loaded cores
        failures.push(`${op} ${IMPL_LABEL[impl]}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
        log(`${op} ${impl}: failed — ${failures[failures.length - 1]}`);
        continue;
      }
      if (r.backend.name !== 'webasm') throw new Error(`bench: the runner ran on ${r.backend.name}, not webasm`);
    }
  };
  const sync = (ts: Array<{ dataSync(): unknown; dispose(): void }>) => {
    for (const t of ts) {
      t.dataSync();
      t.dispose();
    }
  };

  // ---- matmul alone, the yardstick
  const mmShape = `${mm.m}×${mm.k}×${mm.n}`;
  const mmFlop = 2 * mm.m * mm.k * mm.n;
  {
    const a = rand(mm.m * mm.k);
    const b = rand(mm.k * mm.n);
    await timeRunner('matmul', mmShape, matmulGraph(mm.m, mm.k, mm.n), { a: hostTensor([mm.m, mm.k], a), b: hostTensor([mm.k, mm.n], b) }, mmFlop, ['ours', 'packed', 'dot']);
    // the product module alone on the calling thread, operands already in its memory: what the
    // runner's product step does per worker, without gpu.js around it; absent in a --baseline
    // tree without it
    const native = await import('../compiler/codegen/wasm-matmul.ts').catch(() => undefined);
    if (native !== undefined && 'productModule' in native) {
      const shape = { batch: 1, m: mm.m, mPad: 4 * Math.ceil(mm.m / 4), k: mm.k, n: mm.n, nPad: 8 * Math.ceil(mm.n / 8), a: 'rows', b: 'rows' } as const;
      const at = { a: 0, b: 4 * a.length, c: 4 * (a.length + b.length) };
      const memory = new WebAssembly.Memory({ initial: Math.ceil((at.c + 4 * native.productCells(shape)) / 65536) + 16 });
      new Float32Array(memory.buffer).set(a, 0);
      new Float32Array(memory.buffer).set(b, a.length);
      const run = new WebAssembly.Instance(new WebAssembly.Module(native.productModule(shape, at, false)), { env: { memory } }).exports.run as (s: number, e: number, seed: number) => void;
      const cells = native.productCells(shape);
      add('matmul', mmShape, 'product-1', await timeIt(async () => run(0, cells, 0), runs), mmFlop, null);
    }
    const ta = tf.tensor2d(a, [mm.m, mm.k]);
    const tb = tf.tensor2d(b, [mm.k, mm.n]);
    add('matmul', mmShape, 'tfjs', await timeIt(async () => sync([tf.matMul(ta, tb)]), runs), mmFlop, null);
    tf.dispose([ta, tb]);
  }

  // ---- Dense: y = xW + b;  dx = dy Wᵀ, dW = xᵀ dy, db = Σ_rows dy
  const x = rand(m * k);
  const w = rand(k * n);
  const b = rand(n);
  const dy = rand(m * n);
  const denseShape = `x[${m}×${k}]·W[${k}×${n}]`;
  const fwdFlop = 2 * m * k * n;
  const bwdFlop = 2 * fwdFlop + m * n;
  const feeds = { x: hostTensor([m, k], x), w: hostTensor([k, n], w), b: hostTensor([n], b), dy: hostTensor([m, n], dy) };
  // one dot product per thread is timed on the matmul line only: at these shapes it takes minutes
  await timeRunner('dense fwd', denseShape, denseForward(m, k, n), feeds, fwdFlop, ['ours']);
  await timeRunner('dense bwd', denseShape, denseBackward(m, k, n), feeds, bwdFlop, ['ours']);
  {
    const tx = tf.tensor2d(x, [m, k]);
    const tw = tf.tensor2d(w, [k, n]);
    const tb = tf.tensor1d(b);
    const tdy = tf.tensor2d(dy, [m, n]);
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
  for (const r of Object.values(runners)) r.destroy();

  // ---- LayerNorm and softmax over rows; bytes = read x once + write y once (the minimum)
  const gpu = new GPU({ mode: 'webasm' } as never);
  const xr = rand(rows * cols);
  const gamma = rand(cols);
  const beta = rand(cols);
  const rowShape = `[${rows}×${cols}]`;
  const rowBytes = 2 * 4 * rows * cols;
  // imported at run time: the row templates read compiler/codegen/flat-output.ts, which a --baseline
  // checkout of an older tree may lack; the rows are bench code, the same in both trees, so a baseline
  // without them only loses rows that would compare the harness with itself
  const templates = await import('./templates/rows.ts').catch((e: unknown) => {
    console.error(`  row templates not loaded in this tree (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); LayerNorm and softmax rows left out`);
    return undefined;
  });
  if (templates !== undefined) {
    const ln = templates.createLayerNormKernel(gpu, { rows, cols, eps: 1e-5 });
    add('layernorm', rowShape, 'ours', await timeIt(() => ln(xr, gamma, beta), runs), 8 * rows * cols, rowBytes);
    const sm = templates.createSoftmaxKernel(gpu, { rows, cols });
    add('softmax', rowShape, 'ours', await timeIt(() => sm(xr), runs), 5 * rows * cols, rowBytes);
    ln.destroy();
    sm.destroy();
  }
  gpu.destroy();
  {
    const tx = tf.tensor2d(xr, [rows, cols]);
    const tg = tf.tensor1d(gamma);
    const tbe = tf.tensor1d(beta);
    const lnTf = () =>
      tf.tidy(() => {
        const { mean, variance } = tf.moments(tx, -1, true);
        return tf.add(tf.mul(tf.mul(tf.sub(tx, mean), tf.rsqrt(tf.add(variance, 1e-5))), tg), tbe);
      });
    add('layernorm', rowShape, 'tfjs', await timeIt(async () => sync([lnTf()]), runs), 8 * rows * cols, rowBytes);
    add('softmax', rowShape, 'tfjs', await timeIt(async () => sync([tf.softmax(tx)]), runs), 5 * rows * cols, rowBytes);
    tf.dispose([tx, tg, tbe]);
  }

  // ---- PyTorch peer: the same shapes in a python process, after ours
  let torch: TorchPeerResult | { skipped: string } | undefined;
  if (peerRequested(flags.rest)) {
    torch = await runTorchPeer({ suite: 'kernels', runs, matmul: mm, dense: { m, k, n }, rows: { rows, cols } });
    if ('results' in torch) {
      for (const r of torch.results) {
        const flop = r.op === 'matmul' ? mmFlop : r.op === 'dense fwd' ? fwdFlop : r.op === 'dense bwd' ? bwdFlop : r.op === 'layernorm' ? 8 * rows * cols : 5 * rows * cols;
        const shape = r.op === 'matmul' ? mmShape : r.op.startsWith('dense') ? denseShape : rowShape;
        const bytes = r.op === 'layernorm' || r.op === 'softmax' ? rowBytes : null;
        add(r.op, shape, 'torch', { medianMs: r.medianMs, minMs: r.minMs, runs }, flop, bytes);
      }
    }
  }

  const threads = {
    gpujs: gpujsThreads(),
    tfjs: features.threads,
    ...(torch && 'threads' in torch ? { torch: torch.threads } : {}),
  };
  const ratio = (op: string, impl: Impl, of: Impl = 'ours') => {
    const ours = out.find((r) => r.op === op && r.impl === of);
    const other = out.find((r) => r.op === op && r.impl === impl);
    return ours && other ? other.medianMs / ours.medianMs : null;
  };
  const ops = [...new Set(out.map((r) => r.op))];
  const metrics: Record<string, number> = {};
  for (const r of out) if (r.impl === 'ours' && r.gflops !== null) metrics[`${r.op} ${r.shape} GFLOP/s`] = r.gflops;
  const summary = {
    machine: machineInfo(),
    threads,
    tfjs: features,
    torch: torch ?? { skipped: 'not requested (--peer torch)' },
    runs,
    quick: flags.quick,
    results: out,
    failures,
    speedups: Object.fromEntries(ops.map((op) => [op, { vsTfjs: ratio(op, 'tfjs'), vsDot: ratio(op, 'dot'), vsPacked: ratio(op, 'packed'), vsTorch: ratio(op, 'torch') }])),
    metrics,
  };
  if (flags.json) {
    console.log(JSON.stringify(summary, null, 2));
    return summary;
  }
  const fmt = (v: number | null, d = 1) => (v === null ? '-' : v.toFixed(d));
  const product = (impl: Impl) => impl === 'product-1';
  const tableRows = out.map((r) => [
    r.op,
    r.shape,
    IMPL_LABEL[r.impl],
    fmt(r.medianMs),
    fmt(r.gflops, 2),
    fmt(r.gbps, 2),
    r.gflops === null ? '-' : `${((100 * r.gflops) / PEAK_GFLOPS).toFixed(1)}%`,
    r.impl === 'ours' || product(r.impl) ? fmt(ratio(r.op, 'tfjs', r.impl), 2) : '',
    r.impl === 'ours' ? fmt(ratio(r.op, 'dot'), 2) : '',
    r.impl === 'ours' ? fmt(ratio(r.op, 'packed'), 2) : '',
    r.impl === 'ours' || product(r.impl) ? fmt(ratio(r.op, 'torch', r.impl), 3) : '',
  ]);
  const m0 = summary.machine;
  console.log(`kernels benchmark — ${m0.date}, ${m0.cpu} ×${m0.cores}, node ${m0.node}, median of ${runs} runs after 1 warm-up`);
  console.log(`threads: ${describeThreads(threads)}; TF.js simd=${features.simd}; peak reference ≈ ${PEAK_GFLOPS} GFLOP/s fp32`);
  if (torch !== undefined && 'skipped' in torch) console.log(`PyTorch peer not run: ${torch.skipped}`);
  if (torch !== undefined && 'config' in torch) console.log(`PyTorch ${torch.version}, BLAS: ${torch.blas}`);
  console.log(formatTable(['op', 'shape', 'impl', 'median ms', 'GFLOP/s', 'GB/s', '% peak', '÷ TF.js', '÷ dot', '÷ Array(4)', '÷ PyTorch'], tableRows));
  for (const f of failures) console.log(`failed: ${f}`);
  console.log(
    `ours: matmul and Dense through the compiled runner (webasm), LayerNorm and softmax the row templates; wasm product module alone: our WebAssembly SIMD product step without gpu.js, on the calling thread, operands in place; ratios are speedups (time of the other ÷ ours; > 1 means ours is faster), threads as above`,
  );
  return summary;
}

export const kernelsSuite: Suite = {
  name: 'kernels',
  description: 'matmul and Dense fwd/bwd through the compiled runner, LayerNorm, softmax: vs TF.js wasm (and PyTorch with --peer torch)',
  run,
};
