/**
 * The other direction of the HF fixture: a ReformerLM of ours (random init, byte vocabulary),
 * exported with `reformer export --format hf` (local chunks of 32, LSH chunks of 16), plus our
 * float64 logits for fixed inputs and rotations, for make_fixture.py's `check` to load with HF's
 * from_pretrained and compare.
 *
 *   npx tsx tools/hf-fixture/export-sample.ts OUT_DIR
 *   -> OUT_DIR/run (our run), OUT_DIR/hf (the export), OUT_DIR/ours.safetensors
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { flattenParams, InitKey, spec } from '../../dsl/layer.ts';
import { defaultRunConfig, validateRunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { exportHfCheckpoint } from '../../reformer/interop/hf-convert.ts';
import { RunDirectory } from '../../reformer/train/run-dir.ts';
import { makeOptimizer } from '../../reformer/train/trainer.ts';
import { logitsGraph, objectiveFeeds } from '../../reformer/train/objective.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { encodeSafetensors } from '../../runtime/safetensors.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';

const out = process.argv[2];
if (out === undefined) throw new Error('usage: export-sample.ts OUT_DIR');

const config = validateRunConfig({
  model: {
    seqLen: 64, dModel: 32, dFF: 48, nHeads: 2, dHead: 16, nLayers: 3, attention: ['lsh', 'local'], nHashes: 4, chunkLen: 16, localChunkLen: 32,
    ffChunkLen: 32, ffActivation: 'gelu', axialShape: [8, 8], axialDims: [12, 20], dropout: 0.05,
  },
  train: defaultRunConfig.train,
});
const m = config.model;
const B = 2;
const params = new Map(flattenParams(buildModel(m).init(new InitKey(2024), [spec([1, m.seqLen], 'i32')])));
const run = join(out, 'run');
await new RunDirectory(run).save({ step: 0, params, optimizer: makeOptimizer(config, params) }, { config, seed: 0 });
await exportHfCheckpoint(run, join(out, 'hf'));

// Rotations [heads, head_size, hashes, buckets/2] per LSH layer (HF's layout, shared by the batch).
let s = 12345;
const uniform = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) + 0.5) / 2 ** 32;
const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
const nLsh = Array.from({ length: m.nLayers }, (_, i) => m.attention[i % m.attention.length]).filter((k) => k === 'lsh').length;
const nb = (2 * m.seqLen) / m.chunkLen;
const rotations = Array.from({ length: nLsh }, () => Float32Array.from({ length: m.nHeads * m.dHead * m.nHashes * (nb / 2) }, normal));

const tokens = Int32Array.from({ length: B * m.seqLen }, () => 2 + Math.floor(uniform() * 256));
const hfIds = new Int32Array(B * m.seqLen); // our ShiftRight: HF's input is ours shifted right with the pad id 0
for (let b = 0; b < B; b++) for (let t = 1; t < m.seqLen; t++) hfIds[b * m.seqLen + t] = tokens[b * m.seqLen + t - 1]!;

const model = buildModel(m, { lshRotations: rotations });
const paramTree = buildModel(m).init(new InitKey(2024), [spec([B, m.seqLen], 'i32')]);
const g = logitsGraph(model, paramTree, B, m.seqLen);
const [logits] = await new ReferenceRunner().run(g.graph, objectiveFeeds(g.graph, params, { tokens: { shape: [B, m.seqLen], dtype: 'i32', data: tokens } }, 0));

const file: [string, HostTensor][] = [
  ['hf_input_ids', { shape: [B, m.seqLen], dtype: 'i32', data: hfIds }],
  ...rotations.map((r, i): [string, HostTensor] => [`rotations.${i}`, { shape: [m.nHeads, m.dHead, m.nHashes, nb / 2], dtype: 'f32', data: r }]),
  ['logits', logits!],
];
await writeFile(join(out, 'ours.safetensors'), encodeSafetensors(file, {}, { float: 'F64' }));
console.log(`wrote ${run}, ${join(out, 'hf')} and ${join(out, 'ours.safetensors')}`);
