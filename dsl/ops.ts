/**
 * The tensor operations users write models with: the primitives, plus composites built only from
 * them (softmax, logsumexp, mean, variance, relu, gelu, …). Composites need no gradient rule and no
 * code-generator support: they are differentiated and compiled through their primitives.
 *
 * @example
 * const g = new Graph();
 * const x = g.input('x', [4, 10]);
 * const y = softmax(x, -1);          // reduce_max, sub, exp, reduce_sum, div
 */
import { Graph, Tensor } from '../compiler/ir/graph.ts';
import * as P from '../compiler/ir/primitives.ts';
import type { DType, Shape } from '../compiler/ir/types.ts';

export { Graph, Tensor, ShapeError, OptionError } from '../compiler/ir/graph.ts';
export type { DType, Shape } from '../compiler/ir/types.ts';

/** A tensor, or a number that is promoted to a constant of the other operand's dtype. */
export type TensorLike = Tensor | number;

function lift(x: TensorLike, like: Tensor): Tensor {
  return typeof x === 'number' ? P.constant(like.graph, x, [], like.dtype) : x;
}
function pair(a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number') throw new Error('at least one operand must be a tensor');
  const ref = (typeof a === 'number' ? b : a) as Tensor;
  return [lift(a, ref), lift(b, ref)];
}

export const add = (a: TensorLike, b: TensorLike) => P.binary('add', ...pair(a, b));
export const sub = (a: TensorLike, b: TensorLike) => P.binary('sub', ...pair(a, b));
export const mul = (a: TensorLike, b: TensorLike) => P.binary('mul', ...pair(a, b));
export const div = (a: TensorLike, b: TensorLike) => P.binary('div', ...pair(a, b));
export const maximum = (a: TensorLike, b: TensorLike) => P.binary('max', ...pair(a, b));
export const minimum = (a: TensorLike, b: TensorLike) => P.binary('min', ...pair(a, b));
/** Non-negative remainder, for i32 index arithmetic. */
export const mod = (a: TensorLike, b: TensorLike) => P.binary('mod', ...pair(a, b));

export const neg = (x: Tensor) => P.unary('neg', x);
export const exp = (x: Tensor) => P.unary('exp', x);
export const log = (x: Tensor) => P.unary('log', x);
export const sqrt = (x: Tensor) => P.unary('sqrt', x);
export const rsqrt = (x: Tensor) => P.unary('rsqrt', x);
export const tanh = (x: Tensor) => P.unary('tanh', x);
export const square = (x: Tensor) => P.binary('mul', x, x);

export const lt = (a: TensorLike, b: TensorLike) => P.compare('lt', ...pair(a, b));
export const le = (a: TensorLike, b: TensorLike) => P.compare('le', ...pair(a, b));
export const gt = (a: TensorLike, b: TensorLike) => P.compare('gt', ...pair(a, b));
export const ge = (a: TensorLike, b: TensorLike) => P.compare('ge', ...pair(a, b));
export const eq = (a: TensorLike, b: TensorLike) => P.compare('eq', ...pair(a, b));
export const ne = (a: TensorLike, b: TensorLike) => P.compare('ne', ...pair(a, b));

