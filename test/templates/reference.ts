/** Float64 references and helpers shared by the kernel-template tests. */
import fc from 'fast-check';
import { GPU } from 'gpu.js';

/** Backends every template is checked on; both must actually run (no silent fallback). */
export const BACKENDS = ['webasm', 'cpu'] as const;

export function makeGpu(mode: (typeof BACKENDS)[number]): GPU {
  return new GPU({ mode } as never);
}

/** A Float32Array of `len` values in [-2, 2] (32-bit floats, no NaN). */
export const f32s = (len: number) =>
  fc.array(fc.float({ min: -2, max: 2, noNaN: true, noDefaultInfinity: true }), { minLength: len, maxLength: len }).map((v) => Float32Array.from(v));

export const nanLike = (a: Float32Array) => new Float32Array(a.length).fill(NaN);

export interface MatmulRefOptions {
  batch: number;
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  activation: 'none' | 'relu' | 'gelu';
}

/** C = A·B (+bias, activation) in float64; also returns Σ|a·b| + |bias| per element for scaling. */
export function matmulRef(a: Float32Array, b: Float32Array, o: MatmulRefOptions, bias?: Float32Array) {
  const { batch, m, k, n } = o;
  const c = new Float64Array(batch * m * n);
  const mag = new Float64Array(batch * m * n);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        let g = 0;
        for (let kk = 0; kk < k; kk++) {
          const av = o.transA ? a[z * m * k + kk * m + i]! : a[z * m * k + i * k + kk]!;
          const bv = o.transB ? b[z * k * n + j * k + kk]! : b[z * k * n + kk * n + j]!;
          s += av * bv;
          g += Math.abs(av * bv);
        }
        if (bias) {
          s += bias[j]!;
          g += Math.abs(bias[j]!);
        }
        if (o.activation === 'relu') s = Math.max(s, 0);
        if (o.activation === 'gelu') s = 0.5 * s * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (s + 0.044715 * s * s * s)));
        c[(z * m + i) * n + j] = s;
        mag[(z * m + i) * n + j] = g;
      }
    }
  }
  return { c, mag };
}

/** Largest |got − want| / scale_i; NaN anywhere (an unwritten, poisoned element) gives Infinity. */
export function worstRelErr(got: ArrayLike<number>, want: ArrayLike<number>, scale: (i: number) => number): number {
  if (got.length !== want.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!) / scale(i);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}
