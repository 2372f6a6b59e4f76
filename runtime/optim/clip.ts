/** Global-norm gradient clipping: all gradients are scaled by one factor so their joint L2 norm ≤ maxNorm. */
import type { TensorMap } from './state.ts';

/** √(Σ over all tensors and elements of g²), accumulated in float64. */
export function globalNorm(grads: TensorMap): number {
  let s = 0;
  for (const g of grads.values()) for (let i = 0; i < g.data.length; i++) s += g.data[i]! * g.data[i]!;
  return Math.sqrt(s);
}

export interface ClipResult {
  /** Norm before clipping. */
  readonly norm: number;
  /** Factor the gradients were multiplied by (1 when not clipped). */
  readonly scale: number;
}

/**
 * Scales `grads` IN PLACE by min(1, maxNorm / norm). A non-finite norm is returned unchanged and
 * the gradients are left alone, so the caller can report the NaN/Inf instead of hiding it.
 */
export function clipByGlobalNorm(grads: TensorMap, maxNorm: number): ClipResult {
  if (!(maxNorm > 0)) throw new Error(`clipByGlobalNorm: maxNorm must be positive, got ${maxNorm}`);
  const norm = globalNorm(grads);
  // Stryker disable next-line EqualityOperator: at norm = maxNorm the scale maxNorm/norm is exactly 1, so scaling changes nothing
  if (!Number.isFinite(norm) || norm <= maxNorm) return { norm, scale: 1 };
  const scale = maxNorm / norm;
  // Stryker disable next-line EqualityOperator: one more pass only reads past the end (undefined) and writes past the end of a typed array, which is dropped
  for (const g of grads.values()) for (let i = 0; i < g.data.length; i++) g.data[i] = g.data[i]! * scale;
  return { norm, scale };
}
