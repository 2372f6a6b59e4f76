/**
 * Runs an experiment grid: for each seed and training arm one run directory (the layout of
 * `reformer train`: run manifest, lock, checkpoints, run log), then every evaluation attention on
 * the final checkpoint. Evaluations land in `repro-cell.json` one by one, so an interrupted grid
 * resumes where it stopped: finished training is skipped, a cut training resumes from its last
 * checkpoint, and only missing evaluations run.
 *
 *   <out>/seed-<s>/<arm>/run.json, run-log.jsonl, step-N/, latest, repro-cell.json
 */
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { latestCheckpoint, writeFileAtomic } from '../../runtime/checkpoint.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import { validateRunConfig, type RunConfig } from '../config.ts';
import { buildModel } from '../model.ts';
import { describeDataMismatch, openDataSource, type OpenedData } from '../train/data-source.ts';
import { loadRun, parseLogLines, RunDirectory, RUN_LOG } from '../train/run-dir.ts';
import { RunLock } from '../train/run-lock.ts';
import { firstDifference, packageVersion, readRunManifest, writeRunManifest, type RunManifest } from '../train/run-manifest.ts';
import { evaluateModel, train, type TrainRecord } from '../train/trainer.ts';
import { evalSetup } from '../eval-attention.ts';
import { armConfig, type Experiment, type TrainArm } from './experiments.ts';

export const CELL_RECORD = 'repro-cell.json';

export interface CellEval {
  readonly loss: number;
  readonly bpc: number;
  readonly accuracy: number;
  readonly seconds: number;
}

/** What `repro-cell.json` holds: the evaluations of the checkpoint at `step` (null: not applicable). */
interface CellRecord {
  readonly step: number;
  readonly evals: Record<string, CellEval | null>;
  /** Step times of the last invocation that trained the cell (kept when a later one skips it). */
  readonly stepTime?: CellResult['stepTime'];
}

export interface CurvePoint {
  readonly step: number;
  readonly loss: number;
  readonly bpc: number;
  readonly accuracy?: number;
}

export interface CellResult {
  readonly seed: number;
  readonly arm: TrainArm;
  readonly dir: string;
  /** What this invocation did to the training: ran it from scratch, resumed it, or found it finished. */
  readonly training: 'trained' | 'resumed' | 'skipped';
  /** Evaluations computed by this invocation (the others were read from `repro-cell.json`). */
  readonly evaluated: number;
  readonly step: number;
  readonly params: number;
  /** Sum of the per-step times in the run log (all sessions; the first step of each includes compiling). */
  readonly trainSeconds: number;
  readonly evals: Readonly<Record<string, CellEval | null>>;
  /** Held-out evaluations logged during training. */
  readonly curve: readonly CurvePoint[];
  /**
   * Median wall and CPU (process user + system, all threads) seconds per training step of this
   * invocation, first step (compiling) excluded; absent when it trained fewer than 2 steps. The
   * CPU time is what the step costs on an idle machine; the wall time depends on the load.
   */
  readonly stepTime?: { readonly wallSeconds: number; readonly cpuSeconds: number; readonly steps: number };
}

export interface GridOptions {
  readonly experiment: Experiment;
  readonly out: string;
  readonly seeds: readonly number[];
  readonly runner: GraphRunner;
  /** The `--backend` asked for, recorded in each run manifest. */
  readonly backend: string;
  /** Training steps of every cell (default: each config's train.steps). */
  readonly steps?: number;
  /** Changes every arm's config (e.g. `quickScale`); applied before `steps`. */
  readonly scale?: (config: RunConfig) => RunConfig;
  /** The config of an arm (default: the shipped configs/<arm>.json). */
  readonly configOf?: (arm: TrainArm) => RunConfig;
  readonly log?: (line: string) => void;
  /** Polled between steps: true stops after saving a checkpoint (SIGINT). */
  readonly shouldStop?: () => boolean;
}

export interface GridResult {
  readonly experiment: Experiment;
  readonly out: string;
  readonly seeds: readonly number[];
  readonly backend: string;
  readonly cells: readonly CellResult[];
  readonly wallSeconds: number;
  /** True when `shouldStop` ended the grid early (the cells list holds the finished ones). */
  readonly stopped: boolean;
}

export const cellDir = (out: string, seed: number, arm: TrainArm) => join(out, `seed-${seed}`, arm.id);

