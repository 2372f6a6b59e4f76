import { describe, expect, it } from 'vitest';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { Adafactor, Adam, clipByGlobalNorm, constantSchedule, globalNorm, multifactorSchedule, rms, warmupRsqrtSchedule, type Optimizer, type TensorMap } from '../../runtime/optim/index.ts';
import { decodeSafetensors, encodeSafetensors } from '../../runtime/safetensors.ts';

const f32 = (shape: number[], values: ArrayLike<number>): HostTensor => ({ shape, dtype: 'f32', data: Float32Array.from(values) });
const map = (entries: Array<[string, HostTensor]>) => new Map(entries);
const clone = (m: TensorMap) => new Map([...m].map(([k, t]) => [k, { ...t, data: Float32Array.from(t.data) }] as const));

/** A quadratic bowl 0.5·Σ c_i (w_i − target_i)² over a matrix and a vector; grads are exact. */
function quadratic() {
  const target = map([
    ['w', f32([4, 5], Array.from({ length: 20 }, (_, i) => Math.sin(i + 1)))],
    ['b', f32([5], [0.5, -0.25, 1, -1, 0.1])],
  ]);
  const curvature = (i: number) => 1 + (i % 3);
  const loss = (p: TensorMap) => {
    let s = 0;
    for (const [k, t] of p) t.data.forEach((x, i) => (s += 0.5 * curvature(i) * (x - target.get(k)!.data[i]!) ** 2));
    return s;
  };
  const grads = (p: TensorMap) =>
    new Map([...p].map(([k, t]) => [k, f32([...t.shape], Array.from(t.data, (x, i) => curvature(i) * (x - target.get(k)!.data[i]!)))] as const));
  const init = () => map([['w', f32([4, 5], new Array(20).fill(0.1))], ['b', f32([5], new Array(5).fill(0))]]);
  return { loss, grads, init };
}

function train(make: (p: TensorMap) => Optimizer, steps: number, lr: number) {
  const q = quadratic();
  const p = q.init();
  const opt = make(p);
  const start = q.loss(p);
  for (let s = 0; s < steps; s++) opt.update(p, q.grads(p), lr);
  return { start, end: q.loss(p), params: p, opt };
}

describe('Adam', () => {
  it('matches a hand computation for three steps', () => {
    // Step 1 by hand: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25, so w = 1 − 0.1·0.5/(0.5 + 1e-8).
    // Steps 2 and 3 follow the same recurrences with g = −1 and g = 2.
    const p = map([['w', f32([1], [1])]]);
    const opt = new Adam(p);
    const expected = [0.900000002, 0.9366103542405654, 0.8946447927181046];
    [0.5, -1, 2].forEach((g, i) => {
      opt.update(p, map([['w', f32([1], [g])]]), 0.1);
      expect(p.get('w')!.data[0]).toBeCloseTo(expected[i]!, 6);
    });
    expect(opt.step).toBe(3);
  });

  it('weight decay multiplies the weights by (1 − wd) in addition to the Adam step', () => {
    const a = map([['w', f32([2], [1, -2])]]);
    const b = map([['w', f32([2], [1, -2])]]);
    const g = map([['w', f32([2], [0, 0])]]);
    new Adam(a, { weightDecay: 0.1 }).update(a, g, 0.5);
    new Adam(b).update(b, g, 0.5);
    expect(Array.from(a.get('w')!.data)).toEqual([Math.fround(0.9), Math.fround(-1.8)]);
    expect(Array.from(b.get('w')!.data)).toEqual([1, -2]);
  });

  it('decreases a quadratic loss', () => {
    const r = train((p) => new Adam(p), 300, 0.05);
    expect(r.end).toBeLessThan(r.start * 1e-3);
  });

  it('rejects mismatched gradients and bad options with clear errors', () => {
    const p = map([['w', f32([2, 2], [1, 2, 3, 4])]]);
    const opt = new Adam(p);
    expect(() => opt.update(p, map([]), 0.1)).toThrow(/no gradient for parameter 'w'/);
    expect(() => opt.update(p, map([['w', f32([4], [1, 2, 3, 4])]]), 0.1)).toThrow(/gradient for 'w' has shape \[4\], parameter is \[2,2\]/);
    expect(() => opt.update(p, map([['w', f32([2, 2], [1, 2, 3, 4])], ['x', f32([1], [1])]]), 0.1)).toThrow(/unknown parameter 'x'/);
    expect(() => new Adam(p, { beta1: 1 })).toThrow(/beta1/);
    expect(() => new Adam(map([['i', { shape: [1], dtype: 'i32', data: new Int32Array(1) }]]))).toThrow(/'i' is i32/);
  });
});

