/**
 * Kernel sources for each group kind of a plan. Every kernel computes one output element per
 * thread, reading its operand buffers as flat arrays, and writes a row-major output: mostly a 1-D
 * launch (`this.thread.x` is the flat index); matmul groups and row-broadcast scatterAdds launch
 * 2-D (`dims`, x first) so lane-uniform reads stay scalar on webasm. Sources are plain text so they
 * can be printed, diffed and emitted as files.
 *
 * - elementwise / matmul(+epilogue): the root's expression tree at the thread's index.
 * - reduce / argmax: a loop along the reduced axis over the fused prologue expression.
 * - argsort (stable): merge passes, or rank counting for short rows (sort-kernels.ts).
 * - scatterAdd: through a sort of the index rows (sort-kernels.ts); short rows gather-style, each
 *   output element summing the updates whose index hits it, in source order, O(len_in) each.
 */
import type { KernelGroup, KernelPlan } from '../fuse/plan.ts';
import type { NodeId } from '../ir/types.ts';
import { sizeOf } from '../ir/types.ts';
import { stridesOf } from '../ir/host-tensor.ts';
import { indexing, KernelWriter } from './emit.ts';
import { add, binary, call, float, int, isZero, local, mul, paren, sum, thread, type Expr } from './kernel-ir.ts';
import { FLOAT32_EXACT_INT, kernelSource, nodeKey, type KernelSource } from './kernel-spec.ts';
import { argsortGroupKernels, sortedScatterKernels } from './sort-kernels.ts';
import { packedMatmulKernels, usePacked, type MatmulStrategy, type ProductEngine } from './packed-matmul.ts';

export { nodeKey, type BufferKey, type KernelSource } from './kernel-spec.ts';

function paramsOf(reads: readonly NodeId[]): Map<NodeId, string> {
  return new Map(reads.map((id, i) => [id, `b${i}`]));
}

/** Whether a group touches a tensor beyond 2^24 elements, so its indices must be exact i32. */
export function needsWideIndices(plan: KernelPlan, group: KernelGroup): boolean {
  return [group.root, ...group.fused, ...group.reads].some((id) => sizeOf(plan.graph.node(id).shape) > FLOAT32_EXACT_INT);
}

function simple(plan: KernelPlan, group: KernelGroup, wide: number, body: (w: KernelWriter) => Expr): KernelSource {
  const params = paramsOf(group.reads);
  const w = new KernelWriter(plan, group.root, params, indexing(wide));
  const result = body(w);
  return groupKernel(group, w, params, result, [sizeOf(plan.graph.node(group.root).shape)]);
}

/** The one kernel of a group: reads its buffers in order, writes the root's buffer. */
function groupKernel(group: KernelGroup, w: KernelWriter, params: ReadonlyMap<NodeId, string>, result: Expr, dims: readonly number[]): KernelSource {
  const reads = [...params].map(([id, name]) => [nodeKey(id), name] as const);
  return kernelSource({ name: group.name, group: group.name, writer: w, result, reads, output: nodeKey(group.root), dims });
}

/**
 * The 2-D launch of a matmul group, or undefined to keep it 1-D. On webasm four adjacent
 * thread.x cells form one f32x4 step and never cross a row of the launch, so with columns on x
 * the row (thread.y) is lane-uniform: A's reads become scalar loads instead of gathers. Only for
 * widths that are a multiple of 4: measured on webasm, a ragged last quad per row made a
 * [1024, 258] product slower than the 1-D launch.
 */
function gridFor(plan: KernelPlan, group: KernelGroup): { cols: number; rows: number } | undefined {
  if (group.kind !== 'matmul') return undefined;
  const shape = plan.graph.node(group.root).shape;
  const cols = shape[shape.length - 1] ?? 1;
  if (shape.length < 2 || cols % 4 !== 0) return undefined;
  return { cols, rows: sizeOf(shape) / cols };
}

/**
 * A register-tiled matmul group (packed-matmul.ts): pack A, pack B, the Array(4) product, then
 * the group's own kernel computing the root (the epilogue) with the product read from its tiled
 * buffer, launched 2-D when the root's last axis is a multiple of 4.
 */
