/**
 * Pure layers. A layer holds no parameters: `init(key, inputShapes)` makes them and
 * `apply(params, inputs, ctx)` uses them, so the same layer can be traced with symbolic tensors
 * (to build IR) and initialised many times. Layers work on a data stack, as in trax: a layer takes
 * `nIn` tensors from the top and pushes `nOut`.
 */
import { Graph, OptionError, ShapeError, Tensor } from '../compiler/ir/graph.ts';
import type { HostTensor } from '../compiler/ir/host-tensor.ts';
import { normalAt, saltOf, uniformAt } from '../compiler/ir/random.ts';
import type { DType, Shape } from '../compiler/ir/types.ts';
import { sizeOf } from '../compiler/ir/types.ts';

export type ParamTree<T> = T | readonly ParamTree<T>[] | { readonly [key: string]: ParamTree<T> };

/** Parameters on the host. */
export type Params = ParamTree<HostTensor>;
/** Parameters inside a trace. */
export type SymbolicParams = ParamTree<Tensor>;

export const noParams: Params = {};

/** Static shape and dtype of a tensor. */
export interface TensorSpec {
  readonly shape: Shape;
  readonly dtype: DType;
}

/** An f32 spec, or the given dtype. */
export const spec = (shape: Shape, dtype: DType = 'f32'): TensorSpec => ({ shape, dtype });

export interface ApplyContext {
  readonly mode: 'train' | 'eval';
  /** The per-step seed, an i32 scalar graph input named `seed`. */
  seed(): Tensor;
  /** A stable salt for the current layer path, so each random layer draws its own stream. */
  salt(extra?: string): number;
  /**
   * Per-layer state computed in the forward pass and reused, never recomputed, when the layer is
   * replayed (e.g. LSH buckets in a reversible backward pass). With `stateMode: 'compute'` the
   * value is computed and recorded; with `'replay'` it becomes a graph input named `state:<path>`.
   */
  state(name: string, compute: () => Tensor): Tensor;
  /** States recorded so far (compute mode), by full name. */
  readonly states: ReadonlyMap<string, Tensor>;
}

export interface Layer {
  /** Name used in layer paths, e.g. `Dense`. */
  readonly name: string;
  readonly nIn: number;
  readonly nOut: number;
  /** Sub-layers, for combinators; leaves have none. */
  readonly children?: readonly Layer[];
  /** Makes parameters for inputs of the given shapes and dtypes. */
  init(key: InitKey, inputs: readonly TensorSpec[]): Params;
  apply(params: SymbolicParams, inputs: readonly Tensor[], ctx: ApplyContext): Tensor[];
}

/** Deterministic initialisation randomness, split by path so adding a layer never shifts another's draws. */
export class InitKey {
  constructor(
    readonly seed: number,
    readonly path = '',
  ) {}
  split(name: string | number): InitKey {
    return new InitKey(this.seed, this.path ? `${this.path}/${name}` : String(name));
  }
  normal(shape: Shape, std: number): HostTensor {
    const salt = saltOf(this.path);
    const data = new Float32Array(sizeOf(shape));
    for (let i = 0; i < data.length; i++) data[i] = std * normalAt(this.seed, salt, i);
    return { shape: [...shape], dtype: 'f32', data };
  }
  uniform(shape: Shape, low: number, high: number): HostTensor {
    const salt = saltOf(this.path);
    const data = new Float32Array(sizeOf(shape));
    for (let i = 0; i < data.length; i++) data[i] = low + (high - low) * uniformAt(this.seed, salt, i);
    return { shape: [...shape], dtype: 'f32', data };
  }
}

export function filled(shape: Shape, value: number, dtype: DType = 'f32'): HostTensor {
  const n = sizeOf(shape);
  return { shape: [...shape], dtype, data: dtype === 'i32' ? new Int32Array(n).fill(value) : new Float32Array(n).fill(value) };
}

