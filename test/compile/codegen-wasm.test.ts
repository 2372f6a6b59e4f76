/**
 * The wasm SIMD product (compiler/codegen/wasm-matmul.ts) and its helper-thread bookkeeping
 * (wasm-matmul-threads.ts), without gpu.js and without real helper threads: products at ragged
 * shapes against a float64 reference, the arena's growth and padding, the error messages, and the
 * claim protocol driven by stand-in workers (a fake `worker_threads` whose helpers boot, leave,
 * claim or fail as each test says) and a recording product function.
 */
import { Worker as RealWorker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { createWasmMatmul, THREADED_MIN_MACS, WasmMatmulArena, wasmMatmulModule, wasmSimdSupported, type WasmMatmulShape } from '../../compiler/codegen/wasm-matmul.ts';
import { HELPER_IDLE_MS, MatmulHelpers, matmulThreading, workerThreads, type ProductFn, type ThreadedJob } from '../../compiler/codegen/wasm-matmul-threads.ts';
import { thrown } from '../support/thrown.ts';
import { values } from './support.ts';
import { shapeOf } from '../support/wasm-shape.ts';

type WorkerThreads = typeof import('node:worker_threads');


/** Row-major operands [batch][m][k] and [batch][k][n], rounded to float32. */
const plainOperands = (s: WasmMatmulShape, seed: number) =>
  [Float32Array.from(values(s.batch * s.m * s.k, seed)), Float32Array.from(values(s.batch * s.k * s.n, seed + 1))] as const;

/** A as row quads [batch][mPad/4][k][4], B as column octets [batch][nPad/8][k][8], padding 0. */
function pack(s: WasmMatmulShape, a: Float32Array, b: Float32Array): [Float32Array, Float32Array] {
  const pa = new Float32Array(s.batch * s.mPad * s.k);
  const pb = new Float32Array(s.batch * s.k * s.nPad);
  for (let z = 0; z < s.batch; z++) {
    for (let r = 0; r < s.m; r++) for (let kk = 0; kk < s.k; kk++) pa[z * s.mPad * s.k + ((r >> 2) * s.k + kk) * 4 + (r & 3)] = a[(z * s.m + r) * s.k + kk]!;
    for (let kk = 0; kk < s.k; kk++) for (let j = 0; j < s.n; j++) pb[z * s.k * s.nPad + ((j >> 3) * s.k + kk) * 8 + (j & 7)] = b[(z * s.k + kk) * s.n + j]!;
  }
  return [pa, pb];
}

/** [batch][rows][cols] → [batch][cols][rows]. */
function swapLast(x: Float32Array, batch: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let z = 0; z < batch; z++) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[(z * cols + c) * rows + r] = x[(z * rows + r) * cols + c]!;
  return out;
}

/** Checks C ([batch][mPad][nPad]) against the float64 product: float32 rounding inside, exact zeros in the padding. */
function expectProduct(c: Float32Array, s: WasmMatmulShape, a: Float32Array, b: Float32Array): void {
  expect(c.length).toBe(s.batch * s.mPad * s.nPad);
  for (let z = 0; z < s.batch; z++)
    for (let i = 0; i < s.mPad; i++)
      for (let j = 0; j < s.nPad; j++) {
        const got = c[(z * s.mPad + i) * s.nPad + j]!;
        if (i >= s.m || j >= s.n) {
          if (got !== 0) expect.fail(`padding C[${z}][${i}][${j}] = ${got}`);
          continue;
        }
        let want = 0;
        let scale = 0;
        for (let kk = 0; kk < s.k; kk++) {
          const t = a[(z * s.m + i) * s.k + kk]! * b[(z * s.k + kk) * s.n + j]!;
          want += t;
          scale += Math.abs(t);
        }
        if (!(Math.abs(got - want) <= (s.k + 1) * 2 ** -23 * scale)) expect.fail(`C[${z}][${i}][${j}] = ${got}, want ${want}`);
      }
}

