import { describe, expect, it, afterAll } from 'vitest';
import fc from 'fast-check';
import { createMatmulKernel, matmulSource, matmulTiling, naiveMatmulSource, packPanels } from '../../compiler/codegen/templates/matmul.ts';
import { BACKENDS, f32s, makeGpu, matmulRef, nanLike, worstRelErr, type MatmulRefOptions } from './reference.ts';

const shapes = fc.record({
  batch: fc.integer({ min: 1, max: 3 }),
  m: fc.integer({ min: 1, max: 9 }),
  k: fc.integer({ min: 1, max: 13 }),
  n: fc.integer({ min: 1, max: 9 }),
});
const options = fc.record({
  transA: fc.boolean(),
  transB: fc.boolean(),
  bias: fc.boolean(),
  activation: fc.constantFrom('none' as const, 'relu' as const, 'gelu' as const),
  naive: fc.boolean(),
  unroll: fc.constantFrom(1, 3, 8, 16),
  // tiny tiles force several (ragged, zero-padded) column tiles per batch entry
  tileBytes: fc.constantFrom(16, 40, 100, 256 * 1024),
  inlineIndices: fc.boolean(),
});
const cases = fc.tuple(shapes, options).chain(([s, o]) =>
  fc.record({
    s: fc.constant(s),
    o: fc.constant(o),
    a: f32s(s.batch * s.m * s.k),
    b: f32s(s.batch * s.k * s.n),
    bias: f32s(s.n),
  }),
);

describe.each(BACKENDS)('matmul templates on %s', (mode) => {
  const gpu = makeGpu(mode);
  afterAll(() => gpu.destroy());

  it('every option combination matches the float64 product at m=5, k=7, n=3, batch 2', async () => {
    const s = { batch: 2, m: 5, k: 7, n: 3 };
    const a = Float32Array.from({ length: 70 }, (_, i) => Math.sin(i * 1.7));
    const b = Float32Array.from({ length: 42 }, (_, i) => Math.cos(i * 0.9));
    const bias = Float32Array.from([0.5, -1.25, 2]);
    for (const naive of [false, true])
      for (const transA of [false, true])
        for (const transB of [false, true])
          for (const withBias of [false, true])
            for (const activation of ['none', 'relu', 'gelu'] as const) {
              const o: MatmulRefOptions = { ...s, transA, transB, activation };
              const mm = createMatmulKernel(gpu, { ...o, bias: withBias, naive });
              const bv = withBias ? bias : undefined;
              await mm(nanLike(a), nanLike(b), bv && nanLike(bv)); // poisons the kernel's output memory
              const got = await mm(a, b, bv);
              expect(mm.backend()).toBe(mode);
              const { c, mag } = matmulRef(a, b, o, bv);
              const err = worstRelErr(got, c, (i) => 1e-6 + mag[i]!);
              expect(err, JSON.stringify({ naive, transA, transB, withBias, activation })).toBeLessThanOrEqual(1e-4);
              mm.destroy();
            }
  });

  it('multi-tile launches with batch > 1, ragged tiles and both index forms match the float64 product', async () => {
    // n = 10 with 8-column tiles: a second tile holding 2 real columns and 6 padded ones
    const s = { batch: 3, m: 6, k: 19, n: 10 };
    const a = Float32Array.from({ length: s.batch * s.m * s.k }, (_, i) => Math.sin(i * 0.37));
    const b = Float32Array.from({ length: s.batch * s.k * s.n }, (_, i) => Math.cos(i * 0.23));
    const bias = Float32Array.from({ length: s.n }, (_, i) => i / 4 - 1);
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const inlineIndices of [false, true]) {
          const o = { ...s, transA, transB, activation: 'relu' as const };
          const mm = createMatmulKernel(gpu, { ...o, bias: true, tileBytes: 8 * s.k * 4, inlineIndices, unroll: 4 });
          expect((mm.source as ReturnType<typeof matmulSource>).tiles).toBe(2);
          await mm(nanLike(a), nanLike(b), nanLike(bias));
          const got = await mm(a, b, bias);
          const { c, mag } = matmulRef(a, b, o, bias);
          expect(worstRelErr(got, c, (i) => 1e-6 + mag[i]!), JSON.stringify({ transA, transB, inlineIndices })).toBeLessThanOrEqual(1e-4);
          mm.destroy();
        }
  });

  it('random shapes and options match the float64 product (poisoned outputs)', async () => {
    await fc.assert(
      fc.asyncProperty(cases, async ({ s, o, a, b, bias }) => {
        const mm = createMatmulKernel(gpu, { ...s, ...o });
        const bv = o.bias ? bias : undefined;
        await mm(nanLike(a), nanLike(b), bv && nanLike(bv));
        const got = await mm(a, b, bv);
        const { c, mag } = matmulRef(a, b, { ...s, ...o }, bv);
        mm.destroy();
        return worstRelErr(got, c, (i) => 1e-6 + mag[i]!) <= 1e-4;
      }),
      { numRuns: mode === 'webasm' ? 25 : 40 },
    );
  });
});

