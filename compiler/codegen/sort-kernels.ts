/**
 * Sorting on the backend: a stable argsort as ⌈log₂ len⌉ merge passes, and scatterAdd built on it.
 *
 * Every kernel still writes only its own element (gpu.js has no scattered stores), so a merge pass
 * is gather-style: output slot t of a merged block of two sorted runs A and B finds, by binary
 * search along the merge path, how many of the first t slots come from A, then takes the smaller
 * head. Keys are compared as (key, position) pairs, a total order, so the result is the stable
 * order and every pass is deterministic. Cost O(len·log² len) per row over log₂ len launches,
 * against O(len²) for rank counting, which is kept for short rows (one launch pair, no passes).
 *
 * scatterAdd(updates, index, axis, lenOut) sorts each row of the index once, finds each target's
 * segment [start(j), start(j + 1)) by binary search, and sums its updates in sorted order, which
 * is source order within a target: the reference evaluator's summation order. When the index is
 * a fused broadcast that is constant after the scatter axis (whole rows scattered by one position,
 * as in the gradient of a take-along gather), only the small un-broadcast index is sorted.
 */
import type { KernelGroup, KernelPlan } from '../fuse/plan.ts';
import type { Node, NodeId } from '../ir/types.ts';
import { sizeOf } from '../ir/types.ts';
import { stridesOf } from '../ir/host-tensor.ts';
import { indexing, KernelWriter } from './emit.ts';
import { kernelSource, nodeKey, type BufferKey, type KernelSource } from './kernel-spec.ts';
import { add, binary, call, float, int, isZero, load, local, mul, paren, sub, thread, type Expr, type Stmt } from './kernel-ir.ts';

const lt = (a: Expr, b: Expr): Expr => binary('<', a, b);
/** `a < b || (a === b && pa < pb)`: key order, ties broken by position (a total order). */
const ordered = (a: Expr, b: Expr, pa: Expr, pb: Expr): Expr => binary('||', lt(a, b), paren(binary('&&', binary('===', a, b), lt(pa, pb))));
const assign = (name: string, value: Expr, op: '=' | '+=' = '='): Stmt => ({ kind: 'assign', name, op, value });
const [lo, hi, mid] = [local('lo'), local('hi'), local('mid')];
/** `let mid = Math.floor((lo + hi) / 2);`, then `lo = mid + 1` where `below` holds, else `hi = mid`. */
function bisect(w: KernelWriter, below: () => Expr): void {
  w.ifBlock(lt(lo, hi), () => {
    w.stmt({ kind: 'let', name: 'mid', value: call('floor', binary('/', paren(add(lo, hi)), int(2))) });
    w.ifBlock(
      below(),
      () => w.stmt(assign('lo', add(mid, int(1)))),
      () => w.stmt(assign('hi', mid)),
    );
  });
}

/** Rows up to this length sort by rank counting (two kernels, O(len²) per row). */
export const RANK_SORT_MAX_LEN = 32;
/** scatterAdd over at most this many updates per row loops over them directly (one kernel). */
export const DIRECT_SCATTER_MAX_LEN = 32;

/** Keys viewed as `[outer, len, inner]`, sorted along the middle axis. */
interface SortLayout {
  readonly outer: number;
  readonly len: number;
  readonly inner: number;
}

/** The key at a flat index of the `[outer, len, inner]` view, as kernel text. */
type KeyReader = (w: KernelWriter, flat: Expr) => Expr;

interface KernelBase {
  readonly plan: KernelPlan;
  readonly group: KernelGroup;
  /** Graph buffers the key reader (and updates) need, by parameter name. */
  readonly params: ReadonlyMap<NodeId, string>;
  /** Index mode (see groupKernels): 0, or wide with this float-local limit; positions within a row stay below 2^24. */
  readonly wide: number;
}

function writer(base: KernelBase, params: ReadonlyMap<NodeId, string> = base.params): KernelWriter {
  return new KernelWriter(base.plan, base.group.root, params, indexing(base.wide));
}

function paramsOf(reads: readonly NodeId[]): Map<NodeId, string> {
  return new Map(reads.map((id, i) => [id, `b${i}`]));
}

const searchSteps = (n: number): number => Math.ceil(Math.log2(n + 1)) + 1;

function source(
  base: KernelBase,
  name: string,
  w: KernelWriter,
  result: Expr,
  scratch: readonly BufferKey[],
  output: BufferKey,
  dims: readonly number[],
): KernelSource {
  const reads = [
    ...[...base.params].map(([id, param]) => [nodeKey(id), param] as const),
    ...scratch.map((key) => [key, scratchParam(key)] as const),
  ];
  return kernelSource({ name, group: base.group.name, writer: w, result, reads, output, dims });
}

