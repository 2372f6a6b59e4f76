/**
 * Helper threads for the wasm SIMD product (wasm-matmul.ts): the product's rows are cut into
 * chunks of row quads that the calling thread and Node `worker_threads` helpers claim from a
 * shared counter, each running the same module over one shared `WebAssembly.Memory`. Every output
 * is computed by one call of the same tile code whoever claims its chunk, so the threaded result
 * equals the single-threaded one bit for bit.
 *
 * Claiming (not a fixed split) keeps the calling thread from waiting on a helper that is slow to
 * start or descheduled by other processes: it waits only for chunks a helper has already claimed.
 * The claim word holds a job generation (high 20 bits) and the next chunk (low 12 bits); a claim
 * is a compare-exchange on that word, so a helper that read an older job's parameters cannot take
 * a chunk of a newer one. Helpers are unref'd (they never keep a process alive) and leave after
 * HELPER_IDLE_MS without work; the next large product starts a new one.
 *
 * Without Node's worker_threads (browsers: their main thread may not block on Atomics.wait, and
 * the product API is synchronous) or without SharedArrayBuffer the product runs on one thread,
 * and `matmulThreading()` says why.
 */
import type { Worker } from 'node:worker_threads';

export type ProductFn = (a: number, b: number, c: number, m: number, k: number, n: number) => void;

/** Int32 slots of the control block (byte offsets are stored as int32 and wrap like wasm's i32). */
const CONTROL = {
  /** generation << 12 | next chunk */
  word: 0,
  /** chunks finished in this job */
  done: 1,
  /** chunks in this job (at most MAX_CHUNKS) */
  chunks: 2,
  /** row quads per chunk */
  quadsPerChunk: 3,
  /** row quads in all batches together */
  totalQuads: 4,
  /** row quads per batch */
  quads: 5,
  k: 6,
  n: 7,
  /** byte offsets of A, B, C and bytes between two B batches (A and C batches are contiguous) */
  a: 8,
  b: 9,
  c: 10,
  bStride: 11,
  /** helpers launched (by the calling thread), running (counted by each once it has its instance), that left */
  launched: 12,
  booted: 13,
  left: 17,
  /** set by close(): helpers leave */
  quit: 14,
  /** chunks run by the calling thread, by helpers (all jobs) */
  byCaller: 15,
  byHelpers: 16,
} as const;
const CONTROL_INTS = 18;
/** A closed job: the next-chunk field at its maximum, which no job reaches. */
const CLOSED = 0xfff;
const MAX_CHUNKS = CLOSED;
/** A helper leaves after this long without work, so helpers of dropped arenas do not linger. */
export const HELPER_IDLE_MS = 5000;
/** How long the calling thread waits for a claimed chunk before checking the helper is alive. */
const WAIT_SLICE_MS = 1000;

/**
 * Claims and runs chunks of the current job until none is left, counting them in slot `tally`;
 * returns the claim word it last saw (a helper sleeps until the word changes). It is also the
 * helpers' code (sent as source), so it reads nothing outside its parameters.
 */
function runChunks(ctl: Int32Array, mm: ProductFn, at: typeof CONTROL, tally: number): number {
  for (;;) {
    const w = Atomics.load(ctl, at.word);
    const next = w & 0xfff;
    const total = ctl[at.chunks]!;
    if (next >= total) return w;
    const [perChunk, totalQuads, quads, k, n] = [ctl[at.quadsPerChunk]!, ctl[at.totalQuads]!, ctl[at.quads]!, ctl[at.k]!, ctl[at.n]!];
    const [a, b, c, bStride] = [ctl[at.a]!, ctl[at.b]!, ctl[at.c]!, ctl[at.bStride]!];
    // parameters read above belong to this word's job only if the word is unchanged at the claim
    if (Atomics.compareExchange(ctl, at.word, w, w + 1) !== w) continue;
    const end = Math.min((next + 1) * perChunk, totalQuads);
    for (let g = next * perChunk; g < end; ) {
      const z = Math.floor(g / quads);
      const stop = Math.min(end, (z + 1) * quads);
      mm(a + g * k * 16, b + z * bStride, c + g * n * 16, (stop - g) * 4, k, n);
      g = stop;
    }
    Atomics.add(ctl, tally, 1);
    // Stryker disable next-line ConditionalExpression,EqualityOperator,ArithmeticOperator: only a caller waiting for a helper's last chunk needs this wake; without it the caller sees done one WAIT_SLICE_MS later, an extra wake finds nothing new
    if (Atomics.add(ctl, at.done, 1) + 1 === total) Atomics.notify(ctl, at.done);
  }
}

