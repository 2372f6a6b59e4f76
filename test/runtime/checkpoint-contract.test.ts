/**
 * Checkpoint contracts the main checkpoint tests leave open: which directory names count as
 * checkpoints (and in which order), which step `latest` resolves to, the manifest's own checks one
 * by one, option boundaries, what the cleanup removes and what it leaves, and the failure path of
 * the atomic write.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { Params } from '../../dsl/index.ts';
import {
  CheckpointError,
  checkParams,
  checkpointFormat,
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  saveCheckpoint,
  writeFileAtomic,
} from '../../runtime/checkpoint.ts';
import { decodeSafetensors } from '../../runtime/safetensors.ts';

const roots: string[] = [];
afterAll(() => Promise.all(roots.map((r) => rm(r, { recursive: true, force: true }))));
async function root() {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-contract-'));
  roots.push(dir);
  return dir;
}

const f32 = (shape: number[], values: number[]): HostTensor => ({ shape, dtype: 'f32', data: Float32Array.from(values) });
const params = (): Params => ({ w: f32([2], [1, 2]), b: f32([1], [3]) });
const data = (step: number) => ({ step, params: params(), config: { d: 2 }, training: { seed: 1 } });

describe('checkpoint directory names', () => {
  it('only step-<digits> directories count, in numeric order', async () => {
    const r = await root();
    for (const name of ['step-12', 'step-2', 'step-100', 'xstep-3', 'step-4-old', 'step-', 'step-x', 'latest-step-5']) await mkdir(join(r, name));
    expect(await listCheckpoints(r)).toEqual([2, 12, 100]);
  });

  it('a missing root has no checkpoints', async () => {
    expect(await listCheckpoints(join(await root(), 'nothing-here'))).toEqual([]);
    expect(await latestCheckpoint(join(await root(), 'nothing-here'))).toBeUndefined();
  });

  it('latest: the pointer when it names an existing step (even an older one), else the highest step', async () => {
    const r = await root();
    for (const s of [1, 2, 3]) await mkdir(join(r, `step-${s}`));
    expect(await latestCheckpoint(r)).toBe(3);
    await writeFile(join(r, 'latest'), 'step-2\n');
    expect(await latestCheckpoint(r)).toBe(2);
    await writeFile(join(r, 'latest'), 'step-7\n');
    expect(await latestCheckpoint(r)).toBe(3);
    await writeFile(join(r, 'latest'), 'garbage\n');
    expect(await latestCheckpoint(r)).toBe(3);
  });
});

describe('saveCheckpoint', () => {
  it('writes step-<N> with a manifest naming the format, and tensor files carrying format and step metadata', async () => {
    const r = await root();
    const dir = await saveCheckpoint(r, { ...data(5), optimizer: new Map([['step', { shape: [], dtype: 'i32', data: Int32Array.from([5]) }]]) });
    expect(basename(dir)).toBe('step-5');
    expect((await readFile(join(r, 'latest'), 'utf8')).trim()).toBe('step-5');
    const manifest = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    expect(manifest).toMatchObject({ format: 'reformer-ts-checkpoint', version: 1, step: 5, config: { d: 2 }, training: { seed: 1 } });
    expect(checkpointFormat).toBe('reformer-ts-checkpoint');
    for (const file of ['model.safetensors', 'optimizer.safetensors']) {
      expect(decodeSafetensors(await readFile(join(dir, file))).metadata).toEqual({ format: 'reformer-ts-checkpoint', step: '5' });
    }
  });

  it('step 0 and keep 1 are valid; negative steps, fractional steps and keep 0 are not', async () => {
    const r = await root();
    await saveCheckpoint(r, data(0));
    await saveCheckpoint(r, data(1), { keep: 1 });
    expect(await listCheckpoints(r)).toEqual([1]);
    await expect(saveCheckpoint(r, data(-1))).rejects.toThrow('saveCheckpoint: step must be a non-negative integer, got -1');
    await expect(saveCheckpoint(r, data(1.5))).rejects.toThrow(CheckpointError);
    await expect(saveCheckpoint(r, data(2), { keep: 0 })).rejects.toThrow("saveCheckpoint: option 'keep' must be a positive integer, got 0");
  });

  it('cleanup removes temp and trash entries only: other files and steps stay', async () => {
    const r = await root();
    await saveCheckpoint(r, data(1));
    await writeFile(join(r, 'notes.txt'), 'mine');
    await mkdir(join(r, '.tmp-step-2-abc'));
    await writeFile(join(r, '.trash-step-1-def'), 'old');
    await saveCheckpoint(r, data(2));
    expect((await readdir(r)).sort()).toEqual(['latest', 'notes.txt', 'step-1', 'step-2']);
  });
});

describe('loadCheckpoint: the manifest', () => {
  async function saved() {
    const r = await root();
    const dir = await saveCheckpoint(r, data(3));
    const manifest = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const rewrite = (m: unknown) => writeFile(join(dir, 'config.json'), JSON.stringify(m));
    return { r, dir, manifest, rewrite };
  }

  it('is an object of our format', async () => {
    const { dir, manifest, rewrite } = await saved();
    for (const bad of [null, 7, 'text', { ...manifest, format: 'other' }]) {
      await rewrite(bad);
      await expect(loadCheckpoint(dir)).rejects.toThrow(`${dir}: config.json is not a reformer-ts-checkpoint manifest`);
    }
  });

  it('has our version', async () => {
    const { dir, manifest, rewrite } = await saved();
    await rewrite({ ...manifest, version: 2 });
    await expect(loadCheckpoint(dir)).rejects.toThrow(`${dir}: checkpoint version 2 is not supported (expected 1)`);
  });

  it('has a non-negative integer step (0 included)', async () => {
    const { dir, manifest, rewrite } = await saved();
    for (const step of [-1, 1.5, '3', null]) {
      await rewrite({ ...manifest, step });
      await expect(loadCheckpoint(dir)).rejects.toThrow(`${dir}: config.json has an invalid step ${JSON.stringify(step)}`);
    }
    await rewrite({ ...manifest, step: 0 });
    expect((await loadCheckpoint(dir)).step).toBe(0);
  });

  it('records a checksum for each tensor file', async () => {
    const { dir, manifest, rewrite } = await saved();
    await rewrite({ ...manifest, files: {} });
    await expect(loadCheckpoint(dir)).rejects.toThrow(`${dir}: config.json has no checksum for model.safetensors`);
    await rewrite({ ...manifest, files: undefined });
    await expect(loadCheckpoint(dir)).rejects.toThrow(/no checksum for model.safetensors/);
  });
});

describe('loadCheckpoint: which step', () => {
  it('loads the requested step from a root, and names the available ones when it is missing', async () => {
    const r = await root();
    await saveCheckpoint(r, data(1));
    await saveCheckpoint(r, data(2));
    const one = await loadCheckpoint(r, { step: 1 });
    expect([basename(one.dir), one.step]).toEqual(['step-1', 1]);
    expect((await loadCheckpoint(r)).step).toBe(2);
    await expect(loadCheckpoint(r, { step: 9 })).rejects.toThrow(`${r}: no checkpoint for step 9 (available: 1, 2)`);
  });

  it('a step directory loads itself; asked for a step inside it, there is none', async () => {
    const r = await root();
    const dir = await saveCheckpoint(r, data(4));
    expect((await loadCheckpoint(dir)).step).toBe(4);
    await expect(loadCheckpoint(dir, { step: 4 })).rejects.toThrow(`${dir}: no checkpoint for step 4 (available: none)`);
    await expect(loadCheckpoint(await root())).rejects.toThrow(/no checkpoint found \(no step-N directories\)/);
  });
});

describe('checkParams', () => {
  it('names an extra parameter, a missing one, a shape and a dtype mismatch', () => {
    const loaded = new Map<string, HostTensor>([['w', f32([2], [1, 2])], ['b', f32([1], [3])]]);
    expect(checkParams(loaded, params(), 'D')).toEqual({ w: loaded.get('w'), b: loaded.get('b') });
    const extra = new Map([...loaded, ['x', f32([3], [1, 2, 3])]]);
    expect(() => checkParams(extra, params(), 'D')).toThrow("D: checkpoint is for a different model: it has parameter 'x' [3] that the model does not have");
    const missing = new Map([['w', loaded.get('w')!]]);
    expect(() => checkParams(missing, params(), 'D')).toThrow("D: checkpoint is for a different model: parameter 'b' is missing (the model expects shape [1])");
    const reshaped = new Map([...loaded, ['w', f32([1, 2], [1, 2])]]);
    expect(() => checkParams(reshaped, params(), 'D')).toThrow("parameter 'w' has shape [1,2] but the model expects [2]");
    // a shape that is a prefix of the expected one differs too
    const shorter = new Map([...loaded, ['b', f32([], [3])]]);
    expect(() => checkParams(shorter, params(), 'D')).toThrow("parameter 'b' has shape [] but the model expects [1]");
    const retyped = new Map<string, HostTensor>([...loaded, ['b', { shape: [1], dtype: 'i32', data: Int32Array.from([3]) }]]);
    expect(() => checkParams(retyped, params(), 'D')).toThrow("parameter 'b' is i32 but the model expects f32");
    try {
      checkParams(extra, params(), 'D');
    } catch (e) {
      expect((e as Error).name).toBe('CheckpointError');
    }
  });
});

describe('writeFileAtomic', () => {
  it('a failed rename leaves no temp file behind and reports the error', async () => {
    const r = await root();
    await mkdir(join(r, 'occupied'));
    await writeFile(join(r, 'occupied', 'inside'), 'x');
    await expect(writeFileAtomic(join(r, 'occupied'), 'new')).rejects.toThrow();
    expect((await readdir(r)).sort()).toEqual(['occupied']);
  });
});
