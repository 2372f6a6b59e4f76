/** `reformer eval`: held-out bits per character, or second-half accuracy on the duplication task. */
import { loadRun } from '../../node.ts';
import { evaluateModel } from '../../reformer/train/trainer.ts';
import { buildModel } from '../../reformer/model.ts';
import { evalRefusal, evalSetup, type EvalAttention } from '../../reformer/eval-attention.ts';
import { openDataSource, openRecordedData } from '../../reformer/train/data-source.ts';
import { openRunner } from './runner.ts';

export interface EvalCommandOptions {
  readonly checkpoint: string;
  readonly data?: string;
  readonly nHashes?: number;
  readonly fullAttention: boolean;
  readonly batches: number;
  readonly backend: string;
}

export async function evalCommand(opts: EvalCommandOptions): Promise<void> {
  if (opts.nHashes !== undefined && opts.nHashes < 1) throw new Error(`--n-hashes must be at least 1, got ${opts.nHashes}`);
  if (opts.batches < 1) throw new Error(`--batches must be at least 1, got ${opts.batches}`);
  if (opts.fullAttention && opts.nHashes !== undefined) throw new Error('--full-attention and --n-hashes exclude each other: choose one attention to evaluate with');
  const attention: EvalAttention = opts.fullAttention
    ? { kind: 'full' }
    : opts.nHashes !== undefined
      ? { kind: 'lsh', nHashes: opts.nHashes }
      : { kind: 'trained' };
  const run = await loadRun(opts.checkpoint);
  const setup = evalSetup(run.config.model, attention);
  if (setup === undefined) {
    throw new Error(`${opts.fullAttention ? '--full-attention' : '--n-hashes'}: ${evalRefusal(run.config.model, attention)} (${opts.checkpoint})`);
  }
  // By default the held-out split of what the run trained on (runs from before run manifests: by vocabulary).
  const fallback = run.config.model.vocabSize === 128 ? 'duplication' : 'brown';
  const data =
    opts.data !== undefined
      ? await openDataSource(opts.data, run.config.model)
      : run.data !== undefined
        ? await openRecordedData(run.data, run.config.model, 'pass --data to evaluate on other data')
        : await openDataSource(fallback, run.config.model);
  const duplication = data.identity.kind === 'builtin' && data.identity.name === 'duplication';
  const runner = await openRunner(opts.backend);
  const model = buildModel(setup.model, setup.overrides);
  const r = await evaluateModel(runner, model, run.paramTree, run.params, data, { ...run.config, model: setup.model }, opts.batches);
  const how =
    attention.kind === 'full'
      ? ', evaluated with full attention'
      : setup.model.attention.includes('lsh')
        ? `, LSH evaluated with ${setup.overrides.nHashes ?? setup.model.nHashes} hash round(s)`
        : '';
  console.log(`backend: ${runner.description}`);
  console.log(`checkpoint step ${run.step}${how}, ${opts.batches} batches of ${data.description}`);
  if (duplication) console.log(`second-half accuracy ${(100 * r.accuracy).toFixed(2)}%, loss ${r.loss.toFixed(4)}`);
  else console.log(`loss ${r.loss.toFixed(4)} nats/byte = ${r.bpc.toFixed(3)} bits/char (next-byte accuracy ${(100 * r.accuracy).toFixed(1)}%)`);
}
