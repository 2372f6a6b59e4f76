/** ReformerConfig ↔ ModelConfig details, and sharded safetensors directories. */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHfConfig, toHfConfig } from '../../reformer/interop/hf-config.ts';
import { readHfCheckpoint } from '../../reformer/interop/hf-files.ts';
import { decodeSafetensors, encodeSafetensors } from '../../runtime/safetensors.ts';
import { HF_TINY, scratchDir } from './support.ts';

let config: Record<string, unknown>;
let dir: string;
beforeAll(async () => {
  config = JSON.parse(await readFile(join(HF_TINY, 'config.json'), 'utf8')) as Record<string, unknown>;
  dir = await scratchDir('config');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fromHfConfig / toHfConfig', () => {
  it('maps the fixture config field by field, and back', () => {
    const m = fromHfConfig(config, 'config.json');
    expect(m).toMatchObject({ vocabSize: 40, seqLen: 32, dModel: 16, dFF: 32, nHeads: 2, dHead: 8, nLayers: 4, nHashes: 2, nBuckets: 8, chunkLen: 8, ffChunkLen: 0, ffActivation: 'gelu', layerNormEpsilon: 1e-12, axialShape: [4, 8], axialDims: [8, 8] });
    expect(m.attention).toEqual(['local', 'lsh', 'local', 'lsh']);
    const back = toHfConfig(m);
    for (const k of ['vocab_size', 'attn_layers', 'num_buckets', 'hidden_act', 'layer_norm_eps', 'max_position_embeddings', 'is_decoder']) expect(back[k], k).toEqual(config[k]);
    expect(fromHfConfig(back, 'exported')).toEqual(m);
  });

  it('different local and LSH chunk lengths map to localChunkLen, and back', () => {
    const m = fromHfConfig({ ...config, local_attn_chunk_length: 16 }, 'c');
    expect([m.chunkLen, m.localChunkLen]).toEqual([8, 16]);
    expect(toHfConfig(m)).toMatchObject({ lsh_attn_chunk_length: 8, local_attn_chunk_length: 16 });
    expect(fromHfConfig(config, 'c').localChunkLen).toBeUndefined();
  });

  it("num_buckets null takes HF's rule (a power of two at most 2L/c), written explicitly", () => {
    // L = 48, c = 8: 2L/c = 12, HF picks 8 (our own default would be 12)
    const c = { ...config, num_buckets: null, axial_pos_shape: [6, 8], max_position_embeddings: 48 };
    expect(fromHfConfig(c, 'c').nBuckets).toBe(8);
    // beyond HF's limit it would factorise: refused, naming the field
    const long = { ...config, num_buckets: null, axial_pos_shape: [64, 64], max_position_embeddings: 4096, lsh_attn_chunk_length: 4, local_attn_chunk_length: 4 };
    expect(() => fromHfConfig(long, 'c')).toThrow(/'num_buckets' = null: HF would choose factorised buckets \[32,64\]/);
  });

  it('fields left out take ReformerConfig defaults (e.g. an absent is_decoder is false: refused)', () => {
    const { is_decoder: _, ...rest } = config;
    expect(() => fromHfConfig(rest, 'c')).toThrow(/'is_decoder' = false/);
  });
});

describe('sharded safetensors', () => {
  it('reads model.safetensors.index.json and its shards as one state dict', async () => {
    const all = decodeSafetensors(await readFile(join(HF_TINY, 'model.safetensors'))).tensors;
    const names = [...all.keys()];
    const half = Math.floor(names.length / 2);
    const d = join(dir, 'sharded');
    await mkdir(d);
    await writeFile(join(d, 'config.json'), JSON.stringify(config));
    const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const weightMap: Record<string, string> = {};
    for (const [i, part] of [names.slice(0, half), names.slice(half)].entries()) {
      await writeFile(join(d, shards[i]!), encodeSafetensors(part.map((n) => [n, all.get(n)!] as const), { format: 'pt' }));
      for (const n of part) weightMap[n] = shards[i]!;
    }
    await writeFile(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const read = await readHfCheckpoint(d);
    expect([...read.tensors.keys()].sort()).toEqual([...names].sort());
    for (const n of names) expect(Array.from(read.tensors.get(n)!.data), n).toEqual(Array.from(all.get(n)!.data));
    weightMap[names[0]!] = '../elsewhere.safetensors';
    await writeFile(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    await expect(readHfCheckpoint(d)).rejects.toThrow(/shard "\.\.\/elsewhere\.safetensors" must be a file name in the same directory/);
  });
});
