/**
 * The page side of the browser tests, bundled by esbuild and loaded into headless Chromium. It
 * exposes `window.reformerTest`; the Node side (backends.test.ts) calls it through Playwright,
 * gets the values a gpu.js backend computed in the page, and compares them with the float64
 * reference it evaluates itself.
 */
import { GPU } from 'gpu.js';
import { createLayerNormKernel, createLogSumExpKernel, createSoftmaxKernel } from '../../bench/templates/rows.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { lshAttention } from '../../reformer/attention/api.ts';
import { runTrainStep } from '../../reformer/train/objective.ts';
import { backendPreference, openBackend, probeBackend, type BackendName, type ConcreteBackend } from '../../runtime/backend.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { KERNEL_KINDS, LSH_CASES, lshInputs, rowCase, trainStepCase } from './cases.ts';
import type { PageApi, PageTensor } from './protocol.ts';

const plain = (t: HostTensor): PageTensor => ({ shape: [...t.shape], dtype: t.dtype, data: Array.from(t.data) });

const poisoned = (feeds: Record<string, HostTensor>): Record<string, HostTensor> =>
  Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => [k, t.dtype === 'f32' ? { ...t, data: new Float32Array(t.data.length).fill(NaN) } : t]),
  );

const runners = new Map<ConcreteBackend, CompiledRunner>();
async function runnerFor(backend: ConcreteBackend): Promise<CompiledRunner> {
  let r = runners.get(backend);
  if (r === undefined) runners.set(backend, (r = await CompiledRunner.create({ backend })));
  return r;
}

const api: PageApi = {
  async environment() {
    const gaps: Record<string, string | null> = {};
    for (const b of backendPreference()) gaps[b] = (await probeBackend(b)) ?? null;
    return { userAgent: navigator.userAgent, crossOriginIsolated, preference: [...backendPreference()], gaps };
  },

  async open(requested: BackendName) {
    try {
      const b = await openBackend(requested);
      b.destroy();
      return { name: b.name };
    } catch (e) {
      return { error: `${(e as Error).name}: ${(e as Error).message}` };
    }
  },

  async kernelKind(backend, kind, seeds) {
    const r = await runnerFor(backend);
    const build = KERNEL_KINDS[kind];
    if (build === undefined) throw new Error(`no kernel kind '${kind}'`);
    const out = [];
    for (const seed of seeds) {
      const { graph, feeds } = build(seed);
      // NaN-filled feeds first: every resident buffer then holds NaN, so an element a kernel
      // fails to write shows up in the real run.
      await r.run(graph, poisoned(feeds));
      const got = await r.run(graph, feeds);
      out.push({ seed, description: r.description, outputs: got.map(plain) });
    }
    return out;
  },

  async rowTemplates(backend, seeds) {
    const gpu = new GPU({ mode: backend } as ConstructorParameters<typeof GPU>[0]);
    try {
      const out = [];
      for (const seed of seeds) {
        const c = rowCase(seed);
        const o = { rows: c.rows, cols: c.cols };
        const ln = createLayerNormKernel(gpu, { ...o, eps: 1e-5 });
        const sm = createSoftmaxKernel(gpu, o);
        const lse = createLogSumExpKernel(gpu, o);
        const nan = (a: Float32Array) => new Float32Array(a.length).fill(NaN);
        await ln(nan(c.x), nan(c.gamma), nan(c.beta));
        await sm(nan(c.x));
        const layerNorm = Array.from(await ln(c.x, c.gamma, c.beta));
        const softmax = Array.from(await sm(c.x));
        const logSumExp = Array.from(await lse(c.x));
        out.push({ seed, layerNorm, softmax, logSumExp, ranOn: [ln.backend(), sm.backend(), lse.backend()] });
        ln.destroy();
        sm.destroy();
        lse.destroy();
      }
      return out;
    } finally {
      gpu.destroy();
    }
  },

  async lsh(backend) {
    const runner = await runnerFor(backend);
    const out = [];
    for (const c of LSH_CASES) {
      const { qk, v } = lshInputs(c);
      const res = await lshAttention(qk, v, { ...c, shape: [c.B, c.h, c.L, c.dK], runner });
      out.push({ name: c.name, output: Array.from(res.output), buckets: Array.from(res.buckets), description: runner.description });
    }
    return out;
  },

  async trainStep(backend) {
    const runner = await runnerFor(backend);
    const c = trainStepCase();
    const began = performance.now();
    const { loss, grads } = await runTrainStep(runner, c.objective, c.params, c.batch, c.seed);
    return {
      loss,
      grads: Object.fromEntries([...grads].map(([k, t]) => [k, Array.from(t.data)])),
      description: runner.description,
      ms: performance.now() - began,
    };
  },

  release() {
    for (const r of runners.values()) r.destroy();
    runners.clear();
  },
};

(globalThis as { reformerTest?: PageApi }).reformerTest = api;
document.title = 'reformer-ts browser tests: ready';
