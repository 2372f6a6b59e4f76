/**
 * The training loop: deterministic batches and dropout seeds from (seed, step), gradient clipping,
 * Adam or Adafactor with warm-up then rsqrt decay, periodic evaluation, atomic checkpoints and a
 * JSONL run log. A run resumed from step s replays the uninterrupted run from s on exactly.
 */
import { mix32 } from '../../compiler/ir/random.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { flattenParams, InitKey, spec, type Layer, type Params } from '../../dsl/layer.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import { Adafactor, Adam, clipByGlobalNorm, warmupRsqrtSchedule, type Optimizer } from '../../runtime/optim/index.ts';
import type { RunConfig } from '../config.ts';
import { buildModel } from '../model.ts';
import { evalObjective, runEvalStep, runTrainStep, trainObjective, type Batch } from './objective.ts';

/** Where batches come from; both methods are pure functions of their arguments. */
export interface DataSource {
  /** One-line description for logs, e.g. `brown (5.9 MB, 95% train)`. */
  readonly description: string;
  trainBatch(seed: number, step: number, batchSize: number, seqLen: number): Batch;
  evalBatch(index: number, batchSize: number, seqLen: number): Batch;
}

export interface TrainState {
  readonly step: number;
  readonly params: Map<string, HostTensor>;
  readonly optimizer: Optimizer;
}

/** Persistence of training state; writes must be atomic. */
export interface CheckpointStore {
  save(state: TrainState, meta: Record<string, unknown>): Promise<string>;
  /** Loads the latest complete checkpoint into `params` and `optimizer` in place; undefined when there is none. */
  loadLatest(expected: ReadonlyMap<string, HostTensor>, optimizer: Optimizer): Promise<{ step: number } | undefined>;
}

export interface TrainRecord {
  readonly type: 'train' | 'eval';
  readonly step: number;
  readonly loss: number;
  readonly bpc: number;
  readonly accuracy?: number;
  readonly lr?: number;
  readonly gradNorm?: number;
  readonly tokensPerSec?: number;
  readonly seconds?: number;
}

export interface TrainOptions {
  readonly config: RunConfig;
  readonly data: DataSource;
  readonly runner: GraphRunner;
  readonly seed: number;
  readonly store?: CheckpointStore;
  readonly resume?: boolean;
  /** Called with every train and eval record (run log, progress bar). */
  readonly onRecord?: (record: TrainRecord) => void;
  /** Called when training resumes from a checkpoint. */
  readonly onResume?: (step: number) => void;
  /**
   * Polled after every step: when it returns true, training saves a checkpoint of the steps done
   * (if there is a store and the last step was not just saved) and returns early (SIGINT, SIGTERM).
   */
  readonly shouldStop?: () => boolean;
}

export interface TrainResult {
  readonly model: Layer;
  readonly paramTree: Params;
  readonly params: Map<string, HostTensor>;
  readonly steps: number;
  readonly finalEval?: TrainRecord;
  /** Set when `shouldStop` ended training early: the completed steps (saved when there is a store). */
  readonly stoppedAt?: number;
}

/** Seed for the dropout masks and hash rotations of one step. */
// 23 bits: seeds travel through float32 kernels, which carry integers exactly only below 2^24.
export const stepSeed = (seed: number, step: number) => mix32(mix32(seed ^ 0x2545f491) ^ step) & 0x7fffff;

export function makeOptimizer(config: RunConfig, params: Map<string, HostTensor>): Optimizer {
  return config.train.optimizer === 'adam' ? new Adam(params) : new Adafactor(params);
}

/** Loss in nats per token to bits per character (one byte per token). */
export const bitsPerChar = (loss: number) => loss / Math.LN2;

