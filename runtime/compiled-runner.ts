/**
 * Runs graphs through the compiler: plan → gpu.js kernel sources → one gpu.js pipeline per
 * compiled graph (intermediates stay resident, one readback), or kernel by kernel where a
 * pipeline cannot be built. Compilation is cached per graph identity and wanted outputs; a graph
 * that grew since (graphs are append-only) compiles again.
 *
 * Host work per run: feeds are checked and uploaded as Float32Array, `random` nodes are drawn
 * with compiler/ir/random.ts (bit-identical to the reference evaluator), outputs are read back.
 */
import { GPU } from 'gpu.js';
import { compile, FLOAT32_EXACT_INT, type CompiledGraph } from '../compiler/codegen/compile.ts';
import type { BufferKey } from '../compiler/codegen/kernels.ts';
import { flattenResult } from '../compiler/codegen/templates/kernel-source.ts';
import type { Graph } from '../compiler/ir/graph.ts';
import { normalAt, uniformAt } from '../compiler/ir/random.ts';
import type { NodeId } from '../compiler/ir/types.ts';
import { formatShape, sizeOf } from '../compiler/ir/types.ts';
import type { HostTensor } from '../compiler/ir/host-tensor.ts';
import { assertRanOn, maxKernelReads, openBackend, type Backend, type BackendName, type KernelIntrospection } from './backend.ts';
import { planMemory, type MemoryPlan } from './memory-plan.ts';
import type { Feeds, GraphRunner } from './runner.ts';

export type ExecutorKind = 'fused-threaded' | 'fused-sync' | 'fused-encoder' | 'generic' | 'kernel-by-kernel';

export interface RunnerStats {
  readonly backend: string;
  /** What executed the last run. */
  readonly executor: ExecutorKind | 'none';
  /** Why the last compiled graph ran kernel by kernel instead of as one pipeline. */
  readonly pipelineFallback?: string;
  readonly compiledGraphs: number;
  readonly kernels: number;
  /** Memory plan of the last run's graph. */
  readonly buffers: number;
  readonly bufferBytes: number;
  readonly hostBytes: number;
  readonly peakBytes: number;
  readonly runs: number;
}

export interface CompiledRunnerOptions {
  readonly backend?: BackendName;
  /** Use gpu.createPipeline (default true); false runs kernel by kernel. */
  readonly pipeline?: boolean;
  /**
   * Called after each kernel with its wall time, when running kernel by kernel (`pipeline:
   * false`): a per-kernel profile. Waiting on each kernel serialises the run, so totals are
   * slower than a pipelined run's.
   */
  readonly onKernel?: (name: string, ms: number) => void;
  /**
   * Exact i32 indices in every kernel (`'wide'`), not only in kernels touching more than 2^24
   * elements (`'auto'`, the default). For testing the wide code path at small sizes.
   */
  readonly indices?: 'auto' | 'wide';
}

type KernelFn = ((...args: unknown[]) => Promise<Float32Array>) & KernelIntrospection;
interface PipelineFn {
  (...args: Float32Array[]): Promise<Float32Array[]>;
  executorKind?: string;
  backend?: string;
  fallbackReason?: string | null;
  destroy?: () => void;
}

interface Executable {
  readonly compiled: CompiledGraph;
  readonly memory: MemoryPlan;
  readonly kernels: readonly KernelFn[];
  /** Host buffers the kernels read, in pipeline-argument order. */
  readonly hostArgs: readonly BufferKey[];
  /** Distinct kernel-written buffers among the wanted outputs, in pipeline-result order. */
  readonly kernelOutputs: readonly BufferKey[];
  readonly constants: ReadonlyMap<BufferKey, Float32Array>;
  pipeline?: PipelineFn;
  pipelineFallback?: string;
  checked: boolean;
}

function toFloat32(t: HostTensor, name: string): Float32Array {
  if (t.dtype === 'i32') {
    for (let i = 0; i < t.data.length; i++) {
      if (Math.abs(t.data[i]!) > FLOAT32_EXACT_INT) {
        throw new RangeError(`input '${name}': i32 value ${t.data[i]} is beyond ±2^24, which float32 kernels cannot carry exactly`);
      }
    }
  }
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
}

/** 2-D launches (matmul groups) come back from gpu.js as one array per row; kernels read flat. */
function flatOutput(out: unknown, size: number): Float32Array {
  return out instanceof Float32Array ? out : flattenResult(out, size);
}

export class CompiledRunner implements GraphRunner {
  private readonly cache = new WeakMap<Graph, Map<string, Executable>>();
  private compiledCount = 0;
  private runs = 0;
  private last?: { exe: Executable; executor: ExecutorKind };

  private constructor(
    readonly backend: Backend,
    private readonly usePipeline: boolean,
    private readonly onKernel?: (name: string, ms: number) => void,
    private readonly wide = false,
  ) {}