function packedGroup(plan: KernelPlan, group: KernelGroup, mmId: NodeId, engine: ProductEngine): KernelSource[] {
  const packed = packedMatmulKernels(plan, group, mmId, engine);
  if (packed.direct) return packed.kernels;
  const params = paramsOf(packed.epilogueReads);
  const shape = plan.graph.node(group.root).shape;
  const cols = shape[shape.length - 1] ?? 1;
  const grid = shape.length >= 2 && cols % 4 === 0 ? { cols, rows: sizeOf(shape) / cols } : undefined;
  const product = { id: mmId, param: packed.product.param, geometry: packed.product.geometry };
  const index = local('i_flat');
  const w = new KernelWriter(plan, group.root, params, grid ? { grid: { index, cols }, product } : { product });
  if (grid) w.stmt({ kind: 'let', name: 'i_flat', value: gridFlatIndex(cols) });
  const result = w.value(group.root, grid ? index : thread('x'));
  const reads = [...[...params].map(([id, name]) => [nodeKey(id), name] as const), [packed.product.key, packed.product.param] as const];
  const epilogue = kernelSource({
    name: group.name,
    group: group.name,
    writer: w,
    result,
    reads,
    output: nodeKey(group.root),
    dims: grid ? [grid.cols, grid.rows] : [sizeOf(shape)],
  });
  return [...packed.kernels, epilogue];
}

/** `this.thread.y * cols + this.thread.x`: the flat index of a 2-D launch over a row-major shape. */
const gridFlatIndex = (cols: number): Expr => add(mul(thread('y'), int(cols)), thread('x'));

function matmulGroup(plan: KernelPlan, group: KernelGroup, grid: { cols: number; rows: number }, wide: number): KernelSource {
  const params = paramsOf(group.reads);
  // a local would be float-typed: in wide mode the flat index stays an inline i32 expression
  const flatIndex = wide > 0 ? paren(gridFlatIndex(grid.cols)) : local('i_flat');
  const w = new KernelWriter(plan, group.root, params, { grid: { index: flatIndex, cols: grid.cols }, ...indexing(wide) });
  if (wide === 0) w.stmt({ kind: 'let', name: 'i_flat', value: gridFlatIndex(grid.cols) });
  return groupKernel(group, w, params, w.value(group.root, flatIndex), [grid.cols, grid.rows]);
}

/** Outer/inner decomposition of an axis: element (o, r, i) sits at `(o * len + r) * inner + i`. */
function axisSplit(shape: readonly number[], axis: number): { len: number; inner: number } {
  return { len: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) };
}

/** `base` = flat index of (o, 0, i) for the thread's output index over a shape whose axis has size `outLen`. */
function axisBase(w: KernelWriter, outLen: number, len: number, inner: number, outer: number): Expr {
  const [o, , i] = w.coords(thread('x'), [outer, outLen, inner]);
  return w.hold(w.flat([o!, i!], [len * inner, 1]), outer * len * inner);
}

/**
 * scatterAdd whose index is constant along the axes after the scatter axis (a fused broadcast,
 * as when whole rows are scattered by one position): launched `[inner, outer * lenOut]`, so the
 * index value and the target position are lane-uniform on webasm. The compare is then a real
 * branch and each output reads the updates (a gather) only where the index hits it.
 */
function scatterGrid(plan: KernelPlan, group: KernelGroup, wide: number): KernelSource | undefined {
  const g = plan.graph;
  const root = g.node(group.root);
  // Stryker disable next-line ConditionalExpression: a type guard, called for scatterAdd roots only
  if (root.op !== 'scatterAdd') return undefined;
  const { len: lenOut, inner } = axisSplit(root.shape, root.axis);
  const ix = g.node(root.index);
  if (inner % 4 !== 0 || ix.op !== 'broadcast' || plan.buffers.has(ix.id)) return undefined;
  const src = g.node(ix.x);
  const off = ix.shape.length - src.shape.length;
  if (src.shape.some((d, sa) => sa + off > root.axis && d !== 1)) return undefined;
  const lenIn = g.node(root.updates).shape[root.axis]!;
  const outerShape = root.shape.slice(0, root.axis);
  const outer = sizeOf(outerShape);
  const params = paramsOf(group.reads);
  const w = new KernelWriter(plan, group.root, params, indexing(wide));
  const o = outer > 1 ? w.div(thread('y'), lenOut) : int(0);
  const j = lenOut === 1 ? int(0) : outer > 1 ? w.mod(thread('y'), lenOut) : thread('y');
  // Stryker disable next-line ConditionalExpression,EqualityOperator,ArrowFunction: equivalent, with one outer row every index axis before the scatter axis has size 1, so oc is never read
  const oc = outer > 1 ? w.coords(o, outerShape) : outerShape.map(() => int(0));
  const srcStrides = stridesOf(src.shape);
  const acc = w.declare('acc', float(0));
  if (lenIn > 0) {
    const q = w.fresh('q');
    w.loop(q, 0, lenIn, () => {
      const terms = src.shape.map((d, sa) => (d === 1 ? int(0) : sa + off === root.axis ? local(q) : oc[sa + off]!));
      const hit = w.value(src.id, w.index(w.flat(terms, srcStrides)));
      w.ifBlock(binary('===', hit, j), () => {
        const rowTerms = [mul(w.iv(local(q)), int(inner)), thread('x')];
        const at = w.index(sum(isZero(o) ? rowTerms : [mul(w.iv(o), int(lenIn * inner)), ...rowTerms]));
        w.stmt({ kind: 'assign', name: acc, op: '+=', value: w.value(root.updates, at) });
      });
    });
  }
  return groupKernel(group, w, params, local(acc), [inner, sizeOf(root.shape) / inner]);
}

