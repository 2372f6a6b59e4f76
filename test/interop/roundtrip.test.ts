/**
 * Round trips: export(import(HF fixture)) reproduces the HF files byte for byte, and
 * import(export(our run)) reproduces our run (parameters bit for bit, the same logits); the imported
 * run works with eval, generate and train --resume.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flattenParams, InitKey, spec } from '../../dsl/layer.ts';
import { defaultRunConfig, validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { exportHfCheckpoint, importHfCheckpoint } from '../../reformer/interop/hf-convert.ts';
import { loadRun } from '../../reformer/train/run-dir.ts';
import { RunDirectory } from '../../reformer/train/run-dir.ts';
import { makeOptimizer } from '../../reformer/train/trainer.ts';
import { logitsGraph, objectiveFeeds } from '../../reformer/train/objective.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { decodeSafetensors } from '../../runtime/safetensors.ts';
import { main } from '../../cli/main.ts';
import { HF_TINY, scratchDir } from './support.ts';

let dir: string;
beforeAll(async () => {
  dir = await scratchDir('roundtrip');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A small byte-level run of ours (vocabulary 258, so eval/generate/train work on it). */
const ours: RunConfig = validateRunConfig({
  model: { seqLen: 32, dModel: 16, dFF: 32, nHeads: 2, dHead: 8, nLayers: 3, attention: ['lsh', 'local'], nHashes: 2, chunkLen: 8, ffChunkLen: 16, ffActivation: 'gelu', axialShape: [4, 8], axialDims: [6, 10] },
  train: { ...defaultRunConfig.train, batchSize: 2, steps: 3, evalBatches: 1, evalEvery: 100, checkpointEvery: 100 },
});

async function ourLogits(runDir: string, tokens: Int32Array): Promise<Float64Array | Float32Array | Int32Array> {
  const run = await loadRun(runDir, {}, 1);
  const rotation = (k: number) => Float32Array.from({ length: 2 * 8 * 2 * 4 }, (_, i) => Math.sin(i * 1.7 + k));
  const model = buildModel(run.config.model, { lshRotations: [rotation(0), rotation(1)] });
  const g = logitsGraph(model, run.paramTree, 1, run.config.model.seqLen);
  const [out] = await new ReferenceRunner().run(g.graph, objectiveFeeds(g.graph, run.params, { tokens: { shape: [1, 32], dtype: 'i32', data: tokens } }, 0));
  return out!.data;
}

describe('HF fixture → import → export', () => {
  it('reproduces config-implied names and every tensor exactly: model.safetensors is byte-identical', async () => {
    await importHfCheckpoint(HF_TINY, join(dir, 'imported'));
    await exportHfCheckpoint(join(dir, 'imported'), join(dir, 'exported'));
    const original = await readFile(join(HF_TINY, 'model.safetensors'));
    const again = await readFile(join(dir, 'exported', 'model.safetensors'));
    const a = decodeSafetensors(original).tensors;
    const b = decodeSafetensors(again).tensors;
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, t] of a) {
      expect(b.get(name)!.shape, name).toEqual(t.shape);
      expect(Buffer.from(new Float32Array(b.get(name)!.data).buffer).equals(Buffer.from(new Float32Array(t.data).buffer)), name).toBe(true);
    }
    expect(Buffer.from(again).equals(Buffer.from(original))).toBe(true);
    const hfConfig = JSON.parse(await readFile(join(HF_TINY, 'config.json'), 'utf8')) as Record<string, unknown>;
    const exported = JSON.parse(await readFile(join(dir, 'exported', 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['vocab_size', 'hidden_size', 'attn_layers', 'num_buckets', 'num_hashes', 'hidden_act', 'layer_norm_eps', 'axial_pos_shape', 'axial_pos_embds_dim', 'is_decoder']) {
      expect(exported[k], k).toEqual(hfConfig[k]);
    }
  });
});

describe('our run → export → import', () => {
  let original: string;
  let back: string;
  beforeAll(async () => {
    original = join(dir, 'ours');
    const params = new Map(flattenParams(buildModel(ours.model).init(new InitKey(11), [spec([1, 32], 'i32')])));
    await new RunDirectory(original).save({ step: 7, params, optimizer: makeOptimizer(ours, params) }, { config: ours, seed: 3 });
    await exportHfCheckpoint(original, join(dir, 'ours-hf'));
    back = join(dir, 'ours-back');
    await importHfCheckpoint(join(dir, 'ours-hf'), back, { backend: 'reference' });
  });

  it('reproduces every parameter bit for bit and the model config', async () => {
    const a = await loadRun(original, {}, 1);
    const b = await loadRun(back, {}, 1);
    // HF lists every layer's kind, so our cycle comes back written out; nBuckets comes back explicit
    expect(b.config.model).toEqual({ ...a.config.model, attention: ['lsh', 'local', 'lsh'], nBuckets: (2 * 32) / 8 });
    expect([...b.params.keys()]).toEqual([...a.params.keys()]);
    for (const [name, t] of a.params) expect(Array.from(b.params.get(name)!.data), name).toEqual(Array.from(t.data));
  });

  it('gives the same logits (same rotations), exactly', async () => {
    const tokens = Int32Array.from({ length: 32 }, (_, i) => (i * 37) % 258);
    expect(Array.from(await ourLogits(back, tokens))).toEqual(Array.from(await ourLogits(original, tokens)));
  });

  it('the imported run works with eval, generate and train --resume', async () => {
    const log: string[] = [];
    const saved = console.log;
    console.log = (...a: unknown[]) => log.push(a.join(' '));
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (log.push(String(s)), true)) as typeof process.stdout.write;
    try {
      expect(await main(['eval', '--checkpoint', back, '--batches', '1', '--backend', 'reference'])).toBe(0);
      expect(await main(['generate', '--checkpoint', back, '--prompt', 'The', '--length', '4', '--backend', 'reference'])).toBe(0);
      expect(await main(['train', '--out', back, '--resume', '--steps', '1', '--no-progress'])).toBe(0);
    } finally {
      console.log = saved;
      process.stdout.write = write;
    }
    expect(log.join('\n')).toMatch(/bits\/char/);
    expect(await readdir(back)).toContain('step-1');
  }, 120_000);
});