  static async create(options: CompiledRunnerOptions = {}): Promise<CompiledRunner> {
    const backend = await openBackend(options.backend ?? 'auto');
    return new CompiledRunner(backend, options.pipeline ?? true, options.onKernel, options.indices === 'wide');
  }

  get description(): string {
    const executor = this.last?.executor;
    return `gpu.js ${this.backend.name}${executor ? ` (${executor})` : ''}${this.wide ? ' [wide indices]' : ''}`;
  }

  get stats(): RunnerStats {
    const exe = this.last?.exe;
    return {
      backend: this.backend.name,
      executor: this.last?.executor ?? 'none',
      ...(exe?.pipelineFallback ? { pipelineFallback: exe.pipelineFallback } : {}),
      compiledGraphs: this.compiledCount,
      kernels: exe?.kernels.length ?? 0,
      buffers: exe?.memory.slots.length ?? 0,
      bufferBytes: exe?.memory.slotBytes ?? 0,
      hostBytes: exe?.memory.hostBytes ?? 0,
      peakBytes: exe?.memory.peakBytes ?? 0,
      runs: this.runs,
    };
  }

  /** The compiled form of `graph` (plan, kernel sources, memory plan), compiling it if needed. */
  compiled(graph: Graph, wanted: readonly NodeId[] = graph.outputs): { compiled: CompiledGraph; memory: MemoryPlan } {
    return this.executable(graph, wanted);
  }

  private executable(graph: Graph, wanted: readonly NodeId[]): Executable {
    let perGraph = this.cache.get(graph);
    if (perGraph === undefined) {
      perGraph = new Map();
      this.cache.set(graph, perGraph);
    }
    const key = `${graph.nodes.length}|${wanted.join(',')}`;
    const hit = perGraph.get(key);
    if (hit !== undefined) return hit;
    // 2-D matmul launches chain as flat buffers only in the webasm pipeline
    const compiled = compile(graph, wanted, { grid: this.backend.name === 'webasm', wide: this.wide, maxReads: maxKernelReads(this.backend.name) });
    const gpu = this.backend.gpu;
    const kernels = compiled.kernels.map(
      (k) =>
        gpu.createKernel(k.source, {
          output: [...k.dims],
          asyncMode: true,
          loopMaxIterations: Math.max(1000, k.loopMax + 1),
          tactic: 'precision',
        } as Parameters<GPU['createKernel']>[1]) as unknown as KernelFn,
    );
    const produced = new Set(compiled.kernels.map((k) => k.output));
    const hostArgs = [...new Set(compiled.kernels.flatMap((k) => k.params.filter((p) => !produced.has(p))))];
    const kernelOutputs = [...new Set(compiled.plan.wanted.map((id) => `%${id}`).filter((k) => produced.has(k)))];
    const constants = new Map<BufferKey, Float32Array>();
    for (const [id, source] of compiled.plan.buffers) {
      const n = graph.node(id);
      if (source === 'constant' && n.op === 'const') constants.set(`%${id}`, Float32Array.from(n.values));
    }
    const exe: Executable = { compiled, memory: planMemory(compiled), kernels, hostArgs, kernelOutputs, constants, checked: false };
    if (this.usePipeline && kernels.length > 0) this.buildPipeline(exe);
    else if (this.usePipeline) exe.pipelineFallback = 'no kernels to run';
    perGraph.set(key, exe);
    this.compiledCount++;
    return exe;
  }

  private buildPipeline(exe: Executable): void {
    const { compiled, kernels, hostArgs, kernelOutputs } = exe;
    const specs = compiled.kernels;
    // Records the kernel calls once: gpu.js traces this with opaque handles for the arguments.
    const record = (args: unknown[]) => {
      const env = new Map<BufferKey, unknown>();
      hostArgs.forEach((k, i) => env.set(k, args[i]));
      specs.forEach((spec, i) => {
        env.set(spec.output, kernels[i]!(...spec.params.map((p) => env.get(p))));
      });
      return kernelOutputs.map((k) => env.get(k));
    };
    // gpu.js reads the orchestration function's declared parameters, so they are spelled out.
    const names = hostArgs.map((_, i) => `a${i}`).join(', ');
    const orchestrate = new Function('record', `return function (${names}) { return record([${names}]); };`)(record) as (
      ...a: unknown[]
    ) => unknown;
    try {
      const gpu = this.backend.gpu as unknown as { createPipeline(fn: (...a: unknown[]) => unknown): PipelineFn };
      exe.pipeline = gpu.createPipeline(orchestrate);
    } catch (e) {
      exe.pipelineFallback = `gpu.createPipeline failed: ${(e as Error).message}`;
    }
  }

