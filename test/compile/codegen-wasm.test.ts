/**
 * The wasm SIMD product (compiler/codegen/wasm-matmul.ts) on its own, without gpu.js: the module
 * over every operand layout and over cell ranges split as a pipeline's workers split them, against
 * a float64 product; which row quads a range computes; the module's import and export; the
 * equivalent kernel source run as JavaScript; the shape marker; and the shape errors.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  productCells,
  productModule,
  productShapeOf,
  productSource,
  wasmSimdSupported,
  type ALayout,
  type BLayout,
  type ProductOffsets,
  type WasmMatmulShape,
} from '../../compiler/codegen/wasm-matmul.ts';
import { thrown } from '../support/thrown.ts';
import { runProductModule, shapeOf } from '../support/wasm-shape.ts';
import { values } from './support.ts';

const A_LAYOUTS: readonly ALayout[] = ['packed', 'rows', 'transposed'];
const B_LAYOUTS: readonly BLayout[] = ['packed', 'rows'];
const PAGE = 65536;

type Run = (start: number, end: number, seed: number) => void;

/** The logical operands, A [batch][m][k] and B [batch][k][n], rounded to float32. */
const operands = (s: WasmMatmulShape, seed: number) =>
  [Float32Array.from(values(s.batch * s.m * s.k, seed)), Float32Array.from(values(s.batch * s.k * s.n, seed + 1))] as const;

/** A as the product reads it: row quads [batch][mPad/4][k][4] (zero rows past m), row-major, or [batch][k][m]. */
function layA(s: WasmMatmulShape, a: Float32Array): Float32Array {
  if (s.a === 'rows') return a;
  const { batch, m, mPad, k } = s;
  const out = new Float32Array(s.a === 'packed' ? batch * mPad * k : batch * k * m);
  for (let z = 0; z < batch; z++)
    for (let i = 0; i < m; i++)
      for (let kk = 0; kk < k; kk++) {
        const at = s.a === 'packed' ? ((z * (mPad / 4) + (i >> 2)) * k + kk) * 4 + (i & 3) : (z * k + kk) * m + i;
        out[at] = a[(z * m + i) * k + kk]!;
      }
  return out;
}

/** B as the product reads it: column octets [batch][nPad/8][k][8] (zero columns past n), or row-major. */
function layB(s: WasmMatmulShape, b: Float32Array): Float32Array {
  if (s.b === 'rows') return b;
  const { batch, k, n, nPad } = s;
  const out = new Float32Array(batch * k * nPad);
  for (let z = 0; z < batch; z++)
    for (let kk = 0; kk < k; kk++)
      for (let j = 0; j < n; j++) out[((z * (nPad / 8) + (j >> 3)) * k + kk) * 8 + (j & 7)] = b[(z * k + kk) * n + j]!;
  return out;
}

/** Index of C[z][i][j] in the row-major [batch][mPad][nPad] result. */
const cellOf = (s: WasmMatmulShape, z: number, i: number, j: number): number => (z * s.mPad + i) * s.nPad + j;

/**
 * Checks every meaningful cell of C against the float64 product of the logical operands; float32
 * accumulation over k terms stays within (k + 1)·2^-23·Σ|terms|. Padded cells are not looked at.
 */
function expectProduct(c: ArrayLike<number>, s: WasmMatmulShape, a: Float32Array, b: Float32Array, what = 'C'): void {
  for (let z = 0; z < s.batch; z++)
    for (let i = 0; i < s.m; i++)
      for (let j = 0; j < s.n; j++) {
        let want = 0;
        let scale = 0;
        for (let kk = 0; kk < s.k; kk++) {
          const t = a[(z * s.m + i) * s.k + kk]! * b[(z * s.k + kk) * s.n + j]!;
          want += t;
          scale += Math.abs(t);
        }
        const got = c[cellOf(s, z, i, j)]!;
        if (!(Math.abs(got - want) <= (s.k + 1) * 2 ** -23 * scale)) {
          expect.fail(`${what}[${z}][${i}][${j}] = ${got}, want ${want} (${JSON.stringify(s)})`);
        }
      }
}

