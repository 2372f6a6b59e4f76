import { describe, expect, it } from 'vitest';
import { duplicationBatch } from '../../reformer/data/duplication.ts';

describe('duplication task', () => {
  it('paper defaults: 0 w 0 w with |w| = 511, symbols in 1..127, weights on the second half', () => {
    const { inputs, weights } = duplicationBatch({ batchSize: 3, seed: 1 }, 0);
    expect(inputs.shape).toEqual([3, 1024]);
    expect(weights.shape).toEqual([3, 1024]);
    for (let b = 0; b < 3; b++) {
      const row = Array.from(inputs.data.subarray(b * 1024, (b + 1) * 1024));
      expect(row[0]).toBe(0);
      expect(row[512]).toBe(0);
      expect(row.slice(1, 512)).toEqual(row.slice(513));
      expect(row.slice(1, 512).every((x) => x >= 1 && x <= 127)).toBe(true);
      const w = Array.from(weights.data.subarray(b * 1024, (b + 1) * 1024));
      expect(w.slice(0, 512).every((x) => x === 0)).toBe(true);
      expect(w.slice(512).every((x) => x === 1)).toBe(true);
    }
    // Every symbol shows up, none of them is 0 or 128.
    const symbols = new Set(inputs.data.subarray(1, 512));
    for (const x of inputs.data.subarray(1024 + 1, 1024 + 512)) symbols.add(x);
    expect(symbols.size).toBeGreaterThan(120);
  });

  it('examples differ within a batch and across steps; (seed, step) reproduces a batch', () => {
    const o = { batchSize: 2, length: 16, vocabSize: 5, seed: 9 };
    const a = duplicationBatch(o, 5).inputs.data;
    expect(duplicationBatch({ ...o }, 5).inputs.data).toEqual(a);
    expect(a.subarray(0, 16)).not.toEqual(a.subarray(16));
    expect(duplicationBatch(o, 6).inputs.data).not.toEqual(a);
    expect(duplicationBatch({ ...o, seed: 10 }, 5).inputs.data).not.toEqual(a);
    expect(Array.from(a).every((x) => x >= 0 && x < 5)).toBe(true);
    expect(duplicationBatch(o, 2 ** 40).inputs.shape).toEqual([2, 16]);
  });

  it('clear errors for bad options', () => {
    expect(() => duplicationBatch({ batchSize: 1, length: 7, seed: 0 }, 0)).toThrow(/length must be an even integer ≥ 4, got 7/);
    expect(() => duplicationBatch({ batchSize: 1, vocabSize: 1, seed: 0 }, 0)).toThrow(/vocabSize must be an integer ≥ 2/);
    expect(() => duplicationBatch({ batchSize: 0, seed: 0 }, 0)).toThrow(/batchSize/);
    expect(() => duplicationBatch({ batchSize: 1, seed: 0 }, -1)).toThrow(/step must be a non-negative integer/);
  });
});