/** The config a cell trains with: the arm's, scaled, with `steps` applied. */
export function cellConfig(arm: TrainArm, options: Pick<GridOptions, 'steps' | 'scale' | 'configOf'>): RunConfig {
  let config = (options.configOf ?? armConfig)(arm);
  if (options.scale) config = options.scale(config);
  return options.steps !== undefined ? validateRunConfig({ ...config, train: { ...config.train, steps: options.steps } }) : config;
}

export async function runGrid(options: GridOptions): Promise<GridResult> {
  const began = performance.now();
  const cells: CellResult[] = [];
  const dataCache = new Map<string, OpenedData>();
  const openData = async (config: RunConfig) => {
    const key = `${options.experiment.data}/${config.model.seqLen}/${config.model.vocabSize}`;
    let data = dataCache.get(key);
    if (data === undefined) dataCache.set(key, (data = await openDataSource(options.experiment.data, config.model)));
    return data;
  };
  for (const seed of options.seeds) {
    for (const arm of options.experiment.trainArms) {
      const config = cellConfig(arm, options);
      const cell = await runCell(options, seed, arm, config, await openData(config));
      if (cell === undefined) return { ...summary(options, cells, began), stopped: true };
      cells.push(cell);
    }
  }
  return { ...summary(options, cells, began), stopped: false };
}

function summary(options: GridOptions, cells: CellResult[], began: number) {
  const { experiment, out, seeds, backend } = options;
  return { experiment, out, seeds, backend, cells, wallSeconds: (performance.now() - began) / 1000 };
}

/** Refuses a cell folder made with another config, seed or data (a changed `steps` only extends it). */
function checkRecorded(dir: string, recorded: RunManifest, config: RunConfig, seed: number, data: OpenedData): void {
  const advice = 'use another --out, or delete that cell folder to redo it';
  if (recorded.seed !== seed) throw new Error(`repro: cell '${dir}' was trained with seed ${recorded.seed}, not ${seed}; ${advice}`);
  const diff = firstDifference(recorded.config, { ...config, train: { ...config.train, steps: recorded.config.train.steps } });
  if (diff !== undefined) {
    throw new Error(`repro: cell '${dir}' was trained with ${diff.field} = ${JSON.stringify(diff.left)}, the grid now asks ${JSON.stringify(diff.right)}; ${advice}`);
  }
  const mismatch = describeDataMismatch(recorded.data, data.identity);
  if (mismatch !== undefined) throw new Error(`repro: cell '${dir}': ${mismatch}; ${advice}`);
}

async function readCellRecord(dir: string): Promise<CellRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, CELL_RECORD), 'utf8')) as CellRecord;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`repro: cannot read ${join(dir, CELL_RECORD)} (${(e as Error).message}); delete it to redo the evaluations`);
  }
}

