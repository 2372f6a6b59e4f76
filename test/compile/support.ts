/**
 * Shared harness for compiled-path tests: the backends present here (the others printed as
 * skipped, with the reason), and a check that runs a graph compiled and on the float64 reference.
 *
 * Poisoning: before the real run, the same compiled graph runs once on NaN-filled feeds, so every
 * resident pipeline buffer holds NaN; an element a kernel fails to write then shows up as NaN.
 * `runSourcesOnHost` additionally executes the emitted kernel sources as plain JavaScript into
 * NaN-filled outputs, checking the sources independently of gpu.js.
 */
import { expect } from 'vitest';
import { compile, type CompileOptions } from '../../compiler/codegen/compile.ts';
import { runProductModule } from '../support/wasm-shape.ts';
import type { WasmMatmulShape } from '../../compiler/codegen/wasm-matmul.ts';
import type { Graph } from '../../compiler/ir/graph.ts';
import type { NodeId } from '../../compiler/ir/types.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { probeBackend, type ConcreteBackend } from '../../runtime/backend.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { expectClose } from '../support/numeric.ts';

const ALL: readonly ConcreteBackend[] = ['webgpu', 'headlessgl', 'webasm', 'cpu'];
/** The backends these tests run on when present; webgpu/headlessgl are probed and reported. */
const TESTED: readonly ConcreteBackend[] = ['webasm', 'cpu'];

let available: Promise<ConcreteBackend[]> | undefined;

export function availableBackends(): Promise<ConcreteBackend[]> {
  available ??= (async () => {
    const ok: ConcreteBackend[] = [];
    for (const b of ALL) {
      const gap = await probeBackend(b);
      if (gap !== undefined) console.log(`[compile tests] skipping backend ${b}: ${gap}`);
      else if (TESTED.includes(b)) ok.push(b);
      else console.log(`[compile tests] backend ${b} works here but this suite runs only ${TESTED.join(', ')}`);
    }
    return ok;
  })();
  return available;
}

export async function openRunners(): Promise<CompiledRunner[]> {
  const runners: CompiledRunner[] = [];
  const backends = await availableBackends();
  for (const b of backends) runners.push(await CompiledRunner.create({ backend: b }));
  // the exact-i32 index path (used beyond 2^24 elements), exercised at small sizes
  if (backends.includes('webasm')) runners.push(await CompiledRunner.create({ backend: 'webasm', indices: 'wide' }));
  // packed matmuls with the wasm SIMD product ('auto' from PACKED_MATMUL_MIN_MACS on), at small sizes
  if (backends.includes('webasm')) runners.push(await CompiledRunner.create({ backend: 'webasm', matmul: 'wasm' }));
  if (runners.length === 0) throw new Error('no gpu.js backend to test on (webasm and cpu both failed their probes)');
  return runners;
}

function poisoned(feeds: Record<string, HostTensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(feeds)) {
    // i32 feeds are indices; keep them valid so only f32 data is poisoned.
    out[k] = t.dtype === 'f32' ? { ...t, data: new Float32Array(t.data.length).fill(NaN) } : t;
  }
  return out;
}

export const RTOL = 1e-4;
export const ATOL = 1e-5;

/** Runs `graph` compiled (after a poisoning run) and on the reference; compares every output. */
export async function expectMatchesReference(
  runner: CompiledRunner,
  graph: Graph,
  feeds: Record<string, HostTensor>,
  wanted: readonly NodeId[] = graph.outputs,
  tol: { rtol?: number; atol?: number } = {},
): Promise<void> {
  const ref = evaluate(graph, feeds, wanted);
  await runner.run(graph, poisoned(feeds), wanted);
  const got = await runner.run(graph, feeds, wanted);
  ref.forEach((r, i) => {
    const g = got[i]!;
    expect(g.shape).toEqual(r.shape);
    expect(g.dtype).toBe(r.dtype);
    if (r.dtype === 'i32') expect(Array.from(g.data)).toEqual(Array.from(r.data));
    else expectClose(g.data, r.data, tol.rtol ?? RTOL, tol.atol ?? ATOL, `${runner.description} output ${i} (%${wanted[i]})`);
  });
  runSourcesOnHost(graph, feeds, wanted, ref, tol);
}

