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
import { compile, FLOAT32_EXACT_INT, type CompiledGraph, type MatmulStrategy } from '../compiler/codegen/compile.ts';
import type { BufferKey, KernelSource } from '../compiler/codegen/kernels.ts';
import { flattenResult } from '../compiler/codegen/flat-output.ts';
import { wasmSimdSupported } from '../compiler/codegen/wasm-matmul.ts';
import type { Graph } from '../compiler/ir/graph.ts';
import { normalAt, uniformAt } from '../compiler/ir/random.ts';
import type { NodeId } from '../compiler/ir/types.ts';
import { formatShape, sizeOf } from '../compiler/ir/types.ts';
import type { HostTensor } from '../compiler/ir/host-tensor.ts';
import { assertRanOn, maxKernelReads, openBackend, type Backend, type BackendName, type KernelIntrospection } from './backend.ts';
import { BYTES_PER_ELEMENT, planMemory, type MemoryPlan } from './memory-plan.ts';
import type { Feeds, GraphRunner } from './runner.ts';
import { installProductHook } from './wasm-product-hook.ts';

/** Threaded pipelines per compiled graph; a graph with more runs them all on the calling thread. */
const MAX_THREADED_PIPELINES = 4;

/**
 * A pipeline built per run that took at least this long on the calling thread gets a worker pool
 * from its next run on. Spawning and ending a pool costs about 50 ms per pipeline (measured: a
 * d 256, L 2048 training step of 111 per-run pipelines went from 6.9 to 12.8 s with every pipeline
 * threaded), and 2 workers save at most half of a segment's time.
 */
export const THREADED_SEGMENT_MIN_MS = 200;

/**
 * Pipelines stay built between runs while together they lay out at most this many bytes; a graph
 * whose pipelines would hold more builds each pipeline just before it runs (`per-run`). The bound
 * is the same for every graph, so two graphs of one model (a training step with the memory
 * schedules and one without) run alike as long as both fit. gpu.js gives each step's output its
 * own region unless shapes match, so pipelines hold several times the memory plan's peak (3.9× for
 * the LSH layer's fwd+bwd at L = 4K and 16K, up to 13× for a training step of several layers at
 * L = 2048). Built per run, a pipeline compiles its modules again every run, runs them unoptimised
 * (V8's baseline tier) and spawns its worker pool again: the LSH layer at 16K took 12.5 s per run
 * that way against 5.0 s kept, and its process peaked higher (1.29 against 1.04 GB RSS: freed wasm
 * memories outlive their runs until the garbage collector reaches them); a 2-layer training step
 * at L = 2048 took 4.5 s against 1.0 s.
 */
const RETAINED_MAX_BYTES = 2 * 2 ** 30;
/** A per-run pipeline holds at most max(the memory plan's peak, this). */
const PER_RUN_PIPELINE_FLOOR_BYTES = 256 * 2 ** 20;

/**
 * Most bytes one pipeline lays out: a wasm32 memory stops at 4 GiB, and gpu.js adds slack pages.
 * A segment that would need more is cut into several pipelines.
 */
const MAX_PIPELINE_BYTES = 2 * 2 ** 30;

/**
 * What happens to a graph's pipelines between runs. Each gpu.js pipeline lays out its own wasm
 * memory (its arguments and every step's output; steps share a buffer only when their shapes
 * match), which the runtime's memory plan does not see. `retained`: every pipeline stays built.
 * `per-run`: the graph is cut into pipelines of at most about the memory plan's peak, each built
 * just before it runs and destroyed after, so only one is alive at a time; for graphs whose
 * pipelines together would hold more than RETAINED_MAX_BYTES.
 */
export type PipelineMemory = 'retained' | 'per-run';

/**
 * How the last run executed; `segmented`: the graph has gpu.js `Array(4)` products (the `'packed'`
 * matmul strategy), which its fused pipeline cannot chain, so it ran as pipelines between them
 * (`stats.segments`).
 */
export type ExecutorKind = 'fused-threaded' | 'fused-sync' | 'fused-encoder' | 'generic' | 'kernel-by-kernel' | 'segmented';

