/**
 * The product of a packed matmul group as a WebAssembly SIMD module we assemble ourselves, with
 * what gpu.js's webasm code generator cannot emit: `v128.load` of four adjacent floats and
 * `v128.load32_splat`, and a 4×8 register tile (eight f32x4 accumulators). Per k step: two vector
 * loads of B, four splat loads of A, eight multiplies and eight adds for 32 multiply-adds, where
 * the gpu.js product (`Array(4)`, packed-matmul.ts) does a four-load gather plus four scalar
 * loads and splats per 16 (docs/benchmarks.md has the measurements).
 *
 * Operands are the pack kernels' outputs: A as row quads [batch][m/4][k][4], B as column octets
 * [batch][n/8][k][8]; C comes out row-major [batch][mPad][nPad]. It runs between the gpu.js
 * pipeline segments (runtime/compiled-runner.ts), on the calling thread and, for products large
 * enough to pay the hand-off, on helper threads too (wasm-matmul-threads.ts).
 */
import { matmulThreading, MatmulHelpers, workerThreads, type MatmulThreading, type ProductFn } from './wasm-matmul-threads.ts';

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
    // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator,UnaryOperator: i32c is only given 0..32, one byte each, which the first test already ends
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
const i32c = (v: number) => [0x41, ...sleb(v)];
const add = [0x6a];
const mul = [0x6c];
const ltU = [0x49];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const memarg = (align: number, offset: number) => [...uleb(align), ...uleb(offset)];
const v128Load = (offset: number) => simd(0x00, ...memarg(4, offset));
const load32Splat = (offset: number) => simd(0x09, ...memarg(2, offset));
const v128Store = (offset: number) => simd(0x0b, ...memarg(4, offset));
const f32x4Add = simd(0xe4);
const f32x4Mul = simd(0xe6);
const v128Zero = simd(0x0c, ...new Array<number>(16).fill(0));

/** Pages of a shared memory's declared maximum: all of wasm32's 4 GiB (address space only). */
const SHARED_MAX_PAGES = 65536;

/** The module bytes: export `mm(a, b, c, m, k, n)` over an imported memory (shared for helper threads). */
export function wasmMatmulModule(shared = false): Uint8Array<ArrayBuffer> {
  // params 0..5: a, b, c, m, k, n; i32 locals 6..10: i4 (row quad), j8 (col octet), kk, pa, pb
  const [A, B, C, M, K, N, I4, J8, KK, PA, PB] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const acc = (r: number, h: number) => 11 + r * 2 + h; // v128 locals 11..18
  const [B0, B1, AV] = [19, 20, 21];
  const loop = (body: number[], counter: number, limit: number[]): number[] => [
    ...i32c(0), ...set(counter),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(counter), ...limit, ...ltU, 0x45, 0x0d, 1, // if !(counter < limit) break
    ...body,
    ...get(counter), ...i32c(1), ...add, ...set(counter),
    0x0c, 0, 0x0b, 0x0b, // br loop; end loop; end block
  ];
  const kStep: number[] = [
    ...get(PB), ...v128Load(0), ...set(B0),
    ...get(PB), ...v128Load(16), ...set(B1),
    ...[0, 1, 2, 3].flatMap((r) => [
      ...get(PA), ...load32Splat(4 * r), ...set(AV),
      ...get(acc(r, 0)), ...get(AV), ...get(B0), ...f32x4Mul, ...f32x4Add, ...set(acc(r, 0)),
      ...get(acc(r, 1)), ...get(AV), ...get(B1), ...f32x4Mul, ...f32x4Add, ...set(acc(r, 1)),
    ]),
    ...get(PA), ...i32c(16), ...add, ...set(PA),
    ...get(PB), ...i32c(32), ...add, ...set(PB),
  ];
  const tile: number[] = [
    ...[0, 1, 2, 3].flatMap((r) => [...v128Zero, ...set(acc(r, 0)), ...v128Zero, ...set(acc(r, 1))]),
    // pa = a + i4·k·16, pb = b + j8·k·32
    ...get(A), ...get(I4), ...get(K), ...mul, ...i32c(16), ...mul, ...add, ...set(PA),
    ...get(B), ...get(J8), ...get(K), ...mul, ...i32c(32), ...mul, ...add, ...set(PB),
    ...loop(kStep, KK, get(K)),
    // C[(4·i4 + r)·n + 8·j8] ← acc(r, 0), acc(r, 1)
    ...[0, 1, 2, 3].flatMap((r) => [
      ...get(C), ...get(I4), ...i32c(4), ...mul, ...i32c(r), ...add, ...get(N), ...mul, ...get(J8), ...i32c(8), ...mul, ...add, ...i32c(4), ...mul, ...add,
      ...set(PA),
      ...get(PA), ...get(acc(r, 0)), ...v128Store(0),
      ...get(PA), ...get(acc(r, 1)), ...v128Store(16),
    ]),
  ];
  const quadsBound = [...get(M), ...i32c(2), 0x76]; // m >> 2 (i32.shr_u)
  const octetsBound = [...get(N), ...i32c(3), 0x76]; // n >> 3
  const body = [...loop(loop(tile, J8, octetsBound), I4, quadsBound), 0x0b];
  const locals = vec([[...uleb(5), I32], [...uleb(11), V128]]);
  const func = [...locals, ...body];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), 0x00]])),
    // memory limits: flags 0 (min) or 3 (min, max, shared), min 1 page
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, ...(shared ? [0x03, 0x01, ...uleb(SHARED_MAX_PAGES)] : [0x00, 0x01])]])),
    ...section(3, vec([[0x00]])),
    ...section(7, vec([[...name('mm'), 0x00, 0x00]])),
    ...section(10, vec([[...uleb(func.length), ...func]])),
  ]);
}

