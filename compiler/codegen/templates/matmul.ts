/**
 * Batched matmul template C = A·B (+ bias, activation) for gpu.js, tuned for the webasm backend.
 *
 * What webasm does with a kernel (gpu.js 2.24): four adjacent `thread.x` cells run as one f32x4
 * step; a read whose index depends on thread.x is a GATHER (four scalar loads + lane inserts,
 * there is no vector load), a read that does not is one scalar load + splat. So the cost of a
 * matmul is the number of gathers per multiply-add. The naive kernel (one output per thread) does
 * one gather per vector multiply-add. Ours returns `Array(4)`: each thread owns FOUR ROWS of one
 * column j (lanes = four adjacent columns), so per k step it does one gather of B[k][j..j+3] and
 * four uniform loads A[i..i+3][k] for four vector multiply-adds: a 4×4 outer product per step,
 * unrolled in k to give the scheduler independent gathers.
 *
 * Layouts (all flat, row-major, batch outermost):
 *   A: [batch, m, k]   or with transA [batch, k, m]   (so dx = dy·Wᵀ and dW = xᵀ·dy need no copy)
 *   B: [batch, k, n]   or with transB [batch, n, k]
 *   bias: [n] (broadcast over batch and rows);  C: [batch, m, n]
 * The kernel's own output is row-QUAD major ([batch][m/4][n][4]); `createMatmulKernel` reorders
 * it into C (one linear pass, cheap next to the O(m·n·k) product).
 */
import type { GPU } from 'gpu.js';
import { buildKernel, float, int, type KernelSource } from './kernel-source.ts';

export type Activation = 'none' | 'relu' | 'gelu';

export interface MatmulOptions {
  batch?: number;
  m: number;
  k: number;
  n: number;
  /** A is stored transposed: [batch, k, m]. */
  transA?: boolean;
  /** B is stored transposed: [batch, n, k]. */
  transB?: boolean;
  /** Add a bias vector of length n to every row (third kernel argument). */
  bias?: boolean;
  activation?: Activation;
  /** k-loop unroll factor of the fast kernel (default 8). */
  unroll?: number;
}

/** The template plus how its output maps onto C. */
export interface MatmulSource extends KernelSource {
  /** `rowQuads`: kernel output is [batch][ceil(m/4)][n][4]; `rowMajor`: it already is C. */
  layout: 'rowQuads' | 'rowMajor';
}

function checkOptions(o: MatmulOptions): Required<MatmulOptions> {
  const full = {
    batch: o.batch ?? 1,
    m: o.m,
    k: o.k,
    n: o.n,
    transA: o.transA ?? false,
    transB: o.transB ?? false,
    bias: o.bias ?? false,
    activation: o.activation ?? 'none',
    unroll: o.unroll ?? 8,
  };
  for (const key of ['batch', 'm', 'k', 'n', 'unroll'] as const) {
    const v = full[key];
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`matmul template: option ${key} must be a positive integer, got ${v}`);
  }
  if (!['none', 'relu', 'gelu'].includes(full.activation)) {
    throw new RangeError(`matmul template: unknown activation '${full.activation}' (expected none, relu or gelu)`);
  }
  // gpu.js indexes with i32; keep every flat index well inside it
  const biggest = Math.max(full.batch * full.m * full.k, full.batch * full.k * full.n, full.batch * full.m * full.n);
  if (biggest >= 2 ** 31 - 4) throw new RangeError(`matmul template: operand of ${biggest} elements exceeds the i32 index range`);
  return full;
}

/** Flat index of A(batch z, row r, depth kk), as kernel text. */
function aIndex(o: Required<MatmulOptions>, z: string, r: string, kk: string): string {
  const base = o.batch > 1 ? `${z} * ${int(o.m * o.k)} + ` : '';
  return o.transA ? `${base}(${kk}) * ${int(o.m)} + ${r}` : `${base}(${r}) * ${int(o.k)} + ${kk}`;
}