/** Looks up a named entry of a parameter record, with an error naming the layer. */
export function field<T>(params: ParamTree<T>, key: string, layer: string): ParamTree<T> {
  if (params === null || typeof params !== 'object' || Array.isArray(params) || params instanceof Tensor || !(key in params)) {
    throw new Error(`${layer}: parameters have no entry '${key}'`);
  }
  return (params as { readonly [k: string]: ParamTree<T> })[key]!;
}

export function tensorField(params: SymbolicParams, key: string, layer: string): Tensor {
  const p = field(params, key, layer);
  if (!(p instanceof Tensor)) throw new Error(`${layer}: parameter '${key}' is not a tensor`);
  return p;
}

export function childParams<T>(params: ParamTree<T>, i: number, layer: string): ParamTree<T> {
  if (!Array.isArray(params) || i >= params.length) throw new Error(`${layer}: parameters have no entry for sub-layer ${i}`);
  return (params as readonly ParamTree<T>[])[i]!;
}

function isLeafTensor(x: unknown): x is HostTensor | Tensor {
  return x instanceof Tensor || (typeof x === 'object' && x !== null && 'shape' in x && 'data' in x && 'dtype' in x);
}

/** Flattens a parameter tree to `[path, leaf]` pairs; paths join keys and indices with '.'. */
export function flattenParams<T>(tree: ParamTree<T>, prefix = ''): Array<[string, T]> {
  if (isLeafTensor(tree)) return [[prefix, tree as T]];
  const out: Array<[string, T]> = [];
  const entries = Array.isArray(tree) ? tree.map((v, i) => [String(i), v] as const) : Object.entries(tree as object);
  for (const [k, v] of entries) out.push(...flattenParams(v as ParamTree<T>, prefix ? `${prefix}.${k}` : k));
  return out;
}

/** Rebuilds a tree of the same structure with each leaf mapped. */
export function mapParams<T, U>(tree: ParamTree<T>, fn: (leaf: T, path: string) => U, prefix = ''): ParamTree<U> {
  if (isLeafTensor(tree)) return fn(tree as T, prefix);
  if (Array.isArray(tree)) return tree.map((v, i) => mapParams(v as ParamTree<T>, fn, prefix ? `${prefix}.${i}` : String(i)));
  const out: Record<string, ParamTree<U>> = {};
  for (const [k, v] of Object.entries(tree as object)) out[k] = mapParams(v as ParamTree<T>, fn, prefix ? `${prefix}.${k}` : k);
  return out;
}

/** A layer given the wrong number of inputs, or returning the wrong number of outputs; `scope` is its layer path. */
export class ArityError extends ShapeError {
  override name = 'ArityError';
}

/** The layer path of `name` under `scope` (`Serial[1].Dense`). */
export const layerPath = (scope: string, name: string): string => (scope ? `${scope}.${name}` : name);

/** Throws an ArityError naming the layer's path when it is given `count` inputs instead of `nIn`. */
export function checkArity(layer: Pick<Layer, 'name' | 'nIn'>, count: number, scope = ''): void {
  if (count !== layer.nIn) throw new ArityError(layerPath(scope, layer.name), `expects ${layer.nIn} input(s), got ${count}`);
}

/**
 * Runs an `init` step as if at `path` (`Serial[2]`, `ReversibleStack[1]`, `Reversible[0]`,
 * `Chunked[0]`): a ShapeError (ArityError included) raised inside gets `path` prefixed to its layer
 * path, so init names the same path as tracing the model does.
 */
export function initInPath<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof ShapeError)) throw e;
    const scope = e.scope ? `${path}.${e.scope}` : path;
    throw e instanceof ArityError ? new ArityError(scope, e.detail) : new ShapeError(scope, e.detail);
  }
}

