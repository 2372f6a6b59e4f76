/**
 * Code-generation details that mutation testing (`npm run mutate -- codegen`) found unpinned and
 * that running kernels does not show: compile()'s limits and their messages, its buffer table,
 * text form and option defaults, each kernel's loopMax and launch shape, and flattenResult (how a
 * gpu.js result becomes a flat array). No gpu.js here.
 */
import { describe, expect, it } from 'vitest';
import { compile, CompileError, MAX_ELEMENTS } from '../../compiler/codegen/compile.ts';
import { flattenResult } from '../../compiler/codegen/flat-output.ts';
import { FLOAT32_EXACT_INT } from '../../compiler/codegen/kernel-spec.ts';
import { printPlan } from '../../compiler/fuse/plan.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';

describe('compile: limits', () => {
  it('a tensor past MAX_ELEMENTS is refused, naming its layer, node, shape and count', () => {
    const g = new Graph();
    const side = 2 ** 16;
    const x = g.withScope('block', () => g.input('x', [side, side]));
    g.outputs = [P.unary('exp', x).id];
    expect(() => compile(g)).toThrow(new CompileError(`block: %${x.id}:f32[${side},${side}] has ${side * side} elements; compiled kernels index with i32 and support at most ${MAX_ELEMENTS}`));
    const top = new Graph();
    const t = top.input('t', [MAX_ELEMENTS + 1]);
    top.outputs = [P.unary('neg', t).id];
    expect(() => compile(top)).toThrow(`top level: %0:f32[${MAX_ELEMENTS + 1}] has ${MAX_ELEMENTS + 1} elements`);
    const fits = new Graph();
    fits.outputs = [P.unary('neg', fits.input('f', [MAX_ELEMENTS])).id];
    expect(compile(fits).kernels).toHaveLength(1);
  });

  it('i32 constants up to ±2^24 are accepted, one beyond is refused', () => {
    const withConst = (v: number) => {
      const g = new Graph();
      const k = g.input('k', [3], 'i32');
      g.outputs = [P.binary('add', k, P.constant(g, [1, v, 2], [3], 'i32')).id];
      return () => compile(g);
    };
    expect(withConst(FLOAT32_EXACT_INT)).not.toThrow();
    expect(withConst(-FLOAT32_EXACT_INT)).not.toThrow();
    expect(withConst(-FLOAT32_EXACT_INT - 1)).toThrow(/top level: i32 constant %\d+ holds a value beyond ±2\^24, which float32 kernels cannot carry exactly/);
  });

  it('a random draw needs an input or constant seed', () => {
    const g = new Graph();
    const seed = g.input('seed', [], 'i32');
    const fromInput = P.random('uniform', seed, 1, [3]);
    const fromConst = P.random('normal', P.constant(g, 5, [], 'i32'), 2, [3]);
    g.outputs = [P.binary('add', fromInput, fromConst).id];
    expect(() => compile(g)).not.toThrow();
    const bad = new Graph();
    const computed = P.binary('add', bad.input('seed', [], 'i32'), P.constant(bad, 1, [], 'i32'));
    const r = bad.withScope('dropout', () => P.random('uniform', computed, 1, [3]));
    bad.outputs = [r.id];
    expect(() => compile(bad)).toThrow(new CompileError(`dropout: random %${r.id} needs its seed to be a graph input or constant (it is drawn on the host)`));
  });
});

