/**
 * `npm run bench -- browser [--json] [--quick]`: a ReformerLM training step and one LSH attention
 * layer on gpu.js's webgpu, webgl2 and webasm backends in headless Chromium, and on webasm in
 * Node, side by side in one run, with ratios to webasm in Node.
 *
 * Without a GPU, Chromium runs WebGPU and WebGL2 on SwiftShader, a CPU rasteriser: these figures
 * show that each backend's code runs and what it costs relative to the others on this machine,
 * not GPU speed.
 */
import os from 'node:os';
import { bundle, chromiumPath, openPage } from '../test/browser/chromium.ts';
import { LSH_LAYER, runWorkload, TRAIN_STEP, type WorkloadName, type WorkloadResult } from './browser-page.ts';
import type { Suite, SuiteFlags } from './suites.ts';
import { formatTable, machineInfo } from './support/measure.ts';

const PAGE_BACKENDS = ['webgpu', 'webgl2', 'webasm'] as const;

async function run(flags: SuiteFlags): Promise<unknown> {
  const runs = flags.quick ? 2 : 5;
  const workloads: WorkloadName[] = ['train-step', 'lsh-layer'];
  const log = (msg: string) => {
    if (!flags.json) process.stderr.write(`  ${msg}\n`);
  };
  const js = await bundle(new URL('./browser-page.ts', import.meta.url).pathname);
  const html = '<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/bench.js"></script>';
  const page = await openPage(
    new Map([
      ['/index.html', { body: html, type: 'text/html; charset=utf-8' }],
      ['/bench.js', { body: js, type: 'text/javascript; charset=utf-8' }],
    ]),
    '/',
    'reformer-ts bench: ready',
  );
  const browserVersion = page.browser.version();
  const results: (WorkloadResult & { runtime: string })[] = [];
  try {
    for (const workload of workloads) {
      const node = await runWorkload(workload, 'webasm', runs, os.cpus().length);
      results.push({ ...node, runtime: 'node' });
      log(`${workload} node webasm: first ${node.firstMs.toFixed(0)} ms, median ${node.medianMs.toFixed(1)} ms`);
      for (const backend of PAGE_BACKENDS) {
        const r = await page.page.evaluate(
          ([w, b, n]) => (window as unknown as { reformerBench: { run(w: string, b: string, n: number): Promise<WorkloadResult> } }).reformerBench.run(w, b, n),
          [workload, backend, runs] as const,
        );
        results.push({ ...r, runtime: 'chromium' });
        log(`${workload} chromium ${backend}: first ${r.firstMs.toFixed(0)} ms, median ${r.medianMs.toFixed(1)} ms`);
      }
    }
  } finally {
    await page.close();
  }
  // Other processes on the same cores slow SwiftShader most: the load average goes with the figures.
  const info = { ...machineInfo(), chromium: `${chromiumPath()} ${browserVersion}`, runs, loadAverage: os.loadavg().map((l) => Number(l.toFixed(1))) };
  if (flags.json) {
    console.log(JSON.stringify({ machine: info, results }, null, 2));
    return { machine: info, results };
  }
  const rows = results.map((r) => {
    const base = results.find((x) => x.workload === r.workload && x.runtime === 'node')!;
    return [
      r.workload,
      r.runtime === 'node' ? 'Node webasm' : `Chromium ${r.backend}`,
      r.description.replace(/^gpu\.js /, ''),
      String(r.cores),
      (r.firstMs / 1000).toFixed(1),
      r.medianMs.toFixed(1),
      `${(r.medianMs / base.medianMs).toFixed(2)}×`,
      r.value.toPrecision(6),
    ];
  });
  const [B, h, L, dK] = LSH_LAYER.shape;
  console.log(
    `browser suite: ${info.cpu}, ${info.cores} cores, ${info.node}, ${info.chromium}; median of ${runs} runs after one first call; load average ${info.loadAverage.join(' ')}\n` +
      `train-step: ReformerLM L=${TRAIN_STEP.model.seqLen} d=${TRAIN_STEP.model.dModel} ${TRAIN_STEP.model.nLayers} layers (local+LSH), batch ${TRAIN_STEP.batchSize}, loss and all gradients\n` +
      `lsh-layer: lshAttention forward [${B},${h},${L},${dK}], ${LSH_LAYER.nHashes} hashes, chunks of ${LSH_LAYER.chunkLen}, causal\n` +
      'Chromium has no GPU here: webgpu and webgl2 run on SwiftShader, a CPU rasteriser, so these ratios are the cost of\n' +
      "each backend's code on this CPU, not GPU speed. cores = logical processors the runtime reports (gpu.js webasm threads;\n" +
      'SwiftShader schedules its own threads). value = loss or Σ output, equal across runtimes up to float32 rounding.\n',
  );
  console.log(formatTable(['workload', 'runtime', 'executor', 'cores', 'first s', 'median ms', 'vs Node', 'value'], rows));
  return { machine: info, results };
}

export const browserSuite: Suite = {
  name: 'browser',
  description: 'training step and LSH layer on webgpu/webgl2/webasm in headless Chromium vs webasm in Node',
  run,
};
