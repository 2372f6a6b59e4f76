/**
 * The paper's experiments as grids: training arms (one shipped config each, under configs/) crossed
 * with evaluation attentions. `duplication` is Table 2 (train attention × eval attention, second-half
 * accuracy); `text` compares the Transformer, its shared-QK and reversible variants and the Reformer
 * with LSH-2/4/8 on the bundled Brown corpus (held-out bits/char).
 */
import { readFileSync } from 'node:fs';
import { validateRunConfig, type RunConfig } from '../config.ts';
import type { EvalAttention } from '../eval-attention.ts';

export type ExperimentName = 'duplication' | 'text';
export const experimentNames: readonly ExperimentName[] = ['duplication', 'text'];

/** One training run per seed: a row of the table. */
export interface TrainArm {
  /** Folder name of the cell and file name (without .json) of its config under configs/. */
  readonly id: string;
  readonly label: string;
}

/** How a trained model is evaluated: a column of the table. */

export interface EvalArm {
  readonly id: string;
  readonly label: string;
  readonly attention: EvalAttention;
}

export interface Experiment {
  readonly name: ExperimentName;
  readonly title: string;
  /** The `--data` source every cell trains and evaluates on. */
  readonly data: 'duplication' | 'brown';
  /** What the table reports: second-half accuracy (higher is better) or held-out bits/char. */
  readonly metric: 'accuracy' | 'bpc';
  readonly trainArms: readonly TrainArm[];
  readonly evalArms: readonly EvalArm[];
  /** The paper's numbers in the same layout (null where the paper has none), with their source. */
  readonly paper?: { readonly values: readonly (readonly (number | null)[])[]; readonly source: string };
}

const lshEval = (n: number): EvalArm => ({ id: `lsh${n}`, label: `LSH-${n}`, attention: { kind: 'lsh', nHashes: n } });

export const duplicationExperiment: Experiment = {
  name: 'duplication',
  title: 'Duplication task (paper Table 2): second-half accuracy, rows = training attention, columns = evaluation attention',
  data: 'duplication',
  metric: 'accuracy',
  trainArms: [
    { id: 'dup-full', label: 'Full' },
    { id: 'dup-lsh4', label: 'LSH-4' },
    { id: 'dup-lsh2', label: 'LSH-2' },
    { id: 'dup-lsh1', label: 'LSH-1' },
  ],
  evalArms: [{ id: 'full', label: 'Full', attention: { kind: 'full' } }, lshEval(8), lshEval(4), lshEval(2), lshEval(1)],
  paper: {
    // Kitaev, Kaiser, Levskaya, "Reformer: The Efficient Transformer" (ICLR 2020), Table 2:
    // length 1024, vocabulary 128, 1 layer, d_model 256, 4 heads, 150K steps.
    source: 'Reformer paper (Kitaev et al., ICLR 2020), Table 2: L = 1024, 1 layer, d_model 256, 4 heads, 150K steps',
    values: [
      [1.0, 0.948, 0.925, 0.769, 0.525],
      [0.008, 1.0, 0.999, 0.994, 0.919],
      [0.008, 1.0, 0.999, 0.981, 0.868],
      [0.008, 0.999, 0.996, 0.948, 0.779],
    ],
  },
};

export const textExperiment: Experiment = {
  name: 'text',
  title: 'Brown corpus (byte level): held-out bits/char, rows = model, columns = evaluation attention',
  data: 'brown',
  metric: 'bpc',
  trainArms: [
    { id: 'text-transformer', label: 'Transformer' },
    { id: 'text-sharedqk', label: 'Transformer, shared-QK' },
    { id: 'text-reversible', label: 'Reversible Transformer' },
    { id: 'text-lsh2', label: 'Reformer LSH-2' },
    { id: 'text-lsh4', label: 'Reformer LSH-4' },
    { id: 'text-lsh8', label: 'Reformer LSH-8' },
  ],
  evalArms: [{ id: 'trained', label: 'as trained', attention: { kind: 'trained' } }, { id: 'full', label: 'Full', attention: { kind: 'full' } }, lshEval(8), lshEval(16)],
};

export const experiments: Readonly<Record<ExperimentName, Experiment>> = { duplication: duplicationExperiment, text: textExperiment };

export function experimentByName(name: string): Experiment {
  const e = (experiments as Record<string, Experiment | undefined>)[name];
  if (e === undefined) throw new Error(`repro: unknown experiment '${name}'; known: ${experimentNames.join(', ')}`);
  return e;
}

/**
 * The shipped config of a training arm, `configs/<id>.json`, or of a variant of the grid (another
 * scale), `configs/<id>-<variant>.json`, validated.
 */
export function armConfig(arm: TrainArm, variant?: string): RunConfig {
  if (variant !== undefined && !/^[a-z0-9][a-z0-9-]*$/.test(variant)) throw new Error(`repro: --variant must be lower-case letters, digits and '-', got '${variant}'`);
  const file = `configs/${arm.id}${variant !== undefined ? `-${variant}` : ''}.json`;
  let text: string;
  try {
    text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
  } catch {
    throw new Error(`repro: cannot read the config of '${arm.id}' (${file})`);
  }
  try {
    return validateRunConfig(JSON.parse(text));
  } catch (e) {
    throw new Error(`repro: ${file}: ${(e as Error).message}`);
  }
}

/** A tiny scale for checking the machinery in seconds (`--quick`): same arms, toy model and data length. */
export function quickScale(config: RunConfig): RunConfig {
  const m = config.model;
  return validateRunConfig({
    model: {
      ...m,
      seqLen: 32,
      dModel: 32,
      dFF: 64,
      nHeads: 2,
      dHead: 16,
      nLayers: Math.min(m.nLayers, 2),
      chunkLen: 8,
      ffChunkLen: 0,
      axialShape: [4, 8],
      axialDims: [16, 16],
      ...(m.nBuckets !== undefined ? { nBuckets: 8 } : {}),
      ...(m.localChunkLen !== undefined ? { localChunkLen: 8 } : {}),
    },
    train: { ...config.train, batchSize: 4, steps: 6, warmupSteps: 2, evalEvery: 3, evalBatches: 1, checkpointEvery: 3 },
  });
}
