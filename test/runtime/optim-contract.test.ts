/**
 * Optimizer contracts the main optimizer tests leave open: Adafactor on a batched (rank-3)
 * parameter with every switch against a plain float64 transcription of its formulas, option
 * validation at the boundaries, names, slots and config, the state checks one by one, and the
 * schedule and clipping edge cases.
 */
import { describe, expect, it } from 'vitest';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import {
  Adafactor,
  Adam,
  checkGrads,
  checkState,
  clipByGlobalNorm,
  constantSchedule,
  multifactorSchedule,
  parseFactors,
  rms,
  sameShape,
  type AdafactorOptions,
  type TensorMap,
} from '../../runtime/optim/index.ts';

const f32 = (shape: number[], values: ArrayLike<number>): HostTensor => ({ shape, dtype: 'f32', data: Float32Array.from(values) });
const i32 = (shape: number[], values: ArrayLike<number>): HostTensor => ({ shape, dtype: 'i32', data: Int32Array.from(values) });
const wave = (n: number, k: number) => Array.from({ length: n }, (_, i) => Math.sin(k * (i + 1)) * (1 + (i % 5)));

const SHAPE = [2, 3, 4]; // batch 2, rows 3, columns 4
const N = 24;

/** Adafactor written out per element in float64, one parameter of shape SHAPE, from the file's formulas. */
function referenceAdafactor(w0: number[], grads: number[][], lr: number, o: Required<Omit<AdafactorOptions, 'clippingThreshold'>> & { clippingThreshold: number | null }) {
  const [batch, rows, cols] = SHAPE as [number, number, number];
  const w = [...w0];
  const R = new Array<number>(batch * rows).fill(0);
  const C = new Array<number>(batch * cols).fill(0);
  const V = new Array<number>(N).fill(0);
  const M = new Array<number>(N).fill(0);
  grads.forEach((g, step) => {
    const t = step + 1;
    const decay = 1 - t ** -o.decayRate;
    const y = new Array<number>(N).fill(0);
    const at = (b: number, r: number, c: number) => b * rows * cols + r * cols + c;
    if (o.factored) {
      for (let b = 0; b < batch; b++) {
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let c = 0; c < cols; c++) s += g[at(b, r, c)]! ** 2;
          R[b * rows + r] = decay * R[b * rows + r]! + (1 - decay) * (s / cols);
        }
        for (let c = 0; c < cols; c++) {
          let s = 0;
          for (let r = 0; r < rows; r++) s += g[at(b, r, c)]! ** 2;
          C[b * cols + c] = decay * C[b * cols + c]! + (1 - decay) * (s / rows);
        }
        let meanR = 0;
        for (let r = 0; r < rows; r++) meanR += R[b * rows + r]! / rows;
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[at(b, r, c)] = g[at(b, r, c)]! * Math.sqrt(meanR / (R[b * rows + r]! + o.eps1)) / Math.sqrt(C[b * cols + c]! + o.eps1);
      }
    } else {
      for (let i = 0; i < N; i++) {
        V[i] = decay * V[i]! + (1 - decay) * g[i]! ** 2;
        y[i] = g[i]! / Math.sqrt(V[i]! + o.eps1);
      }
    }
    let scale = lr;
    if (o.clippingThreshold !== null) scale /= Math.max(1, rms(y) / o.clippingThreshold);
    if (o.multiplyByParameterScale) scale *= Math.max(o.eps2, rms(w));
    for (let i = 0; i < N; i++) {
      let u = scale * y[i]!;
      if (o.beta1 > 0) u = M[i] = o.beta1 * M[i]! + (1 - o.beta1) * u;
      w[i] = (1 - o.weightDecay) * w[i]! - u;
    }
  });
  return w;
}

const defaults = { factored: true, multiplyByParameterScale: true, clippingThreshold: 1, decayRate: 0.8, beta1: 0, eps1: 1e-30, eps2: 1e-3, weightDecay: 1e-5 };