export function groupKernels(
  plan: KernelPlan,
  group: KernelGroup,
  options: { grid?: boolean; wide?: boolean; matmul?: MatmulStrategy } = {},
): KernelSource[] {
  const g = plan.graph;
  // 0: float indices; otherwise wide mode, holding index values below this in float locals (a
  // forced wide mode lowers it so tests reach the i32 paths at small sizes)
  const wide = options.wide === true ? 16 : needsWideIndices(plan, group) ? FLOAT32_EXACT_INT : 0;
  const root = g.node(group.root);
  switch (root.op) {
    case 'reduce':
    case 'argmax': {
      const x = g.node(root.x);
      const { len, inner } = axisSplit(x.shape, root.axis);
      return [
        simple(plan, group, wide, (w) => {
          const base = axisBase(w, 1, len, inner, sizeOf(x.shape) / (len * inner));
          const at = (r: Expr) => add(base, inner === 1 ? w.iv(r) : mul(w.iv(r), int(inner)));
          const first = w.value(root.x, base);
          const acc = w.declare('acc', first);
          const best = root.op === 'argmax' ? w.declare('best', float(0)) : '';
          if (len > 1) {
            const r = w.fresh('r');
            w.loop(r, 1, len, () => {
              const v = w.value(root.x, w.index(at(local(r))));
              if (root.op === 'argmax') {
                w.ifBlock(binary('>', v, local(acc)), () => {
                  w.stmt({ kind: 'assign', name: acc, op: '=', value: v });
                  w.stmt({ kind: 'assign', name: best, op: '=', value: local(r) });
                });
              } else if (root.fn === 'sum') {
                w.stmt({ kind: 'assign', name: acc, op: '+=', value: v });
              } else {
                w.stmt({ kind: 'assign', name: acc, op: '=', value: call('max', local(acc), v) });
              }
            });
          }
          return local(root.op === 'argmax' ? best : acc);
        }),
      ];
    }
    case 'argsort':
      return argsortGroupKernels(plan, group, wide);
    case 'scatterAdd': {
      const sorted = sortedScatterKernels(plan, group, options.grid !== false, wide);
      if (sorted !== undefined) return sorted;
      const gridded = options.grid === false ? undefined : scatterGrid(plan, group, wide);
      if (gridded !== undefined) return [gridded];
      const u = g.node(root.updates);
      const { len: lenOut, inner } = axisSplit(root.shape, root.axis);
      const lenIn = u.shape[root.axis]!;
      return [
        simple(plan, group, wide, (w) => {
          const outer = sizeOf(root.shape) / (lenOut * inner);
          const base = axisBase(w, lenOut, lenIn, inner, outer);
          const j = w.coords(thread('x'), [outer, lenOut, inner])[1]!;
          const acc = w.declare('acc', float(0));
          if (lenIn > 0) {
            const q = w.fresh('q');
            w.loop(q, 0, lenIn, () => {
              const at = w.index(add(base, inner === 1 ? w.iv(local(q)) : mul(w.iv(local(q)), int(inner))));
              const hit = w.value(root.index, at);
              const v = w.value(root.updates, at);
              w.ifBlock(binary('===', hit, j), () => w.stmt({ kind: 'assign', name: acc, op: '+=', value: v }));
            });
          }
          return local(acc);
        }),
      ];
    }
    default: {
      const packed = options.grid === false ? undefined : usePacked(plan, group, options.matmul ?? 'dot', wide > 0);
      if (packed !== undefined) return packedGroup(plan, group, packed.mmId, packed.engine);
      const grid = options.grid === false ? undefined : gridFor(plan, group);
      if (grid !== undefined) return [matmulGroup(plan, group, grid, wide)];
      return [simple(plan, group, wide, (w) => w.value(group.root, thread('x')))];
    }
  }
}