describe('compile: what it returns', () => {
  it('the buffer table lists every materialised node and each scratch buffer; an empty group has no kernel', () => {
    const g = new Graph();
    const keys = g.input('keys', [2, 40], 'i32');
    const order = P.argsort(keys, 1);
    const empty = P.unary('exp', g.input('e', [0, 3]));
    g.outputs = [order.id, empty.id];
    const c = compile(g);
    expect(c.kernels.some((k) => k.output === `%${empty.id}`)).toBe(false);
    expect(c.buffers.get(`%${keys.id}`)).toEqual({ key: `%${keys.id}`, size: 80, dtype: 'i32', node: keys.id });
    expect(c.buffers.get(`%${empty.id}`)).toEqual({ key: `%${empty.id}`, size: 0, dtype: 'f32', node: empty.id });
    const scratch = c.kernels.filter((k) => !k.output.startsWith('%'));
    expect(scratch.length).toBeGreaterThan(0);
    for (const k of scratch) expect(c.buffers.get(k.output)).toEqual({ key: k.output, size: k.size, dtype: 'f32' });
    expect(c.describe()).toBe([printPlan(c.plan), ...c.kernels.map((k) => `// ${k.name} -> ${k.output} [${k.size}]\n${k.source}`)].join('\n\n'));
  });

  it('defaults: 2-D matmul launches, float indices, one dot product per thread', () => {
    const g = new Graph();
    const mm = P.matmul(g.input('a', [6, 5]), g.input('b', [5, 8]));
    g.outputs = [mm.id];
    const [k] = compile(g).kernels;
    expect(k!.dims).toEqual([8, 6]);
    expect(compile(g, g.outputs, { grid: false }).kernels[0]!.dims).toEqual([48]);
    expect(k!.source).toBe(compile(g, g.outputs, { grid: true, wide: false, matmul: 'dot' }).kernels[0]!.source);
    expect(k!.source).not.toBe(compile(g, g.outputs, { wide: true }).kernels[0]!.source);
    expect(compile(g, g.outputs, { matmul: 'packed' }).kernels.map((x) => x.name)).toEqual(['k0_matmul.packA', 'k0_matmul.packB', 'k0_matmul.product', 'k0_matmul']);
  });

  it('each kernel declares the largest constant loop bound of its source', () => {
    const g = new Graph();
    const x = g.input('x', [3, 7]);
    const keys = g.input('keys', [2, 40], 'i32');
    g.outputs = [
      P.reduce('sum', x, 1).id,
      P.matmul(x, g.input('w', [7, 9])).id,
      P.argsort(keys, 1).id,
      P.scatterAdd(g.input('u', [2, 40]), keys, 1, 6).id,
      P.unary('exp', x).id,
    ];
    for (const options of [{}, { wide: true }, { matmul: 'packed' as const }]) {
      for (const k of compile(g, g.outputs, options).kernels) {
        const bounds = [...k.source.matchAll(/< (\d+);/g)].map((m) => Number(m[1]));
        expect(k.loopMax, `${k.name} ${JSON.stringify(options)}`).toBe(Math.max(0, ...bounds));
      }
    }
  });
});

describe('flattenResult', () => {
  it('returns a Float32Array of the expected length as it is', () => {
    const out = new Float32Array([1, 2, 3]);
    expect(flattenResult(out, 3)).toBe(out);
  });

  it('flattens rows of a 2-D launch, Array(4) cells and plain numbers, in order', () => {
    expect(Array.from(flattenResult([new Float32Array([1, 2]), new Float32Array([3, 4])], 4))).toEqual([1, 2, 3, 4]);
    expect(Array.from(flattenResult([[1, 2, 3, 4], [5, 6, 7, 8]], 8))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(flattenResult([[new Float32Array([1, 2])], [new Float32Array([3])]], 3))).toEqual([1, 2, 3]);
    expect(Array.from(flattenResult(new Float64Array([1.5, 2.5]), 2))).toEqual([1.5, 2.5]);
  });

  it('a result of the wrong size or with a foreign element is an error saying so', () => {
    expect(() => flattenResult(new Float32Array(3), 4)).toThrow(new RangeError('kernel result: a kernel returned 3 floats, expected 4'));
    expect(() => flattenResult([1, 2, 3], 2)).toThrow(RangeError);
    expect(() => flattenResult([1, 'x'], 2)).toThrow(new TypeError('kernel result: unexpected element x'));
  });
});
