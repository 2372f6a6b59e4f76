/**
 * Our wasm SIMD product as a step of gpu.js's fused webasm pipeline (runtime/wasm-product-hook.ts):
 * graphs whose matmuls read every operand layout, batched, transposed and ragged, run in one
 * pipeline with the products among the other steps, on the calling thread and split between the
 * pipeline's worker threads, against the float64 reference (after a NaN-poisoned run, so a cell
 * no step wrote shows).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler/codegen/compile.ts';
import { wasmSimdSupported, type WasmMatmulShape } from '../../compiler/codegen/wasm-matmul.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { productModulesAssembled } from '../../runtime/wasm-product-hook.ts';
import { availableBackends, expectMatchesReference, values } from '../compile/support.ts';

function f32(g: Graph, feeds: Record<string, HostTensor>, name: string, s: number[], seed: number) {
  feeds[name] = hostTensor(s, values(s.reduce((a, b) => a * b, 1), seed));
  return g.input(name, s);
}

/** The products the webasm runner compiles for `g` (grid launches, as on webasm). */
const productsOf = (g: Graph): WasmMatmulShape[] =>
  compile(g, g.outputs, { grid: true, matmul: 'wasm' }).kernels.flatMap((k) => (k.native === undefined ? [] : [k.native]));

/**
 * Small ragged products over every layout: A packed (its batch axis swapped in), row-major, or
 * transposed; B row-major or packed (transposed); batched; one product feeding the next; and one
 * exactly 4×8-aligned product written straight to its node's buffer.
 */
function smallGraph(seed: number) {
  const g = new Graph();
  const feeds: Record<string, HostTensor> = {};
  const x = f32(g, feeds, 'x', [2, 5, 7], seed);
  const w = f32(g, feeds, 'w', [2, 7, 11], seed + 1);
  const p = f32(g, feeds, 'p', [2, 7, 5], seed + 2);
  const q = f32(g, feeds, 'q', [2, 11, 7], seed + 3);
  const r = f32(g, feeds, 'r', [8, 6], seed + 4);
  const s = f32(g, feeds, 's', [6, 16], seed + 5);
  const xb = f32(g, feeds, 'xb', [5, 2, 7], seed + 6);
  const packedA = P.matmul(P.transpose(xb, [1, 0, 2]), w); // [2, 5, 11]
  const transposedA = P.binary('add', P.matmul(P.transpose(p, [0, 2, 1]), w), P.constant(g, 0.5)); // [2, 5, 11]
  const packedB = P.matmul(x, P.transpose(q, [0, 2, 1])); // [2, 5, 11]
  const chained = P.unary('tanh', P.matmul(packedB, q)); // [2, 5, 7], A the product before
  const direct = P.matmul(r, s); // [8, 16]
  g.outputs = [packedA.id, transposedA.id, chained.id, direct.id];
  return { g, feeds };
}

/**
 * Large enough (the first product's 68·128 = 8704 cells) that gpu.js splits the pipeline between
 * worker threads; with 2 or 3 workers its split falls inside a row quad of 512 cells (4352 or 2900).
 */
function threadedGraph(seed: number) {
  const g = new Graph();
  const feeds: Record<string, HostTensor> = {};
  const x = f32(g, feeds, 'x', [66, 40], seed);
  const w = f32(g, feeds, 'w', [40, 123], seed + 1);
  const bias = f32(g, feeds, 'bias', [123], seed + 2);
  const pt = f32(g, feeds, 'pt', [2, 9, 30], seed + 3);
  const v = f32(g, feeds, 'v', [2, 9, 61], seed + 4);
  const dense = P.unary('tanh', P.binary('add', P.matmul(x, w), P.broadcastTo(bias, [66, 123])));
  // A read transposed, 2 batches of 32·64 cells
  const gram = P.binary('mul', P.matmul(P.transpose(pt, [0, 2, 1]), v), P.constant(g, 0.25));
  g.outputs = [dense.id, gram.id];
  return { g, feeds };
}

let runner: CompiledRunner | undefined;
beforeAll(async () => {
  if ((await availableBackends()).includes('webasm')) runner = await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm' });
});
afterAll(() => runner?.destroy());

/**
 * Runs `g` (a NaN-poisoned run, then the checked one) and checks that it ran as one pipeline, on
 * worker threads or not, with every product a step of it assembled as our module, once: the
 * pipeline is retained, so a second pair of runs assembles nothing more.
 */
async function expectOnePipeline(r: CompiledRunner, g: Graph, feeds: Record<string, HostTensor>, products: number, threaded: boolean): Promise<void> {
  const before = productModulesAssembled();
  for (let pass = 0; pass < 2; pass++) {
    await expectMatchesReference(r, g, feeds);
    expect(r.stats.wasmProducts).toBe(true);
    expect(r.stats.segments).toEqual({ pipelines: 1, standalone: 0, threaded: threaded ? 1 : 0 });
    expect(r.stats.executor).toBe(threaded ? 'fused-threaded' : 'fused-sync');
    expect(productModulesAssembled() - before).toBe(products);
  }
  expect(r.description).not.toContain('dot-product matmuls');
}

describe.runIf(wasmSimdSupported())('wasm products inside webasm pipelines', () => {
  it('every operand layout, batched, ragged and chained, in one pipeline on the calling thread, matches the reference', async () => {
    if (runner === undefined) return expect.fail('webasm is not available here');
    const { g, feeds } = smallGraph(5);
    const products = productsOf(g);
    expect(products).toHaveLength(5);
    expect(new Set(products.map((s) => s.a))).toEqual(new Set(['packed', 'rows', 'transposed']));
    expect(new Set(products.map((s) => s.b))).toEqual(new Set(['packed', 'rows']));
    await expectOnePipeline(runner, g, feeds, products.length, false);
  });

  it('a pipeline split between worker threads splits each product by row quads and matches the reference', async () => {
    if (runner === undefined) return expect.fail('webasm is not available here');
    const { g, feeds } = threadedGraph(9);
    const products = productsOf(g);
    expect(products.map((s) => [s.batch * s.mPad * s.nPad, s.a])).toEqual([
      [8704, 'rows'],
      [4096, 'transposed'],
    ]);
    await expectOnePipeline(runner, g, feeds, products.length, true);
  });
});