/** Flat index of B(batch z, depth kk, column c), as kernel text. */
function bIndex(o: Required<MatmulOptions>, z: string, kk: string, c: string): string {
  const base = o.batch > 1 ? `${z} * ${int(o.k * o.n)} + ` : '';
  return o.transB ? `${base}${c} * ${int(o.k)} + ${kk}` : `${base}(${kk}) * ${int(o.n)} + ${c}`;
}

/** Epilogue turning accumulator `s` into the returned value (bias, activation), as kernel text. */
function epilogue(o: Required<MatmulOptions>, s: string, out: string): string {
  const lines: string[] = [];
  lines.push(`let ${out} = ${s}${o.bias ? ' + bv' : ''};`);
  if (o.activation === 'relu') lines.push(`${out} = ${out} > 0.0 ? ${out} : 0.0;`);
  if (o.activation === 'gelu') {
    // tanh approximation, the same formula as dsl/ops.ts gelu
    lines.push(
      `${out} = 0.5 * ${out} * (1.0 + Math.tanh(${float(Math.sqrt(2 / Math.PI))} * (${out} + 0.044715 * ${out} * ${out} * ${out})));`,
    );
  }
  return lines.join('\n  ');
}

/**
 * Baseline: one output per thread, output [n, m, batch] = C directly.
 * Arguments: (a, b) or (a, b, bias).
 */
export function naiveMatmulSource(opts: MatmulOptions): MatmulSource {
  const o = checkOptions(opts);
  const z = 'this.thread.z';
  const i = 'this.thread.y';
  const j = 'this.thread.x';
  const source = `function(a, b${o.bias ? ', bias' : ''}) {
  let s = 0.0;
  for (let kk = 0; kk < ${int(o.k)}; kk++) {
    s += a[${aIndex(o, z, i, 'kk')}] * b[${bIndex(o, z, 'kk', j)}];
  }
  ${o.bias ? `const bv = bias[${j}];` : ''}
  ${epilogue(o, 's', 'r')}
  return r;
}`;
  const output = o.batch > 1 ? [o.n, o.m, o.batch] : [o.n, o.m];
  return { source, output, components: 1, loopMaxIterations: o.k, layout: 'rowMajor' };
}

/**
 * Fast kernel: thread (j, q, z) computes C[z][4q + c][j] for c = 0..3 and returns them as an
 * `Array(4)`. Rows past m (when m % 4 ≠ 0) re-read row m−1 and are dropped by the reorder.
 * Arguments: (a, b) or (a, b, bias).
 */
export function matmulSource(opts: MatmulOptions): MatmulSource {
  const o = checkOptions(opts);
  const z = 'this.thread.z';
  const j = 'this.thread.x';
  // integer locals decay to float in gpu.js, so indices stay inline expressions
  const row = (c: number): string => {
    const r = c === 0 ? 'this.thread.y * 4' : `this.thread.y * 4 + ${c}`;
    return o.m % 4 === 0 || c === 0 ? r : `(${r} < ${int(o.m)} ? ${r} : ${int(o.m - 1)})`;
  };
  const u = Math.min(o.unroll, o.k);
  const mainTrips = Math.floor(o.k / u) * u;
  const step = (kk: string, tag: string): string => {
    const lines = [`const b${tag} = b[${bIndex(o, z, kk, j)}];`];
    for (let c = 0; c < 4; c++) lines.push(`s${c} += a[${aIndex(o, z, row(c), kk)}] * b${tag};`);
    return lines.join('\n    ');
  };
  const body: string[] = [];
  for (let t = 0; t < u; t++) body.push(step(t === 0 ? 'kk' : `kk + ${t}`, `v${t}`));
  // the k remainder is straight-line code: a loop with a non-literal start would need a guard
  const tail: string[] = [];
  for (let kk = mainTrips; kk < o.k; kk++) tail.push(step(int(kk), `t${kk - mainTrips}`));
  const source = `function(a, b${o.bias ? ', bias' : ''}) {
  let s0 = 0.0;
  let s1 = 0.0;
  let s2 = 0.0;
  let s3 = 0.0;
  for (let kk = 0; kk < ${int(mainTrips)}; kk += ${int(u)}) {
    ${body.join('\n    ')}
  }
  ${tail.join('\n  ')}
  ${o.bias ? `const bv = bias[${j}];` : ''}
  ${[0, 1, 2, 3].map((c) => epilogue(o, `s${c}`, `r${c}`)).join('\n  ')}
  return [r0, r1, r2, r3];
}`;
  const quads = Math.ceil(o.m / 4);
  const output = o.batch > 1 ? [o.n, quads, o.batch] : [o.n, quads];
  return { source, output, components: 4, loopMaxIterations: o.k, layout: 'rowQuads' };
}

