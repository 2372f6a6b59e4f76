import { describe, expect, it } from 'vitest';
import { stepSeed } from '../../reformer/train/trainer.ts';

describe('step seeds', () => {
  it('regression: step seeds stay below 2^24 so float32 kernels carry them exactly', () => {
    for (let seed = 0; seed < 5; seed++) {
      for (let step = 0; step < 2000; step++) {
        const s = stepSeed(seed, step);
        expect(s >= 0 && s < 2 ** 24).toBe(true);
      }
    }
  });
});
