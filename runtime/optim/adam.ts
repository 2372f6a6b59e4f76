/**
 * Adam (Kingma & Ba 2015) with bias correction and optional decoupled weight decay, on flat maps
 * of f32 host tensors. Update number t (1-based):
 *
 *   m ← β1·m + (1−β1)·g        v ← β2·v + (1−β2)·g²
 *   w ← (1 − wd)·w − lr · (m / (1−β1^t)) / (√(v / (1−β2^t)) + ε)
 *
 * Defaults: β1 0.9, β2 0.999, ε 1e-8 (the paper's; trax's Adam uses ε 1e-5 and weight decay 1e-5,
 * pass them explicitly to match it), weight decay 0. Weight decay multiplies the weights directly,
 * as trax does (it is not scaled by lr).
 */
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { Shape } from '../../compiler/ir/types.ts';
import { checkGrads, checkState, shapesOf, stepTensor, zeros, type Optimizer, type ParamShapes, type TensorMap } from './state.ts';

export interface AdamOptions {
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  readonly weightDecay?: number;
}

function checkRange(option: string, value: number, lo: number, hi: number): number {
  if (!(value >= lo && value < hi)) throw new Error(`Adam: option '${option}' must be in [${lo}, ${hi}), got ${value}`);
  return value;
}

export class Adam implements Optimizer {
  readonly name = 'adam';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly shapes: ParamShapes;
  private m = new Map<string, HostTensor>();
  private v = new Map<string, HostTensor>();
  private t = 0;

  /** `params` fixes the paths and shapes this optimizer updates; slots start at zero. */
  constructor(params: TensorMap, options: AdamOptions = {}) {
    this.beta1 = checkRange('beta1', options.beta1 ?? 0.9, 0, 1);
    this.beta2 = checkRange('beta2', options.beta2 ?? 0.999, 0, 1);
    this.eps = options.eps ?? 1e-8;
    if (!(this.eps > 0)) throw new Error(`Adam: option 'eps' must be positive, got ${this.eps}`);
    this.weightDecay = checkRange('weightDecay', options.weightDecay ?? 0, 0, 1);
    this.shapes = shapesOf(params);
    for (const [k, shape] of this.shapes) {
      this.m.set(k, zeros(shape));
      this.v.set(k, zeros(shape));
    }
  }

  get step(): number {
    return this.t;
  }

  update(params: TensorMap, grads: TensorMap, lr: number): void {
    checkGrads('Adam', this.shapes, params, grads);
    const t = this.t + 1;
    const { beta1: b1, beta2: b2, eps } = this;
    const c1 = 1 - Math.pow(b1, t);
    const c2 = 1 - Math.pow(b2, t);
    const keep = 1 - this.weightDecay;
    for (const k of this.shapes.keys()) {
      const w = params.get(k)!.data;
      const g = grads.get(k)!.data;
      const m = this.m.get(k)!.data;
      const v = this.v.get(k)!.data;
      // Stryker disable next-line EqualityOperator: one more pass only reads past the end (undefined) and writes past the end of a typed array, which is dropped
      for (let i = 0; i < w.length; i++) {
        const gi = g[i]!;
        const mi = b1 * m[i]! + (1 - b1) * gi;
        const vi = b2 * v[i]! + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = keep * w[i]! - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
      }
    }
    this.t = t;
  }

  stateTensors(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>([['step', stepTensor(this.t)]]);
    for (const [k, m] of this.m) out.set(`m/${k}`, m);
    for (const [k, v] of this.v) out.set(`v/${k}`, v);
    return out;
  }

  loadState(state: TensorMap): void {
    const expected = new Map<string, Shape>();
    for (const [k, shape] of this.shapes) {
      expected.set(`m/${k}`, shape);
      expected.set(`v/${k}`, shape);
    }
    const step = checkState('Adam', state, expected);
    // Copy into float32 slots so later in-place updates never alias the caller's tensors.
    for (const k of this.shapes.keys()) {
      this.m.set(k, { ...zeros(this.shapes.get(k)!), data: Float32Array.from(state.get(`m/${k}`)!.data) });
      this.v.set(k, { ...zeros(this.shapes.get(k)!), data: Float32Array.from(state.get(`v/${k}`)!.data) });
    }
    this.t = step;
  }

  config(): Record<string, number | string> {
    return { name: this.name, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
  }
}
