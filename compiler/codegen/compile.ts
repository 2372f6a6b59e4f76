/**
 * graph → plan → kernel sources. `compile(graph).kernels` is everything a backend (or an emitter
 * writing kernels to files) needs: names, source text, parameter buffers and output sizes.
 *
 * Limits, checked here with errors naming the node and its layer: element counts must fit i32
 * indices (kernels touching more than 2^24 elements index in exact i32, see emit.ts), and i32
 * constants must be exact in float32 (|v| <= 2^24), the carrier of values. i32 feeds are checked
 * when they are uploaded (runtime).
 */
import { printPlan, planKernels, type KernelPlan } from '../fuse/plan.ts';
import type { Graph } from '../ir/graph.ts';
import type { DType, NodeId } from '../ir/types.ts';
import { formatShape, sizeOf } from '../ir/types.ts';
import { groupKernels, nodeKey, type BufferKey, type KernelSource } from './kernels.ts';
import { FLOAT32_EXACT_INT, MAX_ELEMENTS } from './kernel-spec.ts';
import { inlineExp } from './inline-exp.ts';
import { printKernel } from './kernel-ir.ts';
import type { MatmulStrategy } from './packed-matmul.ts';

export { FLOAT32_EXACT_INT, MAX_ELEMENTS } from './kernel-spec.ts';
export { PACKED_MATMUL_MIN_MACS, type MatmulStrategy } from './packed-matmul.ts';

export class CompileError extends Error {
  override name = 'CompileError';
}

export interface BufferInfo {
  readonly key: BufferKey;
  readonly size: number;
  readonly dtype: DType;
  /** Graph node it holds, or undefined for a kernel's scratch buffer. */
  readonly node?: NodeId;
}

export interface CompiledGraph {
  readonly plan: KernelPlan;
  /** In execution order. */
  readonly kernels: readonly KernelSource[];
  /** Every buffer a kernel reads or writes, inputs and host-made buffers included. */
  readonly buffers: ReadonlyMap<BufferKey, BufferInfo>;
  /** The plan, then each kernel's source: the text form to snapshot or emit. */
  describe(): string;
}

function checkLimits(graph: Graph, plan: KernelPlan): void {
  const inPlan = new Set<NodeId>([...plan.buffers.keys()]);
  for (const k of plan.groups) for (const f of k.fused) inPlan.add(f);
  for (const id of inPlan) {
    const n = graph.node(id);
    const count = sizeOf(n.shape);
    if (count > MAX_ELEMENTS) {
      throw new CompileError(
        `${n.scope || 'top level'}: %${id}:${n.dtype}${formatShape(n.shape)} has ${count} elements; ` +
          `compiled kernels index with i32 and support at most ${MAX_ELEMENTS}`,
      );
    }
    if (n.op === 'const' && n.dtype === 'i32' && n.values.some((v) => Math.abs(v) > FLOAT32_EXACT_INT)) {
      throw new CompileError(
        `${n.scope || 'top level'}: i32 constant %${id} holds a value beyond ±2^24, which float32 kernels cannot carry exactly`,
      );
    }
    if (n.op === 'random' && graph.node(n.seed).op !== 'input' && graph.node(n.seed).op !== 'const') {
      throw new CompileError(
        `${n.scope || 'top level'}: random %${id} needs its seed to be a graph input or constant (it is drawn on the host)`,
      );
    }
  }
}

export interface CompileOptions {
  /**
   * Launch matmul groups 2-D (`[cols, rows]`, default true). Only backends whose kernels hand
   * 2-D results on as flat buffers can chain them (webasm); cpu's generic pipeline passes rows.
   */
  readonly grid?: boolean;
  /** Write every kernel with exact i32 indices, not only those touching more than 2^24 elements (tests). */
  readonly wide?: boolean;
  /** Most buffers one kernel reads (the planner's `maxReads`; the runtime sets it for webgpu). */
  readonly maxReads?: number;
  /**
   * Matmul groups on 2-D launches: one dot product per thread (`'dot'`, the default), register-tiled
   * through packed panels (`'packed'`, packed-matmul.ts), or packed from PACKED_MATMUL_MIN_MACS
   * multiply-adds on (`'auto'`). Packed groups add `Array(4)` kernels (`components: 4`).
   */
  readonly matmul?: MatmulStrategy;
  /** Write `Math.exp` as inline arithmetic (inline-exp.ts): on webasm it is a call into JavaScript per lane. */
  readonly inlineExp?: boolean;
}

export function compile(graph: Graph, wanted: readonly NodeId[] = graph.outputs, options: CompileOptions = {}): CompiledGraph {
  // Stryker disable next-line ConditionalExpression: the planner reads { maxReads: undefined } as no bound
  const plan = planKernels(graph, wanted, options.maxReads === undefined ? {} : { maxReads: options.maxReads });
  checkLimits(graph, plan);
  const kernels: KernelSource[] = [];
  for (const group of plan.groups) {
    if (sizeOf(graph.node(group.root).shape) === 0) continue; // nothing to compute; the runtime makes an empty array
    kernels.push(
      ...groupKernels(plan, group, {
        // Stryker disable next-line LogicalOperator: groupKernels reads an undefined grid as true
        grid: options.grid ?? true,
        wide: options.wide ?? false,
        matmul: options.matmul ?? 'dot',
      }),
    );
  }
  if (options.inlineExp === true) {
    kernels.forEach((k, i) => {
      // Stryker disable next-line LogicalOperator,ConditionalExpression,StringLiteral: the text test only saves work, inlineExp leaves a kernel without exp as it was
      if (k.ir !== undefined && k.source.includes('Math.exp(')) kernels[i] = { ...k, source: printKernel(inlineExp(k.ir)) };
    });
  }
  const buffers = new Map<BufferKey, BufferInfo>();
  for (const id of plan.buffers.keys()) {
    const n = graph.node(id);
    buffers.set(nodeKey(id), { key: nodeKey(id), size: sizeOf(n.shape), dtype: n.dtype, node: id });
  }
  for (const k of kernels) {
    if (!buffers.has(k.output)) buffers.set(k.output, { key: k.output, size: k.size, dtype: 'f32' });
  }
  return {
    plan,
    kernels,
    buffers,
    describe: () => [printPlan(plan), ...kernels.map((k) => `// ${k.name} -> ${k.output} [${k.size}]\n${k.source}`)].join('\n\n'),
  };
}
