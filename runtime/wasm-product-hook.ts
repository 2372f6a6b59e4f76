/**
 * Puts our WebAssembly SIMD matmul product (compiler/codegen/wasm-matmul.ts) inside gpu.js's
 * fused webasm pipeline. gpu.js assembles one wasm module per kernel (and per pipeline step) in
 * `WebAssemblyKernel.prototype._assembleModule(layout, cells, shared)`, from the byte offsets it
 * laid out for the kernel's arguments and output; the module exports `run(start, end, seed)` over
 * output cells, and the pipeline's worker threads each call it on their own cell range. For a
 * kernel whose source carries a product marker (`productSource`), this hook returns our module,
 * built against the same offsets and memory limits, instead of gpu.js's. Everything else (layout,
 * worker threads, barriers, readback) stays gpu.js's, so the product chains with the kernels
 * around it like any step.
 *
 * This leans on gpu.js 2.24's internal module contract, which package.json pins. `install`
 * checks the parts it uses and reports what is missing; the runtime then writes every matmul as a
 * gpu.js dot-product kernel and says so (`RunnerStats.matmulProducts`), never silently.
 */
import * as gpuModule from 'gpu.js';
import { productModule, productShapeOf } from '../compiler/codegen/wasm-matmul.ts';

const PAGE_BYTES = 65536;

interface ArgumentRegion {
  readonly offset: number;
}
interface ModuleLayout {
  readonly arrays: Readonly<Record<string, ArgumentRegion | undefined>>;
  readonly outputOffset: number;
  /** Set by the pipeline executor: the whole shared memory's extent. */
  readonly totalBytes?: number;
}
interface AssembledModule {
  readonly bytes: Uint8Array;
  readonly initial: number;
  readonly maximum: number;
}
interface WebAssemblyKernelLike {
  readonly source: unknown;
  readonly argumentNames: readonly string[];
  readonly componentCount: number;
  _assembleModule(layout: ModuleLayout, cells: number, shared: boolean): AssembledModule;
}
type Assemble = WebAssemblyKernelLike['_assembleModule'];

let state: { readonly ok: true } | { readonly ok: false; readonly reason: string } | undefined;

/** Products assembled as our module so far (for tests and stats). */
let assembled = 0;
export const productModulesAssembled = (): number => assembled;

/**
 * Installs the hook once per process. Returns undefined when products can run in pipelines, or
 * why not.
 */
export function installProductHook(): string | undefined {
  if (state === undefined) state = install();
  return state.ok ? undefined : state.reason;
}

function install(): { readonly ok: true } | { readonly ok: false; readonly reason: string } {
  const cls = (gpuModule as unknown as Record<string, { prototype?: Partial<WebAssemblyKernelLike> } | undefined>)['WebAssemblyKernel'];
  const proto = cls?.prototype;
  const original = proto?._assembleModule;
  if (proto === undefined || typeof original !== 'function') {
    return { ok: false, reason: 'gpu.js has no WebAssemblyKernel.prototype._assembleModule (the pipeline product needs gpu.js 2.24)' };
  }
  const gpuAssemble = original as Assemble;
  proto._assembleModule = function (this: WebAssemblyKernelLike, layout: ModuleLayout, cells: number, shared: boolean): AssembledModule {
    const shape = typeof this.source === 'string' ? productShapeOf(this.source) : undefined;
    if (shape === undefined) return gpuAssemble.call(this, layout, cells, shared);
    const [a, b] = this.argumentNames.map((n) => layout.arrays[n]?.offset);
    if (a === undefined || b === undefined || this.componentCount !== 1) {
      throw new Error(`wasm product: gpu.js laid out no array regions for its operands (${this.argumentNames.join(', ')})`);
    }
    // the same limits gpu.js gives its own modules, so the pipeline's one memory fits every step
    const totalBytes = layout.totalBytes ?? layout.outputOffset + cells * 4;
    const initial = Math.ceil(totalBytes / PAGE_BYTES) + 16;
    assembled++;
    return { bytes: productModule(shape, { a, b, c: layout.outputOffset }, shared), initial, maximum: Math.max(initial, 4096) };
  };
  return { ok: true };
}
