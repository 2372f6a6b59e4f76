/**
 * The HF fixture (test/fixtures/hf, made by tools/hf-fixture/make_fixture.py with transformers' own
 * ReformerModelWithLMHead) and the measures the interop tests report.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { decodeSafetensors } from '../../runtime/safetensors.ts';

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'hf');
export const HF_TINY = join(FIXTURE_DIR, 'tiny');

export interface HfReference {
  /** HF's input_ids [B, L] (the first token is the pad id 0). */
  readonly inputIds: HostTensor;
  /** Per LSH layer, in layer order: [heads, head_size, hashes, buckets/2]. */
  readonly rotations: Float32Array[];
  /** HF's float64 logits [B, L, V]. */
  readonly logits: HostTensor;
  /** HF's own float32 logits, for comparison. */
  readonly logitsF32: HostTensor;
  readonly loss: number;
  /** HF float64 gradients by HF parameter name. */
  readonly grads: Map<string, HostTensor>;
}

export async function loadReference(): Promise<HfReference> {
  const file = join(FIXTURE_DIR, 'reference.safetensors');
  const { tensors } = decodeSafetensors(await readFile(file), file);
  const get = (n: string) => {
    const t = tensors.get(n);
    if (t === undefined) throw new Error(`${file} lacks '${n}'`);
    return t;
  };
  const rotations: Float32Array[] = [];
  for (let i = 0; tensors.has(`rotations.${i}`); i++) rotations.push(Float32Array.from(get(`rotations.${i}`).data));
  const grads = new Map<string, HostTensor>();
  for (const [n, t] of tensors) if (n.startsWith('grad.')) grads.set(n.slice('grad.'.length), t);
  return { inputIds: get('input_ids'), rotations, logits: get('logits'), logitsF32: get('logits_f32'), loss: get('loss').data[0]!, grads };
}

/**
 * Our model shifts right inside (ShiftRight with the pad id 0); HF's does not. So our tokens are
 * HF's input_ids shifted left, with any token at the end: ShiftRight gives back input_ids exactly.
 */
export function ourTokens(inputIds: HostTensor): HostTensor {
  const [B, L] = inputIds.shape as [number, number];
  const data = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    if (inputIds.data[b * L] !== 0) throw new Error('the fixture input_ids must start with the pad id 0');
    for (let t = 0; t < L; t++) data[b * L + t] = t + 1 < L ? inputIds.data[b * L + t + 1]! : 1;
  }
  return { shape: [B, L], dtype: 'i32', data };
}

/** HF's loss covers predictions 0..L-2 (labels shifted inside); our last position predicts the extra token. */
export function hfLossWeights(B: number, L: number): HostTensor {
  const data = new Float32Array(B * L);
  for (let b = 0; b < B; b++) for (let t = 0; t < L - 1; t++) data[b * L + t] = 1;
  return { shape: [B, L], dtype: 'f32', data };
}

export interface Agreement {
  readonly maxAbs: number;
  /** max |ours − HF| / max |HF|: the error relative to the tensor's scale. */
  readonly rel: number;
}

export function agreement(ours: ArrayLike<number>, theirs: ArrayLike<number>): Agreement {
  if (ours.length !== theirs.length) throw new Error(`length ${ours.length} vs ${theirs.length}`);
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < ours.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(ours[i]! - theirs[i]!));
    scale = Math.max(scale, Math.abs(theirs[i]!));
  }
  return { maxAbs, rel: maxAbs / Math.max(scale, 1e-30) };
}

export const scratchDir = (tag: string) => mkdtemp(join(tmpdir(), `reformer-interop-${tag}-`));