/** Calls of the product function, [a, b, c, m, k, n] in bytes and sizes. */
function recordingProduct(): { mm: ProductFn; calls: number[][] } {
  const calls: number[][] = [];
  return { mm: (...args) => void calls.push(args), calls };
}

/** What a launched stand-in worker was given, and what became of it. */
interface Launch {
  readonly source: string;
  readonly options: { eval?: boolean; execArgv?: string[]; workerData: { control: SharedArrayBuffer; at: Record<string, number>; idleMs: number; memory: WebAssembly.Memory } };
  /** The claim word when the helper was launched. */
  readonly word: number;
  unrefs: number;
  fail?: (e: Error) => void;
}

/** Runs `source` (CommonJS, reading `d` = workerData and `ctl` over d.control) on a real, unref'd thread. */
function onRealThread(source: string, workerData: Record<string, unknown>): void {
  const prelude = "const { workerData: d } = require('node:worker_threads'); const ctl = new Int32Array(d.control);";
  new RealWorker(`${prelude}\n${source}`, { eval: true, workerData }).unref();
}

/**
 * Leaves as a helper does (counted in the control block's `left` slot, waking a waiting caller), on
 * a real thread, once the job's chunks have stopped finishing for `stallMs` with some unfinished:
 * a caller waiting for chunks nobody runs (a broken claim loop) then stops with an error instead of
 * waiting forever. Gives up after `lifeMs` or close(), leaving nothing.
 */
function leaveWhenStalled(ctl: Int32Array, at: Record<string, number>, stallMs = 2000, lifeMs = 60_000): void {
  onRealThread(
    `
    const end = Date.now() + d.lifeMs;
    while (Date.now() < end && Atomics.load(ctl, d.at.quit) === 0) {
      const done = Atomics.load(ctl, d.at.done);
      const word = Atomics.load(ctl, d.at.word);
      if (done >= Atomics.load(ctl, d.at.chunks)) {
        Atomics.wait(ctl, d.at.done, done, 200);
        continue;
      }
      if (Atomics.wait(ctl, d.at.done, done, d.stallMs) === 'timed-out' && Atomics.load(ctl, d.at.done) === done && Atomics.load(ctl, d.at.word) === word) {
        Atomics.add(ctl, d.at.left, 1);
        Atomics.notify(ctl, d.at.done);
        break;
      }
    }
  `,
    { control: ctl.buffer, at, stallMs, lifeMs },
  );
}

/**
 * A stand-in for node:worker_threads: each Worker calls `helper` with the control block as a real
 * helper would see it at boot (same slots, through workerData.at), synchronously on this thread,
 * and leaves if a job stalls (`leaveWhenStalled`) unless `helper` takes care of leaving.
 */
function fakeWorkerThreads(helper: (ctl: Int32Array, at: Record<string, number>) => void = () => {}, reaper = true) {
  const launches: Launch[] = [];
  class Worker {
    private readonly launch: Launch;
    constructor(source: string, options: Launch['options']) {
      const { control, at } = options.workerData;
      const ctl = new Int32Array(control);
      this.launch = { source, options, word: Atomics.load(ctl, at.word!), unrefs: 0 };
      launches.push(this.launch);
      helper(ctl, at);
      if (reaper) leaveWhenStalled(ctl, at);
    }
    on(event: string, listener: (e: Error) => void): this {
      if (event === 'error') this.launch.fail = listener;
      return this;
    }
    unref(): void {
      this.launch.unrefs++;
    }
  }
  return { wt: { Worker } as unknown as WorkerThreads, launches };
}

/** A stand-in helper that boots and then idles. */
const boots = (ctl: Int32Array, at: Record<string, number>) => void Atomics.add(ctl, at.booted!, 1);
/** The stand-in helper of `l` leaves (as a real one does after its idle time). */
const leave = (l: Launch) => void Atomics.add(new Int32Array(l.options.workerData.control), l.options.workerData.at.left!, 1);

