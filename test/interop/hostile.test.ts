/**
 * Hostile or mismatched inputs to import and export: each is refused with one clear line naming
 * the tensor, field or option, and nothing is written (no output directory, no temp leftovers).
 */
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flattenParams, InitKey, spec } from '../../dsl/layer.ts';
import { defaultRunConfig, validateRunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { exportHfCheckpoint, importHfCheckpoint } from '../../reformer/interop/hf-convert.ts';
import { RunDirectory } from '../../reformer/train/run-dir.ts';
import { makeOptimizer } from '../../reformer/train/trainer.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { decodeSafetensors, encodeSafetensors } from '../../runtime/safetensors.ts';
import { HF_TINY, scratchDir } from './support.ts';

let dir: string;
let tensors: Map<string, HostTensor>;
let config: Record<string, unknown>;
let n = 0;

beforeAll(async () => {
  dir = await scratchDir('hostile');
  tensors = decodeSafetensors(await readFile(join(HF_TINY, 'model.safetensors'))).tensors;
  config = JSON.parse(await readFile(join(HF_TINY, 'config.json'), 'utf8')) as Record<string, unknown>;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An HF directory with the fixture's files, edited. */
async function hfDir(edit: { config?: Record<string, unknown>; tensors?: Map<string, HostTensor>; files?: Record<string, Uint8Array | string>; noSafetensors?: boolean }) {
  const d = join(dir, `hf-${n++}`);
  await mkdir(d);
  await writeFile(join(d, 'config.json'), JSON.stringify(edit.config ?? config));
  if (!edit.noSafetensors) await writeFile(join(d, 'model.safetensors'), encodeSafetensors(edit.tensors ?? tensors, { format: 'pt' }));
  for (const [name, bytes] of Object.entries(edit.files ?? {})) await writeFile(join(d, name), bytes);
  return d;
}

/** Imports `src`, expecting a refusal matching `message`, and checks that nothing was written. */
async function refused(src: string, message: RegExp) {
  const out = join(dir, `run-${n++}`);
  const before = await readdir(dir);
  const error = await importHfCheckpoint(src, out).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(error, 'import should refuse').toBeInstanceOf(Error);
  expect(error!.message).toMatch(message);
  expect(error!.message.split('\n')).toHaveLength(1);
  expect(await readdir(dir)).toEqual(before);
  return error!.message;
}

const without = (name: string) => new Map([...tensors].filter(([k]) => k !== name));
const replaced = (name: string, t: HostTensor) => new Map([...tensors].map(([k, v]) => [k, k === name ? t : v]));

describe('import refuses, naming what is wrong, and writes nothing', () => {
  it('a missing tensor', async () => {
    const name = 'reformer.encoder.layers.1.attention.self_attention.query_key.weight';
    await refused(await hfDir({ tensors: without(name) }), new RegExp(`tensor '${name.replace(/\./g, '\\.')}' is missing \\(expected shape \\[16,16\\]\\)`));
  });

  it('a tensor of the wrong shape', async () => {
    const name = 'reformer.embeddings.position_embeddings.weights.0';
    await refused(await hfDir({ tensors: replaced(name, { shape: [4, 8], dtype: 'f32', data: new Float32Array(32) }) }), /weights\.0' has shape \[4,8\], but config\.json implies \[4,1,8\]/);
  });

  it('an extra tensor, and tied biases that differ', async () => {
    const extra = new Map(tensors).set('reformer.encoder.layers.9.attention.layer_norm.weight', { shape: [16], dtype: 'f32', data: new Float32Array(16) });
    await refused(await hfDir({ tensors: extra }), /layers\.9\.attention\.layer_norm\.weight' \[16\] is not part of a ReformerModelWithLMHead/);
    const bias = tensors.get('lm_head.decoder.bias')!;
    await refused(await hfDir({ tensors: replaced('lm_head.decoder.bias', { ...bias, data: new Float32Array(bias.data.length) }) }), /'lm_head\.bias' and 'lm_head\.decoder\.bias' are tied in HF but hold different values/);
  });

  it('float64 tensors', async () => {
    const d = await hfDir({ noSafetensors: true, files: { 'model.safetensors': encodeSafetensors(tensors, { format: 'pt' }, { float: 'F64' }) } });
    await refused(d, /tensor 'reformer\.embeddings\.word_embeddings\.weight' must be float32 \(F32\), got F64/);
  });

  it('unknown or unsupported config fields, naming field and value', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ use_rotary: true }, /field 'use_rotary' = true: is not a ReformerConfig field/],
      [{ num_buckets: [2, 4] }, /field 'num_buckets' = \[2,4\]: factorised buckets/],
      [{ hash_seed: 42 }, /field 'hash_seed' = 42: only null is supported/],
      [{ is_decoder: false }, /field 'is_decoder' = false: .*encoder-only/],
      [{ hidden_act: 'gelu' }, /field 'hidden_act' = "gelu": supported: "relu", "gelu_new"/],
      [{ chunk_size_feed_forward: 5 }, /field 'chunk_size_feed_forward' = 5: must be 0 or a divisor of the sequence length 32/],
      [{ local_attn_chunk_length: 5 }, /field 'local_attn_chunk_length' = 5: must divide the sequence length 32/],
      [{ lsh_attn_chunk_length: 64 }, /field 'lsh_attn_chunk_length' = 64: must divide the sequence length 32/],
      [{ lsh_num_chunks_after: 1 }, /field 'lsh_num_chunks_after' = 1: only 0 is supported/],
      [{ axial_pos_embds: false }, /field 'axial_pos_embds' = false/],
      [{ max_position_embeddings: 64 }, /field 'max_position_embeddings' = 64: must equal the product of axial_pos_shape \[4,8\]/],
      [{ architectures: ['ReformerForMaskedLM'] }, /field 'architectures' = \["ReformerForMaskedLM"\]/],
    ];
    for (const [edit, message] of cases) await refused(await hfDir({ config: { ...config, ...edit } }), message);
  });

  it('a pickle: pytorch_model.bin is never opened; safetensors is recommended', async () => {
    const pickle = Uint8Array.of(0x80, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0, 0, 0x2e);
    const onlyBin = await hfDir({ noSafetensors: true, files: { 'pytorch_model.bin': pickle } });
    const msg = await refused(onlyBin, /pytorch_model\.bin: it is a Python pickle, which this importer never loads .*safe_serialization=True/);
    expect(msg).toMatch(/safetensors/);
    await refused(join(onlyBin, 'pytorch_model.bin'), /pytorch_model\.bin: it is a Python pickle/);
    await refused(await hfDir({ noSafetensors: true, files: { 'model.safetensors': pickle } }), /model\.safetensors: starts like a pickle, not safetensors/);
    await refused(await hfDir({ noSafetensors: true, files: { 'model.safetensors': Uint8Array.of(0x50, 0x4b, 3, 4, 0, 0, 0, 0) } }), /zip archive \(torch\.save format\)/);
  });

  it('a truncated safetensors file and a broken config.json', async () => {
    const good = await readFile(join(HF_TINY, 'model.safetensors'));
    await refused(await hfDir({ noSafetensors: true, files: { 'model.safetensors': good.subarray(0, good.length - 10) } }), /model\.safetensors/);
    const d = await hfDir({});
    await writeFile(join(d, 'config.json'), '{ not json');
    await refused(d, /config\.json: cannot read it as JSON/);
  });

  it('an output directory that already holds something', async () => {
    const out = join(dir, `occupied-${n++}`);
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine');
    await expect(importHfCheckpoint(HF_TINY, out)).rejects.toThrow(/run directory '.*' already exists and is not empty/);
    expect(await readdir(out)).toEqual(['keep.txt']);
  });
});

describe('export refuses what HF cannot express, and writes nothing', () => {
  async function ourRun(model: Record<string, unknown>): Promise<string> {
    const cfg = validateRunConfig({ model: { ...defaultRunConfig.model, seqLen: 32, chunkLen: 8, ffChunkLen: 0, axialShape: [4, 8], dModel: 16, dHead: 8, dFF: 16, axialDims: [8, 8], ...model } });
    const params = new Map(flattenParams(buildModel(cfg.model).init(new InitKey(1), [spec([1, 32], 'i32')])));
    const root = join(dir, `ours-${n++}`);
    await new RunDirectory(root).save({ step: 1, params, optimizer: makeOptimizer(cfg, params) }, { config: cfg, seed: 0 });
    return root;
  }

  it('full attention layers and the transformer baseline', async () => {
    for (const [model, message] of [
      [{ attention: ['local', 'full'] }, /model option 'attention' = \["local","full"\]: layer 1 is 'full'/],
      [{ architecture: 'transformer' }, /model option 'architecture' = "transformer"/],
    ] as const) {
      const src = await ourRun(model);
      const out = join(dir, `hf-out-${n++}`);
      const before = await readdir(dir);
      await expect(exportHfCheckpoint(src, out)).rejects.toThrow(message);
      expect(await readdir(dir)).toEqual(before);
    }
  });

  it('an output directory that already holds something', async () => {
    const src = await ourRun({});
    const out = join(dir, `hf-occupied-${n++}`);
    await cp(HF_TINY, out, { recursive: true });
    await expect(exportHfCheckpoint(src, out)).rejects.toThrow(/output directory '.*' already exists and is not empty/);
    expect(await readFile(join(out, 'model.safetensors'))).toEqual(await readFile(join(HF_TINY, 'model.safetensors')));
  });
});
