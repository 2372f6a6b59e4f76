/**
 * The wasm SIMD product on helper threads (compiler/codegen/wasm-matmul-threads.ts): chunks run
 * by helpers give the single-threaded result bit for bit, helpers leave when idle or closed, never
 * keep a process alive, and a missing worker_threads is reported, not hidden.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createWasmMatmul, THREADED_MIN_MACS, WasmMatmulArena, wasmSimdSupported, type WasmMatmulShape } from '../../compiler/codegen/wasm-matmul.ts';
import { matmulThreading } from '../../compiler/codegen/wasm-matmul-threads.ts';
import { values } from '../compile/support.ts';
import { shapeOf } from '../support/wasm-shape.ts';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));


const operands = (s: WasmMatmulShape, seed: number) => {
  const [aLen, bLen] = s.packedA ? [s.mPad * s.k, s.k * s.nPad] : [s.m * s.k, s.k * s.n];
  return [Float32Array.from(values(s.batch * aLen, seed)), Float32Array.from(values(s.batch * bLen, seed + 1))] as const;
};

/** Index of the first float whose bits differ, or -1 (a plain loop: deep equality on 10^5 floats is slow). */
function firstBitDifference(x: Float32Array, y: Float32Array): number {
  if (x.length !== y.length) return Math.min(x.length, y.length);
  const [u, v] = [new Uint32Array(x.buffer, x.byteOffset, x.length), new Uint32Array(y.buffer, y.byteOffset, y.length)];
  for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return i;
  return -1;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `ok()` (helpers boot and leave on their own threads); fails after `ms`. */
async function until(ok: () => boolean, what: string, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Runs products of `s` until a helper has run some of their chunks (helpers boot on their own threads). */
async function helpersWorkOn(arena: WasmMatmulArena, s: WasmMatmulShape): Promise<void> {
  expect(s.batch * s.mPad * s.k * s.nPad).toBeGreaterThanOrEqual(THREADED_MIN_MACS);
  const [a, b] = operands(s, 7);
  const product = createWasmMatmul(s, arena);
  const before = arena.chunks.helpers;
  await until(() => {
    product(a, b);
    return arena.chunks.helpers > before;
  }, 'helpers to run chunks');
}

const threaded = matmulThreading().threads > 1;

describe.runIf(wasmSimdSupported() && threaded)('wasm product on helper threads', () => {
  it('equals the single-threaded product bit for bit on ragged shapes, batches and packed operands', async () => {
    const one = new WasmMatmulArena({ threads: 1 });
    const many = new WasmMatmulArena();
    expect(one.threading).toEqual({ threads: 1, reason: 'one thread requested' });
    expect(many.threading.threads).toBeGreaterThan(1);
    // ≥ THREADED_MIN_MACS multiply-adds each, so every case takes the threaded path
    const cases = fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 90 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 90 }), fc.boolean());
    await fc.assert(
      fc.asyncProperty(cases, fc.integer({ min: 1, max: 999 }), async ([batch, m, k, n, packed], seed) => {
        const s = shapeOf(batch, m + 200, k + 99, n + 200, packed);
        expect(batch * s.mPad * s.k * s.nPad).toBeGreaterThanOrEqual(THREADED_MIN_MACS);
        const [a, b] = operands(s, seed);
        const want = createWasmMatmul(s, one)(a, b);
        const product = createWasmMatmul(s, many);
        // until a product in which a helper ran chunks: each result must equal the single-threaded one
        const before = many.chunks.helpers;
        await until(() => {
          expect(firstBitDifference(product(a, b), want)).toBe(-1);
          return many.chunks.helpers > before;
        }, 'a product with chunks run by a helper');
      }),
      { numRuns: 10 },
    );
    many.close();
  });

  it('helpers leave after their idle time and come back with the next large product', async () => {
    const arena = new WasmMatmulArena({ helperIdleMs: 100 });
    const s = shapeOf(2, 130, 130, 150);
    await helpersWorkOn(arena, s);
    await until(() => arena.helperThreads === 0, 'idle helpers to leave');
    const starts = arena.helperStarts;
    const [a, b] = operands(s, 3);
    expect(firstBitDifference(createWasmMatmul(s, arena)(a, b), createWasmMatmul(s, new WasmMatmulArena({ threads: 1 }))(a, b))).toBe(-1);
    await helpersWorkOn(arena, s);
    expect(arena.helperStarts).toBeGreaterThan(starts);
    arena.close();
  });

  it('close() sends helpers away at once; later products run on the calling thread', async () => {
    const arena = new WasmMatmulArena({ helperIdleMs: 600_000 });
    const s = shapeOf(1, 256, 128, 128);
    await helpersWorkOn(arena, s);
    arena.close();
    await until(() => arena.helperThreads === 0, 'closed helpers to leave');
    const [a, b] = operands(s, 4);
    expect(firstBitDifference(createWasmMatmul(s, arena)(a, b), createWasmMatmul(s, new WasmMatmulArena({ threads: 1 }))(a, b))).toBe(-1);
    expect(arena.helperThreads).toBe(0);
  });

  it('small products stay on the calling thread', () => {
    const arena = new WasmMatmulArena();
    const s = shapeOf(1, 64, 64, 64);
    expect(s.mPad * s.k * s.nPad).toBeLessThan(THREADED_MIN_MACS);
    const [a, b] = operands(s, 5);
    createWasmMatmul(s, arena)(a, b);
    expect(arena.chunks).toEqual({ caller: 0, helpers: 0 });
    expect(arena.helperThreads).toBe(0);
  });

  it('a process whose helpers wait for work exits by itself', async () => {
    // helpers that would idle for 10 minutes: only unref'd threads let the child end in time
    const script = `
      import { WasmMatmulArena, createWasmMatmul } from './compiler/codegen/wasm-matmul.ts';
      const arena = new WasmMatmulArena({ helperIdleMs: 600000 });
      const s = { batch: 2, m: 130, mPad: 132, k: 130, n: 150, nPad: 152, packedA: false, packedB: false };
      const c = createWasmMatmul(s, arena)(new Float32Array(2 * 130 * 130).fill(1), new Float32Array(2 * 130 * 150).fill(1));
      const t0 = Date.now();
      while (arena.helperThreads === 0 && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 10));
      console.log(JSON.stringify({ helpers: arena.helperThreads, c0: c[0] }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual({ helpers: matmulThreading().threads - 1, c0: 130 });
  });
});

describe.runIf(wasmSimdSupported())('wasm product threading report', () => {
  it('without process.getBuiltinModule products run on one thread and say why', () => {
    const saved = process.getBuiltinModule;
    try {
      (process as { getBuiltinModule?: unknown }).getBuiltinModule = undefined;
      const arena = new WasmMatmulArena();
      expect(arena.threading.threads).toBe(1);
      expect(arena.threading.reason).toMatch(/getBuiltinModule is missing/);
      const s = shapeOf(1, 256, 128, 128);
      const [a, b] = operands(s, 9);
      expect(firstBitDifference(createWasmMatmul(s, arena)(a, b), createWasmMatmul(s, new WasmMatmulArena({ threads: 1 }))(a, b))).toBe(-1);
      expect(arena.chunks).toEqual({ caller: 0, helpers: 0 });
    } finally {
      process.getBuiltinModule = saved;
    }
  });
});