// run only by Node workers (never in a browser page)
const HELPER_SOURCE = `
const { workerData } = globalThis.process.getBuiltinModule('node:worker_threads');
const { module, memory, control, at, idleMs } = workerData;
const runChunks = (${runChunks.toString()});
const ctl = new Int32Array(control);
const mm = new WebAssembly.Instance(module, { env: { memory } }).exports.mm;
Atomics.add(ctl, at.booted, 1);
try {
  for (;;) {
    const seen = runChunks(ctl, mm, at, at.byHelpers);
    if (Atomics.load(ctl, at.quit) !== 0) break;
    if (Atomics.wait(ctl, at.word, seen, idleMs) === 'timed-out' && Atomics.load(ctl, at.word) === seen) break;
    if (Atomics.load(ctl, at.quit) !== 0) break;
  }
} finally {
  Atomics.add(ctl, at.left, 1);
  Atomics.notify(ctl, at.done);
}
`;

type WorkerModule = typeof import('node:worker_threads');

/** A Node built-in without a static import, which would break the browser bundle. */
function builtin<T>(id: string): T | string {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (proc === undefined) return 'not Node: a browser main thread cannot block on Atomics.wait, and products are synchronous';
  if (typeof proc.getBuiltinModule !== 'function') return 'process.getBuiltinModule is missing (Node < 20.16): no worker_threads without a static import';
  return proc.getBuiltinModule(id) as T;
}

/** How many threads products may use here, or why only one. */
export interface MatmulThreading {
  readonly threads: number;
  readonly reason?: string;
}

/** At most this many threads per product (calling thread + helpers); 2 is what has been measured. */
const MAX_THREADS = 8;

/** Threads a product may use: min(cores, 8) with Node's worker_threads, else 1 and the reason. */
export function matmulThreading(): MatmulThreading {
  const os = builtin<typeof import('node:os')>('node:os');
  if (typeof os === 'string') return { threads: 1, reason: os };
  if (typeof SharedArrayBuffer === 'undefined') return { threads: 1, reason: 'SharedArrayBuffer is unavailable' };
  const cores = os.availableParallelism();
  return cores > 1 ? { threads: Math.min(cores, MAX_THREADS) } : { threads: 1, reason: 'one core' };
}

/** One job: a batch of products over contiguous A and C batches, B batches `bStride` bytes apart. */
export interface ThreadedJob {
  readonly a: number;
  readonly b: number;
  readonly c: number;
  readonly bStride: number;
  readonly batch: number;
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

/**
 * A chunk holds about 1/16 of the job, from 2^17 to 2^21 multiply-adds (some µs to some 50 µs at
 * 40 GFLOP/s): small enough that a helper woken late still finds work and the caller's last wait
 * is short, large enough that claims cost nothing next to it.
 */
const CHUNK_MACS = { min: 1 << 17, max: 1 << 21, perJob: 16 };

/** The calling thread's side: publishes jobs, starts helpers, claims chunks with them. */
export class MatmulHelpers {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(4 * CONTROL_INTS));
  private failure?: string;

  constructor(
    private readonly wt: WorkerModule,
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    private readonly mm: ProductFn,
    private readonly helpers: number,
    private readonly idleMs = HELPER_IDLE_MS,
  ) {
    this.ctl[CONTROL.word] = CLOSED;
  }

  /** Helpers running now (booted and not yet left). */
  get alive(): number {
    return Atomics.load(this.ctl, CONTROL.booted) - Atomics.load(this.ctl, CONTROL.left);
  }