export interface RunnerStats {
  readonly backend: string;
  /** What executed the last run. */
  readonly executor: ExecutorKind | 'none';
  /** Why the last compiled graph ran kernel by kernel instead of as one pipeline. */
  readonly pipelineFallback?: string;
  readonly compiledGraphs: number;
  readonly kernels: number;
  /** Distinct compiled kernels so far (kernels are shared by source across layers and graphs). */
  readonly distinctKernels: number;
  /**
   * How the last run's kernels were split: pipelines and standalone (`Array(4)`) kernels,
   * and how many pipelines ran on a worker pool (gpu.js's fused-threaded executor) last time.
   */
  readonly segments: { readonly pipelines: number; readonly standalone: number; readonly threaded: number };
  /** Whether the last run's pipelines stay built between runs, and what they would hold if they all did (estimate). */
  readonly pipelineMemory: { readonly mode: PipelineMemory; readonly retainedBytes: number };
  /** Memory plan of the last run's graph. */
  readonly buffers: number;
  readonly bufferBytes: number;
  readonly hostBytes: number;
  readonly peakBytes: number;
  readonly runs: number;
  /**
   * On webasm: whether large matmuls run as our WebAssembly SIMD product inside the pipelines
   * (`true`), or why they are gpu.js dot-product kernels instead.
   */
  readonly wasmProducts?: true | string;
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
  /**
   * Matmul groups on webasm: packed panels and our WebAssembly SIMD product from
   * PACKED_MATMUL_MIN_MACS multiply-adds on (`'auto'`, the default), always (`'wasm'`), packed
   * panels and the gpu.js `Array(4)` product (`'packed'`), or one dot product per thread
   * (`'dot'`). Other backends always use `'dot'`.
   */
  readonly matmul?: MatmulStrategy;
  /**
   * `'auto'` (default): pipelines stay built unless together they would hold more than 2 GiB,
   * then they are built per run (see PipelineMemory and RETAINED_MAX_BYTES).
   */
  readonly pipelineMemory?: 'auto' | PipelineMemory;
  /**
   * A pipeline built per run that ran this long on the calling thread gets its own worker pool
   * from its next run on (default THREADED_SEGMENT_MIN_MS; Infinity: never).
   */
  readonly threadedSegmentMinMs?: number;
  /**
   * Most bytes one pipeline may lay out in its wasm memory; longer runs of kernels are cut into
   * several pipelines. Default: 2 GiB for retained pipelines, max(the memory plan's peak, 256 MiB)
   * for pipelines built per run.
   */
  readonly maxPipelineBytes?: number;
}

type KernelFn = ((...args: unknown[]) => Promise<Float32Array>) & KernelIntrospection;
interface PipelineFn {
  (...args: Float32Array[]): Promise<Float32Array[]>;
  executorKind?: string;
  backend?: string;
  fallbackReason?: string | null;
  destroy?: () => unknown;
}

/**
 * A run of kernels [first, last] executed as one gpu.js pipeline, or one standalone kernel (an
 * `Array(4)` product, which a fused pipeline cannot hand to another step).
 */
interface Segment {
  readonly first: number;
  readonly last: number;
  readonly standalone: boolean;
  /** Buffers the segment reads that earlier segments or the host made, in pipeline-argument order. */
  readonly hostArgs: readonly BufferKey[];
  /** Buffers the segment writes that later segments read or the caller wants, in pipeline-result order. */
  readonly outputs: readonly BufferKey[];
  pipeline?: PipelineFn;
  /** Why this segment runs kernel by kernel instead of as a pipeline. */
  fallback?: string;
  checked: boolean;
  /** A per-run pipeline long enough on the calling thread to pay for its own worker pool (THREADED_SEGMENT_MIN_MS). */
  wantsPool?: boolean;
  /** How gpu.js ran the pipeline last time (`fused-sync`, `fused-threaded`, ...). */
  lastKind?: string;
}

interface Executable {
  readonly compiled: CompiledGraph;
  readonly memory: MemoryPlan;
  readonly kernels: readonly KernelFn[];
  readonly segments: readonly Segment[];
  readonly constants: ReadonlyMap<BufferKey, Float32Array>;
  readonly pipelineMemory: PipelineMemory;
  /** Bytes all pipelines would hold if built at once (an upper bound: no shape-matched sharing). */
  readonly retainedBytes: number;
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
  private readonly kernelCache = new Map<string, KernelFn>();
  private compiledCount = 0;
  private runs = 0;
  private last?: { exe: Executable; executor: ExecutorKind };
  /** On webasm: true when our wasm products can run inside pipelines, else why not. */
  private readonly wasmProducts?: true | string;

