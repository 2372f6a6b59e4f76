/**
 * One gpu.js backend in real headless Chromium (WebGPU and WebGL2 run on SwiftShader, a CPU
 * rasteriser, when there is no GPU) against the float64 reference: every kernel kind on random
 * shapes, the row templates, lshAttention on the fixed cases of test/attention/lsh.test.ts, and a
 * ReformerLM training step (loss and every gradient). One test file per backend (webgpu.test.ts,
 * …) calls `describeBackendInChromium`, so vitest can run the backends side by side.
 *
 * The page computes; Node rebuilds the same cases from the same seeds (cases.ts) and evaluates
 * the reference itself. A missing Chromium fails here with the command that installs it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { lshAttention } from '../../reformer/attention/api.ts';
import { runTrainStep } from '../../reformer/train/objective.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import type { ConcreteBackend } from '../../runtime/backend.ts';
import { closeness, expectClose } from '../support/numeric.ts';
import { KERNEL_KINDS, LSH_CASES, lshInputs, rowCase, trainStepCase } from './cases.ts';
import { openPage, testPageFiles, type OpenPage } from './chromium.ts';
import type { PageApi } from './protocol.ts';

/** Seeds of the random shapes per kernel kind and backend. */
const SEEDS = [11, 12, 13];
/**
 * Per-test limit: the first run of each graph compiles all its kernels, which SwiftShader does on
 * the CPU (the webgl2 training step: 49 s alone, 78 s with other suites on the same 2 cores).
 */
const SLOW = 400_000;
const RTOL = 1e-4;
const ATOL = 1e-5;

let page: OpenPage | undefined;

/** Opens the test page in a fresh headless Chromium for this file's tests. */
export function useTestPage(): void {
  beforeAll(async () => {
    page = await openPage(await testPageFiles(), '/', 'reformer-ts browser tests: ready');
  }, 120_000);
  afterAll(async () => {
    await page?.close();
  });
}

/** Calls `window.reformerTest[method](...args)` in the page. */
export function call<K extends keyof PageApi>(method: K, ...args: Parameters<PageApi[K]>): Promise<Awaited<ReturnType<PageApi[K]>>> {
  if (page === undefined) throw new Error('the test page did not open (see the beforeAll error)');
  return page.page.evaluate(
    ([m, a]) => (window as unknown as { reformerTest: Record<string, (...x: unknown[]) => unknown> }).reformerTest[m]!(...a),
    [method, args] as const,
  ) as Promise<Awaited<ReturnType<PageApi[K]>>>;
}