export async function evaluateModel(
  runner: GraphRunner,
  model: Layer,
  paramTree: Params,
  params: ReadonlyMap<string, HostTensor>,
  data: DataSource,
  config: RunConfig,
  batches: number,
): Promise<{ loss: number; bpc: number; accuracy: number }> {
  const { batchSize } = config.train;
  const L = config.model.seqLen;
  const objective = evalObjective(model, paramTree, batchSize, L);
  let lossSum = 0;
  let weightSum = 0;
  let correct = 0;
  for (let i = 0; i < batches; i++) {
    const r = await runEvalStep(runner, objective, params, data.evalBatch(i, batchSize, L));
    lossSum += r.loss * r.weight;
    weightSum += r.weight;
    correct += r.correct;
  }
  const loss = lossSum / Math.max(weightSum, 1e-9);
  return { loss, bpc: bitsPerChar(loss), accuracy: correct / Math.max(weightSum, 1e-9) };
}

// setImmediate in Node (no timer clamp); a browser page has none, so setTimeout there.
const yieldToEventLoop = (): Promise<void> =>
  new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { config, data, runner, seed } = options;
  const { batchSize, steps } = config.train;
  const L = config.model.seqLen;
  const model = buildModel(config.model);
  const paramTree = model.init(new InitKey(seed), [spec([batchSize, L], 'i32')]);
  const params = new Map(flattenParams(paramTree));
  const optimizer = makeOptimizer(config, params);
  let start = 0;
  if (options.resume && options.store) {
    const restored = await options.store.loadLatest(params, optimizer);
    if (restored !== undefined) {
      start = restored.step;
      options.onResume?.(start);
    }
  }
  const objective = trainObjective(model, paramTree, batchSize, L, { memorySchedules: config.train.reversible });
  const schedule = warmupRsqrtSchedule(config.train.learningRate, config.train.warmupSteps);
  const meta = () => ({ config, seed });
  let finalEval: TrainRecord | undefined;

  const runEval = async (step: number) => {
    const r = await evaluateModel(runner, model, paramTree, params, data, config, config.train.evalBatches);
    const record: TrainRecord = { type: 'eval', step, loss: r.loss, bpc: r.bpc, accuracy: r.accuracy };
    options.onRecord?.(record);
    return record;
  };

  let saved = start;
  const save = async (done: number) => {
    if (!options.store || saved === done) return;
    await options.store.save({ step: done, params, optimizer }, meta());
    saved = done;
  };
  for (let step = start; step < steps; step++) {
    // A step may be all synchronous work; yielding to the event loop lets signal handlers (SIGINT)
    // and the progress bar's timer run between steps.
    await yieldToEventLoop();
    if (options.shouldStop?.()) {
      await save(step);
      return { model, paramTree, params, steps, stoppedAt: step };
    }
    const began = performance.now();
    const batch = data.trainBatch(seed, step, batchSize, L);
    const { loss, grads } = await runTrainStep(runner, objective, params, batch, stepSeed(seed, step));
    if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step + 1}: loss is ${loss}`);
    const { norm } = clipByGlobalNorm(grads, config.train.gradClip);
    const lr = schedule(step + 1);
    optimizer.update(params, grads, lr);
    const seconds = (performance.now() - began) / 1000;
    options.onRecord?.({
      type: 'train',
      step: step + 1,
      loss,
      bpc: bitsPerChar(loss),
      lr,
      gradNorm: norm,
      tokensPerSec: (batchSize * L) / seconds,
      seconds,
    });
    const done = step + 1;
    if (done % config.train.evalEvery === 0 || done === steps) finalEval = await runEval(done);
    if (done % config.train.checkpointEvery === 0 || done === steps) await save(done);
  }
  // A finished run resumed again: report its final evaluation without logging it a second time.
  if (finalEval === undefined && start >= steps) {
    const r = await evaluateModel(runner, model, paramTree, params, data, config, config.train.evalBatches);
    finalEval = { type: 'eval', step: start, loss: r.loss, bpc: r.bpc, accuracy: r.accuracy };
  }
  return { model, paramTree, params, steps, ...(finalEval ? { finalEval } : {}) };
}