  private constructor(
    readonly backend: Backend,
    private readonly usePipeline: boolean,
    private readonly onKernel?: (name: string, ms: number) => void,
    private readonly wide = false,
    private readonly matmul: MatmulStrategy = 'auto',
    private readonly pipelineMemory: 'auto' | PipelineMemory = 'auto',
    private readonly threadedSegmentMinMs = THREADED_SEGMENT_MIN_MS,
    private readonly maxPipelineBytes?: number,
  ) {
    if (backend.name === 'webasm' && matmul !== 'dot' && matmul !== 'packed') {
      this.wasmProducts = !wasmSimdSupported() ? 'this runtime has no WebAssembly SIMD' : (installProductHook() ?? true);
    }
  }

  static async create(options: CompiledRunnerOptions = {}): Promise<CompiledRunner> {
    const backend = await openBackend(options.backend ?? 'auto');
    return new CompiledRunner(backend, options.pipeline ?? true, options.onKernel, options.indices === 'wide', options.matmul ?? 'auto', options.pipelineMemory ?? 'auto', options.threadedSegmentMinMs, options.maxPipelineBytes);
  }

  get description(): string {
    const executor = this.last?.executor;
    const perRun = this.last?.exe.pipelineMemory === 'per-run' ? ', pipelines built per run' : '';
    const tags = [
      this.wide ? ' [wide indices]' : '',
      this.matmul !== 'auto' ? ` [matmul ${this.matmul}]` : '',
      this.pipelineMemory !== 'auto' ? ` [pipelines ${this.pipelineMemory}]` : '',
      typeof this.wasmProducts === 'string' ? ` [dot-product matmuls: ${this.wasmProducts}]` : '',
    ].join('');
    return `gpu.js ${this.backend.name}${executor ? ` (${executor}${perRun})` : ''}${tags}`;
  }

