import { describe, expect, it } from 'vitest';
import { fullAttention, lshAttention } from '../../reformer/attention/api.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { gaussian, rng } from './support.ts';

// Measured on the float64 definition, so the recorded curve does not depend on the backend.
const runner = new ReferenceRunner();

/**
 * The LSH approximation improves with rounds: on qk vectors drawn around a few cluster centres
 * (so full attention concentrates within clusters), the mean |LSH − full| over fixed seeds falls
 * as nHashes goes 1 → 2 → 4 → 8. docs/attention.md records the curve this test measures.
 */
const B = 1, h = 2, L = 32, dK = 8, dV = 4, chunkLen = 4, clusters = 4, seeds = 8;

function clustered(seed: number): { qk: Float32Array; v: Float32Array } {
  const r = rng(seed);
  const centres = Array.from({ length: clusters * h }, () => {
    const c = Array.from({ length: dK }, () => gaussian(r));
    const n = Math.hypot(...c);
    return c.map((x) => x / n);
  });
  const qk = new Float32Array(B * h * L * dK);
  for (let head = 0; head < h; head++) {
    for (let t = 0; t < L; t++) {
      const c = centres[head * clusters + Math.floor(r() * clusters)]!;
      for (let e = 0; e < dK; e++) qk[(head * L + t) * dK + e] = 4 * (c[e]! + 0.1 * gaussian(r));
    }
  }
  return { qk, v: Float32Array.from({ length: B * h * L * dV }, () => gaussian(r)) };
}

async function approximationCurve(rounds: readonly number[]): Promise<number[]> {
  const shape = [B, h, L, dK] as const;
  const errors = rounds.map(() => 0);
  for (let s = 0; s < seeds; s++) {
    const { qk, v } = clustered(100 + s);
    const full = await fullAttention(qk, v, { shape, runner });
    for (const [k, nHashes] of rounds.entries()) {
      const { output } = await lshAttention(qk, v, { shape, nHashes, chunkLen, seed: s, runner });
      let e = 0;
      for (let i = 0; i < output.length; i++) e += Math.abs(output[i]! - full[i]!);
      errors[k]! += e / output.length / seeds;
    }
  }
  return errors;
}

describe('LSH approximation of full attention', () => {
  it('mean error on clustered inputs decreases as nHashes goes 1 → 2 → 4 → 8', async () => {
    const errors = await approximationCurve([1, 2, 4, 8]);
    console.log(`LSH vs full, mean |error| for nHashes 1,2,4,8: ${errors.map((e) => e.toFixed(4)).join(', ')}`);
    for (let k = 1; k < errors.length; k++) expect(errors[k]!).toBeLessThan(errors[k - 1]!);
    expect(errors[3]!).toBeLessThan(0.7 * errors[0]!);
  });
});
