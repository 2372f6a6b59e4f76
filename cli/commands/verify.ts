/**
 * `reformer verify <model>`: property-based verification of a model's reversible stack on its own
 * shapes (inverse reconstructs the inputs; the reconstructing backward equals ordinary backprop).
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { InitKey, spec, type Params } from '../../dsl/layer.ts';
import { defaultRunConfig, validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { loadRun } from '../../reformer/train/run-dir.ts';
import { verifyReversible } from '../../reformer/verify.ts';
import { openRunner } from './runner.ts';

export interface VerifyCommandOptions {
  readonly runs: number;
  readonly seed?: number;
  readonly batch: number;
  readonly backend: string;
}

async function modelFrom(source: string, batch: number): Promise<{ config: RunConfig; params: Params }> {
  if (source === 'default') {
    const config = defaultRunConfig;
    return { config, params: buildModel(config.model).init(new InitKey(0), [spec([batch, config.model.seqLen], 'i32')]) };
  }
  if (existsSync(source) && statSync(source).isDirectory()) {
    const run = await loadRun(source, {}, batch);
    return { config: run.config, params: run.paramTree };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(source, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read model '${source}': give 'default', a run directory or a config JSON file (${(e as Error).message})`);
  }
  const config = validateRunConfig(raw);
  return { config, params: buildModel(config.model).init(new InitKey(0), [spec([batch, config.model.seqLen], 'i32')]) };
}

export async function verifyCommand(source: string, opts: VerifyCommandOptions): Promise<boolean> {
  const { config, params } = await modelFrom(source, opts.batch);
  const model = buildModel(config.model);
  const runner = await openRunner(opts.backend);
  const inputs = [{ shape: [opts.batch, config.model.seqLen], dtype: 'i32' as const }];
  console.log(`verifying the reversible schedule of '${source}' (${config.model.nLayers} blocks) at tokens [${inputs[0]!.shape.join(',')}] on ${runner.description}`);
  const result = await verifyReversible(model, params, {
    inputs,
    intHigh: config.model.vocabSize,
    numRuns: opts.runs,
    runner,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
  console.log(`${result.passed ? 'PASS' : 'FAIL'}: ${result.runs} run(s), ${result.blocks} blocks; worst error/bound ${result.worstRatio.toExponential(2)} (${result.worst})`);
  if (result.counterexample) console.log(`counterexample (shrunk): ${JSON.stringify(result.counterexample)}`);
  return result.passed;
}