/** `cond ? a : b` elementwise; `cond` is an i32 mask. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [ta, tb] = pair(a, b);
  return P.where(cond, ta, tb);
}

export const cast = (x: Tensor, dtype: DType) => P.cast(x, dtype);
export const matmul = (a: Tensor, b: Tensor) => P.matmul(a, b);
export const reshape = (x: Tensor, shape: Shape) => P.reshape(x, shape);
export const transpose = (x: Tensor, perm: readonly number[]) => P.transpose(x, perm);
export const broadcastTo = (x: Tensor, shape: Shape) => P.broadcastTo(x, shape);
export const concat = (xs: readonly Tensor[], axis: number) => P.concat(xs, axis);
export const gather = (x: Tensor, index: Tensor, axis: number) => P.gather(x, index, axis);
export const scatterAdd = (updates: Tensor, index: Tensor, axis: number, size: number) => P.scatterAdd(updates, index, axis, size);
export const argsort = (keys: Tensor, axis = -1) => P.argsort(keys, axis);
export const stopGradient = (x: Tensor) => P.stopGradient(x);
export const iota = (g: Graph, shape: Shape, axis: number) => P.iota(g, shape, axis);
export const constant = (g: Graph, values: number | readonly number[], shape: Shape = [], dtype: DType = 'f32') =>
  P.constant(g, values, shape, dtype);
export const pad = (x: Tensor, before: readonly number[], after: readonly number[]) => P.pad(x, before, after);

function axisOf(x: Tensor, axis: number): number {
  return axis < 0 ? axis + x.rank : axis;
}
function dropAxis(x: Tensor, reduced: Tensor, axis: number, keepDims: boolean): Tensor {
  if (keepDims) return reduced;
  return P.reshape(reduced, x.shape.filter((_, i) => i !== axisOf(x, axis)));
}

export function sum(x: Tensor, axis: number, keepDims = false): Tensor {
  return dropAxis(x, P.reduce('sum', x, axis), axis, keepDims);
}
export function max(x: Tensor, axis: number, keepDims = false): Tensor {
  return dropAxis(x, P.reduce('max', x, axis), axis, keepDims);
}
export function argmax(x: Tensor, axis: number, keepDims = false): Tensor {
  return dropAxis(x, P.argmax(x, axis), axis, keepDims);
}
export function mean(x: Tensor, axis: number, keepDims = false): Tensor {
  return div(sum(x, axis, keepDims), x.shape[axisOf(x, axis)]!);
}
/** Sum of every element, as a scalar. */
export function sumAll(x: Tensor): Tensor {
  return sum(P.reshape(x, [-1]), 0);
}
export function meanAll(x: Tensor): Tensor {
  return div(sumAll(x), Math.max(1, x.shape.reduce((a, b) => a * b, 1)));
}

/** `a[begin : begin+size]` along one axis. */
export function sliceAxis(x: Tensor, axis: number, begin: number, size: number): Tensor {
  const a = axisOf(x, axis);
  return P.slice(
    x,
    x.shape.map((_, i) => (i === a ? begin : 0)),
    x.shape.map((d, i) => (i === a ? size : d)),
  );
}
export const slice = (x: Tensor, begin: readonly number[], size: readonly number[]) => P.slice(x, begin, size);

/** log Σ exp(x) along `axis`, with the maximum subtracted first for stability. */
export function logsumexp(x: Tensor, axis: number, keepDims = false): Tensor {
  const m = P.stopGradient(P.reduce('max', x, axis));
  const s = P.reduce('sum', exp(sub(x, m)), axis);
  return dropAxis(x, add(log(s), m), axis, keepDims);
}
export function softmax(x: Tensor, axis: number): Tensor {
  const m = P.stopGradient(P.reduce('max', x, axis));
  const e = exp(sub(x, m));
  return div(e, P.reduce('sum', e, axis));
}
export function logSoftmax(x: Tensor, axis: number): Tensor {
  return sub(x, logsumexp(x, axis, true));
}

export const relu = (x: Tensor) => maximum(x, 0);
/** GELU, tanh approximation (as in trax and BERT). */
export function gelu(x: Tensor): Tensor {
  const inner = mul(add(x, mul(mul(x, square(x)), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(x, 0.5), add(tanh(inner), 1));
}
export const sigmoid = (x: Tensor) => div(1, add(exp(neg(x)), 1));

/** Normalises along the last axis: (x − mean) / sqrt(var + eps). */
export function normalize(x: Tensor, eps: number): Tensor {
  const mu = mean(x, -1, true);
  const centred = sub(x, mu);
  const variance = mean(square(centred), -1, true);
  return mul(centred, rsqrt(add(variance, eps)));
}

/** Seeded random tensors; `salt` separates streams that share a seed. */
export const randomNormal = (seed: Tensor, salt: number, shape: Shape) => P.random('normal', seed, salt, shape);
export const randomUniform = (seed: Tensor, salt: number, shape: Shape) => P.random('uniform', seed, salt, shape);

/** Casts a mask to f32 0/1. */
export const toFloat = (mask: Tensor) => P.cast(mask, 'f32');
