/**
 * Register-tiled matmul groups for the webasm backend: a product over packed or plain operands
 * instead of one dot product per output.
 *
 * Why: webasm runs four adjacent `thread.x` cells as one f32x4 step; a read whose index depends
 * on thread.x is a gather (four scalar loads + lane inserts: wasm SIMD has no gather and gpu.js
 * emits no vector loads), a read that does not is one scalar load + splat. A one-output-per-thread
 * dot product therefore pays one gather per four multiply-adds. Here each thread returns
 * `Array(4)` = four ROWS of one column, so one gather of B feeds a 4×4 outer product with four
 * uniform loads of A (16 multiply-adds), and both operands are read as unit-stride streams from
 * packed panels. Models use our WebAssembly SIMD product (`'wasm'`, wasm-matmul.ts: 4×8 tiles
 * with vector loads, a step of the gpu.js pipeline); the gpu.js `Array(4)` product (`'packed'`)
 * stays as the measured alternative.
 *
 * The group becomes:
 *   1. `<group>.packA`: A's value (any fused prologue: views, casts, elementwise producers) written
 *      as panels [batch][⌈m/4⌉][k][4] (four rows interleaved, rows past m are 0); with the wasm
 *      product an operand that is a buffer, row-major or with its last two axes swapped, skips
 *      this kernel (the product reads it in place);
 *   2. `<group>.packB`: B as panels [batch][⌈n/4⌉][k][4] (four columns interleaved; eight for the
 *      wasm product, which reads a row-major B in place);
 *   3. `<group>.product`: the wasm product (C row-major [batch][4⌈m/4⌉][8⌈n/8⌉]), or the
 *      Array(4) kernel, launched [4⌈n/4⌉, ⌈m/4⌉, batch]; cell (j, q, z)
 *      holds C[z][4q + c][j] at component c, i.e. element (z, i, j) sits at
 *      ((z·⌈m/4⌉ + ⌊i/4⌋)·4⌈n/4⌉ + j)·4 + i mod 4;
 *   4. the group kernel proper, writing the group's root (the epilogue: bias, activation,
 *      residual, scaling fused as before) and reading the product from that tiled layout.
 * The `Array(4)` product returns four values per cell, which gpu.js's fused webasm pipeline cannot
 * hand to another step, so the runtime runs it between pipeline segments (runtime/compiled-runner.ts);
 * the wasm product is an ordinary step.
 */
import type { KernelGroup, KernelPlan } from '../fuse/plan.ts';
import type { Node, NodeId } from '../ir/types.ts';
import { operands, sizeOf } from '../ir/types.ts';
import { KernelWriter } from './emit.ts';
import { add, binary, call, float, int, isZero, mul, paren, select, sum, thread, type Expr } from './kernel-ir.ts';
import { FLOAT32_EXACT_INT, kernelSource, nodeKey, type BufferKey, type KernelSource } from './kernel-spec.ts';
import { productCells, productSource, type ALayout, type BLayout, type WasmMatmulShape } from './wasm-matmul.ts';

/**
 * Multiply-adds from which 'auto' writes a matmul as the wasm product. All of the default training
 * config's matmuls (1024×64×64 and up) are above it: as pipeline steps they took its step from
 * 0.65 to 0.24 s (docs/benchmarks.md). Smaller ones stay one dot product per thread (not measured: a
 * product that small is a few microseconds either way).
 */
export const PACKED_MATMUL_MIN_MACS = 2 ** 16;

/** k-loop unroll of the product kernel (measured best of 4/8/16 on the Dense shapes). */
export const PACKED_UNROLL = 16;

/**
 * How matmul groups are written: `'dot'` one dot product per thread; `'packed'` packed panels and
 * the gpu.js `Array(4)` product; `'wasm'` packed panels and our WebAssembly SIMD product
 * (wasm-matmul.ts); `'auto'` `'wasm'` from PACKED_MATMUL_MIN_MACS multiply-adds on, else `'dot'`.
 */
export type MatmulStrategy = 'auto' | 'wasm' | 'packed' | 'dot';

export type ProductEngine = 'gpujs' | 'wasm';

export interface PackedGeometry {
  readonly engine: ProductEngine;
  readonly batch: number;
  readonly m: number;
  readonly k: number;
  readonly n: number;
  /** ⌈m/4⌉ row quads; A is packed as [batch][quads][k][4]. */
  readonly quads: number;
  /** Columns per B panel: 4 for the gpu.js product, 8 for the wasm one. */
  readonly panelB: 4 | 8;
  /** B's columns padded to whole panels (the gpu.js product's x extent). */
  readonly nPad: number;
}