export function describeBackendInChromium(backend: ConcreteBackend): void {
  useTestPage();
  describe(`${backend} in headless Chromium against the float64 reference`, () => {
    it('every kernel kind on random shapes (poisoned buffers first)', async () => {
      for (const kind of Object.keys(KERNEL_KINDS)) {
        const runs = await call('kernelKind', backend, kind, SEEDS);
        for (const run of runs) {
          expect(run.description).toMatch(new RegExp(`^gpu\\.js ${backend} \\(`));
          const { graph, feeds } = KERNEL_KINDS[kind]!(run.seed);
          const ref = evaluate(graph, feeds);
          expect(run.outputs.length).toBe(ref.length);
          ref.forEach((r, i) => {
            const got = run.outputs[i]!;
            const what = `${backend} ${kind} seed ${run.seed} output ${i} shape [${r.shape.join(',')}]`;
            expect(got.shape, what).toEqual(r.shape);
            expect(got.dtype, what).toBe(r.dtype);
            if (r.dtype === 'i32') expect(got.data, what).toEqual(Array.from(r.data));
            else expectClose(got.data, r.data, RTOL, ATOL, what);
          });
        }
      }
    }, SLOW);

    it('row templates: LayerNorm, softmax, logsumexp (poisoned outputs first)', async () => {
      const runs = await call('rowTemplates', backend, [21, 22, 23, 24]);
      for (const run of runs) {
        const c = rowCase(run.seed);
        expect(run.ranOn.every((m) => m === backend || (m === 'gpu' && backend === 'webgl2'))).toBe(true);
        const ln: number[] = [];
        const sm: number[] = [];
        const lse: number[] = [];
        for (let r = 0; r < c.rows; r++) {
          const row = Array.from(c.x.subarray(r * c.cols, (r + 1) * c.cols));
          const mean = row.reduce((a, b) => a + b, 0) / c.cols;
          const rstd = 1 / Math.sqrt(row.reduce((a, b) => a + (b - mean) ** 2, 0) / c.cols + 1e-5);
          row.forEach((v, j) => ln.push((v - mean) * rstd * c.gamma[j]! + c.beta[j]!));
          const mx = Math.max(...row);
          const z = row.reduce((a, b) => a + Math.exp(b - mx), 0);
          row.forEach((v) => sm.push(Math.exp(v - mx) / z));
          lse.push(mx + Math.log(z));
        }
        const what = `${backend} rows seed ${run.seed} (${c.rows}x${c.cols})`;
        // float32 centring of rows scaled by 20 loses ~2^-24·max|x| per element, amplified by 1/std
        expectClose(run.layerNorm, ln, 1e-3, 1e-4, `${what} LayerNorm`);
        expectClose(run.softmax, sm, 1e-4, 1e-6, `${what} softmax`);
        expectClose(run.logSumExp, lse, 1e-5, 1e-5, `${what} logsumexp`);
      }
    }, SLOW);

    it('lshAttention on the fixed cases of the Node tests', async () => {
      const runs = await call('lsh', backend);
      const reference = new ReferenceRunner();
      expect(runs.map((r) => r.name)).toEqual(LSH_CASES.map((c) => c.name));
      for (const [i, c] of LSH_CASES.entries()) {
        const run = runs[i]!;
        expect(run.description).toMatch(new RegExp(`^gpu\\.js ${backend} \\(`));
        const { qk, v } = lshInputs(c);
        const want = await lshAttention(qk, v, { ...c, shape: [c.B, c.h, c.L, c.dK], runner: reference });
        expect(run.buckets, `${backend} ${c.name}: buckets`).toEqual(Array.from(want.buckets));
        expectClose(run.output, want.output, RTOL, ATOL, `${backend} ${c.name}: output`);
      }
    }, SLOW);

    it("a ReformerLM training step: loss and every gradient match Node's reference", async () => {
      const got = await call('trainStep', backend);
      expect(got.description).toMatch(new RegExp(`^gpu\\.js ${backend} \\(`));
      const c = trainStepCase();
      const want = await runTrainStep(new ReferenceRunner(), c.objective, c.params, c.batch, c.seed);
      const lossError = Math.abs(got.loss - want.loss) / want.loss;
      let worst = 0;
      let worstName = '';
      for (const [name, g] of want.grads) {
        const page = got.grads[name];
        expect(page, `gradient ${name}`).toBeDefined();
        // tolerance relative to the gradient's scale: float32 sums of many terms
        const scale = Math.max(...Array.from(g.data, Math.abs));
        const c = closeness(page!, g.data, 1e-3, 1e-4 * scale + 1e-7);
        if (c > worst) [worst, worstName] = [c, name];
      }
      console.log(`[browser] ${got.description}: loss ${got.loss} vs reference ${want.loss} (rel ${lossError.toExponential(2)}), worst gradient closeness ${worst.toFixed(3)} (${worstName}), ${got.ms.toFixed(0)} ms`);
      expect(lossError).toBeLessThan(1e-5);
      expect(worst, `worst gradient ${worstName}`).toBeLessThanOrEqual(1);
      expect(Object.keys(got.grads).sort()).toEqual([...want.grads.keys()].sort());
    }, SLOW);
  });
}
