/**
 * `reformer import` and `reformer export --format hf`: HF transformers ReformerModelWithLMHead
 * checkpoints to our run directories and back. Everything is read and checked before anything is
 * written; outputs appear atomically (a temp directory renamed into place) or not at all.
 */
import { basename, join } from 'node:path';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { flattenParams, InitKey, spec } from '../../dsl/layer.ts';
import { defaultRunConfig, validateRunConfig, type ModelConfig, type RunConfig, type TrainConfig } from '../config.ts';
import { buildModel } from '../model.ts';
import { loadRun, RunDirectory } from '../train/run-dir.ts';
import { makeOptimizer } from '../train/trainer.ts';
import { openDataSource, type DataIdentity } from '../train/data-source.ts';
import { packageVersion, writeRunManifest } from '../train/run-manifest.ts';
import { fromHfConfig, toHfConfig } from './hf-config.ts';
import { assertFreshOutput, readHfCheckpoint, writeDirectoryAtomic, writeHfCheckpoint } from './hf-files.ts';
import { fromHfTensors, toHfTensors } from './hf-mapping.ts';

export interface ImportOptions {
  /** Training settings of the new run (default: the built-in ones). */
  readonly train?: TrainConfig;
  /** The run's seed (dropout, LSH rotations, data order when training continues). */
  readonly seed?: number;
  /**
   * The data the run will evaluate and train on (a `--data` spec). Default: 'brown' for a byte-level
   * vocabulary (258), 'duplication' for 128; otherwise none, and the run has no manifest.
   */
  readonly data?: string;
  /** The `--backend` the run records for `train --resume` (default 'auto'). */
  readonly backend?: string;
}

export interface ImportResult {
  readonly config: RunConfig;
  /** The checkpoint directory written (step 0). */
  readonly checkpointDir: string;
  readonly tensors: number;
  /** The data recorded in the run manifest; undefined when no data source fits the vocabulary (no manifest written). */
  readonly data?: DataIdentity;
}

/** The default data for a vocabulary, as `reformer train` would use it. */
function defaultDataSpec(vocabSize: number): string | undefined {
  if (vocabSize === 258) return 'brown';
  if (vocabSize === 128) return 'duplication';
  return undefined;
}

/** Our model's parameters (names and shapes) for a config, as a fresh initialisation. */
export function expectedParams(model: ModelConfig): Map<string, HostTensor> {
  return new Map(flattenParams(buildModel(model).init(new InitKey(0), [spec([1, model.seqLen], 'i32')])));
}

/** Reads an HF model directory and writes it as a new run directory (a step-0 checkpoint). */
export async function importHfCheckpoint(hfDir: string, runDir: string, options: ImportOptions = {}): Promise<ImportResult> {
  await assertFreshOutput(runDir, 'run directory');
  const hf = await readHfCheckpoint(hfDir);
  const model = fromHfConfig(hf.config, join(hfDir, 'config.json'));
  const config = validateRunConfig({ model, train: options.train ?? defaultRunConfig.train });
  const params = fromHfTensors(model, hf.tensors, expectedParams(model), hf.source);
  const spec = options.data ?? defaultDataSpec(model.vocabSize);
  const data = spec === undefined ? undefined : (await openDataSource(spec, model)).identity;
  const seed = options.seed ?? 0;
  let written = '';
  await writeDirectoryAtomic(runDir, async (tmp) => {
    // The run directory's own writers: its manifest (run.json) and a step-0 checkpoint.
    if (data !== undefined) {
      await writeRunManifest(tmp, {
        config,
        seed,
        data,
        backend: { requested: options.backend ?? 'auto', resolved: 'none yet (imported from an HF checkpoint)' },
        packageVersion: packageVersion(),
        createdAt: new Date().toISOString(),
      });
    }
    const run = new RunDirectory(tmp, data !== undefined ? { data } : {});
    written = await run.save({ step: 0, params, optimizer: makeOptimizer(config, params) }, { config, seed });
  });
  return { config, checkpointDir: join(runDir, basename(written)), tensors: hf.tensors.size, ...(data !== undefined ? { data } : {}) };
}

export interface ExportResult {
  readonly step: number;
  readonly tensors: number;
}

/** Writes a checkpoint (run directory or step directory) as an HF ReformerModelWithLMHead directory. */
export async function exportHfCheckpoint(checkpoint: string, outDir: string): Promise<ExportResult> {
  await assertFreshOutput(outDir, 'output directory');
  const run = await loadRun(checkpoint, {}, 1);
  const config = toHfConfig(run.config.model);
  const tensors = toHfTensors(run.config.model, run.params);
  await writeHfCheckpoint(outDir, config, tensors);
  return { step: run.step, tensors: tensors.size };
}