/** Runs `make` where Node reports `cores` cores and `wt` as its worker_threads. */
function withNode<T>(cores: number, wt: WorkerThreads | undefined, make: () => T): T {
  const saved = process.getBuiltinModule;
  const fake = (id: string): unknown => (id === 'node:os' ? { availableParallelism: () => cores } : id === 'node:worker_threads' && wt !== undefined ? wt : saved(id));
  process.getBuiltinModule = fake as typeof saved;
  try {
    return make();
  } finally {
    process.getBuiltinModule = saved;
  }
}

const sharedModule = () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  return { module: new WebAssembly.Module(wasmMatmulModule(true)), memory };
};

/** How often each row quad is covered by the product calls; throws at a call that leaves the job's layout. */
function coveredQuads(job: ThreadedJob, calls: readonly number[][]): number[] {
  const quads = job.m / 4;
  const seen = new Array<number>(job.batch * quads).fill(0);
  for (const call of calls) {
    const [a, b, c, m, k, n] = call as [number, number, number, number, number, number];
    const g = (a - job.a) / (job.k * 16);
    const z = Math.floor(g / quads);
    // B of the call's batch, C of its rows, whole quads, and not past its batch
    const fits = k === job.k && n === job.n && b === job.b + z * job.bStride && c === job.c + g * job.n * 16 && m % 4 === 0 && g + m / 4 <= (z + 1) * quads;
    if (!fits) throw new Error(`call [${call.join(', ')}] does not fit the job`);
    for (let q = g; q < g + m / 4; q++) seen[q]!++;
  }
  return seen;
}