/** Shape of one native product: batch of [mPad × k]·[k × nPad] (mPad % 4 = 0, nPad % 8 = 0). */
export interface WasmMatmulShape {
  readonly batch: number;
  readonly m: number;
  readonly mPad: number;
  readonly k: number;
  readonly n: number;
  readonly nPad: number;
  /**
   * Whether A (B) arrives packed by a pack kernel, or as the plain row-major buffer [batch][m][k]
   * ([batch][k][n]) that the product packs itself while copying it in: an operand that already is
   * a buffer needs no pack kernel, no pipeline segment and no second copy.
   */
  readonly packedA: boolean;
  readonly packedB: boolean;
  /** A plain A (B) arrives with its last two axes swapped: [batch][k][m] ([batch][n][k]), e.g. a weight read as Wᵀ. */
  readonly transposedA?: boolean;
  readonly transposedB?: boolean;
}

/** C (row-major [batch][mPad][nPad]) from packed A and B; a fresh array, the arena is reused. */
export type WasmMatmul = (a: Float32Array, b: Float32Array) => Float32Array;

export function wasmSimdSupported(): boolean {
  try {
    return WebAssembly.validate(wasmMatmulModule());
  } catch {
    return false;
  }
}

const PAGE_BYTES = 65536;

/**
 * Products of fewer multiply-adds than this run on the calling thread alone: below, waking a
 * helper and handing the chunks over costs more than it saves (docs/benchmarks.md, "wasm product
 * threads").
 */
export const THREADED_MIN_MACS = 1 << 22;

/**
 * Compiled once per process and variant: arenas (one per runner) and their helpers share the code,
 * and V8 tiers it up from its baseline compiler once, not once per arena.
 */
const compiledModules = new Map<boolean, WebAssembly.Module>();

function compiledModule(shared: boolean): WebAssembly.Module {
  let module = compiledModules.get(shared);
  // Stryker disable next-line ConditionalExpression: compiling again gives the same module (the cache saves time only)
  if (module === undefined) {
    module = new WebAssembly.Module(wasmMatmulModule(shared));
    compiledModules.set(shared, module);
  }
  return module;
}

export interface WasmMatmulArenaOptions {
  /** At most this many threads (calling thread included); default: what matmulThreading() allows. */
  readonly threads?: number;
  /** A helper thread leaves after this long without work (default HELPER_IDLE_MS). */
  readonly helperIdleMs?: number;
}

/**
 * One memory and one instance of the product module, shared by every product made from it. A
 * product's operands and result live there only while it runs (it is synchronous: helper threads
 * work on it while the calling thread waits), so products of one runner reuse the same bytes: the
 * arena is as large as the largest product, not as the sum of them all (a 4-layer L=4096 training
 * graph has 230 products).
 */
export class WasmMatmulArena {
  private readonly memory: WebAssembly.Memory;
  private readonly mm: ProductFn;
  private view: Float32Array;
  private readonly helpers?: MatmulHelpers;
  /** Threads products run on, and why only one when so. */
  readonly threading: MatmulThreading;

  constructor(options: WasmMatmulArenaOptions = {}) {
    const available = matmulThreading();
    const threads = Math.min(available.threads, options.threads ?? available.threads);
    this.threading =
      threads === available.threads ? available : { threads, reason: threads === 1 && available.threads > 1 ? 'one thread requested' : `${threads} threads requested` };
    const shared = this.threading.threads > 1;
    this.memory = shared ? new WebAssembly.Memory({ initial: 1, maximum: SHARED_MAX_PAGES, shared: true }) : new WebAssembly.Memory({ initial: 1 });
    const module = compiledModule(shared);
    this.mm = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports.mm as ProductFn;
    if (shared) this.helpers = new MatmulHelpers(workerThreads(), module, this.memory, this.mm, this.threading.threads - 1, options.helperIdleMs);
    this.view = new Float32Array(this.memory.buffer);
  }

  /** Bytes the arena holds now. */
  get bytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Helper threads alive now (they leave when idle, and start again with the next large product). */
  get helperThreads(): number {
    return this.helpers?.alive ?? 0;
  }

  /** Helper threads started so far. */
  get helperStarts(): number {
    return this.helpers?.starts ?? 0;
  }

  /** Chunks of threaded products run so far by the calling thread and by helpers. */
  get chunks(): { caller: number; helpers: number } {
    return this.helpers?.chunks ?? { caller: 0, helpers: 0 };
  }