  get stats(): RunnerStats {
    const exe = this.last?.exe;
    const fallback = exe?.segments.find((s) => s.fallback !== undefined)?.fallback;
    return {
      backend: this.backend.name,
      executor: this.last?.executor ?? 'none',
      ...(fallback ? { pipelineFallback: fallback } : {}),
      compiledGraphs: this.compiledCount,
      kernels: exe?.kernels.length ?? 0,
      distinctKernels: this.kernelCache.size,
      segments: {
        pipelines: exe?.segments.filter((s) => !s.standalone).length ?? 0,
        standalone: exe?.segments.filter((s) => s.standalone).length ?? 0,
        threaded: exe?.segments.filter((s) => s.lastKind === 'fused-threaded').length ?? 0,
      },
      pipelineMemory: { mode: exe?.pipelineMemory ?? 'retained', retainedBytes: exe?.retainedBytes ?? 0 },
      buffers: exe?.memory.slots.length ?? 0,
      bufferBytes: exe?.memory.slotBytes ?? 0,
      hostBytes: exe?.memory.hostBytes ?? 0,
      peakBytes: exe?.memory.peakBytes ?? 0,
      runs: this.runs,
      ...(this.wasmProducts !== undefined ? { wasmProducts: this.wasmProducts } : {}),
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
    const webasm = this.backend.name === 'webasm';
    const maxReads = maxKernelReads(this.backend.name);
    const compiled = compile(graph, wanted, {
      grid: webasm,
      wide: this.wide,
      // 'auto' and 'wasm' write products for our wasm SIMD module; where it cannot run (no wasm
      // SIMD, or gpu.js without the module hook: stats.wasmProducts says which) they stay dot products
      matmul: !webasm ? 'dot' : typeof this.wasmProducts === 'string' ? 'dot' : this.matmul,
      inlineExp: webasm,
      ...(maxReads === undefined ? {} : { maxReads }),
    });
    const kernels = compiled.kernels.map((k) => this.createKernel(k));
    const constants = new Map<BufferKey, Float32Array>();
    for (const [id, source] of compiled.plan.buffers) {
      const n = graph.node(id);
      if (source === 'constant' && n.op === 'const') constants.set(`%${id}`, Float32Array.from(n.values));
    }
    let segments = this.usePipeline ? splitSegments(compiled) : compiled.kernels.map((_, i) => segmentOf(compiled, i, i, true));
    const memory = planMemory(compiled);
    const retainedBytes = segments.reduce((sum, seg) => sum + (seg.standalone ? 0 : pipelineBytes(compiled, seg)), 0);
    const pipelineMemory: PipelineMemory = this.pipelineMemory !== 'auto' ? this.pipelineMemory : retainedBytes > RETAINED_MAX_BYTES ? 'per-run' : 'retained';
    // built one at a time, a per-run pipeline holds at most about the memory plan's peak
    const cap = this.maxPipelineBytes ?? (pipelineMemory === 'per-run' ? Math.min(MAX_PIPELINE_BYTES, Math.max(memory.peakBytes, PER_RUN_PIPELINE_FLOOR_BYTES)) : MAX_PIPELINE_BYTES);
    if (this.usePipeline) segments = segments.flatMap((seg) => (seg.standalone ? [seg] : splitByBytes(compiled, seg, cap)));
    const exe: Executable = { compiled, memory, kernels, segments, constants, pipelineMemory, retainedBytes };
    for (const seg of segments) {
      if (seg.standalone) continue;
      if (seg.last < seg.first) seg.fallback = 'no kernels to run';
      else if (pipelineMemory === 'retained') this.buildPipeline(exe, seg);
    }
    perGraph.set(key, exe);
    this.compiledCount++;
    return exe;
  }

  /**
   * Kernels are shared by source and launch settings: parameters are named by position, so the
   * layers of a deep model (and the chunks of a chunked layer) that compute the same thing on other
   * buffers reuse one compiled kernel, and compiled code does not grow with depth.
   */
  private createKernel(k: KernelSource): KernelFn {
    const key = `${k.components}|${k.dims.join('x')}|${k.loopMax}|${k.source}`;
    let kernel = this.kernelCache.get(key);
    if (kernel === undefined) {
      kernel = this.buildKernel(k);
      this.kernelCache.set(key, kernel);
    }
    return kernel;
  }

  private buildKernel(k: KernelSource): KernelFn {
    const settings: Record<string, unknown> = {
      output: [...k.dims],
      asyncMode: true,
      loopMaxIterations: Math.max(1000, k.loopMax + 1),
      tactic: 'precision',
      // a kernel shared by source can read buffers of other sizes at other call sites (a broadcast
      // operand); run alone it must re-lay its memory for them rather than reject the call
      dynamicArguments: true,
    };
    if (k.components === 1) return this.backend.gpu.createKernel(k.source, settings as Parameters<GPU['createKernel']>[1]) as unknown as KernelFn;
    const kernel = this.backend.gpu.createKernel(k.source, { ...settings, returnType: `Array(${k.components})` } as Parameters<GPU['createKernel']>[1]) as unknown as KernelFn;
    // gpu.js shapes an Array(n) result as one subarray per cell; the flat buffer is what we want
    const flat = (async (...args: unknown[]) => {
      const inner = kernel.kernel as { _shapeOutput?: (d: Float32Array) => unknown } | undefined;
      if (inner !== undefined && typeof inner._shapeOutput === 'function') inner._shapeOutput = (d: Float32Array) => d;
      return kernel(...args);
    }) as KernelFn;
    Object.defineProperty(flat, 'kernel', { get: () => kernel.kernel });
    return flat;
  }

  private buildPipeline(exe: Executable, seg: Segment): void {
    const specs = exe.compiled.kernels;
    const { kernels } = exe;
    // Records the kernel calls once: gpu.js traces this with opaque handles for the arguments.
    const record = (args: unknown[]) => {
      const env = new Map<BufferKey, unknown>();
      seg.hostArgs.forEach((k, i) => env.set(k, args[i]));
      for (let i = seg.first; i <= seg.last; i++) {
        const spec = specs[i]!;
        env.set(spec.output, kernels[i]!(...spec.params.map((p) => env.get(p)), ...(spec.scalars ?? [])));
      }
      return seg.outputs.map((k) => env.get(k));
    };
    // gpu.js reads the orchestration function's declared parameters, so they are spelled out.
    const names = seg.hostArgs.map((_, i) => `a${i}`).join(', ');
    const orchestrate = new Function('record', `return function (${names}) { return record([${names}]); };`)(record) as (
      ...a: unknown[]
    ) => unknown;
    try {
      const gpu = this.backend.gpu as unknown as { createPipeline(fn: (...a: unknown[]) => unknown, settings?: { threads?: boolean }): PipelineFn };
      // Each threaded gpu.js pipeline owns a pool of worker threads (one per core), each holding
      // its own instances of the pipeline's modules. A graph cut into many segments by packed
      // products would keep hundreds of idle workers alive (measured: 476 threads, 11.8 GB RSS for
      // a 4-layer L=16K training step), so beyond a few segments they run on the calling thread.
      // A pipeline built per run would spawn its worker pool per run as well.
      // A pipeline built per run that has proved long enough to pay for its pool gets one.
      const pipelines = exe.segments.filter((s) => !s.standalone).length;
      const threads = (exe.pipelineMemory === 'retained' && pipelines <= MAX_THREADED_PIPELINES) || seg.wantsPool === true;
      seg.pipeline = gpu.createPipeline(orchestrate, threads ? undefined : { threads: false });
    } catch (e) {
      seg.fallback = `gpu.createPipeline failed: ${(e as Error).message}`;
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
      }
    }
    return out;
  }

