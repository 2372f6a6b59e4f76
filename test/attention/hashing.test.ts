import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lshAttention } from '../../reformer/attention/api.ts';
import { randomArray, runnerCases, type RunnerCase } from './support.ts';

/** Small random configurations: shape, rounds, buckets (even), and a data seed. */
const config = fc.record({
  B: fc.integer({ min: 1, max: 2 }),
  h: fc.integer({ min: 1, max: 2 }),
  L: fc.constantFrom(4, 8, 12),
  dK: fc.integer({ min: 2, max: 5 }),
  nHashes: fc.integer({ min: 1, max: 3 }),
  nBuckets: fc.constantFrom(2, 4, 6, 8),
  seed: fc.integer({ min: 0, max: 1 << 20 }),
});
type Config = typeof config extends fc.Arbitrary<infer T> ? T : never;

const bucketsOn = (rc: RunnerCase) => async (cfg: Config, qk: Float32Array, seed = cfg.seed): Promise<Int32Array> => {
  const shape = [cfg.B, cfg.h, cfg.L, cfg.dK] as const;
  const v = new Float32Array(cfg.B * cfg.h * cfg.L);
  const r = await lshAttention(qk, v, { shape, nHashes: cfg.nHashes, nBuckets: cfg.nBuckets, chunkLen: 4, seed, runner: rc.runner });
  return r.buckets;
};

const dataOf = (cfg: Config) => randomArray(cfg.seed + 1, cfg.B * cfg.h * cfg.L * cfg.dK);

for (const rc of runnerCases) {
describe(`LSH hashing on ${rc.name}`, () => {
  const bucketsOf = bucketsOn(rc);
  it("round r's buckets lie in [r·nb, (r+1)·nb), laid out [B, h, H, L]", async () => {
    await fc.assert(
      fc.asyncProperty(config, async (cfg) => {
        const b = await bucketsOf(cfg, dataOf(cfg));
        expect(b.length).toBe(cfg.B * cfg.h * cfg.nHashes * cfg.L);
        b.forEach((x, i) => {
          const r = Math.floor(i / cfg.L) % cfg.nHashes;
          expect(x).toBeGreaterThanOrEqual(r * cfg.nBuckets);
          expect(x).toBeLessThan((r + 1) * cfg.nBuckets);
        });
      }),
      { numRuns: rc.runs(20) },
    );
  });

  it('is scale invariant for powers of two: h(2^k x) = h(x)', async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.integer({ min: -6, max: 6 }), async (cfg, k) => {
        const x = dataOf(cfg);
        const scaled = x.map((e) => e * 2 ** k);
        expect(await bucketsOf(cfg, scaled)).toEqual(await bucketsOf(cfg, x));
      }),
      { numRuns: rc.runs(15) },
    );
  });

  it('maps antipodes half-way round: h(−x) = (h(x) + nb/2) mod nb within each round', async () => {
    await fc.assert(
      fc.asyncProperty(config, async (cfg) => {
        const x = dataOf(cfg);
        const plus = await bucketsOf(cfg, x);
        const minus = await bucketsOf(cfg, x.map((e) => -e));
        const nb = cfg.nBuckets;
        plus.forEach((b, i) => {
          const base = Math.floor(b / nb) * nb;
          expect(minus[i]).toBe(base + ((b - base + nb / 2) % nb));
        });
      }),
      { numRuns: rc.runs(15) },
    );
  });

  it('is deterministic for a seed, and the seed matters', async () => {
    await fc.assert(
      fc.asyncProperty(config, async (cfg) => {
        const x = dataOf(cfg);
        expect(await bucketsOf(cfg, x)).toEqual(await bucketsOf(cfg, x));
      }),
      { numRuns: rc.runs(10) },
    );
    const cfg: Config = { B: 1, h: 1, L: 12, dK: 4, nHashes: 1, nBuckets: 8, seed: 5 };
    const x = dataOf(cfg);
    const seen = new Set<string>();
    for (let s = 0; s < 6; s++) seen.add((await bucketsOf(cfg, x, s)).join(','));
    expect(seen.size).toBeGreaterThan(1);
  });

  it('uses injected rotations exactly: argmax over [xR, −xR] computed by hand', async () => {
    const B = 1, h = 2, L = 4, dK = 3, H = 2, nb = 4;
    const qk = randomArray(11, B * h * L * dK);
    const rotations = randomArray(12, B * h * dK * H * (nb / 2));
    const { buckets } = await lshAttention(qk, new Float32Array(B * h * L), {
      shape: [B, h, L, dK], nHashes: H, nBuckets: nb, chunkLen: 2, rotations, runner: rc.runner,
    });
    for (let head = 0; head < h; head++) {
      for (let r = 0; r < H; r++) {
        for (let t = 0; t < L; t++) {
          const proj: number[] = [];
          for (let j = 0; j < nb / 2; j++) {
            let s = 0;
            for (let e = 0; e < dK; e++) s += qk[(head * L + t) * dK + e]! * rotations[((head * dK + e) * H + r) * (nb / 2) + j]!;
            proj.push(s);
          }
          const all = [...proj, ...proj.map((p) => -p)];
          const want = all.indexOf(Math.max(...all)) + r * nb;
          expect(buckets[(head * H + r) * L + t]).toBe(want);
        }
      }
    }
  });

  it('factorised buckets: bucket = a₁ + f₁·a₂ with each aᵢ the argmax over its own rotations, by hand', async () => {
    const B = 1, h = 1, L = 8, dK = 3, H = 2;
    const factors = [4, 6];
    const nb = 24;
    const width = factors[0]! / 2 + factors[1]! / 2;
    const qk = randomArray(21, B * h * L * dK);
    const rotations = randomArray(22, B * h * dK * H * width);
    const { buckets } = await lshAttention(qk, new Float32Array(B * h * L), {
      shape: [B, h, L, dK], nHashes: H, bucketFactors: factors, chunkLen: 4, rotations, runner: rc.runner,
    });
    for (let r = 0; r < H; r++) {
      for (let t = 0; t < L; t++) {
        let bucket = 0;
        let scale = 1;
        let offset = 0;
        for (const f of factors) {
          const proj: number[] = [];
          for (let j = 0; j < f / 2; j++) {
            let s = 0;
            for (let e = 0; e < dK; e++) s += qk[t * dK + e]! * rotations[(e * H + r) * width + offset + j]!;
            proj.push(s);
          }
          const all = [...proj, ...proj.map((p) => -p)];
          bucket += scale * all.indexOf(Math.max(...all));
          scale *= f;
          offset += f / 2;
        }
        expect(buckets[r * L + t]).toBe(bucket + r * nb);
      }
    }
  });

  it("factorised buckets ('auto') stay in range and are scale invariant", async () => {
    const shape = [1, 2, 16, 4] as const;
    const x = randomArray(31, 2 * 16 * 4);
    const run = async (data: Float32Array) =>
      (await lshAttention(data, new Float32Array(32), { shape, nHashes: 2, nBuckets: 128, bucketFactors: 'auto', chunkLen: 4, seed: 3, runner: rc.runner })).buckets;
    const b = await run(x);
    b.forEach((v, i) => {
      const r = Math.floor(i / 16) % 2;
      expect(v).toBeGreaterThanOrEqual(r * 128);
      expect(v).toBeLessThan((r + 1) * 128);
    });
    expect(await run(x.map((e) => e * 8))).toEqual(b);
  });
});
}
