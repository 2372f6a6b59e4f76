/**
 * `reformer train`: one run per directory. A fresh run refuses a non-empty `--out` (or, with
 * `--force`, moves the old run aside); `--resume` continues exactly the run the manifest describes
 * and refuses flags that contradict it. The run lock keeps a second writer out; SIGINT/SIGTERM save
 * a checkpoint and say how to resume.
 */
import { mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkSeed, defaultRunConfig, validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { train, type TrainRecord, type TrainResult } from '../../reformer/train/trainer.ts';
import { crashPointFromEnv, RunDirectory, RUN_LOG } from '../../reformer/train/run-dir.ts';
import { RunLock, RUN_LOCK } from '../../reformer/train/run-lock.ts';
import { firstDifference, packageVersion, readRunManifest, writeRunManifest, RUN_MANIFEST, type RunManifest } from '../../reformer/train/run-manifest.ts';
import { dataSpecOf, describeDataMismatch, openDataSource, openRecordedData, type OpenedData } from '../../reformer/train/data-source.ts';
import { latestCheckpoint, TEMP_PREFIX } from '../../runtime/checkpoint.ts';
import { TrainProgress } from '../progress.ts';
import { openRunner } from './runner.ts';
import type { PipelineMemoryChoice } from '../pipeline-memory.ts';

export interface TrainCommandOptions {
  readonly config?: string;
  readonly data?: string;
  readonly steps?: number;
  readonly out: string;
  readonly seed: number;
  readonly backend: string;
  /** Pipelines kept between steps, built per step, or chosen by size (cli/pipeline-memory.ts); not recorded. */
  readonly pipelineMemory?: PipelineMemoryChoice;
  readonly resume: boolean;
  readonly force: boolean;
  readonly reversible: boolean;
  readonly evalEvery?: number;
  readonly checkpointEvery?: number;
  readonly progress: boolean;
  /** Options given on the command line (the others hold their defaults): `--resume` checks only these. */
  readonly explicit: ReadonlySet<string>;
}

async function readConfig(path: string | undefined): Promise<RunConfig> {
  if (path === undefined) return defaultRunConfig;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`cannot read config '${path}': check the path`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`config '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  return validateRunConfig(raw);
}

/** `base` with the command-line overrides that were given applied (and vocabulary 128 for the duplication task). */
function withFlags(base: RunConfig, dataSpec: string, opts: TrainCommandOptions): RunConfig {
  const given = (name: string) => opts.explicit.has(name);
  return validateRunConfig({
    model: dataSpec === 'duplication' ? { ...base.model, vocabSize: 128 } : base.model,
    train: {
      ...base.train,
      ...(opts.steps !== undefined ? { steps: opts.steps } : {}),
      ...(opts.evalEvery !== undefined ? { evalEvery: opts.evalEvery } : {}),
      ...(opts.checkpointEvery !== undefined ? { checkpointEvery: opts.checkpointEvery } : {}),
      ...(given('reversible') ? { reversible: opts.reversible } : {}),
    },
  });
}

type OutKind = 'missing' | 'directory' | 'other';
function kindOf(path: string): OutKind {
  try {
    return statSync(path).isDirectory() ? 'directory' : 'other';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new Error(`--out '${path}': ${(e as Error).message}`);
  }
}

/** Moves `entries` of `dir` into a new sibling folder `<dir>.previous-<time>` and returns its path. */
function moveAside(dir: string, entries: readonly string[]): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let aside = join(dirname(dir), `${basename(dir)}.previous-${stamp}`);
  for (let i = 2; kindOf(aside) !== 'missing'; i++) aside = join(dirname(dir), `${basename(dir)}.previous-${stamp}-${i}`);
  mkdirSync(aside);
  for (const name of entries) renameSync(join(dir, name), join(aside, name));
  return aside;
}

const show = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));

/** The run's config with the flags given applied; refuses any flag that contradicts the manifest (`--steps` may extend it). */
async function resumeConfig(manifest: RunManifest, opts: TrainCommandOptions, out: string): Promise<RunConfig> {
  const contradiction = (field: string, recorded: unknown, flag: string, given: unknown) =>
    new Error(
      `--resume: ${flag} gives ${field} ${show(given)} but the run in '${out}' has ${show(recorded)} (${RUN_MANIFEST}); drop ${flag} to continue the run, or start a new run with another --out`,
    );
  if (opts.explicit.has('seed') && opts.seed !== manifest.seed) throw contradiction('seed', manifest.seed, '--seed', opts.seed);
  if (opts.explicit.has('backend') && opts.backend !== manifest.backend.requested) throw contradiction('backend', manifest.backend.requested, '--backend', opts.backend);
  const base = opts.config !== undefined ? await readConfig(opts.config) : manifest.config;
  const requested = withFlags(base, dataSpecOf(manifest.data), opts);
  const compared = opts.steps !== undefined ? { ...requested, train: { ...requested.train, steps: manifest.config.train.steps } } : requested;
  const diff = firstDifference(manifest.config, compared);
  if (diff !== undefined) {
    const flagOf: Record<string, string> = { 'train.evalEvery': '--eval-every', 'train.checkpointEvery': '--checkpoint-every', 'train.reversible': '--no-reversible' };
    const flag = opts.config !== undefined ? `--config '${opts.config}'` : (flagOf[diff.field] ?? 'the command line');
    throw contradiction(diff.field, diff.left, flag, diff.right);
  }
  return requested;
}

export async function trainCommand(opts: TrainCommandOptions): Promise<number> {
  checkSeed('--seed', opts.seed);
  if (opts.resume && opts.force) throw new Error('--resume continues the run in --out and --force replaces it: give one of them');
  const out = opts.out;
  const outKind = kindOf(out);
  if (outKind === 'other') throw new Error(`--out '${out}' exists and is not a directory; give a directory for the run`);
  if (opts.resume && outKind === 'missing') throw new Error(`--resume: run directory '${out}' does not exist; check --out, or start a new run without --resume`);

  return opts.resume ? resumeRun(opts) : startRun(opts);
}

/** Entries of a run directory other than the lock. */
const runEntries = (dir: string) => readdirSync(dir).filter((n) => n !== RUN_LOCK);

/** Whether `entries` look like a run directory's (so `--force` may move them aside). */
const looksLikeRun = (entries: readonly string[]) => entries.some((n) => n === RUN_MANIFEST || n === RUN_LOG || n === 'latest' || /^step-\d+$/.test(n));

/** Refuses a fresh run in a non-empty directory unless `--force` may move a previous run aside. */
function checkEmpty(out: string, entries: readonly string[], force: boolean): void {
  if (entries.length === 0) return;
  if (!looksLikeRun(entries)) throw new Error(`--out '${out}' is not empty and holds no run (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); choose another --out`);
  if (force) return;
  throw new Error(`--out '${out}' already holds a run; continue it with --resume, choose another --out, or start over with --force (moves the old run aside)`);
}

async function startRun(opts: TrainCommandOptions): Promise<number> {
  const out = opts.out;
  // Everything is validated before the file system is touched.
  const dataSpec = opts.data ?? 'brown';
  const config = withFlags(await readConfig(opts.config), dataSpec, opts);
  const data = await openDataSource(dataSpec, config.model);
  // Before the lock, a training starting here at the same moment may show only its atomic-write
  // temporaries; those are judged under the lock, where that training's lock answers first.
  if (kindOf(out) === 'directory') checkEmpty(out, runEntries(out).filter((n) => !n.startsWith(TEMP_PREFIX)), opts.force);
  mkdirSync(out, { recursive: true });
  const lock = RunLock.acquire(out);
  try {
    if (lock.reclaimed) console.log(`reclaimed a stale lock of pid ${lock.reclaimed.pid} (that process is gone)`);
    // Again under the lock: another process may have started a run here meanwhile.
    const entries = runEntries(out);
    checkEmpty(out, entries, opts.force);
    const runner = await openRunner(opts.backend, opts.pipelineMemory);
    if (entries.length > 0) console.log(`moved the previous contents of ${out} to ${moveAside(out, entries)}`);
    const manifest: RunManifest = {
      config,
      seed: opts.seed,
      data: data.identity,
      backend: { requested: opts.backend, resolved: runner.description },
      packageVersion: packageVersion(),
      createdAt: new Date().toISOString(),
    };
    await writeRunManifest(out, manifest);
    return await runTraining(out, lock, manifest, data, runner, false, opts.progress);
  } finally {
    lock.release();
  }
}

async function resumeRun(opts: TrainCommandOptions): Promise<number> {
  const out = opts.out;
  // The flags are checked against the manifest before the lock is taken, so a refusal writes nothing.
  const recorded = await readRunManifest(out);
  if (recorded === undefined) {
    throw new Error(`--resume: '${out}' has no run manifest (${RUN_MANIFEST}), so there is no run to continue; start one with: reformer train --out ${out}`);
  }
  const config = await resumeConfig(recorded, opts, out);
  let data: OpenedData;
  if (opts.data !== undefined) {
    data = await openDataSource(opts.data, config.model);
    const mismatch = describeDataMismatch(recorded.data, data.identity);
    if (mismatch !== undefined) throw new Error(`--resume: --data contradicts the run in '${out}': ${mismatch}; drop --data to continue the run`);
  } else {
    data = await openRecordedData(recorded.data, config.model, 'restore it, or start a new run with another --out');
  }
  const lock = RunLock.acquire(out);
  try {
    if (lock.reclaimed) console.log(`reclaimed a stale lock of pid ${lock.reclaimed.pid} (that process is gone)`);
    const now = await readRunManifest(out);
    if (now === undefined || firstDifference(now, recorded) !== undefined) throw new Error(`the run in '${out}' changed while this command started (another process wrote it); try again`);
    const resumeFrom = await latestCheckpoint(out);
    if (resumeFrom !== undefined && resumeFrom >= config.train.steps) {
      console.log(`the run in ${out} is finished: its last checkpoint is step ${resumeFrom} of ${config.train.steps}; nothing to do (pass --steps N, N > ${resumeFrom}, to train further)`);
      return 0;
    }
    const manifest: RunManifest = { ...recorded, config };
    if (config.train.steps !== recorded.config.train.steps) {
      await writeRunManifest(out, manifest);
      console.log(`run length changed from ${recorded.config.train.steps} to ${config.train.steps} steps (recorded in ${RUN_MANIFEST})`);
    }
    const runner = await openRunner(recorded.backend.requested, opts.pipelineMemory);
    if (resumeFrom === undefined) console.log(`no checkpoint in ${out} yet: starting the run over from step 1`);
    return await runTraining(out, lock, manifest, data, runner, true, opts.progress);
  } finally {
    lock.release();
  }
}

async function runTraining(
  out: string,
  lock: RunLock,
  manifest: RunManifest,
  data: OpenedData,
  runner: Awaited<ReturnType<typeof openRunner>>,
  resume: boolean,
  progressWanted: boolean,
): Promise<number> {
  const { config, seed } = manifest;
  const run = new RunDirectory(out, { keep: config.train.keepCheckpoints, lock, data: data.identity, crash: crashPointFromEnv(process.env.REFORMER_CRASH_AT) });
  const m = config.model;
  console.log(`backend: ${runner.description}`);
  console.log(`data: ${data.description}`);
  console.log(
    `model: ${m.architecture} L=${m.seqLen} d=${m.dModel} dFF=${m.dFF} heads=${m.nHeads}x${m.dHead} layers=${m.nLayers} attention=${m.attention.join('/')} hashes=${m.nHashes}${config.train.reversible ? '' : ' (plain backprop)'}`,
  );
  console.log(`run directory: ${out} (seed ${seed})`);
  if (resume) {
    const from = (await latestCheckpoint(out)) ?? 0;
    const dropped = await run.truncateLog(from);
    if (dropped > 0) console.log(`run log: dropped ${dropped} record(s) after step ${from} (work the checkpoint does not hold)`);
  }

  const progress = new TrainProgress(config.train.steps, config.train.batchSize * m.seqLen, progressWanted && process.stdout.isTTY === true);
  let stopSignal: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopSignal !== undefined) {
      // Second signal: leave now. Checkpoints are atomic, so an interrupted save leaves the previous one.
      TrainProgress.restoreTerminal();
      lock.release();
      process.stderr.write(`reformer: ${signal} again: exiting without saving (checkpoints already in ${out} are intact)\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    stopSignal = signal;
    progress.log(`${signal}: stopping after this step and saving a checkpoint (send it again to exit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result: TrainResult;
  try {
    result = await train({
      config,
      data,
      runner,
      seed,
      store: run,
      resume,
      onRecord: (r: TrainRecord) => {
        run.appendLog(r);
        if (r.type === 'train') return progress.step(r);
        const acc = r.accuracy !== undefined ? ` accuracy ${(100 * r.accuracy).toFixed(1)}%` : '';
        progress.log(`eval @ step ${r.step}: loss ${r.loss.toFixed(4)} bits/char ${r.bpc.toFixed(3)}${acc}`);
      },
      onResume: (step) => console.log(`resuming from the checkpoint at step ${step}`),
      shouldStop: () => stopSignal !== undefined,
    });
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (result.stoppedAt !== undefined) {
    console.log(result.stoppedAt === 0 ? `${stopSignal}: stopped before the first step; nothing to save` : `${stopSignal}: stopped after step ${result.stoppedAt}; checkpoint saved in ${out}`);
    console.log(`resume with: npx reformer train --out ${out} --resume`);
    return stopSignal === 'SIGTERM' ? 143 : 130;
  }
  const ev = result.finalEval;
  if (ev) {
    const acc = ev.accuracy !== undefined ? `, accuracy ${(100 * ev.accuracy).toFixed(1)}%` : '';
    console.log(`held-out: loss ${ev.loss.toFixed(4)} nats/byte = ${ev.bpc.toFixed(3)} bits/char${acc} after ${ev.step} steps`);
  }
  console.log(`checkpoint: ${out} (try: npx reformer generate --checkpoint ${out} --prompt "The ")`);
  return 0;
}