export function packedGeometry(mm: Node & { op: 'matmul' }, aShape: readonly number[], engine: ProductEngine): PackedGeometry {
  const [m, n] = mm.shape.slice(-2) as [number, number];
  const k = aShape[aShape.length - 1]!;
  const batch = sizeOf(mm.shape) / (m * n);
  const panelB = engine === 'wasm' ? 8 : 4;
  return { engine, batch, m, k, n, quads: Math.ceil(m / 4), panelB, nPad: panelB * Math.ceil(n / panelB) };
}

/**
 * Whether a matmul group is written packed. Float index arithmetic must stay exact: every packed
 * buffer holds at most 2^24 floats (its indices reach 2^24 - 1), and no wide-mode group; k ≥ 1 and
 * a non-empty output. (The LSH layer's chunk products at L = 16K are exactly 2^24.)
 */
export function usePacked(
  plan: KernelPlan,
  group: KernelGroup,
  strategy: MatmulStrategy,
  wide: boolean,
): { readonly mmId: NodeId; readonly engine: ProductEngine } | undefined {
  if (strategy === 'dot' || wide) return undefined;
  // Stryker disable next-line StringLiteral: equivalent, any engine but 'wasm' takes the gpu.js product's path and panel width
  const engine: ProductEngine = strategy === 'packed' ? 'gpujs' : 'wasm';
  // Stryker disable next-line ConditionalExpression: equivalent, another group's root is not a matmul and the type guard below returns
  const mmId = group.fusedMatmul ?? (group.kind === 'matmul' ? group.root : undefined);
  if (mmId === undefined) return undefined;
  const mm = plan.graph.node(mmId);
  // Stryker disable next-line ConditionalExpression: a type guard, a matmul group's root or fused matmul is a matmul
  if (mm.op !== 'matmul') return undefined;
  const g = packedGeometry(mm, plan.graph.node(mm.a).shape, engine);
  if (g.k === 0) return undefined;
  // Stryker disable next-line ConditionalExpression: m = 0 or n = 0 is an empty output, whose group compile() skips before this
  if (g.m === 0 || g.n === 0) return undefined;
  const sizes = [g.batch * g.quads * 4 * g.k, g.batch * g.nPad * g.k, g.batch * g.quads * 4 * g.nPad];
  if (sizes.some((s) => s > FLOAT32_EXACT_INT)) return undefined;
  if (strategy === 'auto' && g.batch * g.m * g.n * g.k < PACKED_MATMUL_MIN_MACS) return undefined;
  return { mmId, engine };
}

/** The buffers an expression reads: DFS from `id` through fused nodes, stopping at buffers and at `stop`. */
function bufferReads(plan: KernelPlan, id: NodeId, root: NodeId, stop?: NodeId): NodeId[] {
  const seen = new Set<NodeId>();
  const out = new Set<NodeId>();
  const walk = (x: NodeId): void => {
    // Stryker disable next-line ConditionalExpression: equivalent, walking a node again adds nothing to the set (costs time only)
    if (seen.has(x)) return;
    seen.add(x);
    if (x !== root && plan.buffers.has(x)) {
      out.add(x);
      return;
    }
    if (x === stop) return;
    for (const o of operands(plan.graph.node(x))) walk(o);
  };
  walk(id);
  return [...out].sort((a, b) => a - b);
}

const paramsOf = (reads: readonly NodeId[]): Map<NodeId, string> => new Map(reads.map((id, i) => [id, `b${i}`]));

/**
 * Panels of one operand: thread t = ((z·panels + p)·k + kk)·4 + c holds the operand at
 * (z, 4p + c, kk) for A (`rowsAxis` = the m axis) or (z, kk, 4p + c) for B; lines past the
 * operand's extent read a clamped element and select 0.
 */
