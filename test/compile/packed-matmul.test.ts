/**
 * Packed matmul groups: pack A, pack B, the product run between pipeline segments (the gpu.js
 * Array(4) kernel, or our wasm SIMD module), and the epilogue reading the product's layout. Ragged m and n (padded panels),
 * k below and above the unroll (the straight-line tail), batches, transposed and sliced operands
 * (prologue views), bias / activation / residual epilogues, and a product read through a reshape.
 * Checked against the float64 reference after a poisoned run, and as host-run sources.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler/codegen/compile.ts';
import { PACKED_MATMUL_MIN_MACS, PACKED_UNROLL, usePacked } from '../../compiler/codegen/packed-matmul.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { availableBackends, expectMatchesReference, runSourcesOnHost, values } from './support.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';

/** Both products: the gpu.js Array(4) kernel and our wasm SIMD module. */
let runners: CompiledRunner[] = [];
beforeAll(async () => {
  if ((await availableBackends()).includes('webasm')) {
    runners = [await CompiledRunner.create({ backend: 'webasm', matmul: 'packed' }), await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm' })];
  } else console.log('[packed matmul tests] webasm is not available: only the host-run sources are checked');
});
afterAll(() => runners.forEach((r) => r.destroy()));

function f32(g: Graph, feeds: Record<string, HostTensor>, name: string, s: number[], seed: number) {
  feeds[name] = hostTensor(s, values(s.reduce((a, b) => a * b, 1), seed));
  return g.input(name, s);
}

describe('packed matmul groups', () => {
  it('ragged shapes, batches, transposed operands, bias + tanh and residual epilogues', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 11 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: PACKED_UNROLL + 5 }),
        fc.integer({ min: 1, max: 1000 }),
        async (bt, m, n, k, seed) => {
          const g = new Graph();
          const feeds: Record<string, HostTensor> = {};
          const a = f32(g, feeds, 'a', [bt, m, k], seed);
          const wt = f32(g, feeds, 'wt', [n, k], seed + 1);
          const bias = f32(g, feeds, 'bias', [n], seed + 2);
          const res = f32(g, feeds, 'res', [bt, m, n], seed + 3);
          const w = P.broadcastTo(P.transpose(wt, [1, 0]), [bt, k, n]);
          const dense = P.unary('tanh', P.binary('add', P.matmul(a, w), P.broadcastTo(bias, [bt, m, n])));
          const residual = P.binary('add', P.matmul(a, w), res);
          const gram = P.matmul(P.transpose(a, [0, 2, 1]), a); // [bt, k, k]
          const flat = P.reshape(P.matmul(a, w), [bt * m * n]);
          g.outputs = [dense.id, residual.id, gram.id, flat.id];
          for (const r of runners) {
            await expectMatchesReference(r, g, feeds);
            // Array(4) products run between pipelines; wasm products are steps of the one pipeline
            const wasm = r.description.includes('wasm');
            expect(r.stats.executor === 'segmented').toBe(!wasm);
            expect(r.stats.segments.standalone).toBe(wasm ? 0 : 4);
          }
        },
      ),
      { numRuns: runners.length > 0 ? 12 : 0 },
    );
  });

  it('a sliced, windowed operand (a concat along k) is packed through its view', async () => {
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const x = f32(g, feeds, 'x', [2, 6, 5], 7);
    const w = f32(g, feeds, 'w', [2, 10, 9], 8);
    const look = P.concat([x, P.slice(x, [0, 0, 0], [2, 6, 5])], 2); // [2, 6, 10]
    g.outputs = [P.binary('mul', P.matmul(look, w), P.constant(g, 0.5)).id];
    for (const r of runners) await expectMatchesReference(r, g, feeds);
  });

  it('a bare wasm product without padding writes the output itself (no group kernel after it)', async () => {
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const a = f32(g, feeds, 'a', [3, 8, 20], 4);
    const b = f32(g, feeds, 'b', [3, 20, 16], 5);
    g.outputs = [P.matmul(a, b).id];
    const c = compile(g, g.outputs, { matmul: 'wasm' });
    // both operands are row-major buffers: the product reads them itself, so it is the only kernel
    expect(c.kernels.map((k) => k.native !== undefined)).toEqual([true]);
    expect(c.kernels[0]!.output).toBe(`%${g.outputs[0]}`);
    for (const r of runners) await expectMatchesReference(r, g, feeds);
  });

  it('operands read straight from buffers (reshaped, A with the last two axes swapped, B row-major) need no pack kernel; B transposed is packed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 13 }),
        fc.integer({ min: 1, max: 19 }),
        fc.integer({ min: 1, max: 11 }),
        fc.integer({ min: 1, max: 1000 }),
        async (bt, m, n, k, seed) => {
          const g = new Graph();
          const feeds: Record<string, HostTensor> = {};
          const xt = f32(g, feeds, 'xt', [bt, k, m], seed); // A = xtᵀ: [bt, m, k]
          const w = f32(g, feeds, 'w', [bt, n, k], seed + 1); // B = wᵀ: [bt, k, n]
          const flat = f32(g, feeds, 'flat', [bt * m * k], seed + 2); // A = reshape(flat): [bt, m, k]
          const rows = f32(g, feeds, 'rows', [bt, k, n], seed + 3); // B row-major
          const a = P.transpose(xt, [0, 2, 1]);
          const b = P.transpose(w, [0, 2, 1]);
          g.outputs = [P.matmul(a, b).id, P.matmul(P.reshape(flat, [bt, m, k]), rows).id];
          const c = compile(g, g.outputs, { matmul: 'wasm' });
          expect(c.kernels.filter((kk) => kk.name.includes('.pack')).map((kk) => kk.name.replace(/^.*\./, ''))).toEqual(['packB']);
          const natives = c.kernels.filter((kk) => kk.native !== undefined).map((kk) => kk.native!);
          expect(natives.map((nt) => [nt.a, nt.b])).toEqual([
            ['transposed', 'packed'],
            ['rows', 'rows'],
          ]);
          const wasm = runners.find((r) => r.description.includes('wasm'));
          if (wasm !== undefined) await expectMatchesReference(wasm, g, feeds);
          else runSourcesOnHost(g, feeds, g.outputs, evaluate(g, feeds, g.outputs));
        },
      ),
      { numRuns: 15 },
    );
  });

  it('packs while every packed buffer holds at most 2^24 floats (indices up to 2^24 - 1 are exact), not past', () => {
    // the LSH layer's chunk products at L = 16K: 2048 windows of [64 × 64] · [64 × 128] give a product of exactly 2^24
    const g = new Graph();
    const q = g.input('q', [2048, 64, 64]);
    const kv = g.input('kv', [2048, 128, 64]);
    const kt = P.transpose(kv, [0, 2, 1]);
    const atLimit = P.matmul(q, kt);
    const past = P.matmul(g.input('q2', [2049, 64, 64]), g.input('k2', [2049, 64, 128]));
    g.outputs = [atLimit.id, past.id];
    const c = compile(g, g.outputs, { matmul: 'auto' });
    const packed = c.plan.groups.filter((grp) => usePacked(c.plan, grp, 'auto', false) !== undefined);
    expect(packed.map((grp) => grp.root)).toEqual([atLimit.id]);
  });

  it('a product of exactly 2^24 floats, A a transposed view, with an epilogue matches the reference at its last index', async () => {
    const wasm = runners.find((r) => r.description.includes('wasm'));
    if (wasm === undefined) return;
    const [m, k, n] = [4096, 4, 4096];
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const at = f32(g, feeds, 'at', [k, m], 21);
    const b = f32(g, feeds, 'b', [k, n], 22);
    const bias = f32(g, feeds, 'bias', [n], 23);
    const y = P.binary('add', P.matmul(P.transpose(at, [1, 0]), b), P.broadcastTo(bias, [m, n]));
    g.outputs = [y.id];
    const c = compile(g, g.outputs, { matmul: 'wasm' });
    expect(c.kernels.some((kk) => kk.native !== undefined)).toBe(true);
    const [out] = await wasm.run(g, feeds);
    const [av, bv, cv] = [feeds.at!.data, feeds.b!.data, feeds.bias!.data];
    let worst = 0;
    for (const i of [0, 1, m / 2, m - 2, m - 1]) {
      for (let j = 0; j < n; j++) {
        let acc = cv[j]!;
        for (let p = 0; p < k; p++) acc += av[p * m + i]! * bv[p * n + j]!;
        worst = Math.max(worst, Math.abs(out!.data[i * n + j]! - acc));
      }
    }
    expect(out!.data.length).toBe(2 ** 24);
    expect(worst).toBeLessThan(1e-5);
  });

  it("'auto' packs from PACKED_MATMUL_MIN_MACS multiply-adds on, not below", () => {
    const g = new Graph();
    const m = 64;
    const k = 64;
    const big = PACKED_MATMUL_MIN_MACS / (m * k);
    const a = g.input('a', [m, k]);
    g.outputs = [P.matmul(a, g.input('b', [k, big])).id, P.matmul(a, g.input('c', [k, big - 4])).id];
    const c = compile(g, g.outputs, { matmul: 'auto' });
    const packedGroups = c.plan.groups.filter((grp) => usePacked(c.plan, grp, 'auto', false) !== undefined);
    expect(packedGroups.map((grp) => grp.root)).toEqual([g.outputs[0]]);
    expect(c.kernels.filter((k) => k.native !== undefined)).toHaveLength(1);
  });
});
