/**
 * The naming protocol of graph inputs and results, in one place: parameters `params.<path>`, the
 * per-step seed `seed`, recorded layer state `state:<layer path>.<name>`, cotangent inputs of a
 * VJP `cotangent:<i>`, and parameter gradients `grad.<path>`. Constructors and parsers live side
 * by side so a name is never built in one file and taken apart by string slicing in another.
 */

export const SEED_INPUT = 'seed';

const PARAMS = 'params.';
const STATE = 'state:';
const COTANGENT = 'cotangent:';
const GRAD = 'grad.';

/** `params.<path>`; `path` is a parameter path as `flattenParams` writes it (`0.1.w`). */
export const paramName = (path: string): string => (path ? `${PARAMS}${path}` : 'params');

/** The parameter path of a `params.<path>` name, or undefined for any other name. */
export function parseParamName(name: string): string | undefined {
  return name.startsWith(PARAMS) ? name.slice(PARAMS.length) : undefined;
}

/** `state:<scope>.<name>`: layer state recorded at layer path `scope`. */
export const stateName = (scope: string, name: string): string => `${STATE}${scope ? `${scope}.` : ''}${name}`;

export const isStateName = (name: string): boolean => name.startsWith(STATE);

/** `cotangent:<i>`: the seed cotangent of a VJP's `i`-th output. */
export const cotangentName = (i: number): string => `${COTANGENT}${i}`;

/** The output index of a `cotangent:<i>` name, or undefined. */
export function parseCotangentName(name: string): number | undefined {
  if (!name.startsWith(COTANGENT)) return undefined;
  const i = Number(name.slice(COTANGENT.length));
  return Number.isInteger(i) && i >= 0 ? i : undefined;
}

/** `grad.<path>`: the gradient of parameter `<path>`. */
export const gradName = (path: string): string => `${GRAD}${path}`;

export function parseGradName(name: string): string | undefined {
  return name.startsWith(GRAD) ? name.slice(GRAD.length) : undefined;
}
