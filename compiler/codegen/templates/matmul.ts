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
 * Layouts of the caller's operands (all flat, row-major, batch outermost):
 *   A: [batch, m, k]   or with transA [batch, k, m]
 *   B: [batch, k, n]   or with transB [batch, n, k]
 *   bias: [n] (broadcast over batch and rows);  C: [batch, m, n]
 * `createMatmulKernel` packs A and B into 4-wide panels (`packPanels`, O(mk + kn) host passes)
 * so the kernel streams both with unit stride, launches over L2-sized column tiles, and reorders
 * the tiled output into C (`unpackTiles`, one O(mn) pass); all of it is cheap next to O(mnk).
 * Measured on the Dense shapes, the kernel is instruction-bound (gathers, splats, index
 * arithmetic), not memory-bound: tiling alone changed nothing, cheaper indexing did.
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
  /** Bytes of packed B per column tile of the fast kernel (default 256 KiB; small values force ragged multi-tile launches in tests). */
  tileBytes?: number;
  /** Force the fast kernel's inline integer indices (automatic for operands of 2^24+ elements; for tests). */
  inlineIndices?: boolean;
  /** k-loop unroll factor of the fast kernel (default 16). */
  unroll?: number;
}

/** The template plus how its output maps onto C. */
export interface MatmulSource extends KernelSource {
  /** `tiled`: kernel output is [batch·tiles][quads][tileCols][4] over packed operands; `rowMajor`: it already is C. */
  layout: 'tiled' | 'rowMajor';
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
    unroll: o.unroll ?? 16,
    tileBytes: o.tileBytes ?? 256 * 1024,
    inlineIndices: o.inlineIndices ?? false,
  };
  for (const key of ['batch', 'm', 'k', 'n', 'unroll', 'tileBytes'] as const) {
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

/** Column-tile geometry of the fast kernel (see `matmulSource`). */
export interface MatmulTiling {
  /** Columns per tile (a multiple of 4): the x extent of the launch. */
  tileCols: number;
  /** Column tiles per batch entry; columns past n (padding) are zero and dropped. */
  tiles: number;
  /** Row quads per batch entry, ceil(m/4). */
  quads: number;
}

/**
 * Picks the column tile: one tile of packed B is tileCols·k·4 bytes, and all row quads pass over
 * it before the next, so it should sit in the 2 MiB per-core L2 with room for A's quad panels.
 */
export function matmulTiling(o: Pick<MatmulOptions, 'm' | 'k' | 'n' | 'tileBytes'>): MatmulTiling {
  const budget = o.tileBytes ?? 256 * 1024;
  const colQuads = Math.ceil(o.n / 4);
  const tiles = Math.max(1, Math.min(colQuads, Math.ceil((colQuads * 4 * o.k * 4) / budget)));
  const tileCols = Math.ceil(colQuads / tiles) * 4;
  return { tileCols, tiles: Math.ceil((colQuads * 4) / tileCols), quads: Math.ceil(o.m / 4) };
}

/**
 * Fast kernel over PACKED operands (see `packPanels`): A as [batch][quads][k][4] (four rows
 * interleaved) and B as [batch][tiles·tileCols/4][k][4] (four columns interleaved, zero-padded).
 * Thread (x, y, z) with z = batch·tiles + tile computes C[batch][4y + c][tile·tileCols + x] for
 * c = 0..3 and returns them as an `Array(4)`.
 *
 * Why this shape: per k step a SIMD quad does one gather of B (its four lanes read the 16 adjacent
 * bytes of one panel, consecutive k steps the next 16) and four uniform loads of A (the same 16
 * bytes for the whole quad), i.e. every operand is read as a forward stream, with no 2^k strides
 * aliasing in L1. The launch [tileCols, quads, batch·tiles] runs x fastest, so all row quads pass
 * over one B tile (sized for L2 by `matmulTiling`) before the next tile is touched.
 * Arguments: (a, b) or (a, b, bias) with bias padded to batch·tiles·tileCols.
 */
export function matmulSource(opts: MatmulOptions): MatmulSource & MatmulTiling {
  const o = checkOptions(opts);
  const t = matmulTiling(o);
  const k4 = 4 * o.k;
  // panel of this lane in packed B: tile start + (x / 4); its lane offset x % 4 (i32 bit ops)
  const bBase = `(this.thread.z * ${int(t.tileCols / 4)} + (this.thread.x >> 2)) * ${int(k4)} + (this.thread.x & 3)`;
  const batchOf = o.batch === 1 ? '0' : t.tiles === 1 ? 'this.thread.z' : `Math.floor(this.thread.z / ${float(t.tiles)})`;
  const aBase = o.batch === 1 ? `this.thread.y * ${int(k4)}` : `(${batchOf} * ${int(t.quads)} + this.thread.y) * ${int(k4)}`;
  const u = Math.min(o.unroll, o.k);
  const mainTrips = Math.floor(o.k / u) * u;
  // Locals are f32 in gpu.js (integer initialisers decay), but a float base plus an offset then
  // one truncation is cheaper than re-deriving the integer index from thread ids at every read
  // (measured ~1.25× on the Dense shapes). f32 holds integers exactly only below 2^24, so larger
  // packed operands keep the inline integer form.
  const hoist = !o.inlineIndices && o.batch * t.quads * k4 < 2 ** 24 && o.batch * t.tiles * t.tileCols * o.k < 2 ** 24;
  const step = (aAt: (c: number) => string, bAt: string, tag: string): string => {
    const lines = [`const b${tag} = b[${bAt}];`];
    for (let c = 0; c < 4; c++) lines.push(`s${c} += a[${aAt(c)}] * b${tag};`);
    return lines.join('\n    ');
  };
  const body: string[] = [];
  if (hoist) body.push('const ak = aq + kk * 4;', 'const bk = bq + kk * 4;');
  for (let s = 0; s < u; s++) {
    if (hoist) body.push(step((c) => `ak + ${4 * s + c}`, s === 0 ? 'bk' : `bk + ${4 * s}`, `v${s}`));
    else {
      const kk = s === 0 ? 'kk' : `(kk + ${s})`;
      body.push(step((c) => `${aBase} + ${kk} * 4 + ${c}`, `${bBase} + ${kk} * 4`, `v${s}`));
    }
  }
  // the k remainder is straight-line code: a loop with a non-literal start would need a guard
  const tail: string[] = [];
  for (let kk = mainTrips; kk < o.k; kk++) {
    const tag = `t${kk - mainTrips}`;
    if (hoist) tail.push(step((c) => `aq + ${4 * kk + c}`, `bq + ${4 * kk}`, tag));
    else tail.push(step((c) => `${aBase} + ${4 * kk + c}`, `${bBase} + ${4 * kk}`, tag));
  }
  const source = `function(a, b${o.bias ? ', bias' : ''}) {
  let s0 = 0.0;
  let s1 = 0.0;
  let s2 = 0.0;
  let s3 = 0.0;
  ${hoist ? `const aq = ${aBase};\n  const bq = ${bBase};` : ''}
  for (let kk = 0; kk < ${int(mainTrips)}; kk += ${int(u)}) {
    ${body.join('\n    ')}
  }
  ${tail.join('\n  ')}
  ${o.bias ? `const bv = bias[this.thread.z * ${int(t.tileCols)} + this.thread.x];` : ''}
  ${[0, 1, 2, 3].map((c) => epilogue(o, `s${c}`, `r${c}`)).join('\n  ')}
  return [r0, r1, r2, r3];
}`;
  return {
    source,
    output: [t.tileCols, t.quads, o.batch * t.tiles],
    components: 4,
    loopMaxIterations: o.k,
    layout: 'tiled',
    ...t,
  };
}

/**
 * Packs a batch of `rows`×k matrices into panels [batch][padRows/4][k][4] (padRows ≥ rows, a multiple of 4):
 * element (r, kk) goes to ((r >> 2)·k + kk)·4 + (r & 3); rows past `rows` are zero. The source
 * is row-major [rows][k] or, with `transposed`, [k][rows]; loops follow the source so its reads
 * are sequential.
 */
export function packPanels(src: Float32Array, batch: number, rows: number, k: number, transposed: boolean, padRows: number): Float32Array {
  const out = new Float32Array(batch * padRows * k);
  for (let z = 0; z < batch; z++) {
    const s0 = z * rows * k;
    const d0 = z * padRows * k;
    if (transposed) {
      for (let kk = 0; kk < k; kk++) {
        const s = s0 + kk * rows;
        for (let r = 0; r < rows; r++) out[d0 + ((r >> 2) * k + kk) * 4 + (r & 3)] = src[s + r]!;
      }
    } else {
      for (let r = 0; r < rows; r++) {
        const s = s0 + r * k;
        const d = d0 + (r >> 2) * k * 4 + (r & 3);
        for (let kk = 0; kk < k; kk++) out[d + kk * 4] = src[s + kk]!;
      }
    }
  }
  return out;
}

/**
 * Reorders the tiled kernel output [batch·tiles][quads][tileCols][4] into C [batch][m][n],
 * dropping padded rows and columns.
 */
export function unpackTiles(packed: Float32Array, batch: number, m: number, n: number, t: MatmulTiling): Float32Array {
  // NaN-filled so an element the loops below miss can never pass as a result
  const out = new Float32Array(batch * m * n).fill(NaN);
  const tw = t.tileCols;
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < m; i++) {
      const q = i >> 2;
      const c = i & 3;
      const dst = (z * m + i) * n;
      for (let tile = 0; tile < t.tiles; tile++) {
        const j0 = tile * tw;
        const src = (((z * t.tiles + tile) * t.quads + q) * tw) * 4 + c;
        const cols = Math.min(tw, n - j0);
        for (let x = 0; x < cols; x++) out[dst + j0 + x] = packed[src + x * 4]!;
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
    if (src.layout === 'rowMajor') return bias ? kernel(a, b, bias) : kernel(a, b);
    const t = src as MatmulSource & MatmulTiling;
    const pa = packPanels(a, o.batch, o.m, o.k, o.transA, t.quads * 4);
    // B viewed as n rows of length k: row-major [k][n] is the transposed case
    const pb = packPanels(b, o.batch, o.n, o.k, !o.transB, t.tiles * t.tileCols);
    let raw: Float32Array;
    if (bias) {
      // one copy per (batch, tile) so the kernel indexes it with z·tileCols + x
      const pbias = new Float32Array(o.batch * t.tiles * t.tileCols);
      for (let z = 0; z < o.batch; z++) pbias.set(bias, z * t.tiles * t.tileCols);
      raw = await kernel(pa, pb, pbias);
    } else {
      raw = await kernel(pa, pb);
    }
    return unpackTiles(raw, o.batch, o.m, o.n, t);
  }) as MatmulKernel;
  Object.defineProperty(run, 'source', { value: src });
  run.backend = kernel.backend;
  run.destroy = kernel.destroy;
  return run;
}

function describe(o: Required<MatmulOptions>): string {
  return `[${o.batch}×${o.m}×${o.k}]·[${o.batch}×${o.k}×${o.n}]${o.transA ? ' transA' : ''}${o.transB ? ' transB' : ''}`;
}
