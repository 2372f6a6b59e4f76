/**
 * Incremental decoding against the whole-window path, on the float64 reference runner: for full
 * and local attention the step logits equal the whole-window logits bit for bit, and generation
 * draws the same tokens, across window slides; LSH attention with chunkLen = L (where the window
 * layer is full shared-QK attention) agrees to rounding.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { IncrementalDecoder } from '../../reformer/decode/decoder.ts';
import { generateWholeWindow } from '../../reformer/decode/whole-window.ts';
import { generate, inputAt, windowStart } from '../../reformer/generate.ts';
import { PAD_ID } from '../../reformer/model.ts';
import { exactModels, tinyModel, tokensOf, windowLogits, type TinyModel } from './support.ts';

const runner = new ReferenceRunner();

/**
 * Logits at every position of one window of tokens, decoded in runs of the given lengths (a run of
 * the block width or more goes through the block graph), and the whole-window logits.
 */
async function bothLogits(m: TinyModel, window: readonly number[], runs: readonly number[]): Promise<{ decoded: number[][]; whole: number[][] }> {
  const L = m.config.seqLen;
  const V = m.config.vocabSize;
  const decoder = new IncrementalDecoder(runner, m.config, m.params, m.paramTree);
  const inputs = Array.from({ length: L }, (_, p) => inputAt(window, 0, p));
  const decoded: number[][] = [];
  for (const n of runs) decoded.push(...(await decoder.decode(inputs.slice(decoder.position, decoder.position + n))).map((r) => Array.from(r)));
  const whole = await windowLogits(runner, m, window);
  return { decoded, whole: Array.from({ length: L }, (_, p) => Array.from(whole.data.subarray(p * V, (p + 1) * V))) };
}

/** Ways to cut a window of L positions into runs: one by one, all at once, and a few steps then the rest. */
const cuts = (L: number): number[][] => [Array.from({ length: L }, () => 1), [L], [1, 1, 1, L - 3]];

const sampling = fc.record({
  temperature: fc.constantFrom(0, 0.7, 1.5),
  topK: fc.constantFrom(0, 3),
  seed: fc.integer({ min: 0, max: 1 << 20 }),
});

describe('incremental decoding equals the whole-window path', () => {
  it('full and local attention: the logits of every position are bit-identical (float64), one position at a time or in blocks', async () => {
    await fc.assert(
      fc.asyncProperty(exactModels, fc.integer({ min: 0, max: 1 << 20 }), async (m, s) => {
        const window = Array.from({ length: m.config.seqLen }, (_, i) => 1 + ((s >> i % 20) + 7 * i) % (m.config.vocabSize - 1));
        for (const runs of cuts(m.config.seqLen)) {
          const { decoded, whole } = await bothLogits(m, window, runs);
          expect(decoded).toEqual(whole);
        }
      }),
      { numRuns: 20 },
    );
  });

  it('full and local attention: generate draws the same tokens, across window slides', async () => {
    await fc.assert(
      fc.asyncProperty(exactModels, sampling, tokensOf(12, 0, 20), fc.integer({ min: 1, max: 20 }), async (m, o, prompt, length) => {
        const options = { ...o, length, forbidden: [PAD_ID] };
        const fast = await generate(runner, m.config, m.params, m.paramTree, prompt, options);
        const slow = await generateWholeWindow(runner, m.config, m.params, m.paramTree, prompt, options);
        expect(fast).toEqual(slow);
        expect(fast).toHaveLength(length);
      }),
      { numRuns: 15 },
    );
  });

  it('LSH attention with chunkLen = L (full-window equivalence) agrees to rounding and draws the same tokens', async () => {
    for (const [architecture, nHashes, seed] of [['reformer', 1, 3], ['reformer', 2, 4], ['transformer', 3, 5]] as const) {
      const m = tinyModel({ architecture, attention: ['lsh', 'local'], seqLen: 8, chunkLen: 8, nLayers: 2, nHeads: 2, nHashes, seed });
      const window = [3, 1, 4, 1, 5, 9, 2, 6];
      for (const runs of cuts(8)) {
        const { decoded, whole } = await bothLogits(m, window, runs);
        decoded.forEach((row, p) => row.forEach((x, i) => expect(Math.abs(x - whole[p]![i]!)).toBeLessThan(1e-9)));
      }
      const options = { temperature: 1, topK: 0, seed, length: 14 };
      const prompt = [5, 3];
      expect(await generate(runner, m.config, m.params, m.paramTree, prompt, options)).toEqual(
        await generateWholeWindow(runner, m.config, m.params, m.paramTree, prompt, options),
      );
    }
  });
});

describe('the decode window', () => {
  it('keeps its start while the predicted position fits, then slides to the last ⌊L/2⌋ tokens', () => {
    expect(windowStart(0, 0, 8)).toBe(0);
    expect(windowStart(7, 0, 8)).toBe(0);
    expect(windowStart(8, 0, 8)).toBe(4);
    expect(windowStart(11, 4, 8)).toBe(4);
    expect(windowStart(12, 4, 8)).toBe(8);
    expect(windowStart(30, 0, 9)).toBe(26);
  });

  it('a decoder refuses a position past its window; after reset, stale cache rows are ignored', async () => {
    const m = tinyModel({ architecture: 'reformer', attention: ['full', 'local'], seqLen: 8, chunkLen: 4, nLayers: 2, nHeads: 1, seed: 1 });
    const used = new IncrementalDecoder(runner, m.config, m.params, m.paramTree);
    for (let p = 0; p < 8; p++) await used.step(1 + p);
    await expect(used.step(1)).rejects.toThrow(/window of 8 positions is full/);
    await expect(new IncrementalDecoder(runner, m.config, m.params, m.paramTree).decode(new Array(9).fill(1))).rejects.toThrow(/window of 8 positions is full/);
    used.reset();
    const fresh = new IncrementalDecoder(runner, m.config, m.params, m.paramTree);
    for (const token of [PAD_ID, 5, 2, 7]) expect(Array.from(await used.step(token))).toEqual(Array.from(await fresh.step(token)));
  });
});