describe('Adafactor', () => {
  it('first step, unfactored: v = g², so the step is lr · max(ε2, RMS(w)) · sign(g)', () => {
    const w = [0.3, -0.4, 0.5, 0];
    const p = map([['v', f32([4], w)]]);
    new Adafactor(p, { weightDecay: 0 }).update(p, map([['v', f32([4], [2, -3, 0.001, -1])]]), 0.1);
    const scale = 0.1 * rms(Float32Array.from(w));
    const expected = w.map((x, i) => x - scale * Math.sign([2, -3, 0.001, -1][i]!));
    Array.from(p.get('v')!.data).forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 6));
  });

  it('factored: two steps match an independent dense computation (numpy, written out below)', () => {
    // vr = β·vr + (1−β)·mean_c(g²); vc likewise over rows; y = g·√(mean(vr)/vr_r)/√vc_c;
    // y /= max(1, RMS(y)); w −= 0.1·max(1e-3, RMS(w))·y; β = 1 − t^−0.8.
    const p = map([['w', f32([2, 2], [0.5, -1, 2, 0.25])]]);
    const opt = new Adafactor(p, { weightDecay: 0 });
    const steps: Array<[number[], number[]]> = [
      [[1, -2, 0.5, 3], [0.33650929613263625, -0.8986073696900433, 1.9398996219701528, 0.13818198343535204]],
      [[-1, 0.5, 2, 1], [0.44475868438170435, -0.9385456652828147, 1.7999263038112534, 0.08653923656948888]],
    ];
    for (const [g, expected] of steps) {
      opt.update(p, map([['w', f32([2, 2], g)]]), 0.1);
      Array.from(p.get('w')!.data).forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 5));
    }
  });

  it('factored slots live on the last two axes', () => {
    const p = map([['a', f32([2, 3, 4], new Array(24).fill(1))], ['b', f32([3], [1, 1, 1])]]);
    const shapes = Object.fromEntries([...new Adafactor(p).stateTensors()].map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({ step: [], 'vr/a': [2, 3], 'vc/a': [2, 4], 'v/b': [3] });
    const unf = Object.fromEntries([...new Adafactor(p, { factored: false }).stateTensors()].map(([k, t]) => [k, t.shape]));
    expect(unf).toEqual({ step: [], 'v/a': [2, 3, 4], 'v/b': [3] });
  });

  it('factored equals unfactored when g² has rank one, and differs otherwise', () => {
    const run = (factored: boolean, g: number[]) => {
      const p = map([['w', f32([2, 3], [1, 2, 3, 4, 5, 6])]]);
      new Adafactor(p, { factored, weightDecay: 0 }).update(p, map([['w', f32([2, 3], g)]]), 0.01);
      return Array.from(p.get('w')!.data);
    };
    const rank1 = [1 * 1, 1 * -2, 1 * 3, -2 * 1, -2 * -2, -2 * 3]; // outer([1, −2], [1, −2, 3])
    run(true, rank1).forEach((x, i) => expect(x).toBeCloseTo(run(false, rank1)[i]!, 6));
    const full = [1, 0.1, 1, 0.1, 1, 0.1];
    const diff = run(true, full).map((x, i) => Math.abs(x - run(false, full)[i]!));
    expect(Math.max(...diff)).toBeGreaterThan(1e-3);
  });

  it('parameter scaling: steps grow with RMS(w) and bottom out at ε2', () => {
    const stepSize = (w0: number, options = {}) => {
      const p = map([['v', f32([2], [w0, w0])]]);
      new Adafactor(p, { weightDecay: 0, ...options }).update(p, map([['v', f32([2], [1, 1])]]), 0.1);
      return w0 - p.get('v')!.data[0]!;
    };
    expect(stepSize(2)).toBeCloseTo(0.2, 6);
    expect(stepSize(20)).toBeCloseTo(2, 5);
    expect(stepSize(1e-6)).toBeCloseTo(0.1 * 1e-3, 9);
    expect(stepSize(20, { multiplyByParameterScale: false })).toBeCloseTo(0.1, 5);
  });

  it('update clipping bounds RMS(y) by the threshold', () => {
    // Step 1 with a tiny gradient, step 2 with a large one: β2 = 1 − 2^−0.8, so |y| = 1/√(1 − β2) > 1.
    const secondStep = (clippingThreshold: number | null) => {
      const p = map([['v', f32([3], [1, 1, 1])]]);
      const opt = new Adafactor(p, { weightDecay: 0, multiplyByParameterScale: false, clippingThreshold });
      opt.update(p, map([['v', f32([3], [1e-3, 1e-3, 1e-3])]]), 1);
      const before = Array.from(p.get('v')!.data);
      opt.update(p, map([['v', f32([3], [1, 1, 1])]]), 1);
      return rms(before.map((x, i) => x - p.get('v')!.data[i]!));
    };
    const unclipped = 1 / Math.sqrt(Math.pow(2, -0.8) + (1 - Math.pow(2, -0.8)) * 1e-6);
    expect(secondStep(null)).toBeCloseTo(unclipped, 4);
    expect(unclipped).toBeGreaterThan(1.3);
    expect(secondStep(1)).toBeCloseTo(1, 5);
  });

  it('decreases a quadratic loss, with and without momentum', () => {
    for (const beta1 of [0, 0.9]) {
      const r = train((p) => new Adafactor(p, { beta1 }), 300, 0.05);
      expect(r.end).toBeLessThan(r.start * 0.02);
    }
  });
});

