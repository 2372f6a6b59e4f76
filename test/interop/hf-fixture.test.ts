/**
 * Our ReformerLM, imported from a checkpoint made by HF transformers' own ReformerModelWithLMHead,
 * against the logits, loss and gradients HF computed (float64 run; test/fixtures/hf/reference.json).
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { buildModel } from '../../reformer/model.ts';
import { importHfCheckpoint } from '../../reformer/interop/hf-convert.ts';
import { boundRows, toHfTensors } from '../../reformer/interop/hf-mapping.ts';
import { loadRun, type LoadedRun } from '../../reformer/train/run-dir.ts';
import { logitsGraph, objectiveFeeds, runTrainStep, trainObjective } from '../../reformer/train/objective.ts';
import { probeBackend } from '../../runtime/backend.ts';
import { createRunner } from '../../runtime/compiled-runner.ts';
import { ReferenceRunner, type GraphRunner } from '../../runtime/runner.ts';
import { agreement, hfLossWeights, HF_TINY, loadReference, ourTokens, scratchDir, type HfReference } from './support.ts';

let ref: HfReference;
let run: LoadedRun;
let dir: string;

beforeAll(async () => {
  ref = await loadReference();
  dir = await scratchDir('fixture');
  await importHfCheckpoint(HF_TINY, `${dir}/run`);
  run = await loadRun(`${dir}/run`, {}, ref.inputIds.shape[0]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function model() {
  return buildModel(run.config.model, { lshRotations: ref.rotations });
}

async function logits(runner: GraphRunner): Promise<HostTensor> {
  const [B, L] = ref.inputIds.shape as [number, number];
  const g = logitsGraph(model(), run.paramTree, B, L);
  const [out] = await runner.run(g.graph, objectiveFeeds(g.graph, run.params, { tokens: ourTokens(ref.inputIds) }, 0));
  return out!;
}

async function lossAndGrads(runner: GraphRunner) {
  const [B, L] = ref.inputIds.shape as [number, number];
  const objective = trainObjective(model(), run.paramTree, B, L);
  const r = await runTrainStep(runner, objective, run.params, { tokens: ourTokens(ref.inputIds), weights: hfLossWeights(B, L) }, 0);
  // our gradients in HF's names and layouts (the mapping table, as for parameters)
  return { loss: r.loss, grads: toHfTensors(run.config.model, r.grads) };
}

function gradAgreement(grads: Map<string, HostTensor>) {
  let worst = { name: '', maxAbs: 0, rel: 0 };
  expect(ref.grads.size).toBe(boundRows(run.config.model).length);
  for (const [name, want] of ref.grads) {
    const got = grads.get(name);
    expect(got, `our gradient for ${name}`).toBeDefined();
    const a = agreement(got!.data, want.data);
    if (a.rel > worst.rel) worst = { name, ...a };
  }
  return worst;
}

describe('HF fixture: float64 reference evaluator', () => {
  it('logits match HF float64 within 1e-9 (relative to the logits scale)', async () => {
    const a = agreement((await logits(new ReferenceRunner())).data, ref.logits.data);
    console.log(`[interop] reference-f64 logits vs HF f64: max abs ${a.maxAbs.toExponential(2)}, rel ${a.rel.toExponential(2)}`);
    const hf32 = agreement(ref.logitsF32.data, ref.logits.data);
    console.log(`[interop] (HF's own float32 run vs its float64 run: max abs ${hf32.maxAbs.toExponential(2)}, rel ${hf32.rel.toExponential(2)})`);
    expect(a.rel).toBeLessThan(1e-9);
  });

  it('loss and every gradient match HF float64 within 1e-9', async () => {
    const r = await lossAndGrads(new ReferenceRunner());
    const lossErr = Math.abs(r.loss - ref.loss) / Math.abs(ref.loss);
    const worst = gradAgreement(r.grads);
    console.log(`[interop] reference-f64 loss ${r.loss} vs HF ${ref.loss} (rel ${lossErr.toExponential(2)}); worst gradient ${worst.name}: max abs ${worst.maxAbs.toExponential(2)}, rel ${worst.rel.toExponential(2)}`);
    expect(lossErr).toBeLessThan(1e-9);
    expect(worst.rel).toBeLessThan(1e-9);
  });
});

describe('HF fixture: compiled float32 runner', () => {
  it('logits within 1e-4 relative, loss and gradients within 1e-4 relative', async () => {
    const backend = (await probeBackend('webasm')) === undefined ? 'webasm' : 'cpu';
    const runner = await createRunner({ backend });
    const a = agreement((await logits(runner)).data, ref.logits.data);
    const r = await lossAndGrads(runner);
    const lossErr = Math.abs(r.loss - ref.loss) / Math.abs(ref.loss);
    const worst = gradAgreement(r.grads);
    console.log(
      `[interop] ${runner.description} logits vs HF f64: max abs ${a.maxAbs.toExponential(2)}, rel ${a.rel.toExponential(2)}; loss rel ${lossErr.toExponential(2)}; worst gradient ${worst.name}: max abs ${worst.maxAbs.toExponential(2)}, rel ${worst.rel.toExponential(2)}`,
    );
    expect(a.rel).toBeLessThan(1e-4);
    expect(lossErr).toBeLessThan(1e-4);
    expect(worst.rel).toBeLessThan(1e-4);
  }, 240_000);
});
