/** Shared numeric helpers for tests: central finite differences and tolerant comparison. */
import type { Graph } from '../../compiler/ir/graph.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { type HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { NodeId } from '../../compiler/ir/types.ts';

/** Central finite-difference gradient of scalar output `out` w.r.t. the input named `name`. */
export function finiteDifference(
  graph: Graph,
  feeds: Record<string, HostTensor>,
  name: string,
  out: NodeId,
  eps = 1e-6,
): Float64Array {
  const base = feeds[name]!;
  const grad = new Float64Array(base.data.length);
  for (let i = 0; i < base.data.length; i++) {
    const at = (delta: number) => {
      const data = Float64Array.from(base.data);
      data[i] = data[i]! + delta;
      const [v] = evaluate(graph, { ...feeds, [name]: { ...base, data } }, [out]);
      return v!.data[0]!;
    };
    grad[i] = (at(eps) - at(-eps)) / (2 * eps);
  }
  return grad;
}

/** Largest |a−b| / (atol + rtol·|b|) over elements; ≤ 1 means close. */
export function closeness(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const r = Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!));
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : r;
  }
  return worst;
}

export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what = 'values'): void {
  const c = closeness(a, b, rtol, atol);
  if (!(c <= 1)) {
    let worstAt = 0;
    let worst = -1;
    for (let i = 0; i < a.length; i++) {
      const r = Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!));
      if (r > worst || Number.isNaN(r)) ((worst = Number.isNaN(r) ? Infinity : r), (worstAt = i));
    }
    throw new Error(`${what} differ (closeness ${c.toFixed(3)}): at ${worstAt}: ${a[worstAt]} vs ${b[worstAt]}`);
  }
}