/** Cells in one row quad of C: 4 rows of nPad. */
const quadCells = (s: WasmMatmulShape): number => 4 * s.nPad;
/** Row quads of C over all batches. */
const quadCount = (s: WasmMatmulShape): number => (s.batch * s.mPad) / 4;

/**
 * Global indices of the row quads a NaN-initialised C shows as written (every meaningful cell a
 * number); fails on a quad written only in part. Every quad has meaningful cells (its first row
 * is below m, column 0 below n).
 */
function writtenQuads(c: ArrayLike<number>, s: WasmMatmulShape): number[] {
  const out: number[] = [];
  const quads = s.mPad / 4;
  for (let q = 0; q < quadCount(s); q++) {
    const z = Math.floor(q / quads);
    const rows = Array.from({ length: 4 }, (_, r) => 4 * (q % quads) + r).filter((i) => i < s.m);
    const cells = rows.flatMap((i) => Array.from({ length: s.n }, (_, j) => c[cellOf(s, z, i, j)]!));
    const numbers = cells.filter((v) => !Number.isNaN(v)).length;
    if (numbers === cells.length) out.push(q);
    else if (numbers !== 0) expect.fail(`quad ${q} written in part (${numbers}/${cells.length} cells) in ${JSON.stringify(s)}`);
  }
  return out;
}

/** The quads whose first cell lies in [start, end): what one worker with that range owns. */
const ownedQuads = (s: WasmMatmulShape, start: number, end: number): number[] =>
  Array.from({ length: quadCount(s) }, (_, q) => q).filter((q) => q * quadCells(s) >= start && q * quadCells(s) < end);

/** [0, cells) cut at `cuts` (multiples of 4, any order, repeats allowed: empty ranges) into consecutive ranges. */
function partition(cells: number, cuts: readonly number[]): Array<[number, number]> {
  const bounds = [0, ...[...cuts].sort((x, y) => x - y), cells];
  return bounds.slice(1).map((end, i) => [bounds[i]!, end]);
}

const anyShape = fc
  .record({
    batch: fc.integer({ min: 1, max: 3 }),
    m: fc.integer({ min: 1, max: 13 }),
    k: fc.integer({ min: 1, max: 9 }),
    n: fc.integer({ min: 1, max: 19 }),
    a: fc.constantFrom(...A_LAYOUTS),
    b: fc.constantFrom(...B_LAYOUTS),
  })
  .map(({ batch, m, k, n, a, b }) => shapeOf(batch, m, k, n, a, b));