/** Parameter name of a scratch buffer inside a kernel: `k5_argsort.pass2` → `s_pass2`. */
function scratchParam(key: BufferKey): string {
  return `s_${key.slice(key.lastIndexOf('.') + 1)}`;
}

/** Row coordinates of `this.thread.x` over `[outer, len, inner]`: position r and the row base (o, 0, i). */
function rowOf(w: KernelWriter, layout: SortLayout): { r: Expr; rowBase: Expr } {
  const x = thread('x');
  const { outer, len, inner } = layout;
  if (len === 1) return { r: int(0), rowBase: x };
  const [o, r, i] = w.coords(x, [outer, len, inner]);
  return { r: r!, rowBase: w.hold(w.flat([o!, i!], [len * inner, 1]), outer * len * inner) };
}

/**
 * Kernels writing the stable argsort of the keys into `output` (positions along the axis, as
 * floats). Short rows: rank counting. Longer: merge passes of width 1, 2, 4, … over scratch buffers.
 */
function argsortKernels(base: KernelBase, layout: SortLayout, key: KeyReader, output: BufferKey): KernelSource[] {
  const { len, inner } = layout;
  const size = layout.outer * len * inner;
  const prefix = base.group.name;
  if (len <= RANK_SORT_MAX_LEN) return rankSortKernels(base, layout, key, output);
  const kernels: KernelSource[] = [];
  let prev: BufferKey | undefined;
  for (let width = 1, pass = 0; width < len; width *= 2, pass++) {
    const out = width * 2 >= len ? output : `${prefix}.pass${pass}`;
    const w = writer(base);
    const { r, rowBase } = rowOf(w, layout);
    // positions within the row are float-typed (below 2^24); made i32 before meeting rowBase
    const perm = (at: Expr): Expr =>
      prev === undefined ? w.bind(at, 'p') : w.bind(load(scratchParam(prev), w.index(add(rowBase, mul(w.int(at), int(inner))))), 'p');
    // Stryker disable next-line StringLiteral: equivalent, a key read is already a bound local, so the prefix is never used
    const keyOf = (p: Expr): Expr => w.bind(key(w, w.index(add(rowBase, mul(w.int(p), int(inner))))), 'k');
    const before = (a: Expr, b: Expr): Expr => ordered(keyOf(a), keyOf(b), a, b);
    const blk = w.bind(mul(call('floor', binary('/', r, int(2 * width))), int(2 * width)), 'blk');
    const t = w.bind(sub(r, blk), 't');
    const lenA = w.bind(call('min', int(width), sub(int(len), blk)), 'la');
    const lenB = w.bind(call('max', int(0), call('min', int(width), sub(sub(int(len), blk), int(width)))), 'lb');
    // lo = how many of the block's first t slots come from run A, by binary search
    w.stmt({ kind: 'let', name: 'lo', value: call('max', int(0), sub(t, lenB)) });
    w.stmt({ kind: 'let', name: 'hi', value: call('min', t, lenA) });
    w.loop('step', 0, searchSteps(width), () =>
      bisect(w, () => {
        const a = perm(add(blk, mid));
        const b = perm(w.index(sub(sub(add(add(blk, int(width)), t), int(1)), mid)));
        return before(a, b);
      }),
    );
    const fromB = w.bind(sub(t, lo), 'j');
    // both heads are read clamped into the row; the branch below only uses a head that exists
    // Stryker disable next-line ArithmeticOperator: equivalent, blk + lo <= r <= len - 1, so this clamp never binds
    const pa = perm(w.index(call('min', add(blk, lo), int(len - 1))));
    const pb = perm(w.index(call('min', add(add(blk, int(width)), fromB), int(len - 1))));
    const aFirst = before(pa, pb);
    w.stmt({ kind: 'let', name: 'res', value: pb });
    w.ifBlock(lt(lo, lenA), () =>
      w.ifBlock(
        binary('>=', fromB, lenB),
        () => w.stmt(assign('res', pa)),
        () => w.ifBlock(aFirst, () => w.stmt(assign('res', pa))),
      ),
    );
    kernels.push(source(base, `${prefix}.pass${pass}`, w, local('res'), prev === undefined ? [] : [prev], out, [size]));
    prev = out;
  }
  return kernels;
}