  run(job: ThreadedJob): void {
    if (this.closed) throw new Error('wasm matmul: helper threads used after close()');
    if (this.failure !== undefined) throw new Error(`wasm matmul: a helper thread failed: ${this.failure}`);
    const { ctl } = this;
    const quads = job.m / 4;
    const totalQuads = job.batch * quads;
    const quadMacs = 4 * job.k * job.n;
    const chunkMacs = Math.min(CHUNK_MACS.max, Math.max(CHUNK_MACS.min, (totalQuads * quadMacs) / CHUNK_MACS.perJob));
    const perChunk = Math.max(1, Math.round(chunkMacs / quadMacs), Math.ceil(totalQuads / MAX_CHUNKS));
    const chunks = Math.ceil(totalQuads / perChunk);
    const gen = ((Atomics.load(ctl, CONTROL.word) >>> 12) + 1) & 0xfffff;
    // no claim succeeds while the parameters change: the previous job's word is closed first
    // Stryker disable next-line UnaryOperator: the generation is read before this store; a word closed with generation 0 refuses claims the same
    Atomics.store(ctl, CONTROL.word, (Atomics.load(ctl, CONTROL.word) & ~0xfff) | CLOSED);
    ctl[CONTROL.chunks] = chunks;
    ctl[CONTROL.quadsPerChunk] = perChunk;
    ctl[CONTROL.totalQuads] = totalQuads;
    ctl[CONTROL.quads] = quads;
    ctl[CONTROL.k] = job.k;
    ctl[CONTROL.n] = job.n;
    ctl[CONTROL.a] = job.a;
    ctl[CONTROL.b] = job.b;
    ctl[CONTROL.c] = job.c;
    ctl[CONTROL.bStride] = job.bStride;
    Atomics.store(ctl, CONTROL.done, 0);
    Atomics.store(ctl, CONTROL.word, gen << 12);
    Atomics.notify(ctl, CONTROL.word);
    while (Atomics.load(ctl, CONTROL.launched) - Atomics.load(ctl, CONTROL.left) < this.helpers) this.launch();
    runChunks(ctl, this.mm, CONTROL, CONTROL.byCaller);
    for (let done = Atomics.load(ctl, CONTROL.done); done < chunks; done = Atomics.load(ctl, CONTROL.done)) {
      // Stryker disable next-line EqualityOperator: a wake before the slice ends comes from a helper finishing or leaving; the throw also needs every helper gone and done unchanged
      const timedOut = Atomics.wait(ctl, CONTROL.done, done, WAIT_SLICE_MS) === 'timed-out';
      if (timedOut && Atomics.load(ctl, CONTROL.launched) === Atomics.load(ctl, CONTROL.left) && Atomics.load(ctl, CONTROL.done) === done) {
        throw new Error(`wasm matmul: helper threads left with ${chunks - done} of ${chunks} chunks claimed and unfinished`);
      }
    }
  }

  private launch(): void {
    // counted before the thread boots, so the next product does not start another one meanwhile
    Atomics.add(this.ctl, CONTROL.launched, 1);
    const worker: Worker = new this.wt.Worker(HELPER_SOURCE, {
      eval: true,
      // the parent's flags (a loader, --input-type=module) would only slow the helper's start
      execArgv: [],
      workerData: { module: this.module, memory: this.memory, control: this.ctl.buffer, at: CONTROL, idleMs: this.idleMs },
    });
    worker.on('error', (e: Error) => {
      this.failure = e.message;
    });
    worker.unref();
  }

  /** Helpers that have started so far (each leaves when idle; the next large product starts another). */
  get starts(): number {
    return Atomics.load(this.ctl, CONTROL.booted);
  }

  /** Chunks run so far by the calling thread and by helpers. */
  get chunks(): { caller: number; helpers: number } {
    return { caller: Atomics.load(this.ctl, CONTROL.byCaller), helpers: Atomics.load(this.ctl, CONTROL.byHelpers) };
  }

  /** Whether close() was called: products then run on the calling thread alone. */
  get closed(): boolean {
    return Atomics.load(this.ctl, CONTROL.quit) !== 0;
  }

  /** Helpers leave now (they also leave by themselves when idle). */
  close(): void {
    Atomics.store(this.ctl, CONTROL.quit, 1);
    Atomics.notify(this.ctl, CONTROL.word);
  }
}

/** Node's worker_threads, for MatmulHelpers (only called where matmulThreading() found it). */
export function workerThreads(): WorkerModule {
  const wt = builtin<WorkerModule>('node:worker_threads');
  if (typeof wt === 'string') throw new Error(`wasm matmul: no helper threads: ${wt}`);
  return wt;
}
