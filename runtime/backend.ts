/**
 * gpu.js backend selection. `auto` takes the best backend that actually runs a probe kernel here
 * (webgpu → headlessgl → webasm → cpu); an explicitly requested backend that cannot run throws a
 * BackendUnavailableError naming what is missing — never a silent fallback. Every kernel built
 * later is checked the same way (`assertRanOn`).
 */
import { createRequire } from 'node:module';
import { GPU } from 'gpu.js';

export type BackendName = 'auto' | 'webgpu' | 'headlessgl' | 'webasm' | 'cpu';
export type ConcreteBackend = Exclude<BackendName, 'auto'>;

export const BACKEND_PREFERENCE: readonly ConcreteBackend[] = ['webgpu', 'headlessgl', 'webasm', 'cpu'];

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
  isHeadlessGLSupported?: boolean;
  isWebAssemblySupported?: boolean;
}
export interface KernelIntrospection {
  kernel?: { constructor: { mode?: string }; fallbackReason?: string | null };
}

function glibcVersion(): string | undefined {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime;
}

function canResolve(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/** Why `name` cannot be used here, or undefined when the platform claims support. */
async function platformGap(name: ConcreteBackend): Promise<string | undefined> {
  const statics = GPU as unknown as GpuStatics;
  switch (name) {
    case 'webgpu': {
      const glibc = glibcVersion();
      const oldGlibc = glibc !== undefined && Number(glibc.split('.')[1]) < 38 && glibc.startsWith('2.');
      let available = false;
      try {
        available = (await statics.isWebGPUAvailable?.()) === true;
      } catch {
        available = false;
      }
      if (available) return undefined;
      return (
        'webgpu: no WebGPU adapter answered; it needs the `webgpu` package (dawn.node) loadable, which needs glibc >= 2.38' +
        (glibc !== undefined ? ` (this machine has glibc ${glibc}${oldGlibc ? ', too old' : ''})` : '') +
        ', and a GPU adapter'
      );
    }
    case 'headlessgl':
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

/** Throws when the kernel (or pipeline backend) that runs is not the one requested. */
export function assertRanOn(expected: ConcreteBackend, what: string, mode: string | undefined, fallbackReason?: string | null): void {
  if (fallbackReason) {
    throw new BackendUnavailableError(`${what} fell back from ${expected}: ${fallbackReason}`);
  }
  if (mode !== expected) {
    throw new BackendUnavailableError(`${what} ran on ${mode ?? 'an unknown backend'}, not the requested ${expected}`);
  }
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
    const mode = info?.constructor.mode;
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

/** Opens a backend; `auto` picks the first of BACKEND_PREFERENCE whose probe passes. */
export async function openBackend(requested: BackendName = 'auto'): Promise<Backend> {
  const candidates = requested === 'auto' ? BACKEND_PREFERENCE : [requested];
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