  /**
   * Draws the random buffers the memory plan places before kernels first … last (`drawBefore`):
   * each is drawn just before its first reader, and `freeAfter` drops it after its last.
   */
  private drawRandom(exe: Executable, graph: Graph, feeds: Feeds, first: number, last: number, results: Map<BufferKey, Float32Array>): void {
    for (let k = first; k <= last; k++) {
      for (const key of exe.memory.drawBefore[k]!) {
        const n = graph.node(exe.compiled.buffers.get(key)!.node!);
        if (n.op !== 'random') continue;
        const s = graph.node(n.seed);
        const seed = s.op === 'const' ? s.values[0]! : s.op === 'input' ? feeds[s.name]?.data[0] : undefined;
        if (seed === undefined) throw new Error(`random %${n.id}: no value fed for its seed`);
        const draw = n.dist === 'normal' ? normalAt : uniformAt;
        const values = new Float32Array(sizeOf(n.shape));
        for (let i = 0; i < values.length; i++) values[i] = draw(seed, n.salt, i);
        results.set(key, values);
      }
    }
  }

  private check(exe: Executable, seg: Segment): void {
    if (seg.checked) return;
    const want = this.backend.name;
    if (seg.pipeline === undefined) {
      for (let i = seg.first; i <= seg.last; i++) {
        const k = exe.kernels[i]!;
        assertRanOn(want, `kernel ${exe.compiled.kernels[i]!.name}`, k.kernel?.constructor.mode, k.kernel?.fallbackReason);
      }
    } else {
      const p = seg.pipeline;
      assertRanOn(want, 'pipeline', p.backend, want === 'webasm' && p.executorKind === 'generic' ? p.fallbackReason : null);
    }
    seg.checked = true;
  }

  /** Runs one segment's kernels one at a time (`pipeline: false`, a standalone kernel, or a pipeline gpu.js declined). */
  private async runKernels(exe: Executable, seg: Segment, results: Map<BufferKey, Float32Array>): Promise<void> {
    const specs = exe.compiled.kernels;
    for (let i = seg.first; i <= seg.last; i++) {
      const spec = specs[i]!;
      const started = this.onKernel === undefined ? 0 : performance.now();
      const out = await exe.kernels[i]!(...spec.params.map((p) => results.get(p)!), ...(spec.scalars ?? []));
      results.set(spec.output, flatOutput(out, spec.size));
      this.onKernel?.(spec.name, performance.now() - started);
      for (const dead of exe.memory.freeAfter[i]!) results.delete(dead);
    }
  }

  /** Destroys a segment's pipeline (its wasm memory and kernel clones go with it). */
  private async releasePipeline(seg: Segment): Promise<void> {
    const pipeline = seg.pipeline;
    seg.pipeline = undefined;
    await pipeline?.destroy?.();
  }

  /** Runs a pipeline segment; on its first call a failure is recorded and the segment falls back to kernel by kernel. */
  private async runPipeline(exe: Executable, seg: Segment, results: Map<BufferKey, Float32Array>): Promise<string> {
    const pipeline = seg.pipeline!;
    let outs: Float32Array[];
    try {
      outs = await pipeline(...seg.hostArgs.map((k) => results.get(k)!));
    } catch (e) {
      if (seg.checked) throw e;
      seg.fallback = `pipeline failed: ${(e as Error).message}`;
      pipeline.destroy?.();
      seg.pipeline = undefined;
      await this.runKernels(exe, seg, results);
      return 'kernel-by-kernel';
    }
    seg.outputs.forEach((k, i) => results.set(k, flatOutput(outs[i], exe.compiled.buffers.get(k)!.size)));
    for (let i = seg.first; i <= seg.last; i++) for (const dead of exe.memory.freeAfter[i]!) results.delete(dead);
    return pipeline.executorKind ?? 'generic';
  }