function packKernel(plan: KernelPlan, group: KernelGroup, operand: NodeId, side: 'A' | 'B', g: PackedGeometry): KernelSource {
  const reads = bufferReads(plan, operand, group.root);
  const params = paramsOf(reads);
  const w = new KernelWriter(plan, group.root, params);
  const width = side === 'A' ? 4 : g.panelB;
  const panels = side === 'A' ? g.quads : g.nPad / width;
  const lines = side === 'A' ? g.m : g.n;
  const [z, p, kk, c] = w.coords(thread('x'), [g.batch, panels, g.k, width]) as [Expr, Expr, Expr, Expr];
  const line = w.bind(add(mul(p, int(width)), c), 'c');
  const clamped = lines % width === 0 ? line : w.bind(call('min', line, int(lines - 1)), 'c');
  const [outer, inner] = side === 'A' ? [g.m, g.k] : [g.k, g.n];
  const at = side === 'A' ? [mul(clamped, int(g.k)), kk] : [mul(kk, int(g.n)), clamped];
  const idx = w.index(sum(isZero(z) ? at : [mul(z, int(outer * inner)), ...at]));
  const v = w.value(operand, idx);
  const result = lines % width === 0 ? v : paren(select(binary('<', line, int(lines)), v, float(0)));
  const out = `${group.name}.pack${side}`;
  return {
    ...kernelSource({
      name: out,
      group: group.name,
      writer: w,
      result,
      reads: reads.map((id) => [nodeKey(id), params.get(id)!] as const),
      output: out,
      dims: [g.batch * panels * g.k * width],
    }),
  };
}

/** The Array(4) product over packed panels (see the file comment for its launch and layout). */
export function packedProductSource(g: PackedGeometry, unroll = PACKED_UNROLL): string {
  const k4 = 4 * g.k;
  const u = Math.min(unroll, g.k);
  const main = Math.floor(g.k / u) * u;
  // gpu.js makes every local an f32 (exact here: packed buffers stay below 2^24 elements,
  // usePacked). Reads index with `(base | 0) + constant`: the truncation is the same expression
  // for all reads of an unrolled block, so the wasm compiler computes it once and each read is an
  // integer add; an f32 add then a truncation per read was measured 1.7–2× slower end to end.
  const aBase = g.batch === 1 ? `this.thread.y * ${k4}` : `(this.thread.z * ${g.quads} + this.thread.y) * ${k4}`;
  const bBase = `(${g.batch === 1 ? '' : `this.thread.z * ${g.nPad / 4} + `}(this.thread.x >> 2)) * ${k4} + (this.thread.x & 3)`;
  const at = (base: string, offset: number): string => (offset === 0 ? `(${base} | 0)` : `(${base} | 0) + ${offset}`);
  const step = (aAt: (c: number) => string, bAt: string, tag: string): string[] => [
    `const ${tag} = b[${bAt}];`,
    ...[0, 1, 2, 3].map((c) => `s${c} += a[${aAt(c)}] * ${tag};`),
  ];
  const body: string[] = ['const ak = aq + kk * 4;', 'const bk = bq + kk * 4;'];
  for (let s = 0; s < u; s++) body.push(...step((c) => at('ak', 4 * s + c), at('bk', 4 * s), `bv${s}`));
  // the k remainder is straight-line code: a loop with a non-literal start would need a guard
  const tail: string[] = [];
  for (let kk = main; kk < g.k; kk++) tail.push(...step((c) => at('aq', 4 * kk + c), at('bq', 4 * kk), `bt${kk - main}`));
  return [
    'function (a, b) {',
    '  let s0 = 0.0;',
    '  let s1 = 0.0;',
    '  let s2 = 0.0;',
    '  let s3 = 0.0;',
    `  const aq = ${aBase};`,
    `  const bq = ${bBase};`,
    `  for (let kk = 0; kk < ${main}; kk += ${u}) {`,
    ...body.map((l) => `    ${l}`),
    '  }',
    ...tail.map((l) => `  ${l}`),
    '  return [s0, s1, s2, s3];',
    '}',
  ].join('\n');
}

export interface PackedKernels {
  readonly kernels: KernelSource[];
  /** The product buffer and the geometry the group kernel reads it with. */
  readonly product: { readonly key: BufferKey; readonly param: string; readonly geometry: PackedGeometry };
  /** Buffers the group kernel itself still reads (those of the epilogue, not of the operands). */
  readonly epilogueReads: NodeId[];
  /** The product already is the group's output (a bare wasm product without padding): no group kernel follows. */
  readonly direct: boolean;
}

/** The wasm product: C row-major [batch][4·quads][nPad] (wasm-matmul.ts), a pipeline step like any kernel. */
function wasmProduct(
  key: string,
  group: KernelGroup,
  params: readonly BufferKey[],
  g: PackedGeometry,
  layouts: { readonly a: ALayout; readonly b: BLayout },
): KernelSource {
  const native: WasmMatmulShape = { batch: g.batch, m: g.m, mPad: 4 * g.quads, k: g.k, n: g.n, nPad: g.nPad, a: layouts.a, b: layouts.b };
  const size = productCells(native);
  return { name: key, group: group.name, source: productSource(native), params, output: key, size, dims: [size], components: 1, native, loopMax: g.k };
}

