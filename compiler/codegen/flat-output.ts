/**
 * A gpu.js kernel hands its result back shaped by its launch (one array per row of a 2-D launch,
 * one subarray per cell of an `Array(n)` return); kernels read their operands flat.
 */

/** Flattens whatever a gpu.js kernel returned (typed array, nested arrays, vectors) to floats. */
export function flattenResult(result: unknown, expected: number): Float32Array {
  if (result instanceof Float32Array && result.length === expected) return result;
  const out = new Float32Array(expected);
  let p = 0;
  const walk = (v: unknown): void => {
    if (typeof v === 'number') {
      out[p++] = v;
    } else if (ArrayBuffer.isView(v)) {
      const t = v as Float32Array;
      out.set(t, p);
      p += t.length;
    } else if (Array.isArray(v)) {
      for (const e of v) walk(e);
    } else {
      throw new TypeError(`kernel result: unexpected element ${String(v)}`);
    }
  };
  walk(result);
  if (p !== expected) throw new RangeError(`kernel result: a kernel returned ${p} floats, expected ${expected}`);
  return out;
}
