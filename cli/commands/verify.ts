/**
 * `reformer verify <model>`: property-based verification of a model's reversible stack on its own
 * shapes (inverse reconstructs the inputs; the reconstructing backward equals ordinary backprop).
 * The model is 'default', a run directory, a config JSON or a model module (cli/load-model.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { InitKey, spec, type InputSpec, type Layer, type Params } from '../../dsl/layer.ts';
import { defaultRunConfig, validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { loadRun } from '../../node.ts';
import { verifyReversible } from '../../reformer/verify.ts';
import { isModelModulePath, loadModelModule } from '../load-model.ts';
import { openRunner } from './runner.ts';

export interface VerifyCommandOptions {
  readonly runs: number;
  readonly seed?: number;
  readonly batch: number;
  readonly backend: string;
}

/** What verify checks: a model, its parameters and the inputs it is traced at. */
interface VerifyTarget {
  readonly model: Layer;
  readonly params: Params;
  readonly inputs: readonly InputSpec[];
  /** Exclusive upper bound of random i32 inputs. */
  readonly intHigh: number;
  /** How the model is named in the first line of the report. */
  readonly description: string;
}

function stockTarget(source: string, config: RunConfig, params: Params, batch: number): VerifyTarget {
  const inputs = [{ shape: [batch, config.model.seqLen], dtype: 'i32' as const }];
  return {
    model: buildModel(config.model),
    params,
    inputs,
    intHigh: config.model.vocabSize,
    description: `'${source}' (${config.model.nLayers} blocks) at tokens [${inputs[0]!.shape.join(',')}]`,
  };
}

/** 'default', a run directory, a config JSON, or a model module (cli/load-model.ts; `--batch` does not apply). */
async function targetFrom(source: string, batch: number): Promise<VerifyTarget> {
  if (isModelModulePath(source)) {
    const m = await loadModelModule(source);
    const shapes = m.inputs.map((s) => `${s.dtype ?? 'f32'}[${s.shape.join(',')}]`).join(', ');
    return { model: m.model, params: m.params, inputs: m.inputs, intHigh: m.intHigh, description: `model module '${source}' (${m.model.name}) at inputs ${shapes}` };
  }
  if (source === 'default') {
    const config = defaultRunConfig;
    return stockTarget(source, config, buildModel(config.model).init(new InitKey(0), [spec([batch, config.model.seqLen], 'i32')]), batch);
  }
  if (existsSync(source) && statSync(source).isDirectory()) {
    const run = await loadRun(source, {}, batch);
    return stockTarget(source, run.config, run.paramTree, batch);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(source, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read model '${source}': give 'default', a run directory, a config JSON file or a model module (.ts) (${(e as Error).message})`);
  }
  const config = validateRunConfig(raw);
  return stockTarget(source, config, buildModel(config.model).init(new InitKey(0), [spec([batch, config.model.seqLen], 'i32')]), batch);
}

export async function verifyCommand(source: string, opts: VerifyCommandOptions): Promise<boolean> {
  const { model, params, inputs, intHigh, description } = await targetFrom(source, opts.batch);
  const runner = await openRunner(opts.backend);
  console.log(`verifying the reversible schedule of ${description} on ${runner.description}`);
  const result = await verifyReversible(model, params, {
    inputs,
    intHigh,
    numRuns: opts.runs,
    runner,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
  console.log(`${result.passed ? 'PASS' : 'FAIL'}: ${result.runs} run(s), ${result.blocks} blocks; worst error/bound ${result.worstRatio.toExponential(2)} (${result.worst})`);
  // The rebuild's rounding in units of float64 epsilon, measured on the reference (see reformer/verify.ts).
  const conditioning = result.amplification > 1e4 ? ': reconstruction is ill-conditioned at some input scales (e.g. LayerNorm on tiny inputs); float32 bounds widened by it' : '';
  console.log(`reconstruction amplifies rounding by up to ×${result.amplification.toExponential(1)}${conditioning}`);
  if (result.counterexample) console.log(`counterexample (shrunk): ${JSON.stringify(result.counterexample)}`);
  return result.passed;
}
