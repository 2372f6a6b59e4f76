/**
 * A run directory: checkpoints (`step-N/` plus a `latest` pointer, written atomically by
 * runtime/checkpoint.ts) and the JSONL run log. Resuming truncates the log to the checkpoint's
 * step so the resumed curve continues the uninterrupted one without duplicates.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { flattenParams, InitKey, spec, type Params } from '../../dsl/layer.ts';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, writeFileAtomic } from '../../runtime/checkpoint.ts';
import type { Optimizer } from '../../runtime/optim/index.ts';
import { validateRunConfig, type RunConfig } from '../config.ts';
import { buildModel, type ModelOverrides } from '../model.ts';
import type { CheckpointStore, TrainRecord, TrainState } from './trainer.ts';

export const RUN_LOG = 'run-log.jsonl';

/** Copies loaded values into the live tensors, so graphs and optimizers keep their references. */
function assignInPlace(target: ReadonlyMap<string, HostTensor>, source: Params): void {
  for (const [path, t] of flattenParams(source)) {
    const dst = target.get(path);
    if (dst === undefined) throw new Error(`checkpoint has parameter '${path}' that the model lacks`);
    dst.data.set(t.data);
  }
}

export class RunDirectory implements CheckpointStore {
  constructor(
    readonly root: string,
    private readonly keep = 2,
  ) {}

  get logPath(): string {
    return join(this.root, RUN_LOG);
  }

  async save(state: TrainState, meta: { config: RunConfig; seed: number }): Promise<string> {
    const tree: Record<string, HostTensor> = Object.fromEntries(state.params);
    return saveCheckpoint(
      this.root,
      {
        step: state.step,
        params: tree,
        optimizer: state.optimizer.stateTensors(),
        config: meta.config,
        training: { seed: meta.seed, optimizer: state.optimizer.config() },
      },
      { keep: this.keep },
    );
  }

  async loadLatest(expected: ReadonlyMap<string, HostTensor>, optimizer: Optimizer): Promise<{ step: number } | undefined> {
    if ((await latestCheckpoint(this.root)) === undefined) return undefined;
    const expectedTree: Record<string, HostTensor> = Object.fromEntries(expected);
    const loaded = await loadCheckpoint(this.root, { expectedParams: expectedTree });
    optimizer.loadState(loaded.optimizer);
    assignInPlace(expected, loaded.params);
    await this.truncateLog(loaded.step);
    return { step: loaded.step };
  }

  /** Appends synchronously, so records land in order even when training is interrupted. */
  appendLog(record: TrainRecord): void {
    mkdirSync(this.root, { recursive: true });
    appendFileSync(this.logPath, `${JSON.stringify(record)}\n`);
  }

  /** Drops log records after `step` (they belong to work the checkpoint does not contain). */
  async truncateLog(step: number): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.logPath, 'utf8');
    } catch {
      return;
    }
    const kept = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .filter((line) => {
        try {
          return (JSON.parse(line) as { step?: number }).step! <= step;
        } catch {
          return false;
        }
      });
    await writeFileAtomic(this.logPath, kept.map((l) => `${l}\n`).join(''));
  }
}

export interface LoadedRun {
  readonly config: RunConfig;
  readonly seed: number;
  readonly step: number;
  readonly paramTree: Params;
  readonly params: Map<string, HostTensor>;
}

/** Loads the latest checkpoint of a run directory (or a step directory) with its config. */
export async function loadRun(path: string, overrides: ModelOverrides = {}, batchSize?: number): Promise<LoadedRun> {
  const probe = await loadCheckpoint(path);
  const config = validateRunConfig(probe.config);
  const training = probe.training as { seed?: number } | undefined;
  const B = batchSize ?? config.train.batchSize;
  const model = buildModel(config.model, overrides);
  const fresh = model.init(new InitKey(0), [spec([B, config.model.seqLen], 'i32')]);
  const params = new Map(flattenParams(fresh));
  const checked = await loadCheckpoint(probe.dir, { expectedParams: Object.fromEntries(params) });
  assignInPlace(params, checked.params);
  return { config, seed: training?.seed ?? 0, step: checked.step, paramTree: fresh, params };
}