describe('matmul template text', () => {
  it('the fast kernel returns four rows per thread over column tiles, batch outermost in z', () => {
    const src = matmulSource({ batch: 2, m: 5, k: 7, n: 3, unroll: 4 });
    expect(src.components).toBe(4);
    // n = 3 pads to one 4-column tile; m = 5 gives two row quads
    expect(src.output).toEqual([4, 2, 2]);
    expect(src.source).toContain('return [r0, r1, r2, r3];');
    // k = 7 with unroll 4: one unrolled trip of 4 plus 3 straight-line remainder steps
    expect(src.source.match(/const b\w+ = b\[/g)).toHaveLength(4 + 3);
    // small operands read through hoisted float bases; inlineIndices re-derives them per read
    expect(src.source).toContain('const bq = ');
    expect(matmulSource({ batch: 2, m: 5, k: 7, n: 3, inlineIndices: true }).source).not.toContain('const bq = ');
  });

  it('tiles keep one packed B tile within tileBytes and cover n', () => {
    const t = matmulTiling({ m: 4096, k: 512, n: 2048, tileBytes: 256 * 1024 });
    expect(t).toEqual({ tileCols: 128, tiles: 16, quads: 1024 });
    const r = matmulTiling({ m: 9, k: 3, n: 30, tileBytes: 100 });
    expect(r.tileCols % 4).toBe(0);
    expect(r.tiles * r.tileCols).toBeGreaterThanOrEqual(30);
    expect((r.tiles - 1) * r.tileCols).toBeLessThan(30);
  });

  it('packPanels interleaves four rows per panel from either source layout, zero-padding', () => {
    // 2×3 matrix rows [1,2,3], [4,5,6] padded to 4 rows
    const want = [1, 4, 0, 0, 2, 5, 0, 0, 3, 6, 0, 0];
    expect([...packPanels(Float32Array.from([1, 2, 3, 4, 5, 6]), 1, 2, 3, false, 4)]).toEqual(want);
    expect([...packPanels(Float32Array.from([1, 4, 2, 5, 3, 6]), 1, 2, 3, true, 4)]).toEqual(want);
  });

  it('the naive kernel computes one output per thread', () => {
    const src = naiveMatmulSource({ m: 5, k: 7, n: 3 });
    expect(src.components).toBe(1);
    expect(src.output).toEqual([3, 5]);
  });

  it('rejects bad options with a message naming the option', () => {
    expect(() => matmulSource({ m: 0, k: 1, n: 1 })).toThrow(/option m/);
    expect(() => matmulSource({ m: 1, k: 1, n: 1, activation: 'tanh' as never })).toThrow(/activation 'tanh'/);
  });

  it('rejects operands of the wrong size', async () => {
    const gpu = makeGpu('cpu');
    const mm = createMatmulKernel(gpu, { m: 2, k: 3, n: 4 });
    await expect(mm(new Float32Array(5), new Float32Array(12))).rejects.toThrow(/A has 5 elements, expected 6/);
    gpu.destroy();
  });
});
