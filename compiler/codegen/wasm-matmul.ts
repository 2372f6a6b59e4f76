/**
 * The product of a packed matmul group as a WebAssembly SIMD module we assemble ourselves, run as
 * one step of gpu.js's fused webasm pipeline. It does what gpu.js's code generator cannot emit:
 * `v128.load` of four adjacent floats, `v128.load32_splat`, and a 4×8 register tile (eight f32x4
 * accumulators). Per k step: two vector loads of B, four splat loads of A, eight multiplies and
 * eight adds for 32 multiply-adds, where a gpu.js dot product per thread pays a four-load gather
 * per 4 (docs/benchmarks.md has the measurements).
 *
 * How it joins the pipeline: the step is an ordinary gpu.js kernel whose source (`productSource`)
 * computes the same product one dot per thread and carries the shape in a marker comment. On
 * webasm the runtime (runtime/wasm-product-hook.ts) swaps the module gpu.js would assemble for
 * that kernel for `productModule`, built against the offsets gpu.js laid out for the step's
 * operands and output in the pipeline's one shared memory. The module exports gpu.js's step
 * contract, `run(start, end, seed)` over output cells, so the pipeline's worker threads share the
 * product like any other step: each computes the row quads whose first cell falls in its range
 * (whole quads, so no output is written twice; the pipeline's barrier orders the writes).
 *
 * Operands: A as row quads packed by a pack kernel [batch][mPad/4][k][4], or read straight from
 * its buffer, row-major [batch][m][k] or transposed [batch][k][m]; B as column octets
 * [batch][nPad/8][k][8] or row-major [batch][k][n]. C comes out row-major [batch][mPad][nPad];
 * its padded rows and columns hold unspecified values, which no kernel reads.
 */

const uleb = (v: number): number[] => {
  const out: number[] = [];
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
};
const sleb = (v: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];

// opcodes
const I32 = 0x7f;
const V128 = 0x7b;
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v | 0)];
const add = [0x6a];
const sub = [0x6b];
const mul = [0x6c];
const divU = [0x6e];
const ltU = [0x49];
const select = [0x1b];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const memarg = (align: number, offset: number) => [...uleb(align), ...uleb(offset)];
const v128Load = (offset: number) => simd(0x00, ...memarg(4, offset));
const load32Splat = (offset: number) => simd(0x09, ...memarg(2, offset));
const v128Store = (offset: number) => simd(0x0b, ...memarg(4, offset));
/** i8x16.shuffle of a vector with itself: every lane takes lane `lane`. */
const splatLane = (lane: number) => simd(0x0d, ...Array.from({ length: 16 }, (_, i) => 4 * lane + (i & 3)));
const f32x4Add = simd(0xe4);
const f32x4Mul = simd(0xe6);
const v128Zero = simd(0x0c, ...new Array<number>(16).fill(0));

/** Pages of a shared memory's declared maximum: all of wasm32's 4 GiB (address space only). */
const SHARED_MAX_PAGES = 65536;

/** How the product reads A: packed row quads, or the buffer itself row-major or transposed. */
export type ALayout = 'packed' | 'rows' | 'transposed';
/** How the product reads B: packed column octets, or the buffer itself row-major. */
export type BLayout = 'packed' | 'rows';

/** Shape of one product: batch of [mPad × k]·[k × nPad] (mPad % 4 = 0, nPad % 8 = 0), m × n of it meaningful. */
export interface WasmMatmulShape {
  readonly batch: number;
  readonly m: number;
  readonly mPad: number;
  readonly k: number;
  readonly n: number;
  readonly nPad: number;
  readonly a: ALayout;
  readonly b: BLayout;
}

/** Byte offsets of the operands and the result in the memory the module runs over. */
export interface ProductOffsets {
  readonly a: number;
  readonly b: number;
  readonly c: number;
}

function checkShape(s: WasmMatmulShape): void {
  if (s.mPad % 4 !== 0 || s.nPad % 8 !== 0 || s.mPad < s.m || s.nPad < s.n || s.m < 1 || s.n < 1 || s.k < 1 || s.batch < 1) {
    throw new RangeError(`wasm matmul: bad shape ${JSON.stringify(s)} (mPad a multiple of 4 ≥ m, nPad of 8 ≥ n, all positive)`);
  }
}

/** Output cells of a product (its gpu.js launch is 1-D over them). */
export const productCells = (s: WasmMatmulShape): number => s.batch * s.mPad * s.nPad;