/**
 * Executes the emitted sources as JavaScript, one call per thread, into NaN-filled outputs: with
 * one dot product per thread, and with packed matmuls (the gpu.js `Array(4)` product, and the
 * wasm SIMD product, which runs as its module, with exp written out as on webasm).
 */
export function runSourcesOnHost(
  graph: Graph,
  feeds: Record<string, HostTensor>,
  wanted: readonly NodeId[],
  ref: readonly HostTensor[],
  tol: { rtol?: number; atol?: number } = {},
): void {
  for (const matmul of ['dot', 'packed'] as const) runCompiledOnHost(graph, feeds, wanted, ref, tol, { matmul });
  // as the webasm runner compiles: wasm products, exp written out
  runCompiledOnHost(graph, feeds, wanted, ref, tol, { matmul: 'wasm', inlineExp: true });
}

/** The module's product equals its kernel source's, cell by cell, wherever the source is not padding. */
function expectProductCells(fromModule: ArrayLike<number>, fromSource: ArrayLike<number>, s: WasmMatmulShape): void {
  for (let z = 0; z < s.batch; z++)
    for (let i = 0; i < s.m; i++)
      for (let j = 0; j < s.n; j++) {
        const at = (z * s.mPad + i) * s.nPad + j;
        const [got, want] = [fromModule[at]!, fromSource[at]!];
        if (!(Math.abs(got - want) <= 1e-5 * (1 + Math.abs(want)))) expect.fail(`wasm product module C[${z}][${i}][${j}] = ${got}, its source computes ${want}`);
      }
}

/** One compilation of `graph` (with `options`) executed on the host as above, against `ref`. */
export function runCompiledOnHost(
  graph: Graph,
  feeds: Record<string, HostTensor>,
  wanted: readonly NodeId[],
  ref: readonly HostTensor[],
  tol: { rtol?: number; atol?: number },
  options: CompileOptions,
): void {
  const c = compile(graph, wanted, options);
  const bufs = new Map<string, ArrayLike<number>>();
  for (const [id, source] of c.plan.buffers) {
    if (source === 'kernel') continue;
    const n = graph.node(id);
    if (n.op === 'input') bufs.set(`%${id}`, feeds[n.name]!.data);
    else bufs.set(`%${id}`, evaluate(graph, feeds, [id])[0]!.data);
  }
  for (const k of c.kernels) {
    if (k.native !== undefined) {
      // the module, as two pipeline workers split its cells (gpu.js's split: halves rounded to 4)
      const [a, b] = k.params.map((p) => bufs.get(p)!);
      const half = Math.ceil(k.size / 2) & ~3;
      const fromModule = runProductModule(k.native, a!, b!, [[0, half], [half, k.size]]);
      bufs.set(`${k.output}#module`, fromModule);
    }
    const fn = new Function(`return ${k.source}`)() as (...a: unknown[]) => number | number[];
    const out = new Float64Array(k.size).fill(NaN);
    const args = [...k.params.map((p) => bufs.get(p)!), ...(k.scalars ?? [])];
    const [cols, rows = 1] = k.dims;
    for (let f = 0; f < k.size / k.components; f++) {
      const thread = { x: f % cols!, y: Math.floor(f / cols!) % rows, z: Math.floor(f / (cols! * rows)) };
      const v = fn.apply({ thread }, args);
      if (typeof v === 'number') out[f] = v;
      else v.forEach((x, i) => (out[f * k.components + i] = x));
    }
    if (k.native !== undefined) expectProductCells(bufs.get(`${k.output}#module`)!, out, k.native);
    bufs.set(k.output, out);
  }
  wanted.forEach((id, i) => {
    const data = bufs.get(`%${id}`)!;
    expectClose(data, ref[i]!.data, tol.rtol ?? RTOL, tol.atol ?? ATOL, `host-run kernel sources (${JSON.stringify(options)}), output %${id}`);
  });
}

/** Deterministic non-degenerate values in ±[lo, hi]: never zero, never all equal. */
export function values(n: number, seed: number, lo = 0.1, hi = 1): Float64Array {
  const out = new Float64Array(n);
  let s = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    const u = ((s >>> 8) & 0xffff) / 0x10000;
    out[i] = (i % 3 === 1 ? -1 : 1) * (lo + (hi - lo) * u);
  }
  return out;
}
