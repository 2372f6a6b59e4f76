/**
 * A run directory: the manifest `run.json`, checkpoints (`step-N/` plus a `latest` pointer, written
 * atomically by runtime/checkpoint.ts), the JSONL run log and, while a training owns it, `run.lock`.
 * Log records are only ever appended for steps beyond the last checkpoint: resuming first cuts the
 * log back to the checkpoint's step (repairing a line torn by a kill mid-append), so the resumed
 * curve continues the uninterrupted one without duplicates.
 */
import { appendFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { flattenParams, InitKey, spec, type Params } from '../../dsl/layer.ts';
import { CheckpointError, checkParams, latestCheckpoint, loadCheckpoint, saveCheckpoint, writeFileAtomic, type SaveStage } from '../../runtime/checkpoint.ts';
import type { Optimizer } from '../../runtime/optim/index.ts';
import { validateRunConfig, type RunConfig } from '../config.ts';
import { buildModel, type ModelOverrides } from '../model.ts';
import type { DataIdentity } from './data-source.ts';
import type { RunLock } from './run-lock.ts';
import { readRunManifest } from './run-manifest.ts';
import type { CheckpointStore, TrainRecord, TrainState } from './trainer.ts';

export const RUN_LOG = 'run-log.jsonl';

/**
 * Where a crash test may have the process kill itself with SIGKILL (a real `kill -9`, no cleanup):
 * at a checkpoint-save stage of a step, or halfway through writing a step's first log line.
 */
export interface CrashPoint {
  readonly at: SaveStage | 'log-append';
  readonly step: number;
}

/** Parses `REFORMER_CRASH_AT=<stage>:<step>` (stage: files-written, dir-committed, pointer-written, log-append). */
export function crashPointFromEnv(value: string | undefined): CrashPoint | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^(files-written|dir-committed|pointer-written|log-append):(\d+)$/.exec(value);
  if (m === null) throw new Error(`REFORMER_CRASH_AT must be <files-written|dir-committed|pointer-written|log-append>:<step>, got '${value}'`);
  return { at: m[1] as CrashPoint['at'], step: Number(m[2]) };
}

const killSelf = (): never => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: SIGKILL did not stop the process');
};

/** Copies loaded values into the live tensors, so graphs and optimizers keep their references. */
function assignInPlace(target: ReadonlyMap<string, HostTensor>, source: Params): void {
  for (const [path, t] of flattenParams(source)) {
    const dst = target.get(path);
    if (dst === undefined) throw new Error(`checkpoint has parameter '${path}' that the model lacks`);
    dst.data.set(t.data);
  }
}

export interface RunDirectoryOptions {
  /** Step directories to keep (default 2). */
  readonly keep?: number;
  /** The writer's lock: every write first checks it is still held. */
  readonly lock?: RunLock;
  /** Recorded with each checkpoint, so a step directory alone knows its data. */
  readonly data?: DataIdentity;
  readonly crash?: CrashPoint;
}

export class RunDirectory implements CheckpointStore {
  constructor(
    readonly root: string,
    private readonly options: RunDirectoryOptions = {},
  ) {}

  get logPath(): string {
    return join(this.root, RUN_LOG);
  }

  async save(state: TrainState, meta: { config: RunConfig; seed: number }): Promise<string> {
    this.options.lock?.assertHeld();
    const tree: Record<string, HostTensor> = Object.fromEntries(state.params);
    const crash = this.options.crash;
    return saveCheckpoint(
      this.root,
      {
        step: state.step,
        params: tree,
        optimizer: state.optimizer.stateTensors(),
        config: meta.config,
        training: { seed: meta.seed, optimizer: state.optimizer.config(), ...(this.options.data ? { data: this.options.data } : {}) },
      },
      {
        keep: this.options.keep ?? 2,
        ...(crash !== undefined && crash.at !== 'log-append' && crash.step === state.step ? { onStage: (s: SaveStage) => (s === crash.at ? killSelf() : undefined) } : {}),
      },
    );
  }

