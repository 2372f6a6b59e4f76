/**
 * Smoke test of `npm run repro`: a tiny duplication grid (2 steps per cell, toy model, reference
 * runner) end to end — one run directory per cell, the Table 2 shape per seed and as a mean, the
 * paper's numbers beside, resume of an interrupted grid and skipping of finished cells. It checks
 * no accuracy: at this scale there is none to check.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { validateModelConfig, validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { duplicationDataSource } from '../../reformer/train/data-source.ts';
import { evalSetup } from '../../reformer/eval-attention.ts';
import { armConfig, duplicationExperiment, quickScale, textExperiment } from '../../reformer/repro/experiments.ts';
import { cellDir, runGrid, type GridOptions, type GridResult } from '../../reformer/repro/grid.ts';
import { buildTables, renderTables } from '../../reformer/repro/table.ts';
import { curveSeries } from '../../reformer/repro/curves.ts';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'repro-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Smaller still than `--quick`: L = 16, d_model 16, batch 2. */
function toyScale(config: RunConfig): RunConfig {
  const q = quickScale(config);
  const model = { ...q.model, seqLen: 16, dModel: 16, dFF: 32, nHeads: 1, dHead: 8, chunkLen: 4, axialShape: [4, 4], axialDims: [8, 8] };
  return validateRunConfig({ model, train: { ...q.train, batchSize: 2 } });
}

const grid = (out: string, extra: Partial<GridOptions> = {}): Promise<GridResult> =>
  runGrid({ experiment: duplicationExperiment, out, seeds: [0, 1], runner: new ReferenceRunner(), backend: 'reference', scale: toyScale, steps: 2, ...extra });