  async run(graph: Graph, feeds: Feeds, wanted: readonly NodeId[] = graph.outputs): Promise<HostTensor[]> {
    const exe = this.executable(graph, wanted);
    const results = this.hostBuffers(exe, graph, feeds);
    const kinds = new Set<string>();
    for (const seg of exe.segments) {
      this.drawRandom(exe, graph, feeds, seg.first, seg.last, results);
      const perRun = exe.pipelineMemory === 'per-run' && !seg.standalone && seg.fallback === undefined;
      if (perRun) this.buildPipeline(exe, seg);
      if (seg.pipeline !== undefined) {
        const started = performance.now();
        const kind = await this.runPipeline(exe, seg, results);
        if (perRun && kind === 'fused-sync' && performance.now() - started >= this.threadedSegmentMinMs) seg.wantsPool = true;
        seg.lastKind = kind;
        kinds.add(kind);
      } else {
        await this.runKernels(exe, seg, results);
        if (!seg.standalone) kinds.add('kernel-by-kernel');
      }
      this.check(exe, seg);
      if (perRun) await this.releasePipeline(seg);
    }
    const kernelCount = exe.compiled.kernels.length;
    this.drawRandom(exe, graph, feeds, kernelCount, kernelCount, results);
    const executor: ExecutorKind =
      exe.segments.some((s) => s.standalone) && this.usePipeline ? 'segmented' : ((kinds.values().next().value as ExecutorKind | undefined) ?? 'kernel-by-kernel');
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

/** Segment [first, last]: what it reads from outside and what it must hand on. */
function segmentOf(compiled: CompiledGraph, first: number, last: number, standalone: boolean): Segment {
  const specs = compiled.kernels;
  const inside = new Set(specs.slice(first, last + 1).map((k) => k.output));
  const hostArgs = [...new Set(specs.slice(first, last + 1).flatMap((k) => k.params.filter((p) => !inside.has(p))))];
  const laterReads = new Set(specs.slice(last + 1).flatMap((k) => k.params));
  for (const id of compiled.plan.wanted) laterReads.add(`%${id}`);
  const outputs = [...inside].filter((k) => laterReads.has(k));
  return { first, last, standalone, hostArgs, outputs, checked: false };
}

/**
 * Bytes a segment's fused pipeline lays out in its wasm memory: its arguments and every step's
 * output (gpu.js shares a buffer between steps only when their shapes match, so this counts each).
 */
function pipelineBytes(compiled: CompiledGraph, seg: Segment): number {
  let elements = 0;
  for (const k of seg.hostArgs) elements += compiled.buffers.get(k)?.size ?? 0;
  for (let i = seg.first; i <= seg.last; i++) elements += compiled.kernels[i]!.size;
  return elements * BYTES_PER_ELEMENT;
}

/** Pipelines over the runs of ordinary kernels, with each `Array(4)` kernel standalone between them. */
function splitSegments(compiled: CompiledGraph): Segment[] {
  const specs = compiled.kernels;
  if (specs.length === 0) return [segmentOf(compiled, 0, -1, false)];
  const out: Segment[] = [];
  let first = 0;
  specs.forEach((k, i) => {
    if (k.components === 1) return;
    if (i > first) out.push(segmentOf(compiled, first, i - 1, false));
    out.push(segmentOf(compiled, i, i, true));
    first = i + 1;
  });
  if (first < specs.length) out.push(segmentOf(compiled, first, specs.length - 1, false));
  return out;
}

/**
 * A pipeline segment cut into consecutive pieces whose pipelines each lay out at most `budget`
 * bytes (a kernel that alone needs more is a piece of its own).
 */
function splitByBytes(compiled: CompiledGraph, seg: Segment, budget: number): Segment[] {
  const out: Segment[] = [];
  let first = seg.first;
  let inside = new Set<BufferKey>();
  let args = new Set<BufferKey>();
  let elements = 0;
  for (let i = seg.first; i <= seg.last; i++) {
    const k = compiled.kernels[i]!;
    const fresh = k.params.filter((p) => !inside.has(p) && !args.has(p));
    const more = k.size + fresh.reduce((sum, p) => sum + (compiled.buffers.get(p)?.size ?? 0), 0);
    if (i > first && (elements + more) * BYTES_PER_ELEMENT > budget) {
      out.push(segmentOf(compiled, first, i - 1, false));
      [first, inside, args, elements] = [i, new Set(), new Set(), 0];
      i--;
      continue;
    }
    for (const p of fresh) args.add(p);
    inside.add(k.output);
    elements += more;
  }
  out.push(segmentOf(compiled, first, seg.last, false));
  return out;
}
