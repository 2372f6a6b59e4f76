import { describe, expect, it, afterAll } from 'vitest';
import fc from 'fast-check';
import { createLayerNormKernel, createLogSumExpKernel, createSoftmaxKernel } from '../../bench/templates/rows.ts';
import { BACKENDS, f32s, makeGpu, nanLike, worstRelErr } from './reference.ts';

function layerNormRef(x: Float32Array, g: Float32Array, b: Float32Array, rows: number, cols: number, eps: number) {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c]!;
    const mean = s / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c]! - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / cols + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = (x[r * cols + c]! - mean) * rstd * g[c]! + b[c]!;
  }
  return y;
}

function softmaxRef(x: Float32Array, rows: number, cols: number) {
  const y = new Float64Array(rows * cols);
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) mx = Math.max(mx, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - mx);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(x[r * cols + c]! - mx) / s;
    lse[r] = mx + Math.log(s);
  }
  return { y, lse };
}

const shapes = fc.record({ rows: fc.integer({ min: 1, max: 9 }), cols: fc.integer({ min: 1, max: 13 }) });
// scaled inputs exercise the max-subtraction (exp(±40) would overflow f32 without it)
const rowCases = shapes.chain((s) =>
  fc.record({ s: fc.constant(s), x: f32s(s.rows * s.cols), scale: fc.constantFrom(1, 20), g: f32s(s.cols), b: f32s(s.cols) }),
);

describe.each(BACKENDS)('row templates on %s', (mode) => {
  const gpu = makeGpu(mode);
  afterAll(() => gpu.destroy());

  it('LayerNorm matches float64 (poisoned outputs)', async () => {
    await fc.assert(
      fc.asyncProperty(rowCases, async ({ s, x, scale, g, b }) => {
        const xs = x.map((v) => v * scale);
        // a constant row has variance 0; eps keeps it finite, as in the model
        const ln = createLayerNormKernel(gpu, { ...s, eps: 1e-5 });
        await ln(nanLike(xs), nanLike(g), nanLike(b));
        const got = await ln(xs, g, b);
        expect(ln.backend()).toBe(mode);
        ln.destroy();
        const want = layerNormRef(xs, g, b, s.rows, s.cols, 1e-5);
        // float32 centring loses ~2^-24·max|x| per element, amplified by 1/std: nearly constant
        // rows of large values (e.g. [-39.99994, -39.92444]) are ill-conditioned for any float32
        // LayerNorm, so the scale carries that amplification (negligible for ordinary rows)
        const amplification = (i: number) => {
          const r = Math.floor(i / s.cols);
          const row = Array.from(xs.subarray(r * s.cols, (r + 1) * s.cols));
          const mean = row.reduce((a, v) => a + v, 0) / s.cols;
          const rstd = 1 / Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / s.cols + 1e-5);
          return rstd * Math.max(...row.map(Math.abs)) * Math.abs(g[i % s.cols]!);
        };
        return worstRelErr(got, want, (i) => 1 + Math.abs(want[i]!) + 0.01 * amplification(i)) <= 1e-4;
      }),
      { numRuns: 30 },
    );
  });

  it('softmax and logsumexp match float64 (poisoned outputs)', async () => {
    await fc.assert(
      fc.asyncProperty(rowCases, async ({ s, x, scale }) => {
        const xs = x.map((v) => v * scale);
        const sm = createSoftmaxKernel(gpu, s);
        const lse = createLogSumExpKernel(gpu, s);
        await sm(nanLike(xs));
        await lse(nanLike(xs));
        const gotY = await sm(xs);
        const gotL = await lse(xs);
        expect(sm.backend()).toBe(mode);
        sm.destroy();
        lse.destroy();
        const want = softmaxRef(xs, s.rows, s.cols);
        return (
          worstRelErr(gotY, want.y, (i) => 1e-7 + Math.abs(want.y[i]!)) <= 1e-4 &&
          worstRelErr(gotL, want.lse, (i) => 1 + Math.abs(want.lse[i]!)) <= 1e-4
        );
      }),
      { numRuns: 30 },
    );
  });

  it('handles a 5×7 case with hand-checkable rows', async () => {
    const rows = 5;
    const cols = 7;
    const x = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i) * 3);
    const g = Float32Array.from({ length: cols }, (_, i) => 1 + i / 10);
    const b = Float32Array.from({ length: cols }, (_, i) => -i / 7);
    const ln = createLayerNormKernel(gpu, { rows, cols, eps: 1e-6 });
    const y = await ln(x, g, b);
    expect(worstRelErr(y, layerNormRef(x, g, b, rows, cols, 1e-6), () => 1)).toBeLessThanOrEqual(1e-4);
    const sm = createSoftmaxKernel(gpu, { rows, cols });
    const p = await sm(x);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += p[r * cols + c]!;
      expect(s).toBeCloseTo(1, 5);
    }
  });
});

describe('row template options', () => {
  it('rejects bad sizes naming the option', () => {
    const gpu = makeGpu('cpu');
    expect(() => createSoftmaxKernel(gpu, { rows: 0, cols: 3 })).toThrow(/rows must be a positive integer/);
    expect(() => createLayerNormKernel(gpu, { rows: 2, cols: 3, eps: -1 })).toThrow(/eps must be >= 0/);
    gpu.destroy();
  });
});