/**
 * The module: memory imported as `env.memory` (shared when the pipeline runs on worker threads),
 * export `run(start, end, seed)` computing every row quad whose first output cell lies in
 * [start, end).
 */
export function productModule(s: WasmMatmulShape, at: ProductOffsets, shared: boolean): Uint8Array<ArrayBuffer> {
  checkShape(s);
  const { m, k, n, nPad } = s;
  const quads = s.mPad / 4;
  const octets = nPad / 8;
  const quadCells = 4 * nPad;
  // params 0..2: start, end, seed; i32 locals from 3; v128 locals after them
  const [START, END, G, GEND, Z, Q, J8, KK, PB, PC, BBASE] = [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const PA = (r: number) => 12 + r; // A pointers (one per row for 'rows', else only PA(0))
  const ABASE = (r: number) => 16 + r;
  const I32_LOCALS = 17; // locals 3..19
  const acc = (r: number, h: number) => 20 + r * 2 + h; // v128 locals 20..27
  const [B0, B1, AV, AT] = [28, 29, 30, 31];
  const V128_LOCALS = 12;
  const aRows = s.a === 'rows' ? [0, 1, 2, 3] : [0];

  const loop = (counter: number, from: number[], limit: number[], body: number[]): number[] => [
    ...from, ...set(counter),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(counter), ...limit, ...ltU, 0x45, 0x0d, 1, // if !(counter < limit) break
    ...body,
    ...get(counter), ...i32c(1), ...add, ...set(counter),
    0x0c, 0, 0x0b, 0x0b, // br loop; end loop; end block
  ];
  const aValue = (r: number): number[] =>
    s.a === 'packed' ? [...get(PA(0)), ...load32Splat(4 * r)] : s.a === 'rows' ? [...get(PA(r)), ...load32Splat(0)] : [...get(AT), ...get(AT), ...splatLane(r)];
  const kStep: number[] = [
    ...get(PB), ...v128Load(0), ...set(B0),
    ...get(PB), ...v128Load(16), ...set(B1),
    ...(s.a === 'transposed' ? [...get(PA(0)), ...v128Load(0), ...set(AT)] : []),
    ...[0, 1, 2, 3].flatMap((r) => [
      ...aValue(r), ...set(AV),
      ...get(acc(r, 0)), ...get(AV), ...get(B0), ...f32x4Mul, ...f32x4Add, ...set(acc(r, 0)),
      ...get(acc(r, 1)), ...get(AV), ...get(B1), ...f32x4Mul, ...f32x4Add, ...set(acc(r, 1)),
    ]),
    ...aRows.flatMap((r) => [...get(PA(r)), ...i32c(s.a === 'packed' ? 16 : s.a === 'rows' ? 4 : 4 * m), ...add, ...set(PA(r))]),
    ...get(PB), ...i32c(s.b === 'packed' ? 32 : 4 * n), ...add, ...set(PB),
  ];
  const octet: number[] = [
    ...[0, 1, 2, 3].flatMap((r) => [...v128Zero, ...set(acc(r, 0)), ...v128Zero, ...set(acc(r, 1))]),
    ...aRows.flatMap((r) => [...get(ABASE(r)), ...set(PA(r))]),
    // packed: the octet's panel of this batch; rows: columns 8·j8.. of row 0
    ...get(BBASE), ...get(J8), ...i32c(s.b === 'packed' ? 32 * k : 32), ...mul, ...add, ...set(PB),
    ...loop(KK, i32c(0), i32c(k), kStep),
    // C[quad row r][8·j8 ..] ← acc(r, 0), acc(r, 1)
    ...get(PC), ...get(J8), ...i32c(32), ...mul, ...add, ...set(PB),
    ...[0, 1, 2, 3].flatMap((r) => [
      ...get(PB), ...get(acc(r, 0)), ...v128Store(4 * r * nPad),
      ...get(PB), ...get(acc(r, 1)), ...v128Store(4 * r * nPad + 16),
    ]),
  ];
  const rowOf = (r: number): number[] => {
    // min(4q + r, m - 1): rows past m (padding) read the last row, so no read leaves A
    const row = [...get(Q), ...i32c(4), ...mul, ...i32c(r), ...add];
    return [...row, ...i32c(m - 1), ...row, ...i32c(m), ...ltU, ...select];
  };
  const aBase: number[] =
    s.a === 'packed'
      ? [...i32c(at.a), ...get(G), ...i32c(16 * k), ...mul, ...add, ...set(ABASE(0))]
      : s.a === 'rows'
        ? [0, 1, 2, 3].flatMap((r) => [...i32c(at.a), ...get(Z), ...i32c(m), ...mul, ...rowOf(r), ...add, ...i32c(4 * k), ...mul, ...add, ...set(ABASE(r))])
        : [...i32c(at.a), ...get(Z), ...i32c(4 * k * m), ...mul, ...add, ...get(Q), ...i32c(16), ...mul, ...add, ...set(ABASE(0))];
  const quad: number[] = [
    ...get(G), ...i32c(quads), ...divU, ...set(Z),
    ...get(G), ...get(Z), ...i32c(quads), ...mul, ...sub, ...set(Q),
    ...aBase,
    ...i32c(at.b), ...get(Z), ...i32c(s.b === 'packed' ? 32 * octets * k : 4 * k * n), ...mul, ...add, ...set(BBASE),
    ...i32c(at.c), ...get(G), ...i32c(4 * quadCells), ...mul, ...add, ...set(PC),
    ...loop(J8, i32c(0), i32c(octets), octet),
  ];
  const firstQuad = (cell: number) => [...get(cell), ...i32c(quadCells - 1), ...add, ...i32c(quadCells), ...divU];
  const body = [...firstQuad(END), ...set(GEND), ...loop(G, firstQuad(START), get(GEND), quad), 0x0b];
  const locals = vec([[...uleb(I32_LOCALS), I32], [...uleb(V128_LOCALS), V128]]);
  const func = [...locals, ...body];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32]]), 0x00]])),
    // memory limits: flags 0 (min) or 3 (min, max, shared), min 1 page
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, ...(shared ? [0x03, 0x01, ...uleb(SHARED_MAX_PAGES)] : [0x00, 0x01])]])),
    ...section(3, vec([[0x00]])),
    ...section(7, vec([[...name('run'), 0x00, 0x00]])),
    ...section(10, vec([[...uleb(func.length), ...func]])),
  ]);
}

