import { describe, expect, it, afterAll } from 'vitest';
import fc from 'fast-check';
import { createMatmulKernel, matmulSource, naiveMatmulSource } from '../../compiler/codegen/templates/matmul.ts';
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
  unroll: fc.constantFrom(1, 3, 8),
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
  it('the fast kernel returns four rows per thread over ceil(m/4) row quads', () => {
    const src = matmulSource({ batch: 2, m: 5, k: 7, n: 3, unroll: 4 });
    expect(src.components).toBe(4);
    expect(src.output).toEqual([3, 2, 2]);
    expect(src.source).toContain('return [r0, r1, r2, r3];');
    // k = 7 with unroll 4: one unrolled trip of 4 plus 3 straight-line remainder steps
    expect(src.source.match(/const b\w+ = b\[/g)).toHaveLength(4 + 3);
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
