/** `reformer train`: trains with a progress bar, a JSONL run log, periodic evaluation and checkpoints. */
import { readFile } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import { defaultRunConfig, validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { train, type TrainRecord } from '../../reformer/train/trainer.ts';
import { RunDirectory } from '../../reformer/train/run-dir.ts';
import { openDataSource } from '../../reformer/train/data-source.ts';
import { openRunner } from './runner.ts';

export interface TrainCommandOptions {
  readonly config?: string;
  readonly data?: string;
  readonly steps?: number;
  readonly out: string;
  readonly seed: number;
  readonly backend: string;
  readonly resume: boolean;
  readonly evalEvery?: number;
  readonly checkpointEvery?: number;
  readonly progress: boolean;
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

export async function trainCommand(opts: TrainCommandOptions): Promise<void> {
  const base = await readConfig(opts.config);
  const dataSpec = opts.data ?? 'brown';
  const config: RunConfig = validateRunConfig({
    model: dataSpec === 'duplication' ? { ...base.model, vocabSize: 128 } : base.model,
    train: {
      ...base.train,
      ...(opts.steps !== undefined ? { steps: opts.steps } : {}),
      ...(opts.evalEvery !== undefined ? { evalEvery: opts.evalEvery } : {}),
      ...(opts.checkpointEvery !== undefined ? { checkpointEvery: opts.checkpointEvery } : {}),
    },
  });
  const data = await openDataSource(dataSpec, config.model);
  const runner = await openRunner(opts.backend);
  const run = new RunDirectory(opts.out, config.train.keepCheckpoints);
  const m = config.model;
  console.log(`backend: ${runner.description}`);
  console.log(`data: ${data.description}`);
  console.log(
    `model: ${m.architecture} L=${m.seqLen} d=${m.dModel} dFF=${m.dFF} heads=${m.nHeads}x${m.dHead} layers=${m.nLayers} attention=${m.attention.join('/')} hashes=${m.nHashes}`,
  );
  console.log(`run directory: ${opts.out}`);

  const interactive = opts.progress && process.stdout.isTTY === true;
  // MultiBar (with one bar) because it can print log lines above the bar.
  const bars = interactive
    ? new cliProgress.MultiBar(
        { format: 'step {value}/{total} |{bar}| loss {loss} bpc {bpc} | {tps} tok/s | ETA {eta_formatted}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let bar: cliProgress.SingleBar | undefined;
  let lastPrinted = 0;
  const onRecord = (r: TrainRecord) => {
    run.appendLog(r);
    if (r.type === 'eval') {
      const acc = r.accuracy !== undefined ? ` accuracy ${(100 * r.accuracy).toFixed(1)}%` : '';
      const line = `eval @ step ${r.step}: loss ${r.loss.toFixed(4)} bits/char ${r.bpc.toFixed(3)}${acc}`;
      if (bars) bars.log(`${line}\n`);
      else console.log(line);
      return;
    }
    const payload = { loss: r.loss.toFixed(3), bpc: r.bpc.toFixed(3), tps: Math.round(r.tokensPerSec ?? 0) };
    if (bars) {
      bar ??= bars.create(config.train.steps, r.step - 1, payload);
      bar.update(r.step, payload);
    } else if (r.step === 1 || r.step - lastPrinted >= 10 || r.step === config.train.steps) {
      lastPrinted = r.step;
      console.log(`step ${r.step}/${config.train.steps} loss ${payload.loss} bpc ${payload.bpc} ${payload.tps} tok/s`);
    }
  };
  const result = await train({
    config,
    data,
    runner,
    seed: opts.seed,
    store: run,
    resume: opts.resume,
    onRecord,
    onResume: (step) => console.log(`resuming from the checkpoint at step ${step}`),
  });
  bars?.stop();
  const ev = result.finalEval;
  if (ev) {
    const acc = ev.accuracy !== undefined ? `, accuracy ${(100 * ev.accuracy).toFixed(1)}%` : '';
    console.log(`held-out: loss ${ev.loss.toFixed(4)} nats/byte = ${ev.bpc.toFixed(3)} bits/char${acc} after ${ev.step} steps`);
  }
  console.log(`checkpoint: ${opts.out} (try: npx reformer generate --checkpoint ${opts.out} --prompt "The ")`);
}