describe('Adafactor against its formulas (batched rank-3 parameter, three steps)', () => {
  const cases: Array<[string, AdafactorOptions]> = [
    ['defaults', {}],
    ['momentum, weight decay, tight clipping, large ε1', { beta1: 0.6, weightDecay: 0.02, clippingThreshold: 0.3, eps1: 0.05 }],
    ['unfactored, no parameter scale, no clipping', { factored: false, multiplyByParameterScale: false, clippingThreshold: null, eps1: 0.01 }],
    ['factored, no parameter scale, slow decay', { multiplyByParameterScale: false, decayRate: 0.5, eps2: 0.5 }],
  ];
  for (const [name, options] of cases) {
    it(name, () => {
      const w0 = wave(N, 0.7).map((v) => 0.3 * v);
      // the two batch entries differ in scale, so mixing them up changes the answer
      const grads = [1, 2, 3].map((k) => wave(N, 1.3 * k).map((v, i) => (i < 12 ? v : 5 * v)));
      const p = new Map([['w', f32(SHAPE, w0)]]);
      const opt = new Adafactor(p, options);
      for (const g of grads) opt.update(p, new Map([['w', f32(SHAPE, g)]]), 0.05);
      const want = referenceAdafactor(w0, grads, 0.05, { ...defaults, ...options });
      const got = Array.from(p.get('w')!.data);
      got.forEach((v, i) => expect(v, `w[${i}]`).toBeCloseTo(want[i]!, 5));
      expect(got).not.toEqual(Array.from(Float32Array.from(w0)));
      expect(opt.step).toBe(3);
    });
  }

  it('factored slots of a rank-3 parameter: vr over the batch and rows, vc over the batch and columns', () => {
    const opt = new Adafactor(new Map([['w', f32(SHAPE, wave(N, 1))], ['b', f32([4], [1, 2, 3, 4])]]), { beta1: 0.5 });
    const shapes = Object.fromEntries([...opt.stateTensors()].map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({ step: [], 'vr/w': [2, 3], 'vc/w': [2, 4], 'v/b': [4], 'm/w': SHAPE, 'm/b': [4] });
    const plain = new Adafactor(new Map([['w', f32(SHAPE, wave(N, 1))]]), { factored: false });
    expect([...plain.stateTensors().keys()]).toEqual(['step', 'v/w']);
  });
});

describe('Adafactor options', () => {
  const p = () => new Map([['w', f32([2], [1, 2])]]);
  it('validates each option at its boundary, naming it', () => {
    expect(() => new Adafactor(p(), { clippingThreshold: 0 })).toThrow("Adafactor: option 'clippingThreshold' must be positive or null, got 0");
    expect(() => new Adafactor(p(), { clippingThreshold: -1 })).toThrow(/'clippingThreshold'/);
    expect(() => new Adafactor(p(), { clippingThreshold: null })).not.toThrow();
    expect(() => new Adafactor(p(), { decayRate: 0 })).toThrow("Adafactor: option 'decayRate' must be positive, got 0");
    expect(() => new Adafactor(p(), { decayRate: 1e-9 })).not.toThrow();
    expect(() => new Adafactor(p(), { beta1: 1 })).toThrow("Adafactor: option 'beta1' must be in [0, 1), got 1");
    expect(() => new Adafactor(p(), { beta1: -0.1 })).toThrow(/'beta1' must be in \[0, 1\), got -0.1/);
    expect(() => new Adafactor(p(), { beta1: 0 })).not.toThrow();
    expect(() => new Adafactor(p(), { weightDecay: 1 })).toThrow("Adafactor: option 'weightDecay' must be in [0, 1), got 1");
    expect(() => new Adafactor(p(), { weightDecay: -0.5 })).toThrow(/'weightDecay' must be in \[0, 1\), got -0.5/);
    expect(() => new Adafactor(p(), { weightDecay: 0 })).not.toThrow();
  });

  it('reports its name and every hyper-parameter (no clipping as "none")', () => {
    const opt = new Adafactor(p());
    expect(opt.name).toBe('adafactor');
    expect(opt.config()).toEqual({ name: 'adafactor', factored: true, multiplyByParameterScale: true, clippingThreshold: 1, decayRate: 0.8, beta1: 0, eps1: 1e-30, eps2: 1e-3, weightDecay: 1e-5 });
    expect(new Adafactor(p(), { clippingThreshold: null, factored: false }).config()).toMatchObject({ clippingThreshold: 'none', factored: false });
  });
});

describe('Adam', () => {
  const p = () => new Map([['w', f32([2], [1, -1])]]);
  it('validates β1, β2, ε and weight decay, naming the option', () => {
    expect(() => new Adam(p(), { beta1: 1 })).toThrow("Adam: option 'beta1' must be in [0, 1), got 1");
    expect(() => new Adam(p(), { beta2: -0.1 })).toThrow("Adam: option 'beta2' must be in [0, 1), got -0.1");
    expect(() => new Adam(p(), { weightDecay: 1 })).toThrow("Adam: option 'weightDecay' must be in [0, 1), got 1");
    expect(() => new Adam(p(), { eps: 0 })).toThrow("Adam: option 'eps' must be positive, got 0");
    expect(() => new Adam(p(), { eps: -1 })).toThrow(/'eps' must be positive/);
    expect(() => new Adam(p(), { beta1: 0, beta2: 0, weightDecay: 0, eps: 1e-12 })).not.toThrow();
  });

  it('a large ε damps the step: w − lr·m̂/(√v̂ + ε)', () => {
    const w = p();
    new Adam(w, { eps: 0.5 }).update(w, new Map([['w', f32([2], [2, -4])]]), 0.1);
    // step 1: m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε)
    expect(w.get('w')!.data[0]).toBeCloseTo(1 - (0.1 * 2) / 2.5, 6);
    expect(w.get('w')!.data[1]).toBeCloseTo(-1 + (0.1 * 4) / 4.5, 6);
  });

  it('names, slots and config', () => {
    const opt = new Adam(p(), { weightDecay: 0.01 });
    expect(opt.name).toBe('adam');
    expect([...opt.stateTensors().keys()]).toEqual(['step', 'm/w', 'v/w']);
    expect(opt.config()).toEqual({ name: 'adam', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  });
});

describe('errors name the optimizer', () => {
  it('in update and in loadState', () => {
    const p = () => new Map([['w', f32([2], [1, 2])]]);
    expect(() => new Adafactor(p()).update(p(), new Map(), 0.1)).toThrow("Adafactor: no gradient for parameter 'w'");
    expect(() => new Adam(p()).update(p(), new Map(), 0.1)).toThrow("Adam: no gradient for parameter 'w'");
    expect(() => new Adafactor(p()).loadState(new Map())).toThrow("Adafactor: optimizer state has no valid 'step'");
    expect(() => new Adam(p()).loadState(new Map())).toThrow("Adam: optimizer state has no valid 'step'");
  });
});

describe('state checks', () => {
  const shapes = new Map([['w', [2, 3]]]);
  it('checkGrads: missing parameter, missing gradient, wrong shapes of the same rank, unknown gradient', () => {
    const w = f32([2, 3], wave(6, 1));
    expect(() => checkGrads('Opt', shapes, new Map(), new Map([['w', w]]))).toThrow("Opt: parameter 'w' is missing from the update");
    expect(() => checkGrads('Opt', shapes, new Map([['w', w]]), new Map())).toThrow("Opt: no gradient for parameter 'w'");
    expect(() => checkGrads('Opt', shapes, new Map([['w', f32([3, 2], wave(6, 1))]]), new Map([['w', w]]))).toThrow("Opt: parameter 'w' has shape [3,2], the optimizer was built for [2,3]");
    expect(() => checkGrads('Opt', shapes, new Map([['w', w]]), new Map([['w', f32([3, 2], wave(6, 1))]]))).toThrow("Opt: gradient for 'w' has shape [3,2], parameter is [2,3]");
    expect(() => checkGrads('Opt', shapes, new Map([['w', w]]), new Map([['w', w], ['x', w]]))).toThrow("Opt: gradient for unknown parameter 'x'");
    expect(() => checkGrads('Opt', shapes, new Map([['w', w]]), new Map([['w', w]]))).not.toThrow();
  });

  it('sameShape compares every axis', () => {
    expect(sameShape([2, 3], [2, 3])).toBe(true);
    expect(sameShape([2, 3], [2, 4])).toBe(false);
    expect(sameShape([2, 3], [3, 3])).toBe(false);
    expect(sameShape([2], [2, 1])).toBe(false);
  });

  it('checkState: the step must be an i32 scalar ≥ 0; each slot present, f32, shaped; nothing extra', () => {
    const slot = f32([2, 3], wave(6, 2));
    const ok = (extra: Array<[string, HostTensor]> = []): TensorMap => new Map([['step', i32([], [4])], ['v/w', slot], ...extra]);
    const expected = new Map([['v/w', [2, 3]]]);
    expect(checkState('Opt', ok(), expected)).toBe(4);
    expect(checkState('Opt', new Map([['step', i32([], [0])], ['v/w', slot]]), expected)).toBe(0);
    const badStep = "Opt: optimizer state has no valid 'step' (an i32 scalar ≥ 0)";
    expect(() => checkState('Opt', new Map([['v/w', slot]]), expected)).toThrow(badStep);
    expect(() => checkState('Opt', new Map([['step', f32([], [4])], ['v/w', slot]]), expected)).toThrow(badStep);
    expect(() => checkState('Opt', new Map([['step', i32([2], [4, 4])], ['v/w', slot]]), expected)).toThrow(badStep);
    expect(() => checkState('Opt', new Map([['step', i32([], [-1])], ['v/w', slot]]), expected)).toThrow(badStep);
    expect(() => checkState('Opt', new Map([['step', i32([], [4])]]), expected)).toThrow("Opt: optimizer state is missing 'v/w' (was it saved by a different optimizer or model?)");
    expect(() => checkState('Opt', new Map([['step', i32([], [4])], ['v/w', i32([2, 3], [1, 2, 3, 4, 5, 6])]]), expected)).toThrow("Opt: optimizer state 'v/w' is i32, expected f32");
    expect(() => checkState('Opt', new Map([['step', i32([], [4])], ['v/w', f32([3, 2], wave(6, 2))]]), expected)).toThrow(
      "Opt: optimizer state 'v/w' has shape [3,2] but the model expects [2,3]",
    );
    expect(() => checkState('Opt', ok([['m/w', slot]]), expected)).toThrow("Opt: optimizer state has unexpected entry 'm/w'");
  });

  it('rms of nothing is 0', () => {
    expect(rms([])).toBe(0);
    expect(rms([3, -4])).toBeCloseTo(Math.sqrt(12.5), 12);
  });
});

describe('schedules', () => {
  it('a constant rate must be finite and ≥ 0 (0 allowed)', () => {
    expect(constantSchedule(0)(7)).toBe(0);
    expect(constantSchedule(0.5)(1)).toBe(0.5);
    expect(() => constantSchedule(-0.1)).toThrow('schedule: constant learning rate must be a finite number ≥ 0, got -0.1');
    expect(() => constantSchedule(Infinity)).toThrow(/finite number ≥ 0, got Infinity/);
  });

  it('knows exactly the four factors, and lists them when one is unknown', () => {
    expect(parseFactors('constant * linear_warmup * rsqrt_decay * rsqrt_normalized_decay')).toEqual(['constant', 'linear_warmup', 'rsqrt_decay', 'rsqrt_normalized_decay']);
    expect(() => parseFactors('constant * cosine')).toThrow("schedule: unknown factor 'cosine' in 'constant * cosine' (known: constant, linear_warmup, rsqrt_decay, rsqrt_normalized_decay)");
    expect(() => parseFactors('')).toThrow(/unknown factor ''/);
  });

  it("'constant' must be finite and ≥ 0; warmupSteps is needed only by the other factors", () => {
    expect(() => multifactorSchedule({ factors: 'constant', constant: -1, warmupSteps: 10 })).toThrow("schedule: 'constant' must be a finite number ≥ 0, got -1");
    expect(() => multifactorSchedule({ factors: 'constant', constant: NaN, warmupSteps: 10 })).toThrow(/'constant' must be a finite number ≥ 0, got NaN/);
    expect(multifactorSchedule({ factors: 'constant', constant: 0, warmupSteps: 10 })(3)).toBe(0);
    expect(multifactorSchedule({ factors: 'constant', constant: 0.25, warmupSteps: 0 })(3)).toBe(0.25);
    expect(() => multifactorSchedule({ factors: 'constant * rsqrt_decay', constant: 1, warmupSteps: 0 })).toThrow(
      "schedule: 'warmupSteps' must be a positive integer for 'constant * rsqrt_decay', got 0",
    );
    expect(multifactorSchedule({ factors: 'rsqrt_normalized_decay', constant: 1, warmupSteps: 4 })(16)).toBeCloseTo(0.5, 12);
  });
});

describe('global-norm clipping at the boundary', () => {
  it('a norm equal to the maximum is left alone (scale 1)', () => {
    const g = new Map([['a', f32([2], [3, 4])]]);
    expect(clipByGlobalNorm(g, 5)).toEqual({ norm: 5, scale: 1 });
    expect(Array.from(g.get('a')!.data)).toEqual([3, 4]);
    expect(() => clipByGlobalNorm(g, 0)).toThrow('clipByGlobalNorm: maxNorm must be positive, got 0');
  });
});
