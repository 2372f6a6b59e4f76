/**
 * gpu.js backend selection, in Node and in a browser page. `auto` takes the first backend of this
 * environment's preference list that actually runs a probe kernel here — in a page webgpu → webgl2
 * → webgl → webasm → cpu, in Node webgpu → headlessgl → webasm → cpu — and reports which one it
 * took (`Backend.name`). An explicitly requested backend that cannot run throws a
 * BackendUnavailableError naming what is missing — never a silent fallback. Every kernel built
 * later is checked the same way (`assertRanOn`).
 *
 * This file is part of the browser bundle: it imports no Node built-in and reads Node globals
 * (`process`) only after checking that they exist.
 */
import { GPU } from 'gpu.js';

export type ConcreteBackend = 'webgpu' | 'webgl2' | 'webgl' | 'headlessgl' | 'webasm' | 'cpu';
export type BackendName = 'auto' | ConcreteBackend;

export const CONCRETE_BACKENDS: readonly ConcreteBackend[] = ['webgpu', 'webgl2', 'webgl', 'headlessgl', 'webasm', 'cpu'];

/** `auto`'s order in a browser page. */
export const BROWSER_PREFERENCE: readonly ConcreteBackend[] = ['webgpu', 'webgl2', 'webgl', 'webasm', 'cpu'];
/** `auto`'s order in Node (WebGL exists there only through headless-gl). */
export const NODE_PREFERENCE: readonly ConcreteBackend[] = ['webgpu', 'headlessgl', 'webasm', 'cpu'];

/**
 * Most buffers one webgpu kernel may read: WebGPU guarantees 8 storage buffers per shader stage
 * (maxStorageBuffersPerShaderStage), gpu.js binds each input and the output as one and requests
 * no higher limit (SwiftShader's adapter offers 10, so even raising it would not fit every fused
 * kernel). The compiler splits wider fusions for webgpu (planKernels' maxReads).
 */
export const WEBGPU_MAX_KERNEL_READS = 7;

/** The planner's read bound for kernels on `backend` (undefined: unbounded). */
export function maxKernelReads(backend: ConcreteBackend): number | undefined {
  return backend === 'webgpu' ? WEBGPU_MAX_KERNEL_READS : undefined;
}

export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
}

export interface Backend {
  readonly name: ConcreteBackend;
  readonly requested: BackendName;
  readonly gpu: GPU;
  /** Whether kernels run under the async contract with worker threads (webasm). */
  readonly threads: boolean;
  destroy(): void;
}

// gpu.js's typings miss the introspection API of 2.24; this is the part we use.
interface GpuStatics {
  isWebGPUAvailable?: () => Promise<boolean>;
  isWebGPUSupported?: boolean;
  isWebGL2Supported?: boolean;
  isWebGLSupported?: boolean;
  isHeadlessGLSupported?: boolean;
  isWebAssemblySupported?: boolean;
}
export interface KernelIntrospection {
  kernel?: { constructor: { mode?: string }; fallbackReason?: string | null };
}

/** The part of Node's `process` read here; absent in a page. */
interface NodeProcessLike {
  versions?: { node?: string };
  report?: { getReport(): unknown };
  getBuiltinModule?: (id: string) => unknown;
}

function nodeProcess(): NodeProcessLike | undefined {
  const p = (globalThis as { process?: NodeProcessLike }).process;
  return typeof p?.versions?.node === 'string' ? p : undefined;
}

/** True in Node (and Node-like runtimes), false in a browser page or worker. */
export function isNodeRuntime(): boolean {
  return nodeProcess() !== undefined;
}

/** The order `auto` tries backends in this runtime. */
export function backendPreference(): readonly ConcreteBackend[] {
  return isNodeRuntime() ? NODE_PREFERENCE : BROWSER_PREFERENCE;
}

function glibcVersion(): string | undefined {
  const report = nodeProcess()?.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime;
}