/** Applies `layer`, pushing its name on the layer path when it is a leaf (combinators push `Name[i]` per child). */
export function applyLayer(layer: Layer, params: SymbolicParams, inputs: readonly Tensor[], ctx: ApplyContext): Tensor[] {
  const g = inputs[0]?.graph;
  const path = layerPath(g?.scope ?? '', layer.name);
  checkArity(layer, inputs.length, g?.scope ?? '');
  const run = () => {
    const out = layer.apply(params, inputs, ctx);
    if (out.length !== layer.nOut) throw new ArityError(path, `declared ${layer.nOut} output(s), returned ${out.length}`);
    return out;
  };
  if (g === undefined || layer.children !== undefined) return run();
  return g.withScope(layer.name, run);
}

/** A context for tracing into `graph`; the seed input is created on first use. */
export function traceContext(graph: Graph, mode: 'train' | 'eval', stateMode: 'compute' | 'replay' = 'compute'): ApplyContext {
  let seed: Tensor | undefined;
  const states = new Map<string, Tensor>();
  return {
    mode,
    states,
    seed: () =>
      (seed ??= graph.inputNodes().some((n) => n.name === 'seed')
        ? graph.tensor(graph.inputByName('seed').id)
        : graph.input('seed', [], 'i32', 'seed')),
    salt: (extra = '') => saltOf(`${graph.scope}|${extra}`),
    state(name, compute) {
      const key = `state:${graph.scope}.${name}`;
      if (states.has(key)) throw new Error(`${graph.scope}: state '${name}' is recorded twice`);
      const value = compute();
      if (stateMode === 'compute') graph.store(value);
      // Replay keeps the computed nodes' shape but feeds the stored value; the dead nodes are pruned.
      const t = stateMode === 'replay' ? graph.input(key, value.shape, value.dtype, 'state') : value;
      states.set(key, t);
      return t;
    },
  };
}

/** Declares graph inputs for every parameter leaf, named by its path. */
export function paramInputs(graph: Graph, params: Params, prefix = 'params'): SymbolicParams {
  return mapParams(params, (leaf: HostTensor, path) => graph.input(path ? `${prefix}.${path}` : prefix, leaf.shape, leaf.dtype, 'param'));
}

/** Output specs of `layer` for given parameters and inputs, found by tracing a scratch graph. */
export function outputSpecs(layer: Layer, params: Params, inputs: readonly TensorSpec[]): TensorSpec[] {
  const g = new Graph();
  const sym = paramInputs(g, params);
  const ins = inputs.map((s, i) => g.input(`input${i}`, s.shape, s.dtype));
  return applyLayer(layer, sym, ins, traceContext(g, 'eval')).map((t) => ({ shape: t.shape, dtype: t.dtype }));
}

export interface Traced {
  readonly graph: Graph;
  readonly params: SymbolicParams;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  /** Per-layer states recorded while tracing (see `ApplyContext.state`). */
  readonly states: ReadonlyMap<string, Tensor>;
}

export interface InputSpec {
  readonly shape: Shape;
  readonly dtype?: DType;
  readonly name?: string;
}

/** Traces `layer` applied to inputs of the given shapes into a fresh graph (inputs `input0`, `input1`, …). */
export interface TraceOptions {
  readonly mode?: 'train' | 'eval';
  readonly stateMode?: 'compute' | 'replay';
}

/** Traces `layer` applied to inputs of the given shapes into a fresh graph (inputs `input0`, `input1`, …). */
export function trace(layer: Layer, params: Params, inputs: readonly InputSpec[], options: TraceOptions = {}): Traced {
  const graph = new Graph();
  const sym = paramInputs(graph, params);
  const ins = inputs.map((s, i) => graph.input(s.name ?? `input${i}`, s.shape, s.dtype ?? 'f32'));
  const ctx = traceContext(graph, options.mode ?? 'eval', options.stateMode ?? 'compute');
  const outs = applyLayer(layer, sym, ins, ctx);
  graph.outputs = outs.map((t) => t.id);
  return { graph, params: sym, inputs: ins, outputs: outs, states: ctx.states };
}

/** Validates a positive integer option. */
export function positiveInt(layer: string, option: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new OptionError(`${layer}: option '${option}' must be a positive integer, got ${value}`);
  }
  return value;
}