// Not gated on wasmSimdSupported(): Node has WebAssembly SIMD, and a broken module must fail these tests, not skip them.
describe('wasm SIMD product', () => {
  it('the module validates, imports env.memory (shared only in the shared variant) and exports mm', () => {
    expect(wasmSimdSupported()).toBe(true);
    for (const shared of [false, true]) {
      const module = new WebAssembly.Module(wasmMatmulModule(shared));
      expect(WebAssembly.Module.imports(module)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
      expect(WebAssembly.Module.exports(module)).toEqual([{ name: 'mm', kind: 'function' }]);
      const plain = new WebAssembly.Memory({ initial: 1 });
      const sharedMemory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
      const right = shared ? sharedMemory : plain;
      const wrong = shared ? plain : sharedMemory;
      expect(() => new WebAssembly.Instance(module, { env: { memory: right } })).not.toThrow();
      expect(() => new WebAssembly.Instance(module, { env: { memory: wrong } })).toThrow(WebAssembly.LinkError);
    }
  });

  it('a freshly assembled module of either variant computes the product at byte offsets', () => {
    const s = shapeOf(1, 12, 7, 24, true);
    const [a, b] = plainOperands({ ...s }, 21);
    const [pa, pb] = pack(s, a, b);
    for (const shared of [undefined, false, true]) {
      const memory = shared === true ? new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true }) : new WebAssembly.Memory({ initial: 1 });
      const mm = new WebAssembly.Instance(new WebAssembly.Module(wasmMatmulModule(shared)), { env: { memory } }).exports.mm as ProductFn;
      const f32 = new Float32Array(memory.buffer);
      f32.fill(NaN);
      const [aOff, bOff, cOff] = [4, 4 + pa.length + 8, 4 + pa.length + 8 + pb.length + 4];
      f32.set(pa, aOff);
      f32.set(pb, bOff);
      mm(4 * aOff, 4 * bOff, 4 * cOff, s.mPad, s.k, s.nPad);
      expectProduct(f32.slice(cOff, cOff + s.mPad * s.nPad), s, a, b);
      // nothing written around C
      expect(Number.isNaN(f32[cOff - 1]!) && Number.isNaN(f32[cOff + s.mPad * s.nPad]!)).toBe(true);
    }
  });

  it('wasmSimdSupported says false where the module does not validate or validation throws', () => {
    const validate = WebAssembly.validate;
    try {
      WebAssembly.validate = () => false;
      expect(wasmSimdSupported()).toBe(false);
      WebAssembly.validate = () => {
        throw new Error('no SIMD');
      };
      expect(wasmSimdSupported()).toBe(false);
    } finally {
      WebAssembly.validate = validate;
    }
    expect(wasmSimdSupported()).toBe(true);
  });

  it('computes ragged, batched products from plain and packed operands', () => {
    const arena = new WasmMatmulArena({ threads: 1 });
    const shapes: Array<[number, number, number, number]> = [
      [1, 1, 1, 1],
      [1, 3, 5, 7],
      [2, 5, 1, 9],
      [3, 4, 17, 8],
      [1, 13, 33, 23],
      [2, 9, 64, 17],
      [1, 64, 3, 40],
      [2, 8, 130, 16],
    ];
    let seed = 1;
    for (const [batch, m, k, n] of shapes) {
      const s = shapeOf(batch, m, k, n);
      const [a, b] = plainOperands(s, seed++);
      expectProduct(createWasmMatmul(s, arena)(a, b), s, a, b);
      const p = shapeOf(batch, m, k, n, true);
      const [pa, pb] = pack(p, a, b);
      expectProduct(createWasmMatmul(p, arena)(pa, pb), p, a, b);
      // one operand packed, the other plain
      expectProduct(createWasmMatmul({ ...s, packedA: true }, arena)(pa, b), s, a, b);
      expectProduct(createWasmMatmul({ ...s, packedB: true }, arena)(a, pb), s, a, b);
      // plain operands with their last two axes swapped: A as [batch][k][m], B as [batch][n][k]
      const [at, bt] = [swapLast(a, batch, m, k), swapLast(b, batch, k, n)];
      expectProduct(createWasmMatmul({ ...s, transposedA: true }, arena)(at, b), s, a, b);
      expectProduct(createWasmMatmul({ ...s, transposedB: true }, arena)(a, bt), s, a, b);
      expectProduct(createWasmMatmul({ ...s, transposedA: true, transposedB: true }, arena)(at, bt), s, a, b);
    }
  });

  it('pads with zeros whatever an earlier product left in the arena, and returns a copy', () => {
    const arena = new WasmMatmulArena({ threads: 1 });
    const big = shapeOf(2, 24, 40, 48);
    createWasmMatmul(big, arena)(new Float32Array(2 * 24 * 40).fill(NaN), new Float32Array(2 * 40 * 48).fill(NaN));
    for (const [m, n] of [
      [5, 16],
      [8, 11],
      [7, 13],
    ] as const) {
      const s = shapeOf(2, m, 6, n);
      const [a, b] = plainOperands(s, m + n);
      const product = createWasmMatmul(s, arena);
      const c = product(a, b);
      expectProduct(c, s, a, b);
      c.fill(7);
      expectProduct(product(a, b), s, a, b);
      createWasmMatmul(big, arena)(new Float32Array(2 * 24 * 40).fill(NaN), new Float32Array(2 * 40 * 48).fill(NaN));
      const transposed = createWasmMatmul({ ...s, transposedA: true, transposedB: true }, arena);
      expectProduct(transposed(swapLast(a, 2, m, 6), swapLast(b, 2, 6, n)), s, a, b);
    }
  });

  it('the arena grows by whole 64 KiB pages to the largest product and keeps its view until then', () => {
    const arena = new WasmMatmulArena({ threads: 1 });
    expect(arena.bytes).toBe(65536);
    const first = arena.reserve(16384);
    expect(first.length).toBe(16384);
    expect(arena.reserve(100)).toBe(first);
    expect(arena.bytes).toBe(65536);
    const grown = arena.reserve(16385);
    expect(arena.bytes).toBe(2 * 65536);
    // growing detaches the old buffer: the view is a new one
    expect(first.length).toBe(0);
    expect(grown.length).toBe(2 * 16384);
    expect(arena.reserve(3 * 16384 + 1).length).toBe(4 * 16384);
    expect(arena.reserve(1).length).toBe(4 * 16384);
    // operands and result side by side: 4·9000 + 9000·8 + 4·8 floats, 6.6 pages
    const s = shapeOf(1, 4, 9000, 8);
    const [a, b] = plainOperands(s, 3);
    expectProduct(createWasmMatmul(s, arena)(a, b), s, a, b);
    expect(arena.bytes).toBe(7 * 65536);
  });

  it('reserves room for a result larger than its operands', () => {
    // 64 + 1024 floats of operands, 65536 of result: the result alone needs the four extra pages
    const s = shapeOf(1, 64, 1, 1024);
    const [a, b] = plainOperands(s, 8);
    const arena = new WasmMatmulArena({ threads: 1 });
    expectProduct(createWasmMatmul(s, arena)(a, b), s, a, b);
    expect(arena.bytes).toBe(5 * 65536);
  });

  it('multiply() runs batches at float offsets of the arena and writes nothing past C', () => {
    const s = shapeOf(3, 8, 6, 16, true);
    const [a, b] = plainOperands(s, 17);
    const [pa, pb] = pack(s, a, b);
    const arena = new WasmMatmulArena({ threads: 1 });
    const cLen = s.batch * s.mPad * s.nPad;
    const [aOff, bOff, cOff] = [12, 12 + pa.length + 4, 12 + pa.length + 4 + pb.length + 8];
    const f32 = arena.reserve(cOff + 2 * cLen);
    f32.fill(NaN);
    f32.set(pa, aOff);
    f32.set(pb, bOff);
    arena.multiply(aOff, bOff, cOff, s.mPad, s.k, s.nPad, s.batch);
    expectProduct(f32.slice(cOff, cOff + cLen), s, a, b);
    expect(f32.subarray(cOff + cLen, cOff + 2 * cLen).every(Number.isNaN)).toBe(true);
    expect(Number.isNaN(f32[cOff - 1]!)).toBe(true);
  });

  it('refuses unaligned padded sizes and operands of the wrong length, saying which', () => {
    const s = shapeOf(2, 3, 5, 7);
    expect(thrown(() => createWasmMatmul({ ...s, mPad: 6 }))).toBe('wasm matmul: mPad must be a multiple of 4 and nPad of 8, got 6 and 8');
    expect(thrown(() => createWasmMatmul({ ...s, nPad: 12 }))).toBe('wasm matmul: mPad must be a multiple of 4 and nPad of 8, got 4 and 12');
    const product = createWasmMatmul(s, new WasmMatmulArena({ threads: 1 }));
    const [a, b] = plainOperands(s, 1);
    expect(thrown(() => product(a.subarray(1), b))).toBe('wasm matmul: operands of 29 and 70 floats, expected 30 and 70');
    expect(thrown(() => product(a, b.subarray(1)))).toBe('wasm matmul: operands of 30 and 69 floats, expected 30 and 70');
    const packed = createWasmMatmul({ ...s, packedA: true, packedB: true }, new WasmMatmulArena({ threads: 1 }));
    expect(thrown(() => packed(a, b))).toBe('wasm matmul: operands of 30 and 70 floats, expected 40 and 80');
  });
});