/** Rank counting for short rows: `rank[i]` = keys ordered before key i; then slot p takes rank p. */
function rankSortKernels(base: KernelBase, layout: SortLayout, key: KeyReader, output: BufferKey): KernelSource[] {
  const { len, inner } = layout;
  const size = layout.outer * len * inner;
  const rankKey = `${base.group.name}.rank`;
  const rw = writer(base);
  const { r: self, rowBase } = rowOf(rw, layout);
  // Stryker disable next-line StringLiteral: equivalent, a key read is already a bound local, so the prefix is never used
  const mine = rw.bind(key(rw, thread('x')), 'k');
  const q = local('q');
  rw.stmt({ kind: 'let', name: 'count', value: float(0) });
  rw.loop('q', 0, len, () => {
    // Stryker disable next-line StringLiteral: equivalent, a key read is already a bound local, so the prefix is never used
    const other = rw.bind(key(rw, rw.index(add(rowBase, mul(rw.iv(q), int(inner))))), 'k');
    rw.ifBlock(ordered(other, mine, q, self), () => rw.stmt(assign('count', float(1), '+=')));
  });
  const sw = writer(base, new Map());
  const { r: slot, rowBase: sBase } = rowOf(sw, layout);
  sw.stmt({ kind: 'let', name: 'found', value: float(0) });
  sw.loop('q', 0, len, () => {
    const rank = load(scratchParam(rankKey), sw.index(add(sBase, mul(sw.iv(q), int(inner)))));
    sw.ifBlock(binary('===', rank, slot), () => sw.stmt(assign('found', q)));
  });
  const noGraph: KernelBase = { ...base, params: new Map() };
  return [source(base, rankKey, rw, local('count'), [], rankKey, [size]), source(noGraph, `${base.group.name}.select`, sw, local('found'), [rankKey], output, [size])];
}

export function argsortGroupKernels(plan: KernelPlan, group: KernelGroup, wide: number): KernelSource[] {
  const root = plan.graph.node(group.root) as Node & { op: 'argsort' };
  const layout = axisLayout(root.shape, root.axis);
  const base: KernelBase = { plan, group, params: paramsOf(group.reads), wide };
  return argsortKernels(base, layout, (w, flat) => w.value(root.x, flat), nodeKey(group.root));
}

function axisLayout(shape: readonly number[], axis: number): SortLayout {
  const len = shape[axis]!;
  const inner = sizeOf(shape.slice(axis + 1));
  return { outer: sizeOf(shape) / Math.max(1, len * inner), len, inner };
}

/**
 * Where the scatter index comes from: the index itself over the updates' shape, or, when it is a
 * fused broadcast constant after the scatter axis, its source (one key per row position).
 */
interface IndexSource {
  readonly layout: SortLayout;
  readonly key: KeyReader;
  /** The key view's row o' (its outer index) holding the index of output row (outer coords). */
  keyRow(w: KernelWriter, outerCoords: readonly Expr[]): Expr;
}

function indexSource(plan: KernelPlan, root: Node & { op: 'scatterAdd' }): IndexSource {
  const g = plan.graph;
  const updates = g.node(root.updates);
  const lenIn = updates.shape[root.axis]!;
  const outerShape = root.shape.slice(0, root.axis);
  const inner = sizeOf(root.shape.slice(root.axis + 1));
  const ix = g.node(root.index);
  if (ix.op === 'broadcast' && !plan.buffers.has(ix.id)) {
    const src = g.node(ix.x);
    const off = ix.shape.length - src.shape.length;
    const constantAfter = src.shape.every((d, sa) => sa + off <= root.axis || d === 1);
    if (constantAfter && root.axis >= off && src.shape[root.axis - off] === lenIn) {
      // src viewed as [srcOuter, lenIn, 1]: its leading axes, aligned to the root's, may be 1
      const srcOuter = outerShape.map((d, a) => (a < off ? 1 : src.shape[a - off]!));
      const strides = stridesOf(srcOuter);
      return {
        layout: { outer: sizeOf(srcOuter), len: lenIn, inner: 1 },
        key: (w, flat) => w.value(src.id, flat),
        keyRow: (w, oc) => w.flat(oc.map((c, a) => (srcOuter[a] === 1 ? int(0) : c)), strides),
      };
    }
  }
  const outerStrides = stridesOf(outerShape);
  return {
    layout: { outer: sizeOf(outerShape), len: lenIn, inner },
    key: (w, flat) => w.value(root.index, flat),
    keyRow: (w, oc) => w.flat(oc, outerStrides),
  };
}

/**
 * scatterAdd through a sort of its index rows; undefined when rows are short enough for the
 * direct loop. `grid`: launch the accumulation `[inner, outer·lenOut]` so a row's segment bounds
 * and positions are lane-uniform (webasm), when inner is a multiple of 4.
 */
