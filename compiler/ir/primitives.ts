/**
 * Constructors for the primitive ops, with their shape rules. These are the only functions that
 * create IR nodes (besides `Graph.input`), so every shape is checked when a graph is built, and
 * every error names the layer path and the shapes involved.
 */
import { Graph, ShapeError, Tensor } from './graph.ts';
import type { BinaryFn, CompareFn, DType, RandomDist, ReduceFn, Shape, UnaryFn } from './types.ts';
import { formatShape as fmt, sizeOf } from './types.ts';

function fail(g: Graph, detail: string): never {
  throw new ShapeError(g.scope, detail);
}

function sameGraph(op: string, ...ts: Tensor[]): Graph {
  const g = ts[0]!.graph;
  for (const t of ts) if (t.graph !== g) throw new Error(`${op}: operands belong to different graphs`);
  return g;
}

function normAxis(g: Graph, op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) fail(g, `${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** NumPy broadcasting of two shapes, or undefined when they are incompatible. */
export function broadcastShapes(a: Shape, b: Shape): number[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Broadcasts `x` to `shape` explicitly (the IR keeps broadcasting visible to the gradient). */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  const g = x.graph;
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  const b = broadcastShapes(x.shape, shape);
  if (b === undefined || b.length !== shape.length || b.some((d, i) => d !== shape[i])) {
    fail(g, `broadcast: cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
  }
  return g.add({ op: 'broadcast', x: x.id }, shape, x.dtype);
}

function checkDtypes(g: Graph, op: string, a: Tensor, b: Tensor): DType {
  if (a.dtype !== b.dtype) fail(g, `${op}: dtype mismatch ${a.dtype}${fmt(a.shape)} vs ${b.dtype}${fmt(b.shape)}`);
  return a.dtype;
}

function broadcastPair(op: string, a: Tensor, b: Tensor): [Tensor, Tensor, number[]] {
  const g = sameGraph(op, a, b);
  const shape = broadcastShapes(a.shape, b.shape);
  if (shape === undefined) fail(g, `${op}: shapes ${fmt(a.shape)} and ${fmt(b.shape)} do not broadcast`);
  return [broadcastTo(a, shape), broadcastTo(b, shape), shape];
}

export function unary(fn: UnaryFn, x: Tensor): Tensor {
  if (x.dtype !== 'f32' && fn !== 'neg') fail(x.graph, `${fn}: needs f32, got ${x.dtype}${fmt(x.shape)}`);
  return x.graph.add({ op: 'unary', fn, x: x.id }, x.shape, x.dtype);
}

export function binary(fn: BinaryFn, a: Tensor, b: Tensor): Tensor {
  const [ba, bb, shape] = broadcastPair(fn, a, b);
  const dtype = checkDtypes(a.graph, fn, a, b);
  if (fn === 'mod' && dtype !== 'i32') fail(a.graph, `mod: needs i32 operands, got ${dtype}`);
  return a.graph.add({ op: 'binary', fn, a: ba.id, b: bb.id }, shape, dtype);
}

export function compare(fn: CompareFn, a: Tensor, b: Tensor): Tensor {
  const [ba, bb, shape] = broadcastPair(fn, a, b);
  checkDtypes(a.graph, fn, a, b);
  return a.graph.add({ op: 'compare', fn, a: ba.id, b: bb.id }, shape, 'i32');
}