describe('wasm product threading', () => {
  it('allows min(cores, 8) threads, one on one core, and says why', () => {
    expect(withNode(4, undefined, matmulThreading)).toEqual({ threads: 4 });
    expect(withNode(2, undefined, matmulThreading)).toEqual({ threads: 2 });
    expect(withNode(64, undefined, matmulThreading)).toEqual({ threads: 8 });
    expect(withNode(1, undefined, matmulThreading)).toEqual({ threads: 1, reason: 'one core' });
    const sab = globalThis.SharedArrayBuffer;
    try {
      (globalThis as { SharedArrayBuffer?: unknown }).SharedArrayBuffer = undefined;
      expect(withNode(4, undefined, matmulThreading)).toEqual({ threads: 1, reason: 'SharedArrayBuffer is unavailable' });
    } finally {
      globalThis.SharedArrayBuffer = sab;
    }
  });

  it('without process.getBuiltinModule, or outside Node, there are no helper threads, and why', () => {
    const saved = process.getBuiltinModule;
    try {
      (process as { getBuiltinModule?: unknown }).getBuiltinModule = undefined;
      const why = 'process.getBuiltinModule is missing (Node < 20.16): no worker_threads without a static import';
      expect(matmulThreading()).toEqual({ threads: 1, reason: why });
      expect(thrown(() => workerThreads())).toBe(`wasm matmul: no helper threads: ${why}`);
    } finally {
      process.getBuiltinModule = saved;
    }
    const proc = globalThis.process;
    let outside: ReturnType<typeof matmulThreading> | undefined;
    try {
      (globalThis as { process?: unknown }).process = undefined;
      outside = matmulThreading();
    } finally {
      globalThis.process = proc;
    }
    expect(outside).toEqual({ threads: 1, reason: 'not Node: a browser main thread cannot block on Atomics.wait, and products are synchronous' });
    expect(typeof workerThreads().Worker).toBe('function');
  });

  it('an arena takes the threads it may have, fewer when asked, and says why', () => {
    const arena = (cores: number, threads?: number) => withNode(cores, fakeWorkerThreads().wt, () => new WasmMatmulArena(threads === undefined ? {} : { threads })).threading;
    expect(arena(4)).toEqual({ threads: 4 });
    expect(arena(4, 9)).toEqual({ threads: 4 });
    expect(arena(4, 4)).toEqual({ threads: 4 });
    expect(arena(4, 2)).toEqual({ threads: 2, reason: '2 threads requested' });
    expect(arena(4, 1)).toEqual({ threads: 1, reason: 'one thread requested' });
    expect(arena(1)).toEqual({ threads: 1, reason: 'one core' });
    expect(arena(1, 1)).toEqual({ threads: 1, reason: 'one core' });
    expect(arena(1, 3)).toEqual({ threads: 1, reason: 'one core' });
  });

  it('products of THREADED_MIN_MACS or more are cut into chunks; smaller ones, and all after close(), run on the calling thread', () => {
    const { wt, launches } = fakeWorkerThreads(boots);
    const arena = withNode(4, wt, () => new WasmMatmulArena({ helperIdleMs: 1234 }));
    expect(arena.threading).toEqual({ threads: 4 });
    const run = (batch: number, m: number, k: number, n: number, seed: number) => {
      const s = shapeOf(batch, m, k, n);
      const [a, b] = plainOperands(s, seed);
      expectProduct(createWasmMatmul(s, arena)(a, b), s, a, b);
    };
    // one multiply-add short of the threshold (padded sizes count): the calling thread alone
    run(1, 64, 255, 256, 1);
    expect(64 * 255 * 256).toBeLessThan(THREADED_MIN_MACS);
    expect(arena.chunks).toEqual({ caller: 0, helpers: 0 });
    expect(launches).toEqual([]);
    // exactly the threshold: 16 quads of 2^18 multiply-adds, a chunk each
    expect(64 * 256 * 256).toBe(THREADED_MIN_MACS);
    run(1, 64, 256, 256, 2);
    expect(arena.chunks).toEqual({ caller: 16, helpers: 0 });
    expect(launches.length).toBe(3);
    expect(arena.helperThreads).toBe(3);
    expect(arena.helperStarts).toBe(3);
    for (const l of launches) {
      expect(l.options.eval).toBe(true);
      expect(l.options.execArgv).toEqual([]);
      expect(l.options.workerData.idleMs).toBe(1234);
      expect(l.unrefs).toBe(1);
      expect(l.source).toContain('runChunks');
    }
    // two batches of 8 quads, padded rows inside: still 16 one-quad chunks, no new helpers while three are alive
    run(2, 31, 256, 256, 3);
    expect(arena.chunks).toEqual({ caller: 32, helpers: 0 });
    expect(launches.length).toBe(3);
    arena.close();
    expect(Atomics.load(new Int32Array(launches[0]!.options.workerData.control), launches[0]!.options.workerData.at.quit!)).toBe(1);
    run(1, 64, 256, 256, 4);
    expect(arena.chunks).toEqual({ caller: 32, helpers: 0 });
    expect(arena.helperThreads).toBe(3);
  });

  it('helpers get the default idle time, and helpers that left are replaced by the next product', () => {
    const { wt, launches } = fakeWorkerThreads(boots);
    const arena = withNode(3, wt, () => new WasmMatmulArena());
    const s = shapeOf(1, 64, 256, 256);
    const [a, b] = plainOperands(s, 5);
    const product = createWasmMatmul(s, arena);
    product(a, b);
    expect(launches.length).toBe(2);
    expect(launches[0]!.options.workerData.idleMs).toBe(HELPER_IDLE_MS);
    expect(arena.helperThreads).toBe(2);
    launches.forEach(leave);
    expect(arena.helperThreads).toBe(0);
    expectProduct(product(a, b), s, a, b);
    expect(launches.length).toBe(4);
    expect(arena.helperStarts).toBe(4);
    // each job publishes a new generation in the claim word's high bits, from chunk 0
    expect(launches.map((l) => l.word)).toEqual([1 << 12, 1 << 12, 2 << 12, 2 << 12]);
  });

  it('a threaded multiply() reads and writes at the float offsets and batch strides it is given', () => {
    const { wt } = fakeWorkerThreads(boots);
    const arena = withNode(2, wt, () => new WasmMatmulArena());
    const s = shapeOf(2, 32, 256, 256, true);
    const [a, b] = plainOperands(s, 31);
    const [pa, pb] = pack(s, a, b);
    const cLen = s.batch * s.mPad * s.nPad;
    const [aOff, bOff, cOff] = [20, 20 + pa.length + 4, 20 + pa.length + 4 + pb.length + 8];
    const f32 = arena.reserve(cOff + cLen + 1024);
    f32.fill(NaN);
    f32.set(pa, aOff);
    f32.set(pb, bOff);
    arena.multiply(aOff, bOff, cOff, s.mPad, s.k, s.nPad, s.batch);
    expect(arena.chunks).toEqual({ caller: 16, helpers: 0 });
    expectProduct(f32.slice(cOff, cOff + cLen), s, a, b);
    expect(f32.subarray(cOff + cLen, cOff + cLen + 1024).every(Number.isNaN)).toBe(true);
  });

  it('an arena without helpers reports none, and runs large products unchunked', () => {
    const arena = new WasmMatmulArena({ threads: 1 });
    const s = shapeOf(1, 64, 256, 256);
    const [a, b] = plainOperands(s, 6);
    expectProduct(createWasmMatmul(s, arena)(a, b), s, a, b);
    expect([arena.helperThreads, arena.helperStarts, arena.chunks]).toEqual([0, 0, { caller: 0, helpers: 0 }]);
    arena.close();
    expect(arena.threading.threads).toBe(1);
  });
});

