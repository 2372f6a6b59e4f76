import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { Dense, Embedding, InitKey, LayerNorm, Serial, flattenParams, spec, type Params } from '../../dsl/index.ts';
import { CheckpointError, latestCheckpoint, listCheckpoints, loadCheckpoint, saveCheckpoint, writeFileAtomic, type SaveStage } from '../../runtime/checkpoint.ts';
import { Adam } from '../../runtime/optim/index.ts';

const model = () => Serial(Embedding(11, 6), LayerNorm(), Dense(4));
const initParams = (seed: number) => model().init(new InitKey(seed), [spec([2, 3], 'i32')]);
const flat = (p: Params) => new Map(flattenParams(p));

const roots: string[] = [];
afterAll(() => Promise.all(roots.map((r) => rm(r, { recursive: true, force: true }))));
async function root() {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
  roots.push(dir);
  return dir;
}

/** Parameters and optimizer state as they would be after `step` training steps. */
function trainedState(step: number) {
  const params = initParams(step + 1);
  const asMap = flat(params) as Map<string, HostTensor>;
  const opt = new Adam(asMap);
  const grads = new Map([...asMap].map(([k, t]) => [k, { ...t, data: Float32Array.from(t.data, (x, i) => Math.sin(x + i)) }] as const));
  for (let s = 0; s < step; s++) opt.update(asMap, grads, 0.01);
  return { step, params, optimizer: opt.stateTensors(), config: { dModel: 6, vocab: 11 }, training: { seed: 42, dataPosition: step * 8 } };
}

function expectSameParams(a: Params, b: Params) {
  const fa = flattenParams(a) as Array<[string, HostTensor]>;
  const fb = new Map(flattenParams(b) as Array<[string, HostTensor]>);
  expect([...fb.keys()]).toEqual(fa.map(([k]) => k));
  for (const [k, t] of fa) {
    expect(fb.get(k)!.shape).toEqual(t.shape);
    expect(Array.from(fb.get(k)!.data)).toEqual(Array.from(Float32Array.from(t.data)));
  }
}