describe('optimizer state', () => {
  const makers: Array<[string, (p: TensorMap) => Optimizer]> = [
    ['adam', (p) => new Adam(p, { weightDecay: 1e-4 })],
    ['adafactor', (p) => new Adafactor(p)],
    ['adafactor+momentum', (p) => new Adafactor(p, { beta1: 0.9 })],
  ];
  for (const [name, make] of makers) {
    it(`${name}: state round-trips through safetensors and resuming is bit-identical`, () => {
      const q = quadratic();
      const straight = q.init();
      const a = make(straight);
      for (let s = 0; s < 6; s++) a.update(straight, q.grads(straight), 0.03);

      const resumed = q.init();
      const b = make(resumed);
      for (let s = 0; s < 3; s++) b.update(resumed, q.grads(resumed), 0.03);
      const file = decodeSafetensors(encodeSafetensors(b.stateTensors()));
      const saved = clone(resumed);
      const c = make(saved);
      c.loadState(file.tensors);
      expect(c.step).toBe(3);
      for (let s = 0; s < 3; s++) c.update(saved, q.grads(saved), 0.03);
      for (const [k, t] of straight) expect(Array.from(saved.get(k)!.data)).toEqual(Array.from(t.data));
    });
  }

  it('two identical runs give identical parameters (determinism)', () => {
    const a = train((p) => new Adafactor(p), 20, 0.05).params;
    const b = train((p) => new Adafactor(p), 20, 0.05).params;
    for (const [k, t] of a) expect(b.get(k)!.data).toEqual(t.data);
  });

  it('loadState rejects mismatched state and changes nothing', () => {
    const p = map([['w', f32([2, 3], [1, 2, 3, 4, 5, 6])]]);
    const opt = new Adam(p);
    opt.update(p, map([['w', f32([2, 3], [1, 1, 1, 1, 1, 1])]]), 0.1);
    const before = opt.stateTensors();
    const bad = new Map(before);
    bad.set('v/w', f32([3, 2], new Array(6).fill(0)));
    expect(() => opt.loadState(bad)).toThrow(/optimizer state 'v\/w' has shape \[3,2\] but the model expects \[2,3\]/);
    bad.delete('v/w');
    expect(() => opt.loadState(bad)).toThrow(/missing 'v\/w'/);
    expect(() => opt.loadState(new Map([...before, ['extra', f32([1], [0])]]))).toThrow(/unexpected entry 'extra'/);
    expect(() => opt.loadState(new Map([...before].filter(([k]) => k !== 'step')))).toThrow(/no valid 'step'/);
    expect(() => new Adafactor(p).loadState(before)).toThrow(/Adafactor: optimizer state is missing 'vr\/w'/);
    expect(opt.step).toBe(1);
    expect(opt.stateTensors().get('m/w')!.data).toEqual(before.get('m/w')!.data);
  });
});