/** Reorders the row-quad kernel output [batch][ceil(m/4)][n][4] into C [batch][m][n]. */
export function unpackRowQuads(packed: Float32Array, batch: number, m: number, n: number): Float32Array {
  const quads = Math.ceil(m / 4);
  // NaN-filled so an element the loops below miss can never pass as a result
  const out = new Float32Array(batch * m * n).fill(NaN);
  for (let z = 0; z < batch; z++) {
    for (let q = 0; q < quads; q++) {
      const src = (z * quads + q) * n * 4;
      const rows = Math.min(4, m - q * 4);
      for (let c = 0; c < rows; c++) {
        const dst = (z * m + q * 4 + c) * n;
        for (let j = 0; j < n; j++) out[dst + j] = packed[src + j * 4 + c];
      }
    }
  }
  return out;
}

export type MatmulKernel = ((a: Float32Array, b: Float32Array, bias?: Float32Array) => Promise<Float32Array>) & {
  readonly source: MatmulSource;
  backend(): string | null;
  destroy(): void;
};

/**
 * Builds C = A·B (+bias, activation) on `gpu`; the result is C as a flat Float32Array.
 * `naive: true` builds the one-output-per-thread baseline instead.
 *
 * @example
 * const mm = createMatmulKernel(new GPU({ mode: 'webasm' }), { m: 5, k: 7, n: 3, transB: true });
 * const c = await mm(a, bT); // a: 5×7, bT: 3×7 → c: 5×3
 */
export function createMatmulKernel(gpu: GPU, opts: MatmulOptions & { naive?: boolean }): MatmulKernel {
  const o = checkOptions(opts);
  const src = opts.naive ? naiveMatmulSource(o) : matmulSource(o);
  const kernel = buildKernel(gpu, src);
  const sizes = {
    a: o.batch * o.m * o.k,
    b: o.batch * o.k * o.n,
  };
  const run = (async (a: Float32Array, b: Float32Array, bias?: Float32Array) => {
    if (a.length !== sizes.a) throw new RangeError(`matmul: A has ${a.length} elements, expected ${sizes.a} for ${describe(o)}`);
    if (b.length !== sizes.b) throw new RangeError(`matmul: B has ${b.length} elements, expected ${sizes.b} for ${describe(o)}`);
    if (o.bias !== (bias !== undefined)) throw new RangeError(`matmul: bias ${o.bias ? 'required' : 'not expected'} for ${describe(o)}`);
    if (bias && bias.length !== o.n) throw new RangeError(`matmul: bias has ${bias.length} elements, expected n=${o.n}`);
    const raw = bias ? await kernel(a, b, bias) : await kernel(a, b);
    return src.layout === 'rowQuads' ? unpackRowQuads(raw, o.batch, o.m, o.n) : raw;
  }) as MatmulKernel;
  Object.defineProperty(run, 'source', { value: src });
  run.backend = kernel.backend;
  run.destroy = kernel.destroy;
  return run;
}

function describe(o: Required<MatmulOptions>): string {
  return `[${o.batch}×${o.m}×${o.k}]·[${o.batch}×${o.k}×${o.n}]${o.transA ? ' transA' : ''}${o.transB ? ' transB' : ''}`;
}