describe('wasm product helpers: chunks and claims', () => {
  const job = (over: Partial<ThreadedJob>): ThreadedJob => ({ a: 1024, b: 9000, c: 50_000, bStride: 777 * 4, batch: 1, m: 4, k: 1, n: 8, ...over });

  /** Runs `j` with a recording product on helpers that never boot; returns the calls and chunk count. */
  function runRecorded(j: ThreadedJob): { calls: number[][]; chunks: number } {
    const { module, memory } = sharedModule();
    const { mm, calls } = recordingProduct();
    const helpers = new MatmulHelpers(fakeWorkerThreads().wt, module, memory, mm, 1);
    helpers.run(j);
    expect(helpers.chunks.helpers).toBe(0);
    return { calls, chunks: helpers.chunks.caller };
  }

  it.each([
    // [batch, m, k, n, chunks]: about 1/16 of the job per chunk, at least 2^17 and at most 2^21 multiply-adds, at most 4095 chunks
    [3, 12, 5, 16, 1],
    [1, 256, 128, 128, 16],
    [2, 128, 128, 128, 16],
    [1, 4 * 65536, 16, 16, 32],
    [1, 4 * 10_000, 1024, 1024, 3334],
    [1, 4 * 4096, 1024, 1024, 2048],
    [5, 36, 1024, 2048, 45],
  ])('batch %i of %i×%i·%i×… runs every row quad once, in %i chunks, each call inside one batch', (batch, m, k, n, chunks) => {
    const j = job({ batch, m, k, n });
    const run = runRecorded(j);
    expect(run.chunks).toBe(chunks);
    expect(coveredQuads(j, run.calls).every((times) => times === 1)).toBe(true);
  });

  it('splits a chunk that spans batches at the batch boundaries', () => {
    const j = job({ batch: 3, m: 12, k: 5, n: 16 });
    expect(runRecorded(j).calls).toEqual([
      [1024, 9000, 50_000, 12, 5, 16],
      [1024 + 3 * 5 * 16, 9000 + 777 * 4, 50_000 + 3 * 16 * 16, 12, 5, 16],
      [1024 + 6 * 5 * 16, 9000 + 2 * 777 * 4, 50_000 + 6 * 16 * 16, 12, 5, 16],
    ]);
  });

  it('a helper that fails is reported by the next product; close() ends all products on the helpers', () => {
    const { module, memory } = sharedModule();
    const { mm } = recordingProduct();
    const { wt, launches } = fakeWorkerThreads(boots);
    const helpers = new MatmulHelpers(wt, module, memory, mm, 2);
    helpers.run(job({}));
    expect(helpers.alive).toBe(2);
    expect(helpers.starts).toBe(2);
    launches[1]!.fail!(new Error('out of memory'));
    expect(thrown(() => helpers.run(job({})))).toBe('wasm matmul: a helper thread failed: out of memory');
    expect(helpers.closed).toBe(false);
    helpers.close();
    expect(helpers.closed).toBe(true);
    expect(thrown(() => helpers.run(job({})))).toBe('wasm matmul: helper threads used after close()');
  });

  /**
   * A stand-in helper that boots and claims the first chunk of the job at once, then, on a real
   * thread `afterMs` later (while the caller waits), either leaves without running it, or reports
   * it done and leaves some seconds after.
   */
  const claimsFirstChunk = (then: 'leaves' | 'finishes', afterMs: number) =>
    fakeWorkerThreads((ctl, at) => {
      Atomics.add(ctl, at.booted!, 1);
      const w = Atomics.load(ctl, at.word!);
      expect(Atomics.compareExchange(ctl, at.word!, w, w + 1)).toBe(w);
      onRealThread(
        `
        Atomics.wait(ctl, d.at.quit, 0, d.afterMs);
        if (d.finishes) {
          Atomics.add(ctl, d.at.byHelpers, 1);
          Atomics.add(ctl, d.at.done, 1);
          Atomics.notify(ctl, d.at.done);
          Atomics.wait(ctl, d.at.quit, 0, 3000);
        }
        Atomics.add(ctl, d.at.left, 1);
        Atomics.notify(ctl, d.at.done);
      `,
        { control: ctl.buffer, at, afterMs, finishes: then === 'finishes' },
      );
    }, false).wt;

  it('a helper that leaves with a claimed chunk unfinished is reported, not waited for forever', () => {
    const { module, memory } = sharedModule();
    const { mm, calls } = recordingProduct();
    const helpers = new MatmulHelpers(claimsFirstChunk('leaves', 100), module, memory, mm, 1);
    const j = job({ m: 256, k: 128, n: 128 });
    expect(thrown(() => helpers.run(j))).toBe('wasm matmul: helper threads left with 1 of 16 chunks claimed and unfinished');
    expect(helpers.chunks).toEqual({ caller: 15, helpers: 0 });
    expect(coveredQuads(j, calls).filter((times) => times === 0).length).toBe(4);
  });

  it('the caller waits past its wait slice for a live helper that finishes its chunk late', () => {
    const { module, memory } = sharedModule();
    const { mm } = recordingProduct();
    const helpers = new MatmulHelpers(claimsFirstChunk('finishes', 1500), module, memory, mm, 1);
    const t0 = Date.now();
    helpers.run(job({ m: 256, k: 128, n: 128 }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(helpers.chunks).toEqual({ caller: 15, helpers: 1 });
  });
});