export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  const g = sameGraph('where', cond, a, b);
  if (cond.dtype !== 'i32') fail(g, `where: condition must be an i32 mask, got ${cond.dtype}`);
  const dtype = checkDtypes(g, 'where', a, b);
  const s1 = broadcastShapes(cond.shape, a.shape);
  const shape = s1 && broadcastShapes(s1, b.shape);
  if (shape === undefined) {
    fail(g, `where: shapes ${fmt(cond.shape)}, ${fmt(a.shape)} and ${fmt(b.shape)} do not broadcast`);
  }
  return g.add(
    { op: 'where', cond: broadcastTo(cond, shape).id, a: broadcastTo(a, shape).id, b: broadcastTo(b, shape).id },
    shape,
    dtype,
  );
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return x.graph.add({ op: 'cast', x: x.id }, x.shape, dtype);
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  const g = sameGraph('matmul', a, b);
  if (a.dtype !== 'f32' || b.dtype !== 'f32') fail(g, `matmul: needs f32 operands`);
  if (a.rank < 2 || b.rank < 2) fail(g, `matmul: operands need rank >= 2, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  if (k !== k2) fail(g, `matmul: cannot multiply ${fmt(a.shape)} by ${fmt(b.shape)} (inner sizes ${k} and ${k2})`);
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (batch === undefined) fail(g, `matmul: batch dimensions of ${fmt(a.shape)} and ${fmt(b.shape)} do not broadcast`);
  const ba = broadcastTo(a, [...batch, m, k]);
  const bb = broadcastTo(b, [...batch, k, n]);
  return g.add({ op: 'matmul', a: ba.id, b: bb.id }, [...batch, m, n], 'f32');
}

export function reduce(fn: ReduceFn, x: Tensor, axis: number): Tensor {
  const a = normAxis(x.graph, `reduce_${fn}`, axis, x.rank);
  if (x.shape[a] === 0) fail(x.graph, `reduce_${fn}: axis ${a} of ${fmt(x.shape)} is empty`);
  const shape = x.shape.map((d, i) => (i === a ? 1 : d));
  return x.graph.add({ op: 'reduce', fn, x: x.id, axis: a }, shape, x.dtype);
}

export function reshape(x: Tensor, shape: Shape): Tensor {
  const resolved = [...shape];
  const free = resolved.indexOf(-1);
  if (free >= 0) {
    const known = sizeOf(resolved.filter((_, i) => i !== free));
    if (known === 0 || sizeOf(x.shape) % known !== 0) fail(x.graph, `reshape: cannot reshape ${fmt(x.shape)} to ${fmt(shape)}`);
    resolved[free] = sizeOf(x.shape) / known;
  }
  if (resolved.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(resolved) !== sizeOf(x.shape)) {
    fail(x.graph, `reshape: cannot reshape ${fmt(x.shape)} (${sizeOf(x.shape)} elements) to ${fmt(shape)}`);
  }
  if (resolved.length === x.rank && resolved.every((d, i) => d === x.shape[i])) return x;
  return x.graph.add({ op: 'reshape', x: x.id }, resolved, x.dtype);
}

export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  const ok = perm.length === x.rank && [...perm].sort((p, q) => p - q).every((p, i) => p === i);
  if (!ok) fail(x.graph, `transpose: ${fmt(perm)} is not a permutation of the axes of ${fmt(x.shape)}`);
  if (perm.every((p, i) => p === i)) return x;
  return x.graph.add({ op: 'transpose', x: x.id, perm: [...perm] }, perm.map((p) => x.shape[p]!), x.dtype);
}

export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  const bad =
    begin.length !== x.rank ||
    size.length !== x.rank ||
    begin.some((b, i) => !Number.isInteger(b) || b < 0 || !Number.isInteger(size[i]) || size[i]! < 0 || b + size[i]! > x.shape[i]!);
  if (bad) fail(x.graph, `slice: begin ${fmt(begin)} size ${fmt(size)} is out of bounds for ${fmt(x.shape)}`);
  if (size.every((s, i) => s === x.shape[i])) return x;
  return x.graph.add({ op: 'slice', x: x.id, begin: [...begin] }, size, x.dtype);
}

export function pad(x: Tensor, before: readonly number[], after: readonly number[]): Tensor {
  const bad =
    before.length !== x.rank ||
    after.length !== x.rank ||
    [...before, ...after].some((p) => !Number.isInteger(p) || p < 0);
  if (bad) fail(x.graph, `pad: before ${fmt(before)} after ${fmt(after)} do not fit ${fmt(x.shape)}`);
  if ([...before, ...after].every((p) => p === 0)) return x;
  const shape = x.shape.map((d, i) => d + before[i]! + after[i]!);
  return x.graph.add({ op: 'pad', x: x.id, before: [...before] }, shape, x.dtype);
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor');
  const g = sameGraph('concat', ...xs);
  const first = xs[0]!;
  const a = normAxis(g, 'concat', axis, first.rank);
  for (const t of xs) {
    const ok = t.rank === first.rank && t.dtype === first.dtype && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!ok) fail(g, `concat: ${t.dtype}${fmt(t.shape)} does not match ${first.dtype}${fmt(first.shape)} off axis ${a}`);
  }
  if (xs.length === 1) return first;
  const shape = first.shape.map((d, i) => (i === a ? xs.reduce((s, t) => s + t.shape[a]!, 0) : d));
  return g.add({ op: 'concat', xs: xs.map((t) => t.id), axis: a }, shape, first.dtype);
}

export function gather(x: Tensor, index: Tensor, axis: number): Tensor {
  const g = sameGraph('gather', x, index);
  const a = normAxis(g, 'gather', axis, x.rank);
  if (index.dtype !== 'i32') fail(g, `gather: index must be i32, got ${index.dtype}`);
  const ok = index.rank === x.rank && index.shape.every((d, i) => i === a || d === x.shape[i]);
  if (!ok) fail(g, `gather: index ${fmt(index.shape)} does not match ${fmt(x.shape)} off axis ${a}`);
  return g.add({ op: 'gather', x: x.id, index: index.id, axis: a }, index.shape, x.dtype);
}

export function scatterAdd(updates: Tensor, index: Tensor, axis: number, size: number): Tensor {
  const g = sameGraph('scatterAdd', updates, index);
  const a = normAxis(g, 'scatterAdd', axis, updates.rank);
  if (index.dtype !== 'i32') fail(g, `scatterAdd: index must be i32, got ${index.dtype}`);
  if (index.rank !== updates.rank || index.shape.some((d, i) => d !== updates.shape[i])) {
    fail(g, `scatterAdd: index ${fmt(index.shape)} must have the shape of updates ${fmt(updates.shape)}`);
  }
  const shape = updates.shape.map((d, i) => (i === a ? size : d));
  return g.add({ op: 'scatterAdd', updates: updates.id, index: index.id, axis: a }, shape, updates.dtype);
}

export function iota(g: Graph, shape: Shape, axis: number): Tensor {
  const a = normAxis(g, 'iota', axis, shape.length);
  return g.add({ op: 'iota', axis: a }, shape, 'i32');
}

export function argmax(x: Tensor, axis: number): Tensor {
  const a = normAxis(x.graph, 'argmax', axis, x.rank);
  return x.graph.add({ op: 'argmax', x: x.id, axis: a }, x.shape.map((d, i) => (i === a ? 1 : d)), 'i32');
}

export function argsort(x: Tensor, axis: number): Tensor {
  const a = normAxis(x.graph, 'argsort', axis, x.rank);
  if (x.dtype !== 'i32') fail(x.graph, `argsort: keys must be i32, got ${x.dtype}${fmt(x.shape)}`);
  return x.graph.add({ op: 'argsort', x: x.id, axis: a }, x.shape, 'i32');
}

export function random(dist: RandomDist, seed: Tensor, salt: number, shape: Shape): Tensor {
  if (seed.dtype !== 'i32' || seed.rank !== 0) fail(seed.graph, `random: seed must be an i32 scalar, got ${seed.dtype}${fmt(seed.shape)}`);
  if (!Number.isInteger(salt)) fail(seed.graph, `random: salt must be an integer, got ${salt}`);
  return seed.graph.add({ op: 'random', dist, seed: seed.id, salt: salt | 0 }, shape, 'f32');
}

export function constant(g: Graph, values: number | readonly number[], shape: Shape = [], dtype: DType = 'f32'): Tensor {
  const vs = typeof values === 'number' ? [values] : [...values];
  if (vs.length !== 1 && vs.length !== sizeOf(shape)) {
    fail(g, `constant: ${vs.length} values do not fill shape ${fmt(shape)}`);
  }
  return g.add({ op: 'const', values: dtype === 'i32' ? vs.map((v) => Math.trunc(v)) : vs }, shape, dtype);
}

export function stopGradient(x: Tensor): Tensor {
  return x.graph.add({ op: 'stopGradient', x: x.id }, x.shape, x.dtype);
}
