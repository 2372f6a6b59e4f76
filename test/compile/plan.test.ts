import { describe, expect, it } from 'vitest';
import { compile, CompileError } from '../../compiler/codegen/compile.ts';
import { planKernels, printPlan } from '../../compiler/fuse/plan.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import { normalize, softmax, logsumexp, matmul, add, tanh, exp, mul, sub, relu, randomNormal, constant, cast } from '../../dsl/ops.ts';
import { planMemory } from '../../runtime/memory-plan.ts';
import * as P from '../../compiler/ir/primitives.ts';

describe('fusion plan', () => {
  it('a chain of elementwise ops is one kernel', () => {
    const g = new Graph();
    const x = g.input('x', [3, 5]);
    const y = g.input('y', [5]);
    g.outputs = [tanh(mul(exp(sub(x, y)), 2)).id];
    const plan = planKernels(g);
    expect(plan.groups).toHaveLength(1);
    expect(plan.groups[0]!.kind).toBe('elementwise');
  });

  it('softmax and logsumexp need at most 3 kernels', () => {
    const g = new Graph();
    const x = g.input('x', [4, 7]);
    g.outputs = [softmax(x, -1).id];
    expect(planKernels(g).groups.length).toBeLessThanOrEqual(3);
    const h = new Graph();
    h.outputs = [logsumexp(h.input('x', [4, 7]), -1).id];
    expect(planKernels(h).groups.length).toBeLessThanOrEqual(3);
  });

  it('LayerNorm needs at most 3 kernels, with the reductions carrying their prologue', () => {
    const g = new Graph();
    const x = g.input('x', [6, 9]);
    const scale = g.input('scale', [9]);
    const bias = g.input('bias', [9]);
    g.outputs = [add(mul(normalize(x, 1e-6), scale), bias).id];
    const plan = planKernels(g);
    expect(plan.groups.map((k) => k.kind)).toEqual(['reduce', 'reduce', 'elementwise']);
    expect(plan.groups[1]!.fused.length).toBeGreaterThan(0);
  });

  it('Dense with bias and activation is one matmul kernel with an epilogue', () => {
    const g = new Graph();
    const x = g.input('x', [4, 6]);
    const w = g.input('w', [6, 3]);
    const b = g.input('b', [3]);
    g.outputs = [relu(add(matmul(x, w), b)).id];
    const plan = planKernels(g);
    expect(plan.groups).toHaveLength(1);
    expect(plan.groups[0]!.kind).toBe('matmul');
    expect(plan.groups[0]!.name).toBe('k0_matmul_epilogue');
  });

  it('a matmul read twice materialises; a cheap shared value is recomputed, an expensive one is not', () => {
    const g = new Graph();
    const x = g.input('x', [4, 6]);
    const w = g.input('w', [6, 6]);
    const m = matmul(x, w);
    const cheap = mul(x, 2);
    g.outputs = [add(tanh(m), m).id, add(cheap, exp(cheap)).id];
    const plan = planKernels(g);
    expect(plan.buffers.get(m.id)).toBe('kernel');
    expect(plan.buffers.has(cheap.id)).toBe(false);
    // A long shared chain is computed once.
    const h = new Graph();
    let t = h.input('t', [8]);
    for (let i = 0; i < 6; i++) t = tanh(add(t, t));
    h.outputs = [t.id];
    const groups = planKernels(h).groups;
    expect(groups.length).toBeGreaterThan(1);
    for (const k of groups) expect(k.fused.length).toBeLessThan(12);
  });

  it('an operand widened by a broadcast is written at its small size when its indexing is more than a view step', () => {
    const g = new Graph();
    const pos = g.input('pos', [2, 12], 'i32');
    // window positions: each chunk of 4 followed by the next (a concat of two slices), compared
    // against every query of the chunk: the [2, 2, 1, 8] windows are expanded ×4
    const windows = P.concat([P.reshape(P.slice(pos, [0, 0], [2, 8]), [2, 2, 4]), P.reshape(P.slice(pos, [0, 4], [2, 8]), [2, 2, 4])], 2);
    const keys = P.reshape(windows, [2, 2, 1, 8]);
    const queries = P.reshape(P.slice(pos, [0, 4], [2, 8]), [2, 2, 4, 1]);
    const mask = P.compare('gt', P.broadcastTo(keys, [2, 2, 4, 8]), P.broadcastTo(queries, [2, 2, 4, 8]));
    g.outputs = [mask.id];
    const plan = planKernels(g);
    expect(plan.buffers.get(keys.id)).toBe('kernel');
    // a plain reshape of a slice is cheap to rebuild: it stays inlined
    expect(plan.buffers.has(queries.id)).toBe(false);
  });

  it('a kernel computes one dot product: of two summed products the first is materialised', () => {
    const g = new Graph();
    const [a, b, c, d] = (['a', 'b', 'c', 'd'] as const).map((n) => g.input(n, [4, 4]));
    g.outputs = [add(add(matmul(a!, b!), matmul(c!, d!)), matmul(a!, d!)).id];
    const plan = planKernels(g);
    expect(plan.groups.map((k) => k.name)).toEqual(['k0_matmul', 'k1_matmul_epilogue', 'k2_matmul_epilogue']);
    for (const k of plan.groups) expect(k.fused.filter((id) => g.node(id).op === 'matmul').length).toBeLessThanOrEqual(1);
  });

  it('costly concat pieces are materialised, cheap ones and views of buffers are inlined', () => {
    const g = new Graph();
    const x = g.input('x', [8, 8]);
    const w = g.input('w', [8, 3]);
    const bias = g.input('bias', [3]);
    // a Dense per chunk: its product and bias would otherwise be computed for every piece at every element
    const chunks = [0, 4].map((at) => P.reshape(add(matmul(P.slice(x, [at, 0], [4, 8]), w), bias), [1, 4, 3]));
    const cheap = [0, 4].map((at) => exp(P.slice(x, [at, 0], [4, 8])));
    g.outputs = [exp(P.concat(chunks, 1)).id, tanh(P.concat(cheap, 0)).id];
    const plan = planKernels(g);
    // one kernel per piece's product, then each concat is read by one kernel
    expect(plan.groups.map((k) => k.kind)).toEqual(['matmul', 'matmul', 'elementwise', 'elementwise']);
    expect(plan.groups.map((k) => k.name)).toEqual(['k0_matmul_epilogue', 'k1_matmul_epilogue', 'k2_elementwise', 'k3_elementwise']);
    expect(plan.groups[2]!.reads).toHaveLength(2);
    expect(plan.groups[3]!.reads).toEqual([x.id]);
  });

  it('printPlan is compact and stable', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const seed = g.input('seed', [], 'i32', 'seed');
    const r = randomNormal(seed, 7, [2, 3]);
    const c = constant(g, [1, 2, 3], [3]);
    g.outputs = [softmax(add(add(x, r), c), -1).id];
    expect(printPlan(planKernels(g))).toBe(
      [
        "host input 'x' %0:f32[2,3]",
        "host input 'seed' %1:i32[]",
        'host random %2:f32[2,3]',
        'host constant %3:f32[3]',
        'k0_reduce_max  %7:f32[2,1] <- %0 %2 %3  fuses %4 %5 %6',
        'k1_reduce_sum  %12:f32[2,1] <- %0 %2 %3 %7  fuses %4 %5 %6 %8 %9 %10 %11',
        'k2_elementwise  %14:f32[2,3] <- %0 %2 %3 %7 %12  fuses %4 %5 %6 %8 %9 %10 %11 %13',
        'outputs %14',
      ].join('\n'),
    );
  });

  it('the memory plan reuses slots once buffers are dead', () => {
    const g = new Graph();
    let t = g.input('x', [1, 64]);
    for (let i = 0; i < 8; i++) t = matmul(relu(t), g.input(`w${i}`, [64, 64]));
    g.outputs = [t.id];
    const compiled = compile(g);
    const mem = planMemory(compiled);
    // relu(x), then seven matmuls each fused into the next relu, then the last matmul.
    expect(compiled.kernels).toHaveLength(9);
    expect(mem.slots).toHaveLength(2);
    expect(mem.peakBytes).toBe(mem.hostBytes + 2 * 64 * 4);
  });

  it('compile errors name the node and the limit', () => {
    const g = new Graph();
    const x = g.input('x', [4]);
    g.outputs = [cast(add(cast(x, 'i32'), constant(g, 2 ** 25, [], 'i32')), 'f32').id];
    expect(() => compile(g)).toThrow(CompileError);
    expect(() => compile(g)).toThrow(/beyond ±2\^24/);
  });
});