  async loadLatest(expected: ReadonlyMap<string, HostTensor>, optimizer: Optimizer): Promise<{ step: number } | undefined> {
    if ((await latestCheckpoint(this.root)) === undefined) {
      await this.truncateLog(0);
      return undefined;
    }
    const expectedTree: Record<string, HostTensor> = Object.fromEntries(expected);
    const loaded = await loadCheckpoint(this.root, { expectedParams: expectedTree });
    optimizer.loadState(loaded.optimizer);
    assignInPlace(expected, loaded.params);
    await this.truncateLog(loaded.step);
    return { step: loaded.step };
  }

  /** Appends synchronously, so records land in order even when training is interrupted. */
  appendLog(record: TrainRecord): void {
    this.options.lock?.assertHeld();
    const line = `${JSON.stringify(record)}\n`;
    const crash = this.options.crash;
    if (crash?.at === 'log-append' && crash.step === record.step) {
      appendFileSync(this.logPath, line.slice(0, Math.floor(line.length / 2)));
      killSelf();
    }
    appendFileSync(this.logPath, line);
  }

  /**
   * Cuts the log back to the records of steps ≤ `step` (the work the checkpoint holds). A torn last
   * line (a kill mid-append) is dropped; an unreadable line before it is corruption and refused.
   * Returns how many records were dropped.
   */
  async truncateLog(step: number): Promise<number> {
    let text: string;
    try {
      text = await readFile(this.logPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
    const { records, torn } = parseLogLines(text, this.logPath);
    const kept = records.filter((r) => r.step <= step);
    const dropped = records.length - kept.length + (torn ? 1 : 0);
    if (dropped > 0) {
      this.options.lock?.assertHeld();
      await writeFileAtomic(this.logPath, kept.map((r) => `${r.line}\n`).join(''));
    }
    return dropped;
  }
}

/**
 * Splits a run log into records (their step and original line). Only the last line may be torn:
 * a process killed mid-append leaves it without its newline or unparsable.
 */
export function parseLogLines(text: string, path: string): { records: { step: number; line: string }[]; torn: boolean } {
  const complete = text.endsWith('\n');
  const lines = text.split('\n');
  if (complete) lines.pop();
  const records: { step: number; line: string }[] = [];
  let torn = false;
  lines.forEach((line, i) => {
    if (i === lines.length - 1 && !complete) {
      torn = line !== '';
      return;
    }
    if (line.trim() === '') return;
    let step: unknown;
    try {
      step = (JSON.parse(line) as { step?: unknown }).step;
    } catch {
      step = undefined;
    }
    if (typeof step !== 'number') throw new Error(`run log '${path}' line ${i + 1} is not a log record (the log is corrupt; move it aside to continue)`);
    records.push({ step, line });
  });
  return { records, torn };
}

export interface LoadedRun {
  readonly config: RunConfig;
  readonly seed: number;
  readonly step: number;
  /** The data the run trained on, when recorded (runs made before run manifests lack it). */
  readonly data?: DataIdentity;
  readonly paramTree: Params;
  readonly params: Map<string, HostTensor>;
}

/**
 * Loads the latest checkpoint of a run directory (or a step directory) with its config. Reads
 * once, so a training that saves meanwhile cannot mix two checkpoints; if the chosen step is pruned
 * while being read, the new latest is tried.
 */
export async function loadRun(path: string, overrides: ModelOverrides = {}, batchSize?: number): Promise<LoadedRun> {
  let probe;
  for (let attempt = 0; ; attempt++) {
    try {
      probe = await loadCheckpoint(path);
      break;
    } catch (e) {
      if (!(e instanceof CheckpointError) || attempt >= 2 || (await latestCheckpoint(path)) === undefined) throw e;
    }
  }
  const config = validateRunConfig(probe.config);
  const training = probe.training as { seed?: number; data?: DataIdentity } | undefined;
  const B = batchSize ?? config.train.batchSize;
  const model = buildModel(config.model, overrides);
  const fresh = model.init(new InitKey(0), [spec([B, config.model.seqLen], 'i32')]);
  const params = new Map(flattenParams(fresh));
  assignInPlace(params, checkParams(new Map(flattenParams(probe.params)), fresh, probe.dir));
  const data = training?.data ?? (await readRunManifest(path === probe.dir ? dirname(path) : path).catch(() => undefined))?.data;
  return { config, seed: training?.seed ?? 0, step: probe.step, ...(data ? { data } : {}), paramTree: fresh, params };
}
