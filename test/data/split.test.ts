import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { evalWindows, heldOutSplit, randomIndex, WindowSampler, windowsBatch } from '../../reformer/data/split.ts';

const ramp = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

describe('held-out split', () => {
  it('the last fraction is validation data; the parts tile the stream', () => {
    const { train, valid } = heldOutSplit(ramp(1000));
    expect(train.length).toBe(950);
    expect(valid.length).toBe(50);
    expect(valid[0]).toBe(950);
    expect(heldOutSplit(ramp(101), 0.1).valid.length).toBe(11);
    expect(() => heldOutSplit(ramp(1), 0.5)).toThrow(/too few/);
    expect(() => heldOutSplit(ramp(10), 1)).toThrow(/fraction must be in \(0, 1\)/);
  });
});

describe('window sampler', () => {
  const tokens = ramp(500);

  it('batches are [B, L] windows of the data, reproducible from (seed, step)', () => {
    const s = new WindowSampler(tokens, { batchSize: 4, length: 16, seed: 7 });
    const b = s.batch(3);
    expect(b.shape).toEqual([4, 16]);
    expect(b.dtype).toBe('i32');
    for (let r = 0; r < 4; r++) for (let i = 1; i < 16; i++) expect(b.data[r * 16 + i]).toBe(b.data[r * 16]! + i);
    // A fresh sampler (as after a resume) replays the same batch for the same step.
    expect(new WindowSampler(tokens, { batchSize: 4, length: 16, seed: 7 }).batch(3).data).toEqual(b.data);
    expect(s.batch(4).data).not.toEqual(b.data);
    expect(new WindowSampler(tokens, { batchSize: 4, length: 16, seed: 8 }).batch(3).data).not.toEqual(b.data);
  });

  it('starts are in range for any step, including huge ones, and cover the range', () => {
    const s = new WindowSampler(tokens, { batchSize: 8, length: 490, seed: 1 });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (step) => {
        for (const x of s.starts(step)) expect(x >= 0 && x <= 10 && Number.isInteger(x)).toBe(true);
      }),
      { numRuns: 200 },
    );
    const seen = new Set<number>();
    for (let step = 0; step < 50; step++) s.starts(step).forEach((x) => seen.add(x));
    expect(seen.size).toBe(11);
  });

  it('randomIndex is roughly uniform', () => {
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 20000; i++) counts[randomIndex(3, 5, i, 10)]++;
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200);
  });

  it('clear errors', () => {
    expect(() => new WindowSampler(ramp(5), { batchSize: 1, length: 6, seed: 0 })).toThrow(/5 tokens, fewer than one window of length 6/);
    expect(() => new WindowSampler(tokens, { batchSize: 0, length: 6, seed: 0 })).toThrow(/batchSize/);
    expect(() => new WindowSampler(tokens, { batchSize: 1, length: 6, seed: 0 }).starts(-1)).toThrow(/step must be a non-negative integer/);
    expect(() => windowsBatch(tokens, [495], 6)).toThrow(/window \[495, 501\) is outside the 500-token data/);
  });
});

describe('evaluation windows', () => {
  it('consecutive non-overlapping windows in batches; a partial tail is dropped', () => {
    expect(evalWindows(ramp(35), 8, 3)).toEqual([[0, 8, 16], [24]]);
    expect(evalWindows(ramp(35), 8, 3, 2)).toEqual([[0, 8]]);
    expect(() => evalWindows(ramp(5), 8, 3)).toThrow(/fewer than one window/);
  });
});
