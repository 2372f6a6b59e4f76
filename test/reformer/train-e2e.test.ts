import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { train, type TrainRecord } from '../../reformer/train/trainer.ts';
import { RunDirectory, loadRun } from '../../reformer/train/run-dir.ts';
import { textDataSource, encodeText, decodeTokens, SPECIAL_TOKENS } from '../../reformer/train/data-source.ts';
import { encodeBytes } from '../../reformer/data/bytes.ts';
import { generate } from '../../reformer/generate.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';

const text = 'the quick brown fox jumps over the lazy dog. ';

/** A tiny ReformerLM (local + LSH attention, reversible, chunked FF) that fits in seconds. */
function tinyConfig(steps: number, extra: Partial<RunConfig['train']> = {}): RunConfig {
  return validateRunConfig({
    model: {
      seqLen: 16,
      dModel: 32,
      dFF: 64,
      nHeads: 2,
      dHead: 16,
      nLayers: 2,
      attention: ['local', 'lsh'],
      nHashes: 2,
      chunkLen: 8,
      ffChunkLen: 8,
      axialShape: [4, 4],
      axialDims: [16, 16],
      dropout: 0,
    },
    train: { batchSize: 4, steps, learningRate: 1e-2, warmupSteps: 10, evalEvery: 1000, evalBatches: 1, checkpointEvery: 1000, ...extra },
  });
}

describe('training a ReformerLM', () => {
  it('memorises a short text and generation reproduces it', async () => {
    const config = tinyConfig(300);
    const data = textDataSource(encodeBytes(text.repeat(8)), 'fox', config.model.seqLen);
    const runner = new ReferenceRunner();
    const losses: number[] = [];
    const result = await train({ config, data, runner, seed: 3, onRecord: (r) => r.type === 'train' && losses.push(r.loss) });
    expect(losses[0]!).toBeGreaterThan(4);
    // The first bytes of a random window are unpredictable, so the floor is well above zero.
    expect(losses.at(-1)!).toBeLessThan(0.5);
    const prompt = 'the quick brown ';
    const out = await generate(runner, config.model, result.params, result.paramTree, encodeText(prompt), {
      length: 20,
      temperature: 0,
      topK: 0,
      seed: 0,
      forbidden: SPECIAL_TOKENS,
    });
    expect(decodeTokens(out)).toBe('fox jumps over the l');
  });

  it('resuming from a checkpoint reproduces the uninterrupted loss curve', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'reformer-resume-'));
    try {
      const data = textDataSource(encodeBytes(text.repeat(8)), 'fox', 16);
      const runner = new ReferenceRunner();
      const curve = async (config: RunConfig, out: string, resume: boolean) => {
        const records: TrainRecord[] = [];
        const store = new RunDirectory(out);
        await train({ config, data, runner, seed: 5, store, resume, onRecord: (r) => r.type === 'train' && records.push(r) });
        return records.map((r) => [r.step, r.loss] as const);
      };
      const full = await curve(tinyConfig(12, { checkpointEvery: 4 }), join(dir, 'full'), false);
      // "Killed" after step 8: a run whose last checkpoint is step 8.
      await curve(tinyConfig(8, { checkpointEvery: 4 }), join(dir, 'cut'), false);
      const resumed = await curve(tinyConfig(12, { checkpointEvery: 4 }), join(dir, 'cut'), true);
      expect(resumed.map(([s]) => s)).toEqual([9, 10, 11, 12]);
      expect(resumed).toEqual(full.slice(8));
      const run = await loadRun(join(dir, 'cut'));
      expect(run.step).toBe(12);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
