/**
 * What every optimizer shares: flat parameter maps (path -> tensor, paths from `flattenParams`),
 * in-place updates, and state that round-trips through a map of named tensors (for checkpoints).
 */
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { formatShape, sizeOf, type Shape } from '../../compiler/ir/types.ts';

export type TensorMap = ReadonlyMap<string, HostTensor>;

export interface Optimizer {
  /** e.g. `adam`, `adafactor`. */
  readonly name: string;
  /** Updates applied so far; the next update is number `step + 1`. */
  readonly step: number;
  /**
   * Applies one update to `params` IN PLACE (their data arrays are overwritten) from `grads`
   * (same paths and shapes) with learning rate `lr`.
   */
  update(params: TensorMap, grads: TensorMap, lr: number): void;
  /** The full state (slots and step), named for a safetensors file. */
  stateTensors(): Map<string, HostTensor>;
  /** Restores `stateTensors()` output; validates everything before changing anything. */
  loadState(state: TensorMap): void;
  /** Hyper-parameters, for config.json. */
  config(): Record<string, number | boolean | string>;
}

/** The parameter signature (paths and shapes) an optimizer is built for. */
export type ParamShapes = ReadonlyMap<string, Shape>;

export function shapesOf(params: TensorMap): Map<string, Shape> {
  const out = new Map<string, Shape>();
  for (const [k, t] of params) {
    if (t.dtype !== 'f32') throw new Error(`optimizer: parameter '${k}' is ${t.dtype}; only f32 parameters are trained`);
    out.set(k, [...t.shape]);
  }
  return out;
}

export const sameShape = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);

export function zeros(shape: Shape): HostTensor {
  return { shape: [...shape], dtype: 'f32', data: new Float32Array(sizeOf(shape)) };
}

/** Checks that grads match the parameter signature exactly. */
export function checkGrads(name: string, shapes: ParamShapes, params: TensorMap, grads: TensorMap): void {
  for (const [k, shape] of shapes) {
    const p = params.get(k);
    const g = grads.get(k);
    if (p === undefined) throw new Error(`${name}: parameter '${k}' is missing from the update`);
    if (g === undefined) throw new Error(`${name}: no gradient for parameter '${k}'`);
    if (!sameShape(p.shape, shape)) throw new Error(`${name}: parameter '${k}' has shape ${formatShape(p.shape)}, the optimizer was built for ${formatShape(shape)}`);
    if (!sameShape(g.shape, shape)) throw new Error(`${name}: gradient for '${k}' has shape ${formatShape(g.shape)}, parameter is ${formatShape(shape)}`);
  }
  for (const k of grads.keys()) if (!shapes.has(k)) throw new Error(`${name}: gradient for unknown parameter '${k}'`);
}

export function stepTensor(step: number): HostTensor {
  return { shape: [], dtype: 'i32', data: Int32Array.from([step]) };
}

/**
 * Validates a state map against the expected slot shapes and returns the step. `expected` maps
 * state names to shapes; extra or missing names and wrong shapes are errors naming the slot.
 */
export function checkState(name: string, state: TensorMap, expected: ReadonlyMap<string, Shape>): number {
  const step = state.get('step');
  if (step === undefined || step.dtype !== 'i32' || step.data.length !== 1 || !(step.data[0]! >= 0)) {
    throw new Error(`${name}: optimizer state has no valid 'step' (an i32 scalar ≥ 0)`);
  }
  for (const [k, shape] of expected) {
    const t = state.get(k);
    if (t === undefined) throw new Error(`${name}: optimizer state is missing '${k}' (was it saved by a different optimizer or model?)`);
    if (t.dtype !== 'f32') throw new Error(`${name}: optimizer state '${k}' is ${t.dtype}, expected f32`);
    if (!sameShape(t.shape, shape)) throw new Error(`${name}: optimizer state '${k}' has shape ${formatShape(t.shape)} but the model expects ${formatShape(shape)}`);
  }
  for (const k of state.keys()) if (k !== 'step' && !expected.has(k)) throw new Error(`${name}: optimizer state has unexpected entry '${k}'`);
  return step.data[0]!;
}

/** Root mean square of an array. */
export function rms(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return x.length === 0 ? 0 : Math.sqrt(s / x.length);
}