/**
 * The buffer holding an operand's elements in its own row-major order: the operand itself when it
 * is a buffer, or the buffer under a chain of reshapes (a reshape keeps row-major order); else
 * undefined (a view that moves elements, or a value computed inside the group).
 */
function rowMajorBuffer(plan: KernelPlan, group: KernelGroup, operand: NodeId): NodeId | undefined {
  for (let id = operand; id !== group.root; ) {
    if (plan.buffers.has(id)) return id;
    const n = plan.graph.node(id);
    if (n.op !== 'reshape') return undefined;
    id = n.x;
  }
  return undefined;
}

/** A matmul operand the wasm product reads from a buffer itself: in row-major order, or transposed (last two axes swapped). */
interface PlainOperand {
  readonly buffer: NodeId;
  readonly transposed: boolean;
}

function plainOperand(plan: KernelPlan, group: KernelGroup, operand: NodeId): PlainOperand | undefined {
  const rowMajor = rowMajorBuffer(plan, group, operand);
  if (rowMajor !== undefined) return { buffer: rowMajor, transposed: false };
  const n = plan.graph.node(operand);
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent for the root test, an operand of the group's matmul is never its root (the graph is acyclic)
  if (n.op !== 'transpose' || operand === group.root) return undefined;
  const r = n.perm.length;
  const swapsLastTwo = n.perm.every((p, i) => p === (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
  const buffer = swapsLastTwo ? rowMajorBuffer(plan, group, n.x) : undefined;
  return buffer === undefined ? undefined : { buffer, transposed: true };
}

/** Kernels 1–3 of a packed group; the caller writes kernel 4 with `product` as a KernelWriter option. */
export function packedMatmulKernels(plan: KernelPlan, group: KernelGroup, mmId: NodeId, engine: ProductEngine): PackedKernels {
  const mm = plan.graph.node(mmId) as Node & { op: 'matmul' };
  const g = packedGeometry(mm, plan.graph.node(mm.a).shape, engine);
  if (engine === 'wasm') {
    // row-major [batch][m][n] without padding is the root's own layout when nothing follows the product
    const direct = group.root === mmId && g.m % 4 === 0 && g.n % 8 === 0;
    const key = direct ? nodeKey(group.root) : `${group.name}.product`;
    // the product reads an operand straight from its buffer when it is one (A row-major or with
    // its last two axes swapped, B row-major): no pack kernel, no extra pass
    const plainA = plainOperand(plan, group, mm.a);
    const plainB = plainOperand(plan, group, mm.b);
    const bRows = plainB !== undefined && !plainB.transposed ? plainB : undefined;
    const packs = [plainA === undefined ? packKernel(plan, group, mm.a, 'A', g) : undefined, bRows === undefined ? packKernel(plan, group, mm.b, 'B', g) : undefined];
    const params = [packs[0]?.output ?? nodeKey(plainA!.buffer), packs[1]?.output ?? nodeKey(bRows!.buffer)];
    const layouts = { a: plainA === undefined ? 'packed' : plainA.transposed ? 'transposed' : 'rows', b: bRows === undefined ? 'packed' : 'rows' } as const;
    const product = wasmProduct(key, group, params, g, layouts);
    return {
      kernels: [...packs.filter((k): k is KernelSource => k !== undefined), product],
      product: { key, param: 'bp', geometry: g },
      epilogueReads: bufferReads(plan, group.root, group.root, mmId),
      direct,
    };
  }
  const packA = packKernel(plan, group, mm.a, 'A', g);
  const packB = packKernel(plan, group, mm.b, 'B', g);
  const key = `${group.name}.product`;
  const product: KernelSource = {
    name: key,
    group: group.name,
    source: packedProductSource(g),
    params: [packA.output, packB.output],
    output: key,
    size: g.nPad * g.quads * g.batch * 4,
    dims: [g.nPad, g.quads, g.batch],
    components: 4,
    loopMax: g.k,
  };
  return {
    kernels: [packA, packB, product],
    product: { key, param: 'bp', geometry: g },
    epilogueReads: bufferReads(plan, group.root, group.root, mmId),
    direct: false,
  };
}