describe('repro duplication grid (toy scale)', () => {
  it('trains every cell into its run directory and fills the Table 2 layout per seed and as a mean', async () => {
    const out = join(tmp, 'dup');
    const g = await grid(out);
    expect(g.stopped).toBe(false);
    expect(g.cells.map((c) => `${c.seed}/${c.arm.id}/${c.training}`)).toEqual(
      [0, 1].flatMap((s) => ['dup-full', 'dup-lsh4', 'dup-lsh2', 'dup-lsh1'].map((a) => `${s}/${a}/trained`)),
    );
    for (const c of g.cells) {
      expect(c.dir).toBe(cellDir(out, c.seed, c.arm));
      for (const f of ['run.json', 'run-log.jsonl', 'latest', 'repro-cell.json']) expect(existsSync(join(c.dir, f)), `${c.dir}/${f}`).toBe(true);
      expect(existsSync(join(c.dir, 'run.lock'))).toBe(false);
      expect(c.step).toBe(2);
      expect(c.evaluated).toBe(5);
    }
    const t = buildTables(g);
    expect(t.rows.map((r) => r.label)).toEqual(['Full', 'LSH-4', 'LSH-2', 'LSH-1']);
    expect(t.columns.map((c) => c.label)).toEqual(['Full', 'LSH-8', 'LSH-4', 'LSH-2', 'LSH-1']);
    expect(t.perSeed.map((s) => s.seed)).toEqual([0, 1]);
    for (const values of [t.mean, ...t.perSeed.map((s) => s.values)]) {
      expect(values).toHaveLength(4);
      for (const row of values) {
        expect(row).toHaveLength(5);
        for (const v of row) expect(v !== null && v >= 0 && v <= 1).toBe(true);
      }
    }
    expect(t.mean[2]![3]).toBeCloseTo((t.perSeed[0]!.values[2]![3]! + t.perSeed[1]!.values[2]![3]!) / 2, 12);
    const md = renderTables(t);
    expect(md).toContain('| train \\ eval | Full | LSH-8 | LSH-4 | LSH-2 | LSH-1 |');
    expect(md).toContain('(100.0%)');
    expect(md).toContain('Seed 1:');
    // The run manifest records the cell's own config: LSH-2 trains with 2 hash rounds.
    const manifest = JSON.parse(readFileSync(join(cellDir(out, 0, duplicationExperiment.trainArms[2]!), 'run.json'), 'utf8'));
    expect(manifest.config.model.nHashes).toBe(2);
    expect(curveSeries(g).map((p) => p.series)).toContain('LSH-2 (seed 1)');
  });

  it('skips finished cells, and an interrupted grid resumes where it stopped', async () => {
    const out = join(tmp, 'resume');
    // Stop after 3 steps in all: the first cell (2 steps) finishes, the second is cut after 1 step.
    let steps = 0;
    const cut = await grid(out, { seeds: [0], steps: 2, log: (l) => void (/step \d+\/2: loss/.test(l) && steps++), shouldStop: () => steps >= 3 });
    expect(cut.stopped).toBe(true);
    expect(cut.cells.map((c) => c.arm.id)).toEqual(['dup-full']);
    const again = await grid(out, { seeds: [0] });
    expect(again.stopped).toBe(false);
    expect(again.cells.map((c) => c.training)).toEqual(['skipped', 'resumed', 'trained', 'trained']);
    expect(again.cells.map((c) => c.evaluated)).toEqual([0, 5, 5, 5]);
    // The resumed cell's log holds each step once.
    const log = readFileSync(join(again.cells[1]!.dir, 'run-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.filter((r) => r.type === 'train').map((r) => r.step)).toEqual([1, 2]);
    const third = await grid(out, { seeds: [0] });
    expect(third.cells.map((c) => `${c.training}/${c.evaluated}`)).toEqual(['skipped/0', 'skipped/0', 'skipped/0', 'skipped/0']);
    expect(buildTables(third).mean).toEqual(buildTables(again).mean);
    // Step times of the invocation that trained a cell survive the ones that skip it.
    expect(again.cells[2]!.stepTime).toBeDefined();
    expect(third.cells[2]!.stepTime).toEqual(again.cells[2]!.stepTime);
  });

  it('refuses a cell folder trained with another config', async () => {
    const out = join(tmp, 'dup');
    const wider = (c: RunConfig): RunConfig => {
      const t = toyScale(c);
      return { ...t, model: { ...t.model, dFF: 64 } };
    };
    await expect(grid(out, { scale: wider })).rejects.toThrow(/repro: cell '.*dup-full' was trained with model\.dFF = 32, the grid now asks 64/);
  });
});

describe('repro experiments', () => {
  it('every shipped config validates, and the duplication configs are the paper task: vocabulary 128, one layer', () => {
    for (const arm of [...duplicationExperiment.trainArms, ...textExperiment.trainArms]) expect(() => armConfig(arm)).not.toThrow();
    for (const arm of duplicationExperiment.trainArms) expect(armConfig(arm, 'l32').model.seqLen).toBe(32);
    const full = duplicationExperiment.trainArms[0]!;
    expect(() => armConfig(full, 'no-such-scale')).toThrow("repro: cannot read the config of 'dup-full' (configs/dup-full-no-such-scale.json)");
    expect(() => armConfig(full, '../x')).toThrow(/--variant must be lower-case letters/);
    for (const arm of duplicationExperiment.trainArms) {
      const m = armConfig(arm).model;
      expect([m.vocabSize, m.nLayers]).toEqual([128, 1]);
    }
    const data = duplicationDataSource(128);
    const L = armConfig(duplicationExperiment.trainArms[0]!).model.seqLen;
    const b = data.trainBatch(0, 0, 2, L);
    const row = Array.from(b.tokens.data.slice(0, L));
    const half = L / 2;
    expect([row[0], row[half]]).toEqual([0, 0]);
    expect(row.slice(1, half)).toEqual(row.slice(half + 1));
    expect(row.slice(1, half).every((s) => s >= 1 && s <= 127)).toBe(true);
    expect(Array.from(b.weights.data.slice(0, L))).toEqual([...new Array(half).fill(0), ...new Array(half).fill(1)]);
  });

  it('evaluates with other attention only where the trained weights fit', () => {
    const base = armConfig(textExperiment.trainArms[0]!).model;
    const full = validateModelConfig({ ...base, attention: ['full'] });
    const shared = validateModelConfig({ ...base, attention: ['full'], sharedQK: true });
    const lsh = validateModelConfig({ ...base, attention: ['lsh'], nHashes: 2 });
    expect(evalSetup(full, { kind: 'lsh', nHashes: 4 })).toBeUndefined();
    expect(evalSetup(full, { kind: 'full' })?.model).toBe(full);
    expect(evalSetup(shared, { kind: 'lsh', nHashes: 4 })?.model).toMatchObject({ attention: ['lsh'], nHashes: 4 });
    expect(evalSetup(lsh, { kind: 'full' })?.overrides).toEqual({ lshAsFull: true });
    expect(evalSetup(lsh, { kind: 'lsh', nHashes: 8 })?.overrides).toEqual({ nHashes: 8 });
    expect(evalSetup(validateModelConfig({ ...base, attention: ['local', 'lsh'] }), { kind: 'full' })).toBeUndefined();
  });
});
