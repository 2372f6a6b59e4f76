/**
 * Loads a user's model module for `reformer verify` and `reformer compile`. The contract (see
 * docs/cli.md, "Model modules"): a TypeScript or JavaScript module that exports
 *
 * - `model: Layer` (required): the model, a layer of this DSL;
 * - `inputs: InputSpec[]` (required): one spec per model input, `{ shape, dtype?, name? }`, batch
 *   included (the shapes the model is traced, initialised and verified at);
 * - `params?: Params`: its parameters (default `model.init(new InitKey(seed), inputs)`);
 * - `seed?: number`: the initialisation seed when `params` is absent (default 0);
 * - `intHigh?: number`: random i32 inputs (for `verify`) are drawn in [0, intHigh), e.g. token ids
 *   below the vocabulary size (default 2);
 * - `loss?: Layer`: a layer taking the model's outputs followed by its inputs and returning a
 *   scalar first; `compile --graph train` differentiates it with respect to every parameter.
 *
 * The CLI runs under tsx, so a `.ts` module imports the DSL directly. A module that misses the
 * contract gets one line naming the file and what is missing.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InitKey, type InputSpec, type Layer, type Params, type TensorSpec } from '../dsl/layer.ts';

/** What a model module provides, with defaults filled in. */
export interface ModelModule {
  /** The module path as given. */
  readonly path: string;
  readonly model: Layer;
  readonly inputs: readonly InputSpec[];
  readonly params: Params;
  readonly seed: number;
  /** Exclusive upper bound of random i32 inputs. */
  readonly intHigh: number;
  readonly loss?: Layer;
}

/** File names taken as model modules (rather than run directories or config JSON). */
export function isModelModulePath(source: string): boolean {
  return /\.(ts|mts|js|mjs)$/.test(source);
}

export class ModelModuleError extends Error {
  override name = 'ModelModuleError';
}

function isLayer(x: unknown): x is Layer {
  if (typeof x !== 'object' || x === null) return false;
  const l = x as Record<string, unknown>;
  return typeof l.name === 'string' && Number.isInteger(l.nIn) && Number.isInteger(l.nOut) && typeof l.init === 'function' && typeof l.apply === 'function';
}

/** Why `x` is not an InputSpec, or undefined when it is one. */
function inputSpecProblem(x: unknown): string | undefined {
  if (typeof x !== 'object' || x === null) return `is ${JSON.stringify(x)}, not an object { shape, dtype?, name? }`;
  const s = x as Record<string, unknown>;
  if (!Array.isArray(s.shape) || !s.shape.every((d) => Number.isInteger(d) && (d as number) > 0)) {
    return `has shape ${JSON.stringify(s.shape)}; expected a list of positive integers`;
  }
  if (s.dtype !== undefined && s.dtype !== 'f32' && s.dtype !== 'i32') return `has dtype ${JSON.stringify(s.dtype)}; expected 'f32' or 'i32'`;
  if (s.name !== undefined && typeof s.name !== 'string') return `has name ${JSON.stringify(s.name)}; expected a string`;
  return undefined;
}

/** Checks the exports of a module against the contract; `path` names it in errors. */
export function checkModelModule(path: string, exports: Record<string, unknown>): ModelModule {
  const fail = (what: string): never => {
    throw new ModelModuleError(`model module '${path}': ${what}`);
  };
  if (!('model' in exports)) fail("missing export 'model' (a Layer, e.g. `export const model = Serial(...)`)");
  const model = exports.model;
  if (!isLayer(model)) fail("export 'model' is not a Layer (needs name, nIn, nOut, init and apply)");
  const layer = model as Layer;
  if (!('inputs' in exports)) fail(`missing export 'inputs' (one InputSpec per model input, e.g. \`export const inputs = [{ shape: [1, 64], dtype: 'i32' }]\`); ${layer.name} takes ${layer.nIn}`);
  const inputs = exports.inputs;
  if (!Array.isArray(inputs)) fail(`export 'inputs' must be a list of InputSpec, got ${typeof inputs}`);
  const specs = inputs as unknown[];
  if (specs.length !== layer.nIn) fail(`export 'inputs' lists ${specs.length} input(s), but ${layer.name} takes ${layer.nIn}`);
  specs.forEach((s, i) => {
    const problem = inputSpecProblem(s);
    if (problem !== undefined) fail(`export 'inputs[${i}]' ${problem}`);
  });
  const seed = exports.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isInteger(seed)) fail(`export 'seed' must be an integer, got ${JSON.stringify(exports.seed)}`);
  const intHigh = exports.intHigh ?? 2;
  if (typeof intHigh !== 'number' || !Number.isInteger(intHigh) || intHigh < 1) fail(`export 'intHigh' must be a positive integer, got ${JSON.stringify(exports.intHigh)}`);
  const loss = exports.loss;
  if (loss !== undefined && !isLayer(loss)) fail("export 'loss' is not a Layer (needs name, nIn, nOut, init and apply)");
  const given = exports.params;
  if (given !== undefined && (typeof given !== 'object' || given === null)) fail(`export 'params' must be a parameter tree, got ${typeof given}`);
  const tensorSpecs: TensorSpec[] = (specs as InputSpec[]).map((s) => ({ shape: s.shape, dtype: s.dtype ?? 'f32' }));
  const params = (given as Params | undefined) ?? layer.init(new InitKey(seed as number), tensorSpecs);
  return {
    path,
    model: layer,
    inputs: specs as InputSpec[],
    params,
    seed: seed as number,
    intHigh: intHigh as number,
    ...(loss === undefined ? {} : { loss: loss as Layer }),
  };
}

/** Imports a model module (relative to the working directory) and checks its exports. */
export async function loadModelModule(path: string): Promise<ModelModule> {
  const file = resolve(path);
  if (!existsSync(file)) throw new ModelModuleError(`model module '${path}' does not exist`);
  let exports: Record<string, unknown>;
  try {
    exports = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    const err = e as Error & { code?: string };
    // tsx loads a .ts file as CommonJS unless its package says otherwise
    if (err.code === 'ERR_REQUIRE_CYCLE_MODULE' || /require\(\) ES Module/.test(err.message)) {
      throw new ModelModuleError(`model module '${path}' was not loaded as an ES module: give its folder a package.json with "type": "module", or name it .mts`);
    }
    throw new ModelModuleError(`model module '${path}' failed to load: ${err.message.split('\n')[0]}`);
  }
  return checkModelModule(path, exports);
}
