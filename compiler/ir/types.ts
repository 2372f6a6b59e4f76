/**
 * The closed set of primitive operations. Every layer lowers to these; every one of them has
 * exactly one shape rule (shape.ts), one reference implementation (reference/evaluate.ts) and
 * one VJP rule (grad/vjp-rules.ts). Adding a primitive is a deliberate act: it touches all three.
 */

export type DType = 'f32' | 'i32';
export type Shape = readonly number[];

export type UnaryFn = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh';
/** `mod` and integer `div` (floor division) exist for index arithmetic on i32. */
export type BinaryFn = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'mod';
export type CompareFn = 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne';
export type ReduceFn = 'sum' | 'max';
export type RandomDist = 'normal' | 'uniform';
/** What an input node stands for: a trainable parameter, data, a per-step RNG seed, layer state or a cotangent. */
export type InputRole = 'param' | 'data' | 'seed' | 'state' | 'cotangent';

export type NodeId = number;

export type Op =
  | { readonly op: 'input'; readonly name: string; readonly role: InputRole }
  /** A constant tensor; `values` has one entry per element, or a single entry broadcast to the shape. */
  | { readonly op: 'const'; readonly values: readonly number[] }
  | { readonly op: 'unary'; readonly fn: UnaryFn; readonly x: NodeId }
  | { readonly op: 'binary'; readonly fn: BinaryFn; readonly a: NodeId; readonly b: NodeId }
  /** Yields an i32 mask of 0/1. */
  | { readonly op: 'compare'; readonly fn: CompareFn; readonly a: NodeId; readonly b: NodeId }
  | { readonly op: 'where'; readonly cond: NodeId; readonly a: NodeId; readonly b: NodeId }
  | { readonly op: 'cast'; readonly x: NodeId }
  /** Batched matrix product `[..., m, k] · [..., k, n]`, batch dimensions broadcast. */
  | { readonly op: 'matmul'; readonly a: NodeId; readonly b: NodeId }
  /** Reduction along one axis; the axis is kept with size 1. */
  | { readonly op: 'reduce'; readonly fn: ReduceFn; readonly x: NodeId; readonly axis: number }
  | { readonly op: 'broadcast'; readonly x: NodeId }
  | { readonly op: 'reshape'; readonly x: NodeId }
  | { readonly op: 'transpose'; readonly x: NodeId; readonly perm: readonly number[] }
  | { readonly op: 'slice'; readonly x: NodeId; readonly begin: readonly number[] }
  /** Zero padding; the inverse (and VJP) of slice. */
  | { readonly op: 'pad'; readonly x: NodeId; readonly before: readonly number[] }
  | { readonly op: 'concat'; readonly xs: readonly NodeId[]; readonly axis: number }
  /** Take along an axis: `out[.., i, ..] = x[.., index[.., i, ..], ..]`; index has x's rank, other dims equal. */
  | { readonly op: 'gather'; readonly x: NodeId; readonly index: NodeId; readonly axis: number }
  /** The transpose of gather: `out[.., index[.., i, ..], ..] += updates[.., i, ..]`. */
  | { readonly op: 'scatterAdd'; readonly updates: NodeId; readonly index: NodeId; readonly axis: number }
  /** Positions along an axis, as i32. */
  | { readonly op: 'iota'; readonly axis: number }
  /** Index of the maximum along an axis (first one on ties), axis kept with size 1, i32. */
  | { readonly op: 'argmax'; readonly x: NodeId; readonly axis: number }
  /** Stable argsort of i32 keys along an axis. */
  | { readonly op: 'argsort'; readonly x: NodeId; readonly axis: number }
  /** Counter-based random numbers: a pure function of (seed, salt, element index). */
  | { readonly op: 'random'; readonly dist: RandomDist; readonly seed: NodeId; readonly salt: number }
  | { readonly op: 'stopGradient'; readonly x: NodeId };

export type OpName = Op['op'];

export type Node = Op & {
  readonly id: NodeId;
  readonly shape: Shape;
  readonly dtype: DType;
  /** Layer path that created the node, e.g. `Serial[2].Dense`; used in error messages and printing. */
  readonly scope: string;
};

/** The fields of each op that hold operand ids, in operand order (`xs` holds a list of them). */
const OPERAND_FIELDS: { readonly [K in OpName]: ReadonlyArray<Exclude<keyof Extract<Op, { op: K }>, 'op'>> } = {
  input: [],
  const: [],
  iota: [],
  unary: ['x'],
  cast: ['x'],
  reduce: ['x'],
  broadcast: ['x'],
  reshape: ['x'],
  transpose: ['x'],
  slice: ['x'],
  pad: ['x'],
  argmax: ['x'],
  argsort: ['x'],
  stopGradient: ['x'],
  binary: ['a', 'b'],
  compare: ['a', 'b'],
  matmul: ['a', 'b'],
  where: ['cond', 'a', 'b'],
  concat: ['xs'],
  gather: ['x', 'index'],
  scatterAdd: ['updates', 'index'],
  random: ['seed'],
};

/** The operand ids of a node, in a fixed order. */
export function operands(node: Op): NodeId[] {
  const fields = node as unknown as Readonly<Record<string, NodeId | readonly NodeId[]>>;
  return (OPERAND_FIELDS[node.op] as readonly string[]).flatMap((f) => fields[f]!);
}

/** A copy of `node`'s op reading `ids` instead of its operands (same order as `operands`). */
export function withOperands(node: Op, ids: readonly NodeId[]): Op {
  if (node.op === 'concat') return { ...node, xs: [...ids] };
  const copy: Record<string, unknown> = { ...node };
  (OPERAND_FIELDS[node.op] as readonly string[]).forEach((f, i) => (copy[f] = ids[i]));
  return copy as unknown as Op;
}

/**
 * Nodes whose value depends on nothing but the node itself (`const`, `iota`): a replay reads them
 * instead of copying them, which changes no value. `random` is not one: a replay re-draws it (the
 * generator is counter-based, so the bits are the same), so a forward dropout mask dies after its
 * last forward reader instead of living until the backward.
 */
export const isDataFree = (node: Op): boolean => node.op === 'const' || node.op === 'iota';

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}