/** Train/eval records of a cell's run log. */
async function readCurve(dir: string): Promise<{ curve: CurvePoint[]; trainSeconds: number }> {
  const path = join(dir, RUN_LOG);
  const text = await readFile(path, 'utf8').catch(() => '');
  const records = parseLogLines(text, path).records.map((r) => JSON.parse(r.line) as TrainRecord);
  const curve = records.filter((r) => r.type === 'eval').map((r) => ({ step: r.step, loss: r.loss, bpc: r.bpc, ...(r.accuracy !== undefined ? { accuracy: r.accuracy } : {}) }));
  const trainSeconds = records.reduce((s, r) => s + (r.type === 'train' ? (r.seconds ?? 0) : 0), 0);
  return { curve, trainSeconds };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const countParams = (params: ReadonlyMap<string, HostTensor>) => [...params.values()].reduce((n, t) => n + t.data.length, 0);

/** One cell; undefined when `shouldStop` interrupted its training (a checkpoint is saved). */
async function runCell(options: GridOptions, seed: number, arm: TrainArm, config: RunConfig, data: OpenedData): Promise<CellResult | undefined> {
  const dir = cellDir(options.out, seed, arm);
  const log = options.log ?? (() => {});
  const tag = `[seed ${seed} ${arm.id}]`;
  const steps = config.train.steps;
  mkdirSync(dir, { recursive: true });
  const recorded = await readRunManifest(dir);
  if (recorded !== undefined) checkRecorded(dir, recorded, config, seed, data);
  const lock = RunLock.acquire(dir);
  try {
    const before = await latestCheckpoint(dir);
    const willTrain = before === undefined || before < steps;
    // A new length is recorded only when training runs to it (a run already past it stays as it is).
    if (recorded === undefined || (willTrain && recorded.config.train.steps !== steps)) {
      const manifest: RunManifest = {
        config,
        seed,
        data: data.identity,
        backend: { requested: options.backend, resolved: options.runner.description },
        packageVersion: packageVersion(),
        createdAt: recorded?.createdAt ?? new Date().toISOString(),
      };
      await writeRunManifest(dir, manifest);
    }
    let training: CellResult['training'] = 'skipped';
    const stepTimes: { wall: number; cpu: number }[] = [];
    if (willTrain) {
      training = before === undefined ? 'trained' : 'resumed';
      log(`${tag} ${before === undefined ? 'training' : `resuming at step ${before}`}, ${steps} steps`);
      const store = new RunDirectory(dir, { keep: config.train.keepCheckpoints, lock, data: data.identity });
      const every = Math.max(1, Math.floor(steps / 10));
      let cpuBefore = process.cpuUsage();
      const result = await train({
        config,
        data,
        runner: options.runner,
        seed,
        store,
        resume: true,
        onRecord: (r) => {
          if (r.type === 'train') {
            const cpu = process.cpuUsage(cpuBefore);
            cpuBefore = process.cpuUsage();
            stepTimes.push({ wall: r.seconds ?? 0, cpu: (cpu.user + cpu.system) / 1e6 });
          }
          store.appendLog(r);
          if (r.type === 'eval') log(`${tag} step ${r.step}/${steps}: held-out loss ${r.loss.toFixed(4)}, bits/char ${r.bpc.toFixed(3)}, accuracy ${(100 * (r.accuracy ?? 0)).toFixed(2)}%`);
          else if (r.step % every === 0) log(`${tag} step ${r.step}/${steps}: loss ${r.loss.toFixed(4)}, ${(r.seconds ?? 0).toFixed(2)} s/step wall, ${stepTimes.at(-1)!.cpu.toFixed(2)} s CPU`);
        },
        ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
      });
      if (result.stoppedAt !== undefined) {
        log(`${tag} stopped after step ${result.stoppedAt}; the grid resumes there`);
        return undefined;
      }
    } else {
      log(`${tag} training finished earlier (step ${before}): skipped`);
    }
    const run = await loadRun(dir);
    const previous = await readCellRecord(dir);
    const evals: Record<string, CellEval | null> = previous?.step === run.step ? { ...previous.evals } : {};
    let evaluated = 0;
    const timed = stepTimes.slice(1);
    const stepTime =
      timed.length > 0 ? { wallSeconds: median(timed.map((t) => t.wall)), cpuSeconds: median(timed.map((t) => t.cpu)), steps: timed.length } : previous?.stepTime;
    const record = (): string => `${JSON.stringify({ step: run.step, evals, ...(stepTime ? { stepTime } : {}) } satisfies CellRecord, null, 2)}\n`;
    for (const evalArm of options.experiment.evalArms) {
      if (evalArm.id in evals) continue;
      const setup = evalSetup(run.config.model, evalArm.attention);
      if (setup === undefined) {
        evals[evalArm.id] = null;
      } else {
        const t0 = performance.now();
        const model = buildModel(setup.model, setup.overrides);
        const evalConfig: RunConfig = { ...run.config, model: setup.model };
        const r = await evaluateModel(options.runner, model, run.paramTree, run.params, data, evalConfig, config.train.evalBatches);
        evals[evalArm.id] = { ...r, seconds: (performance.now() - t0) / 1000 };
        evaluated++;
        log(`${tag} eval ${evalArm.label}: accuracy ${(100 * r.accuracy).toFixed(2)}%, bits/char ${r.bpc.toFixed(3)}`);
      }
      lock.assertHeld();
      await writeFileAtomic(join(dir, CELL_RECORD), record());
    }
    if (evaluated === 0 && timed.length > 0) {
      lock.assertHeld();
      await writeFileAtomic(join(dir, CELL_RECORD), record());
    }
    const { curve, trainSeconds } = await readCurve(dir);
    return { seed, arm, dir, training, evaluated, step: run.step, params: countParams(run.params), trainSeconds, evals, curve, ...(stepTime ? { stepTime } : {}) };
  } finally {
    lock.release();
  }
}