  /** A view of at least `floats` floats (growing the memory re-creates the view). */
  reserve(floats: number): Float32Array {
    const missing = Math.ceil((floats * 4 - this.memory.buffer.byteLength) / PAGE_BYTES);
    if (missing > 0) {
      this.memory.grow(missing);
      this.view = new Float32Array(this.memory.buffer);
    }
    return this.view;
  }

  /**
   * `batch` products [m × k]·[k × n] at float offsets a, b, c of the arena, batches contiguous
   * (A: m·k floats apart, B: k·n, C: m·n); m a multiple of 4, n of 8.
   */
  multiply(a: number, b: number, c: number, m: number, k: number, n: number, batch = 1): void {
    if (this.helpers !== undefined && !this.helpers.closed && batch * m * k * n >= THREADED_MIN_MACS) {
      this.helpers.run({ a: 4 * a, b: 4 * b, c: 4 * c, bStride: 4 * k * n, batch, m, k, n });
      return;
    }
    for (let z = 0; z < batch; z++) this.mm(4 * (a + z * m * k), 4 * (b + z * k * n), 4 * (c + z * m * n), m, k, n);
  }

  /** Helper threads leave now; later products run on the calling thread. */
  close(): void {
    this.helpers?.close();
  }
}

let sharedArena: WasmMatmulArena | undefined;

/** A product over `arena` (default: one arena for all such products, so they share its helper threads). */
export function createWasmMatmul(shape: WasmMatmulShape, arena: WasmMatmulArena = (sharedArena ??= new WasmMatmulArena())): WasmMatmul {
  const { batch, m, mPad, k, n, nPad } = shape;
  if (mPad % 4 !== 0 || nPad % 8 !== 0) throw new RangeError(`wasm matmul: mPad must be a multiple of 4 and nPad of 8, got ${mPad} and ${nPad}`);
  const [aLen, bLen, cLen] = [mPad * k, k * nPad, mPad * nPad];
  const [aOff, bOff, cOff] = [0, batch * aLen, batch * (aLen + bLen)];
  return (packedA, packedB) => {
    const [wantA, wantB] = [batch * (shape.packedA ? aLen : m * k), batch * (shape.packedB ? bLen : k * n)];
    if (packedA.length !== wantA || packedB.length !== wantB) {
      throw new RangeError(`wasm matmul: operands of ${packedA.length} and ${packedB.length} floats, expected ${wantA} and ${wantB}`);
    }
    const f32 = arena.reserve(cOff + batch * cLen);
    // Plain operands are packed while copied in, each loop reading its source contiguously. Row
    // quads of A: (r, kk) → ((r >> 2)·k + kk)·4 + (r & 3); column octets of B: (kk, j) → ((j >> 3)·k
    // + kk)·8 + (j & 7). Padded rows and columns are zeroed (the arena holds an earlier product's bytes).
    if (shape.packedA) f32.set(packedA, aOff);
    else {
      // Stryker disable next-line ConditionalExpression,EqualityOperator: zeroing when nothing is padded is overwritten by the copy below
      if (m < mPad) f32.fill(0, aOff, bOff);
      // Stryker disable next-line EqualityOperator: a batch past the last lands in the next region, written after it, or past the result
      for (let z = 0; z < batch; z++) {
        const dz = aOff + z * aLen;
        if (shape.transposedA === true) {
          for (let kk = 0; kk < k; kk++) {
            const src = (z * k + kk) * m;
            for (let r = 0; r < m; r++) f32[dz + (r >> 2) * k * 4 + kk * 4 + (r & 3)] = packedA[src + r]!;
          }
        } else {
          for (let r = 0; r < m; r++) {
            const src = (z * m + r) * k;
            const dst = dz + (r >> 2) * k * 4 + (r & 3);
            for (let kk = 0; kk < k; kk++) f32[dst + kk * 4] = packedA[src + kk]!;
          }
        }
      }
    }
    if (shape.packedB) f32.set(packedB, bOff);
    else {
      // Stryker disable next-line ConditionalExpression,EqualityOperator: zeroing when nothing is padded is overwritten by the copy below
      if (n < nPad) f32.fill(0, bOff, cOff);
      // Stryker disable next-line EqualityOperator: a batch past the last lands in the next region, written after it, or past the result
      for (let z = 0; z < batch; z++) {
        const dz = bOff + z * bLen;
        if (shape.transposedB === true) {
          for (let j = 0; j < n; j++) {
            const src = (z * n + j) * k;
            const dst = dz + (j >> 3) * k * 8 + (j & 7);
            for (let kk = 0; kk < k; kk++) f32[dst + kk * 8] = packedB[src + kk]!;
          }
        } else {
          for (let kk = 0; kk < k; kk++) {
            const src = (z * k + kk) * n;
            const dst = dz + kk * 8;
            for (let j = 0; j < n; j++) f32[dst + (j >> 3) * k * 8 + (j & 7)] = packedB[src + j]!;
          }
        }
      }
    }
    arena.multiply(aOff, bOff, cOff, mPad, k, nPad, batch);
    return f32.slice(cOff, cOff + batch * cLen);
  };
}
