/**
 * Concrete tensors on the host: what runners take as feeds and give back as outputs. The IR owns
 * this type so that every layer above it (reference evaluator, runtime, training) shares one.
 */
import type { DType, Shape } from './types.ts';
import { formatShape, sizeOf } from './types.ts';

/** A concrete tensor on the host. f32 tensors are held as Float64Array by the reference evaluator. */
export interface HostTensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly data: Float64Array | Float32Array | Int32Array;
}

export function hostTensor(shape: Shape, data: ArrayLike<number>, dtype: DType = 'f32'): HostTensor {
  if (data.length !== sizeOf(shape)) {
    throw new Error(`tensor data has ${data.length} elements, shape ${formatShape(shape)} needs ${sizeOf(shape)}`);
  }
  return { shape: [...shape], dtype, data: dtype === 'i32' ? Int32Array.from(data) : Float64Array.from(data) };
}

/** Row-major strides of `shape`, in elements. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}
