/**
 * Adafactor (Shazeer & Stern 2018) with trax's defaults, on flat maps of f32 host tensors.
 * Update number t (1-based), gradient g, weights w:
 *
 *   β2_t = 1 − t^(−decayRate)                       (0 at t = 1, so v starts at g²)
 *   rank ≥ 2 (factored over the last two axes, rows r and columns c):
 *     R ← β2_t·R + (1−β2_t)·mean_c(g²)              C ← β2_t·C + (1−β2_t)·mean_r(g²)
 *     y = g · √(mean_r(R) / (R_r + ε1)) · (C_c + ε1)^(−1/2)
 *   rank < 2 (or factored: false):
 *     V ← β2_t·V + (1−β2_t)·g²                      y = g · (V + ε1)^(−1/2)
 *   y ← y / max(1, RMS(y) / clippingThreshold)        (update clipping)
 *   u = lr · max(ε2, RMS(w)) · y                      (parameter-scale step size)
 *   with β1 > 0:  M ← β1·M + (1−β1)·u;  u = M          (momentum; off by default)
 *   w ← (1 − weightDecay)·w − u
 *
 * Defaults as in trax: decayRate 0.8, clippingThreshold 1, ε2 1e-3, β1 0, weightDecay 1e-5.
 * ε1 defaults to the paper's 1e-30 (trax uses 1e-16; both only guard division by zero).
 */
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { sizeOf, type Shape } from '../../compiler/ir/types.ts';
import { checkGrads, checkState, rms, shapesOf, stepTensor, zeros, type Optimizer, type ParamShapes, type TensorMap } from './state.ts';

export interface AdafactorOptions {
  /** Factor second moments of rank ≥ 2 parameters over their last two axes (default true). */
  readonly factored?: boolean;
  /** Scale the step by max(ε2, RMS(param)) (default true). */
  readonly multiplyByParameterScale?: boolean;
  /** RMS threshold for update clipping; `null` disables clipping (default 1). */
  readonly clippingThreshold?: number | null;
  /** Exponent of the β2 schedule 1 − t^(−decayRate) (default 0.8). */
  readonly decayRate?: number;
  /** Momentum; 0 disables it and its slot (default 0). */
  readonly beta1?: number;
  readonly eps1?: number;
  readonly eps2?: number;
  readonly weightDecay?: number;
}

/** Which slots a parameter of this shape has. */
const isFactored = (factored: boolean, shape: Shape) => factored && shape.length >= 2;

export class Adafactor implements Optimizer {
  readonly name = 'adafactor';
  readonly factored: boolean;
  readonly multiplyByParameterScale: boolean;
  readonly clippingThreshold: number | null;
  readonly decayRate: number;
  readonly beta1: number;
  readonly eps1: number;
  readonly eps2: number;
  readonly weightDecay: number;
  private readonly shapes: ParamShapes;
  private slots = new Map<string, HostTensor>();
  private t = 0;

  constructor(params: TensorMap, options: AdafactorOptions = {}) {
    this.factored = options.factored ?? true;
    this.multiplyByParameterScale = options.multiplyByParameterScale ?? true;
    this.clippingThreshold = options.clippingThreshold === undefined ? 1 : options.clippingThreshold;
    this.decayRate = options.decayRate ?? 0.8;
    this.beta1 = options.beta1 ?? 0;
    this.eps1 = options.eps1 ?? 1e-30;
    this.eps2 = options.eps2 ?? 1e-3;
    this.weightDecay = options.weightDecay ?? 1e-5;
    if (this.clippingThreshold !== null && !(this.clippingThreshold > 0)) throw new Error(`Adafactor: option 'clippingThreshold' must be positive or null, got ${this.clippingThreshold}`);
    if (!(this.decayRate > 0)) throw new Error(`Adafactor: option 'decayRate' must be positive, got ${this.decayRate}`);
    if (!(this.beta1 >= 0 && this.beta1 < 1)) throw new Error(`Adafactor: option 'beta1' must be in [0, 1), got ${this.beta1}`);
    if (!(this.weightDecay >= 0 && this.weightDecay < 1)) throw new Error(`Adafactor: option 'weightDecay' must be in [0, 1), got ${this.weightDecay}`);
    this.shapes = shapesOf(params);
    for (const [k, shape] of this.expectedSlots()) this.slots.set(k, zeros(shape));
  }

  get step(): number {
    return this.t;
  }

  /** Slot names and shapes: `vr/` and `vc/` (factored), `v/` (unfactored), `m/` (momentum). */
  private expectedSlots(): Map<string, Shape> {
    const out = new Map<string, Shape>();
    for (const [k, shape] of this.shapes) {
      if (isFactored(this.factored, shape)) {
        out.set(`vr/${k}`, shape.slice(0, -1));
        out.set(`vc/${k}`, [...shape.slice(0, -2), shape[shape.length - 1]!]);
      } else out.set(`v/${k}`, [...shape]);
      if (this.beta1 > 0) out.set(`m/${k}`, [...shape]);
    }
    return out;
  }