describe.runIf(wasmSimdSupported())('wasm SIMD product module', () => {
  it('computes the product for every layout, over any partition of its cells into ranges starting at multiples of 4, each range its own row quads', () => {
    fc.assert(
      fc.property(anyShape, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 3 }), fc.integer({ min: 1, max: 999 }), (s, fractions, seed) => {
        const cells = productCells(s);
        expect(cells).toBe(s.batch * s.mPad * s.nPad);
        // gpu.js aligns each worker's start down to a multiple of 4, wherever that falls in a quad
        const ranges = partition(cells, fractions.map((f) => 4 * Math.floor((f * cells) / 4)));
        const [a, b] = operands(s, seed);
        const [la, lb] = [layA(s, a), layB(s, b)];
        expectProduct(runProductModule(s, la, lb, ranges), s, a, b);
        for (const [start, end] of ranges) {
          const alone = runProductModule(s, la, lb, [[start, end]]);
          expect(writtenQuads(alone, s), `range [${start}, ${end}) of ${JSON.stringify(s)}`).toEqual(ownedQuads(s, start, end));
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a range starting inside a quad leaves that quad to the range before it, and a range inside one quad computes nothing', () => {
    // 2 batches × 3 quads of 4·16 = 64 cells: 384 cells
    for (const [a, b] of A_LAYOUTS.flatMap((x) => B_LAYOUTS.map((y) => [x, y] as const))) {
      const s = shapeOf(2, 10, 5, 13, a, b);
      expect([quadCells(s), productCells(s)]).toEqual([64, 384]);
      const [a0, b0] = operands(s, 7);
      const [la, lb] = [layA(s, a0), layB(s, b0)];
      const written = (start: number, end: number) => writtenQuads(runProductModule(s, la, lb, [[start, end]]), s);
      // split 4 cells past the odd quad boundary 3·64: quad 3 starts before the split
      expect(written(0, 196)).toEqual([0, 1, 2, 3]);
      expect(written(196, 384)).toEqual([4, 5]);
      // 4 cells into the first quad
      expect(written(0, 4)).toEqual([0]);
      expect(written(4, 384)).toEqual([1, 2, 3, 4, 5]);
      // ends on a quad boundary: the quad starting there belongs to the next range
      expect(written(64, 192)).toEqual([1, 2]);
      expect(written(68, 128)).toEqual([]);
      expect(written(0, 0)).toEqual([]);
      expect(written(380, 384)).toEqual([]);
      expect(written(320, 384)).toEqual([5]);
    }
  });

  it('reads nothing past the end of A (row-major or packed; rows past m clamped) or of packed B, each placed at the end of the memory', () => {
    // the operand ends exactly at the memory's end, so a read past it traps
    for (const s of [shapeOf(2, 9, 7, 11, 'rows', 'rows'), shapeOf(1, 6, 3, 5, 'rows', 'packed'), shapeOf(3, 13, 4, 17, 'packed', 'rows'), shapeOf(2, 7, 6, 3, 'rows', 'packed')]) {
      const [a, b] = operands(s, 11);
      const [la, lb] = [layA(s, a), layB(s, b)];
      for (const last of ['a', 'b'] as const) {
        if (last === 'b' && s.b !== 'packed') continue;
        const cBytes = productCells(s) * 4;
        const [firstLen, lastLen] = last === 'a' ? [lb.length, la.length] : [la.length, lb.length];
        const pages = Math.ceil((cBytes + 4 * firstLen + 4 * lastLen + 32) / PAGE);
        const end = pages * PAGE;
        const at: ProductOffsets = last === 'a' ? { c: 0, b: cBytes, a: end - 4 * lastLen } : { c: 0, a: cBytes, b: end - 4 * lastLen };
        const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
        const f32 = new Float32Array(memory.buffer);
        f32.fill(NaN);
        f32.set(la, at.a / 4);
        f32.set(lb, at.b / 4);
        const run = new WebAssembly.Instance(new WebAssembly.Module(productModule(s, at, false)), { env: { memory } }).exports.run as Run;
        run(0, productCells(s), 0);
        expectProduct(f32.subarray(0, productCells(s)), s, a, b, `C (${last} last)`);
      }
    }
  });

  it('validates, imports env.memory (declared shared only when asked), exports run, and runs on a shared memory with gpu.js limits at any offsets', () => {
    const s = shapeOf(2, 5, 3, 9, 'transposed', 'packed');
    const at: ProductOffsets = { a: 1024, b: 4096, c: 8192 };
    const modules = [false, true].map((shared) => new WebAssembly.Module(productModule(s, at, shared)));
    for (const [i, shared] of [false, true].entries()) {
      const bytes = productModule(s, at, shared);
      expect(bytes).toBeInstanceOf(Uint8Array);
      expect(WebAssembly.validate(bytes)).toBe(true);
      expect(WebAssembly.Module.imports(modules[i]!)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
      expect(WebAssembly.Module.exports(modules[i]!)).toEqual([{ name: 'run', kind: 'function' }]);
    }
    const plain = new WebAssembly.Memory({ initial: 1 });
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 4096, shared: true });
    // a memory's shared flag must match the import's declaration, both ways
    expect(() => new WebAssembly.Instance(modules[0]!, { env: { memory: shared } })).toThrow(WebAssembly.LinkError);
    expect(() => new WebAssembly.Instance(modules[1]!, { env: { memory: plain } })).toThrow(WebAssembly.LinkError);
    const [a, b] = operands(s, 3);
    for (const [i, memory] of [plain, shared].entries()) {
      const f32 = new Float32Array(memory.buffer);
      f32.fill(NaN);
      f32.set(layA(s, a), at.a / 4);
      f32.set(layB(s, b), at.b / 4);
      const run = new WebAssembly.Instance(modules[i]!, { env: { memory } }).exports.run as Run;
      run(0, productCells(s), 12345);
      expectProduct(f32.slice(at.c / 4, at.c / 4 + productCells(s)), s, a, b, i === 0 ? 'C (plain memory)' : 'C (shared memory)');
    }
  });
});

describe('wasm SIMD product source and shape', () => {
  it('wasmSimdSupported says what an engine probe of a v128 local says', () => {
    // a function with one v128 local and an empty body: valid exactly where SIMD is
    const probe = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 0x0a, 6, 1, 4, 1, 1, 0x7b, 0x0b]);
    expect(wasmSimdSupported()).toBe(WebAssembly.validate(probe));
  });

  it('the kernel source, run as JavaScript one thread per cell, computes the product and 0 in the padding', () => {
    fc.assert(
      fc.property(anyShape, fc.integer({ min: 1, max: 999 }), (s, seed) => {
        const [a, b] = operands(s, seed);
        const [la, lb] = [layA(s, a), layB(s, b)];
        const kernel = new Function(`return ${productSource(s)}`)() as (this: { thread: { x: number } }, a: Float32Array, b: Float32Array) => number;
        const c = Array.from({ length: productCells(s) }, (_, x) => kernel.call({ thread: { x } }, la, lb));
        expectProduct(c, s, a, b, 'source C');
        for (let z = 0; z < s.batch; z++)
          for (let i = 0; i < s.mPad; i++)
            for (let j = 0; j < s.nPad; j++) if (i >= s.m || j >= s.n) expect(c[cellOf(s, z, i, j)], `padding [${z}][${i}][${j}]`).toBe(0);
      }),
      { numRuns: 60 },
    );
  });

  it('the source carries its shape, which productShapeOf reads back; other sources carry none', () => {
    fc.assert(
      fc.property(anyShape, (s) => {
        expect(productShapeOf(productSource(s))).toEqual(s);
        // as gpu.js holds it, inside other text
        expect(productShapeOf(`// kernel\n${productSource(s)}\n`)).toEqual(s);
      }),
      { numRuns: 30 },
    );
    expect(productShapeOf('function (a, b) {\n  return a[this.thread.x] * b[this.thread.x];\n}')).toBeUndefined();
    expect(productShapeOf('function (a) { /* a comment */ return a[0]; }')).toBeUndefined();
  });

  it('rejects a shape with unaligned or short padding or an empty extent, naming it', () => {
    const good = shapeOf(1, 5, 3, 9, 'rows', 'rows');
    const bad: WasmMatmulShape[] = [
      { ...good, mPad: 6 },
      { ...good, m: 9 },
      { ...good, nPad: 12 },
      { ...good, n: 17 },
      { ...good, m: 0 },
      { ...good, n: 0 },
      { ...good, k: 0 },
      { ...good, batch: 0 },
    ];
    for (const s of bad) {
      for (const fn of [() => productModule(s, { a: 0, b: 0, c: 0 }, false), () => productSource(s)]) {
        expect(fn).toThrow(RangeError);
        expect(thrown(fn)).toContain(`bad shape ${JSON.stringify(s)}`);
      }
    }
    // the edge of each rule is accepted
    for (const s of [good, { ...good, mPad: 8 }, { ...good, nPad: 16 }, { ...good, m: 8, n: 16, mPad: 8, nPad: 16 }, { ...good, m: 1, n: 1, k: 1 }]) {
      expect(() => productModule(s, { a: 0, b: 0, c: 0 }, false)).not.toThrow();
      expect(() => productSource(s)).not.toThrow();
    }
  });
});