/** Whether Node can resolve `pkg` from here (false outside Node). */
function canResolve(pkg: string): boolean {
  // process.getBuiltinModule avoids a static `node:module` import, which would break the bundle.
  const mod = nodeProcess()?.getBuiltinModule?.('node:module') as
    | { createRequire(from: string): { resolve(id: string): string } }
    | undefined;
  if (mod === undefined) return false;
  try {
    mod.createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

async function webGpuGap(): Promise<string | undefined> {
  const statics = GPU as unknown as GpuStatics;
  let available = false;
  try {
    available = (await statics.isWebGPUAvailable?.()) === true;
  } catch {
    available = false;
  }
  if (available) return undefined;
  if (!isNodeRuntime()) {
    const hasApi = typeof (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu !== 'undefined';
    return hasApi
      ? 'webgpu: navigator.gpu exists but no adapter answered (headless Chromium needs --enable-unsafe-webgpu, and a GPU or SwiftShader)'
      : 'webgpu: this browser has no navigator.gpu (WebGPU is off or unsupported; Chromium needs a secure context, http://127.0.0.1 counts)';
  }
  const glibc = glibcVersion();
  const oldGlibc = glibc !== undefined && Number(glibc.split('.')[1]) < 38 && glibc.startsWith('2.');
  return (
    'webgpu: no WebGPU adapter answered; it needs the `webgpu` package (dawn.node) loadable, which needs glibc >= 2.38' +
    (glibc !== undefined ? ` (this machine has glibc ${glibc}${oldGlibc ? ', too old' : ''})` : '') +
    ', and a GPU adapter'
  );
}

/** Why `name` cannot be used here, or undefined when the platform claims support. */
async function platformGap(name: ConcreteBackend): Promise<string | undefined> {
  const statics = GPU as unknown as GpuStatics;
  const node = isNodeRuntime();
  switch (name) {
    case 'webgpu':
      return webGpuGap();
    case 'webgl2':
    case 'webgl': {
      if (node) return `${name}: needs a browser page (in Node, WebGL runs through the headlessgl backend)`;
      const supported = name === 'webgl2' ? statics.isWebGL2Supported : statics.isWebGLSupported;
      return supported === true ? undefined : `${name}: this page cannot create a ${name === 'webgl2' ? 'WebGL2' : 'WebGL'} context with float textures`;
    }
    case 'headlessgl':
      if (!node) return 'headlessgl: Node only (in a browser page use webgl2 or webgl)';
      if (statics.isHeadlessGLSupported === true) return undefined;
      return canResolve('gl')
        ? 'headlessgl: the `gl` package is installed but could not create a context (it needs a display, e.g. xvfb-run)'
        : 'headlessgl: the optional `gl` package is not installed (and it needs a display, e.g. xvfb-run)';
    case 'webasm':
      return statics.isWebAssemblySupported === true ? undefined : 'webasm: WebAssembly is not supported by this runtime';
    case 'cpu':
      return undefined;
  }
}

/** gpu.js reports every WebGL-family kernel (webgl, webgl2, headlessgl) as mode `gpu`. */
const GL_FAMILY: ReadonlySet<ConcreteBackend> = new Set(['webgl', 'webgl2', 'headlessgl']);

/**
 * Whether a kernel or pipeline that reports `mode` ran on `expected`. For the WebGL family this
 * accepts `gpu`: a GPU opened with mode webgl2 builds only WebGL2 kernels (its fallback is the
 * CPU kernel, mode `cpu`, with a fallbackReason), and probeKernel checks the exact class.
 */
function ranOn(expected: ConcreteBackend, mode: string | undefined): boolean {
  return mode === expected || (mode === 'gpu' && GL_FAMILY.has(expected));
}

/** Throws when the kernel (or pipeline backend) that runs is not the one requested. */
export function assertRanOn(expected: ConcreteBackend, what: string, mode: string | undefined, fallbackReason?: string | null): void {
  if (fallbackReason) {
    throw new BackendUnavailableError(`${what} fell back from ${expected}: ${fallbackReason}`);
  }
  if (!ranOn(expected, mode)) {
    throw new BackendUnavailableError(`${what} ran on ${mode ?? 'an unknown backend'}, not the requested ${expected}`);
  }
}

// gpu.js exports its kernel classes; the WebGL family is told apart by class, not by mode.
type KernelClass = abstract new (...args: never[]) => unknown;
function kernelClassName(kernel: unknown): string | undefined {
  const classes = GPU as unknown as Record<string, KernelClass | undefined>;
  for (const [name, cls] of [['headlessgl', 'HeadlessGLKernel'], ['webgl2', 'WebGL2Kernel'], ['webgl', 'WebGLKernel']] as const) {
    const c = classes[cls];
    if (c !== undefined && kernel instanceof c) return name;
  }
  return undefined;
}

/** Builds and runs a tiny kernel on `name`; returns the reason it failed, or undefined. */
async function probeKernel(name: ConcreteBackend): Promise<string | undefined> {
  let gpu: GPU | undefined;
  try {
    gpu = new GPU({ mode: name } as ConstructorParameters<typeof GPU>[0]);
    const k = gpu.createKernel(`function (a) { return a[this.thread.x] * 2.0 + 1.0; }`, { output: [4], asyncMode: true });
    const out = (await (k as unknown as (a: Float32Array) => Promise<Float32Array>)(new Float32Array([1, 2, 3, 4]))) as ArrayLike<number>;
    const info = (k as unknown as KernelIntrospection).kernel;
    if (info?.fallbackReason) return `${name}: probe kernel fell back (${info.fallbackReason})`;
    const mode = info?.constructor.mode === 'gpu' ? kernelClassName(info) : info?.constructor.mode;
    if (mode !== name) return `${name}: probe kernel ran on ${mode ?? 'unknown'}`;
    if (out[3] !== 9) return `${name}: probe kernel computed a wrong value (${out[3]} instead of 9)`;
    return undefined;
  } catch (e) {
    return `${name}: ${(e as Error).message}`;
  } finally {
    gpu?.destroy();
  }
}

/** Why `name` is unusable here, or undefined when a probe kernel ran on it. */
export async function probeBackend(name: ConcreteBackend): Promise<string | undefined> {
  return (await platformGap(name)) ?? (await probeKernel(name));
}

function isBackendName(name: string): name is BackendName {
  return name === 'auto' || (CONCRETE_BACKENDS as readonly string[]).includes(name);
}

/** Opens a backend; `auto` picks the first of `backendPreference()` whose probe passes. */
export async function openBackend(requested: BackendName = 'auto'): Promise<Backend> {
  if (!isBackendName(requested)) {
    throw new BackendUnavailableError(`unknown backend '${String(requested)}' (expected one of auto, ${CONCRETE_BACKENDS.join(', ')})`);
  }
  const candidates = requested === 'auto' ? backendPreference() : [requested];
  const reasons: string[] = [];
  for (const name of candidates) {
    const gap = await probeBackend(name);
    if (gap !== undefined) {
      reasons.push(gap);
      continue;
    }
    const gpu = new GPU({ mode: name } as ConstructorParameters<typeof GPU>[0]);
    return { name, requested, gpu, threads: name === 'webasm', destroy: () => gpu.destroy() };
  }
  throw new BackendUnavailableError(
    requested === 'auto' ? `no gpu.js backend works here:\n  ${reasons.join('\n  ')}` : `backend '${requested}' is unavailable: ${reasons[0]}`,
  );
}