describe('checkpoints', () => {
  it('save then load restores params (same tree), optimizer state, config and training state', async () => {
    const dir = await root();
    const data = trainedState(3);
    const path = await saveCheckpoint(dir, data);
    expect(path).toBe(join(dir, 'step-3'));
    expect((await readFile(join(dir, 'latest'), 'utf8')).trim()).toBe('step-3');
    expect((await readdir(path)).sort()).toEqual(['config.json', 'model.safetensors', 'optimizer.safetensors']);

    const loaded = await loadCheckpoint(dir, { expectedParams: initParams(0) });
    expect(loaded.step).toBe(3);
    expectSameParams(data.params, loaded.params);
    expect(Array.isArray(loaded.params)).toBe(Array.isArray(data.params));
    expect(loaded.config).toEqual(data.config);
    expect(loaded.training).toEqual(data.training);
    const opt = new Adam(flat(initParams(0)) as Map<string, HostTensor>);
    opt.loadState(loaded.optimizer);
    expect(opt.step).toBe(3);
    for (const [k, t] of data.optimizer) expect(loaded.optimizer.get(k)!.data).toEqual(t.data);

    // A step directory can be loaded directly, and without an expected tree (flat by path).
    const direct = await loadCheckpoint(path);
    expect(Object.keys(direct.params as object).sort()).toEqual(flattenParams(data.params).map(([k]) => k).sort());
  });

  it('keeps the last K checkpoints and always the one just written', async () => {
    const dir = await root();
    for (const s of [1, 2, 3, 4, 5]) await saveCheckpoint(dir, trainedState(s), { keep: 2 });
    expect(await listCheckpoints(dir)).toEqual([4, 5]);
    await saveCheckpoint(dir, trainedState(2), { keep: 2 }); // e.g. after resuming from an older step
    expect(await listCheckpoints(dir)).toEqual([2, 5]);
    expect(await latestCheckpoint(dir)).toBe(2);
    expect((await loadCheckpoint(dir, { step: 5 })).step).toBe(5);
    await expect(loadCheckpoint(dir, { step: 4 })).rejects.toThrow(/no checkpoint for step 4 \(available: 2, 5\)/);
  });

  it('re-saving a step replaces it', async () => {
    const dir = await root();
    await saveCheckpoint(dir, trainedState(2));
    const other = { ...trainedState(2), params: initParams(99), training: { seed: 7 } };
    await saveCheckpoint(dir, other);
    const loaded = await loadCheckpoint(dir, { expectedParams: initParams(0) });
    expectSameParams(other.params, loaded.params);
    expect(loaded.training).toEqual({ seed: 7 });
    expect((await readdir(dir)).sort()).toEqual(['latest', 'step-2']);
  });

  it('a different model is a clear error naming the parameter and both shapes', async () => {
    const dir = await root();
    await saveCheckpoint(dir, trainedState(1));
    const wider = Serial(Embedding(11, 6), LayerNorm(), Dense(5)).init(new InitKey(0), [spec([2, 3], 'i32')]);
    await expect(loadCheckpoint(dir, { expectedParams: wider })).rejects.toThrow(
      /checkpoint is for a different model: parameter '2\.w' has shape \[6,4\] but the model expects \[6,5\]/,
    );
    const deeper = Serial(Embedding(11, 6), LayerNorm(), Dense(4), Dense(4)).init(new InitKey(0), [spec([2, 3], 'i32')]);
    await expect(loadCheckpoint(dir, { expectedParams: deeper })).rejects.toThrow(/parameter '3\.w' is missing \(the model expects shape \[4,4\]\)/);
    const smaller = Serial(Embedding(11, 6), LayerNorm()).init(new InitKey(0), [spec([2, 3], 'i32')]);
    await expect(loadCheckpoint(dir, { expectedParams: smaller })).rejects.toThrow(/it has parameter '2\.w' \[6,4\] that the model does not have/);
  });

  it('truncated or corrupt files are clear errors and change nothing on disk', async () => {
    const dir = await root();
    await saveCheckpoint(dir, trainedState(1));
    const file = join(dir, 'step-1', 'model.safetensors');
    const good = await readFile(file);
    const snapshot = async () => JSON.stringify(await readdir(join(dir, 'step-1')));
    const before = await snapshot();

    await writeFile(file, good.subarray(0, good.length - 7));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/model\.safetensors is \d+ bytes but config\.json records \d+ \(truncated or replaced\)/);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 3]! ^= 0x10;
    await writeFile(file, flipped);
    await expect(loadCheckpoint(dir)).rejects.toThrow(/does not match its SHA-256/);
    expect(await snapshot()).toBe(before);
    await writeFile(file, good);
    expect((await loadCheckpoint(dir)).step).toBe(1);

    const config = await readFile(join(dir, 'step-1', 'config.json'));
    await writeFile(join(dir, 'step-1', 'config.json'), '{"format": "reformer-ts-checkpoint", "vers');
    await expect(loadCheckpoint(dir)).rejects.toThrow(CheckpointError);
    await expect(loadCheckpoint(dir)).rejects.toThrow(/cannot read config\.json .*incomplete or corrupt/);
    await writeFile(join(dir, 'step-1', 'config.json'), config);
    await rm(join(dir, 'step-1', 'optimizer.safetensors'));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/cannot read optimizer\.safetensors/);
    await expect(loadCheckpoint(await root())).rejects.toThrow(/no checkpoint found/);
  });

  for (const crashAt of ['files-written', 'dir-committed', 'pointer-written'] as SaveStage[]) {
    it(`a crash at '${crashAt}' never corrupts the last good checkpoint, and the next save cleans up`, async () => {
      const dir = await root();
      const first = trainedState(1);
      await saveCheckpoint(dir, first);
      const second = trainedState(2);
      const crash = (s: SaveStage) => {
        if (s === crashAt) throw new Error('simulated crash');
      };
      await expect(saveCheckpoint(dir, second, { onStage: crash })).rejects.toThrow(/simulated crash/);
      const loaded = await loadCheckpoint(dir, { expectedParams: initParams(0) });
      // Before the pointer moves, `latest` is still the old checkpoint; after, the new one is complete.
      const expected = crashAt === 'pointer-written' ? second : first;
      expect(loaded.step).toBe(expected.step);
      expectSameParams(expected.params, loaded.params);

      await saveCheckpoint(dir, trainedState(3));
      expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
      expect((await loadCheckpoint(dir)).step).toBe(3);
    });
  }

  it('leftover temp files from a crashed write are ignored by load and removed by the next save', async () => {
    const dir = await root();
    await saveCheckpoint(dir, trainedState(1));
    await writeFile(join(dir, '.tmp-0123'), 'step-9');
    await mkdir(join(dir, '.tmp-step-9-abcd'));
    await writeFile(join(dir, '.tmp-step-9-abcd', 'model.safetensors'), 'garbage');
    expect((await loadCheckpoint(dir)).step).toBe(1);
    await saveCheckpoint(dir, trainedState(2));
    expect((await readdir(dir)).sort()).toEqual(['latest', 'step-1', 'step-2']);
  });

  it('a missing or stale latest pointer falls back to the newest step directory', async () => {
    const dir = await root();
    await saveCheckpoint(dir, trainedState(1));
    await saveCheckpoint(dir, trainedState(4));
    await rm(join(dir, 'latest'));
    expect((await loadCheckpoint(dir)).step).toBe(4);
    await writeFile(join(dir, 'latest'), '../../etc\n');
    expect(await latestCheckpoint(dir)).toBe(4);
    await writeFile(join(dir, 'latest'), 'step-1\n');
    expect(await latestCheckpoint(dir)).toBe(1);
  });

  it('writeFileAtomic replaces a file in one step and leaves no temp file', async () => {
    const dir = await root();
    const path = join(dir, 'x.txt');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, 'two');
    expect(await readFile(path, 'utf8')).toBe('two');
    expect(await readdir(dir)).toEqual(['x.txt']);
  });

  it('rejects bad options', async () => {
    const dir = await root();
    await expect(saveCheckpoint(dir, { ...trainedState(1), step: -1 })).rejects.toThrow(/step must be a non-negative integer/);
    await expect(saveCheckpoint(dir, trainedState(1), { keep: 0 })).rejects.toThrow(/'keep' must be a positive integer/);
  });
});