describe('schedules', () => {
  it('constant * linear_warmup * rsqrt_decay', () => {
    const s = warmupRsqrtSchedule(2, 100);
    expect(s(1)).toBeCloseTo((2 * 0.01) / 10, 12);
    expect(s(50)).toBeCloseTo((2 * 0.5) / 10, 12);
    expect(s(100)).toBeCloseTo(2 / 10, 12);
    expect(s(400)).toBeCloseTo(2 / 20, 12);
    const n = warmupRsqrtSchedule(2, 100, true);
    expect(n(100)).toBeCloseTo(2, 12);
    expect(n(400)).toBeCloseTo(1, 12);
  });

  it('rises during warm-up and falls after it', () => {
    const s = multifactorSchedule({ factors: 'constant*linear_warmup*rsqrt_decay', constant: 1, warmupSteps: 10 });
    for (let t = 1; t < 10; t++) expect(s(t + 1)).toBeGreaterThan(s(t));
    for (let t = 10; t < 30; t++) expect(s(t + 1)).toBeLessThan(s(t));
  });

  it('errors name the bad factor, option or step', () => {
    expect(() => multifactorSchedule({ factors: 'constant * cosine', constant: 1, warmupSteps: 10 })).toThrow(/unknown factor 'cosine'/);
    expect(() => warmupRsqrtSchedule(1, 0)).toThrow(/warmupSteps/);
    expect(() => warmupRsqrtSchedule(1, 10)(0)).toThrow(/step must be an integer ≥ 1/);
    expect(constantSchedule(0.3)(7)).toBe(0.3);
    expect(() => constantSchedule(Number.NaN)).toThrow(/constant learning rate/);
  });
});

describe('global-norm clipping', () => {
  it('scales all gradients jointly to the max norm, and leaves small ones alone', () => {
    const g = map([['a', f32([2], [3, 0])], ['b', f32([1], [4])]]);
    expect(globalNorm(g)).toBe(5);
    const r = clipByGlobalNorm(g, 1);
    expect(r).toEqual({ norm: 5, scale: 0.2 });
    expect(globalNorm(g)).toBeCloseTo(1, 6);
    expect(Array.from(g.get('a')!.data)).toEqual([Math.fround(0.6), 0]);
    expect(clipByGlobalNorm(g, 10).scale).toBe(1);
    expect(Array.from(g.get('a')!.data)).toEqual([Math.fround(0.6), 0]);
  });

  it('leaves non-finite gradients for the caller to report', () => {
    const g = map([['a', f32([2], [Number.NaN, 1])]]);
    const r = clipByGlobalNorm(g, 1);
    expect(r.norm).toBeNaN();
    expect(r.scale).toBe(1);
    expect(() => clipByGlobalNorm(g, 0)).toThrow(/maxNorm must be positive/);
  });
});