  update(params: TensorMap, grads: TensorMap, lr: number): void {
    checkGrads('Adafactor', this.shapes, params, grads);
    const t = this.t + 1;
    const decay = 1 - Math.pow(t, -this.decayRate);
    const mix = 1 - decay;
    const eps1 = this.eps1;
    for (const [k, shape] of this.shapes) {
      const w = params.get(k)!.data;
      const g = grads.get(k)!.data;
      const y = new Float64Array(g.length);
      if (isFactored(this.factored, shape)) {
        const rows = shape[shape.length - 2]!;
        const cols = shape[shape.length - 1]!;
        // Stryker disable next-line MethodExpression,UnaryOperator: a larger batch count only adds passes past the end of the arrays, whose writes are dropped
        const batch = sizeOf(shape.slice(0, -2));
        const vr = this.slots.get(`vr/${k}`)!.data;
        const vc = this.slots.get(`vc/${k}`)!.data;
        const rowSum = new Float64Array(rows);
        const colSum = new Float64Array(cols);
        // Stryker disable next-line EqualityOperator: an extra batch pass writes only past the end of the slot and update arrays (dropped)
        for (let b = 0; b < batch; b++) {
          rowSum.fill(0);
          colSum.fill(0);
          const base = b * rows * cols;
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < cols; c++) {
              const gi = g[base + r * cols + c]!;
              rowSum[r]! += gi * gi;
              colSum[c]! += gi * gi;
            }
          }
          let rowMean = 0;
          for (let r = 0; r < rows; r++) {
            vr[b * rows + r] = decay * vr[b * rows + r]! + (mix * rowSum[r]!) / cols;
            rowMean += vr[b * rows + r]!;
          }
          rowMean /= rows;
          for (let c = 0; c < cols; c++) vc[b * cols + c] = decay * vc[b * cols + c]! + (mix * colSum[c]!) / rows;
          // Stryker disable next-line EqualityOperator: row `rows` writes the next batch's first row (rewritten when that batch runs) or past the end
          for (let r = 0; r < rows; r++) {
            const rowFactor = Math.sqrt(rowMean / (vr[b * rows + r]! + eps1));
            // Stryker disable next-line EqualityOperator: column `cols` writes the next row's first entry (rewritten when that row runs) or past the end
            for (let c = 0; c < cols; c++) {
              const i = base + r * cols + c;
              y[i] = (g[i]! * rowFactor) / Math.sqrt(vc[b * cols + c]! + eps1);
            }
          }
        }
      } else {
        const v = this.slots.get(`v/${k}`)!.data;
        // Stryker disable next-line EqualityOperator: one more pass only reads past the end (undefined) and writes past the end of a typed array, which is dropped
        for (let i = 0; i < g.length; i++) {
          v[i] = decay * v[i]! + mix * g[i]! * g[i]!;
          y[i] = g[i]! / Math.sqrt(v[i]! + eps1);
        }
      }
      let scale = lr;
      if (this.clippingThreshold !== null) scale /= Math.max(1, rms(y) / this.clippingThreshold);
      if (this.multiplyByParameterScale) scale *= Math.max(this.eps2, rms(w));
      const keep = 1 - this.weightDecay;
      if (this.beta1 > 0) {
        const m = this.slots.get(`m/${k}`)!.data;
        // Stryker disable next-line EqualityOperator: one more pass only reads past the end (undefined) and writes past the end of a typed array, which is dropped
        for (let i = 0; i < w.length; i++) {
          m[i] = this.beta1 * m[i]! + (1 - this.beta1) * scale * y[i]!;
          w[i] = keep * w[i]! - m[i]!;
        }
      } else {
        // Stryker disable next-line EqualityOperator: one more pass only reads past the end (undefined) and writes past the end of a typed array, which is dropped
        for (let i = 0; i < w.length; i++) w[i] = keep * w[i]! - scale * y[i]!;
      }
    }
    this.t = t;
  }

  stateTensors(): Map<string, HostTensor> {
    return new Map([['step', stepTensor(this.t)], ...this.slots]);
  }

  loadState(state: TensorMap): void {
    const expected = this.expectedSlots();
    const step = checkState('Adafactor', state, expected);
    for (const [k, shape] of expected) this.slots.set(k, { ...zeros(shape), data: Float32Array.from(state.get(k)!.data) });
    this.t = step;
  }

  config(): Record<string, number | boolean | string> {
    return {
      name: this.name,
      factored: this.factored,
      multiplyByParameterScale: this.multiplyByParameterScale,
      clippingThreshold: this.clippingThreshold ?? 'none',
      decayRate: this.decayRate,
      beta1: this.beta1,
      eps1: this.eps1,
      eps2: this.eps2,
      weightDecay: this.weightDecay,
    };
  }
}