export function sortedScatterKernels(plan: KernelPlan, group: KernelGroup, grid: boolean, wide: number): KernelSource[] | undefined {
  const g = plan.graph;
  const root = g.node(group.root) as Node & { op: 'scatterAdd' };
  const lenIn = g.node(root.updates).shape[root.axis]!;
  if (lenIn <= DIRECT_SCATTER_MAX_LEN) return undefined;
  const lenOut = root.shape[root.axis]!;
  const outerShape = root.shape.slice(0, root.axis);
  const outer = sizeOf(outerShape);
  const inner = sizeOf(root.shape.slice(root.axis + 1));
  const src = indexSource(plan, root);
  const base: KernelBase = { plan, group, params: paramsOf(group.reads), wide };
  const order = `${group.name}.order`;
  const starts = `${group.name}.starts`;
  const kernels = argsortKernels(base, src.layout, src.key, order);

  // starts[o', j, i'] = how many keys of row (o', i') are below j, for j = 0 … lenOut
  const kl = src.layout;
  const sw = writer(base);
  const x = thread('x');
  const [ko, j, ki] = sw.coords(x, [kl.outer, lenOut + 1, kl.inner]) as [Expr, Expr, Expr];
  const kBase = sw.hold(sw.flat([ko, ki], [kl.len * kl.inner, 1]), kl.outer * kl.len * kl.inner);
  sw.stmt({ kind: 'let', name: 'lo', value: float(0) });
  sw.stmt({ kind: 'let', name: 'hi', value: float(kl.len) });
  sw.loop('step', 0, searchSteps(kl.len), () =>
    bisect(sw, () => {
      const p = sw.bind(load(scratchParam(order), sw.index(add(kBase, mul(sw.int(mid), int(kl.inner))))), 'p');
      // Stryker disable next-line StringLiteral: equivalent, a key read is already a bound local, so the prefix is never used
      const k = sw.bind(src.key(sw, sw.index(add(kBase, mul(sw.int(p), int(kl.inner))))), 'k');
      return lt(k, j);
    }),
  );
  kernels.push(source(base, starts, sw, lo, [order], starts, [kl.outer * (lenOut + 1) * kl.inner]));

  // out[o, j, i] = Σ updates[o, order[s], i] for s in [starts[j], starts[j + 1])
  const aw = writer(base);
  const gridded = grid && inner % 4 === 0 && inner > 1;
  let o: Expr;
  let jj: Expr;
  let i: Expr;
  if (gridded) {
    o = outer > 1 ? aw.div(thread('y'), lenOut) : int(0);
    jj = lenOut === 1 ? int(0) : outer > 1 ? aw.mod(thread('y'), lenOut) : thread('y');
    i = thread('x');
  } else {
    [o, jj, i] = aw.coords(x, [outer, lenOut, inner]) as [Expr, Expr, Expr];
  }
  const oc = outer > 1 ? aw.coords(o, outerShape) : outerShape.map(() => int(0));
  // the key view's row (o', ·, i'): its sorted order at [o', ·, i'], its segment starts at [o', j, i']
  const oK = src.keyRow(aw, oc);
  const iK = kl.inner === 1 ? int(0) : i;
  const row = aw.hold(aw.flat([oK, iK], [kl.len * kl.inner, 1]), kl.outer * kl.len * kl.inner);
  const sIdx = aw.index(aw.flat([oK, jj, iK], [(lenOut + 1) * kl.inner, kl.inner, 1]));
  const first = aw.int(aw.bind(load(scratchParam(starts), sIdx), 'first'));
  const end = aw.int(aw.bind(load(scratchParam(starts), aw.index(add(sIdx, int(kl.inner)))), 'end'));
  aw.stmt({ kind: 'let', name: 'acc', value: float(0) });
  const updBase = aw.hold(aw.flat([o, i], [lenIn * inner, 1]), outer * lenIn * inner);
  const s = local('s');
  aw.loop('s', 0, lenIn, () => {
    aw.ifBlock(binary('>=', add(first, s), end), () => aw.stmt({ kind: 'break' }));
    const q = aw.int(aw.bind(load(scratchParam(order), aw.index(add(row, mul(paren(add(first, aw.iv(s))), int(kl.inner))))), 'q'));
    const at = aw.index(isZero(updBase) ? mul(q, int(inner)) : add(updBase, mul(q, int(inner))));
    aw.stmt(assign('acc', aw.value(root.updates, at), '+='));
  });
  const dims = gridded ? [inner, outer * lenOut] : [outer * lenOut * inner];
  kernels.push(source(base, group.name, aw, local('acc'), [order, starts], nodeKey(group.root), dims));
  return kernels;
}