/** Whether this engine validates WebAssembly SIMD (the product's instructions). */
export function wasmSimdSupported(): boolean {
  try {
    const s: WasmMatmulShape = { batch: 1, m: 4, mPad: 4, k: 1, n: 8, nPad: 8, a: 'transposed', b: 'rows' };
    return WebAssembly.validate(productModule(s, { a: 0, b: 0, c: 0 }, false));
  } catch {
    return false;
  }
}

const MARKER = '/* wasm-product ';

/**
 * The product as a gpu.js kernel over `(a, b)`: one dot product per output cell, the same values
 * as the module (padded cells 0 here), and the shape in a marker comment that the runtime's hook
 * reads to assemble `productModule` in its place. Launched 1-D over `productCells(shape)`.
 */
export function productSource(s: WasmMatmulShape): string {
  checkShape(s);
  const { m, k, n, mPad, nPad } = s;
  const aAt =
    s.a === 'packed' ? `((z * ${mPad / 4} + Math.floor(i / 4)) * ${k} + kk) * 4 + i % 4` : s.a === 'rows' ? `(z * ${m} + i) * ${k} + kk` : `(z * ${k} + kk) * ${m} + i`;
  const bAt = s.b === 'packed' ? `((z * ${nPad / 8} + Math.floor(j / 8)) * ${k} + kk) * 8 + j % 8` : `(z * ${k} + kk) * ${n} + j`;
  return [
    'function (a, b) {',
    `  ${MARKER}${JSON.stringify(s)} */`,
    `  const j = this.thread.x % ${nPad};`,
    `  const i = Math.floor(this.thread.x / ${nPad}) % ${mPad};`,
    `  const z = Math.floor(this.thread.x / ${mPad * nPad});`,
    `  if (i >= ${m} || j >= ${n}) return 0;`,
    '  let sum = 0;',
    `  for (let kk = 0; kk < ${k}; kk++) {`,
    `    sum += a[${aAt}] * b[${bAt}];`,
    '  }',
    '  return sum;',
    '}',
  ].join('\n');
}

/** The shape a product kernel's source carries, or undefined for any other kernel source. */
export function productShapeOf(source: string): WasmMatmulShape | undefined {
  const at = source.indexOf(MARKER);
  if (at < 0) return undefined;
  const end = source.indexOf(' */', at);
  return JSON.parse(source.slice(at + MARKER.length, end)) as WasmMatmulShape;
}
