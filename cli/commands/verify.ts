/**
 * `reformer verify <model>`: property-based verification of a model's reversible stack on its own
 * shapes (inverse reconstructs the inputs; the reconstructing backward equals ordinary backprop).
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { InitKey, spec, childParams, type Params } from '../../dsl/layer.ts';
import { isReversibleStack } from '../../dsl/reversible.ts';
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
  const index = (model.children ?? []).findIndex(isReversibleStack);
  if (index < 0) throw new Error(`model '${source}' has no reversible stack to verify (architecture '${config.model.architecture}')`);
  const stack = model.children![index]!;
  const runner = await openRunner(opts.backend);
  const shape = [opts.batch, config.model.seqLen, config.model.dModel];
  console.log(`verifying ${stack.name} (${config.model.nLayers} blocks) at stream shape [${shape.join(',')}] on ${runner.description}`);
  const result = await verifyReversible(stack, childParams(params, index, 'model'), {
    shape,
    numRuns: opts.runs,
    runner,
    scope: `Serial[${index}]`,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
  console.log(`${result.passed ? 'PASS' : 'FAIL'}: ${result.runs} run(s), max scaled error ${result.maxError.toExponential(2)}`);
  if (result.counterexample) console.log(`counterexample (shrunk): ${JSON.stringify(result.counterexample)}`);
  return result.passed;
}