  private hostBuffers(exe: Executable, graph: Graph, feeds: Feeds): Map<BufferKey, Float32Array> {
    const out = new Map<BufferKey, Float32Array>();
    for (const [id, source] of exe.compiled.plan.buffers) {
      const n = graph.node(id);
      const key = `%${id}`;
      if (source === 'input' && n.op === 'input') {
        const t = feeds[n.name];
        if (t === undefined) throw new Error(`no value fed for input '${n.name}'`);
        if (t.shape.length !== n.shape.length || t.shape.some((d, i) => d !== n.shape[i])) {
          throw new Error(`input '${n.name}' expects shape ${formatShape(n.shape)}, got ${formatShape(t.shape)}`);
        }
        if (t.dtype !== n.dtype) throw new Error(`input '${n.name}' expects ${n.dtype}, got ${t.dtype}`);
        out.set(key, toFloat32(t, n.name));
      } else if (source === 'constant') {
        out.set(key, exe.constants.get(key)!);
      } else if (source === 'random' && n.op === 'random') {
        const s = graph.node(n.seed);
        const seed = s.op === 'const' ? s.values[0]! : s.op === 'input' ? feeds[s.name]?.data[0] : undefined;
        if (seed === undefined) throw new Error(`random %${id}: no value fed for its seed`);
        const draw = n.dist === 'normal' ? normalAt : uniformAt;
        const values = new Float32Array(sizeOf(n.shape));
        for (let i = 0; i < values.length; i++) values[i] = draw(seed, n.salt, i);
        out.set(key, values);
      }
    }
    return out;
  }

  private check(exe: Executable, executor: ExecutorKind): void {
    if (exe.checked) return;
    const want = this.backend.name;
    if (executor === 'kernel-by-kernel') {
      exe.kernels.forEach((k, i) => {
        assertRanOn(want, `kernel ${exe.compiled.kernels[i]!.name}`, k.kernel?.constructor.mode, k.kernel?.fallbackReason);
      });
    } else {
      const p = exe.pipeline!;
      assertRanOn(want, 'pipeline', p.backend, want === 'webasm' && p.executorKind === 'generic' ? p.fallbackReason : null);
    }
    exe.checked = true;
  }

  async run(graph: Graph, feeds: Feeds, wanted: readonly NodeId[] = graph.outputs): Promise<HostTensor[]> {
    const exe = this.executable(graph, wanted);
    const host = this.hostBuffers(exe, graph, feeds);
    const results = new Map<BufferKey, Float32Array>(host);
    let executor: ExecutorKind;
    let outs: Float32Array[] | undefined;
    if (exe.pipeline !== undefined && !exe.checked) {
      // The pipeline is traced and built on its first call; if gpu.js cannot take the plan, say
      // why (stats.pipelineFallback) and run kernel by kernel from then on.
      try {
        outs = await exe.pipeline(...exe.hostArgs.map((k) => host.get(k)!));
      } catch (e) {
        exe.pipelineFallback = `pipeline failed: ${(e as Error).message}`;
        exe.pipeline.destroy?.();
        exe.pipeline = undefined;
      }
    } else if (exe.pipeline !== undefined) {
      outs = await exe.pipeline(...exe.hostArgs.map((k) => host.get(k)!));
    }
    if (exe.pipeline !== undefined && outs !== undefined) {
      exe.kernelOutputs.forEach((k, i) => results.set(k, flatOutput(outs[i], exe.compiled.buffers.get(k)!.size)));
      executor = (exe.pipeline.executorKind as ExecutorKind | undefined) ?? 'generic';
    } else {
      executor = 'kernel-by-kernel';
      const specs = exe.compiled.kernels;
      for (let i = 0; i < specs.length; i++) {
        const spec = specs[i]!;
        const started = this.onKernel === undefined ? 0 : performance.now();
        const out = await exe.kernels[i]!(...spec.params.map((p) => results.get(p)!));
        results.set(spec.output, flatOutput(out, spec.size));
        this.onKernel?.(spec.name, performance.now() - started);
        for (const dead of exe.memory.freeAfter[i]!) results.delete(dead);
      }
    }
    this.check(exe, executor);
    this.runs++;
    this.last = { exe, executor };
    return wanted.map((id) => {
      const n = graph.node(id);
      const size = sizeOf(n.shape);
      const values = size === 0 ? new Float32Array(0) : results.get(`%${id}`);
      if (values === undefined) throw new Error(`internal: output %${id} was not computed`);
      if (n.dtype === 'i32') return { shape: n.shape, dtype: 'i32', data: Int32Array.from(values, (v) => Math.round(v)) };
      // A fresh copy: gpu.js may hand back a view of memory the next run reuses.
      return { shape: n.shape, dtype: 'f32', data: Float32Array.from(values) };
    });
  }

  destroy(): void {
    this.backend.destroy();
  }
}

/** A runner for the compiled path; `backend` defaults to the best one that works here. */
export function createRunner(options: CompiledRunnerOptions = {}): Promise<CompiledRunner> {
  return CompiledRunner.create(options);
}
