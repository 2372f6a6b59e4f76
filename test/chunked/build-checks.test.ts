/**
 * `Chunked`'s build-time contract: option checks, axis resolution (negative axes, out of range),
 * the divisibility check, the check that the inner layer keeps the chunk's shape, the layer path
 * its errors and chunks carry, and the chunk shape its inner layer is initialised with.
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../compiler/ir/graph.ts';
import { Chunked, isChunked, resolveChunking } from '../../dsl/chunked.ts';
import { Dup, Fn, Serial } from '../../dsl/combinators.ts';
import { InitKey, spec, trace, type Layer, type Params } from '../../dsl/layer.ts';
import { Dense } from '../../dsl/layers/dense.ts';
import * as ops from '../../dsl/ops.ts';
import { thrown } from '../support/thrown.ts';


describe('resolveChunking', () => {
  it('resolves a negative axis from the end and counts the chunks', () => {
    expect(resolveChunking('S', [2, 6, 3], -1, 3)).toEqual({ axis: 2, count: 1 });
    expect(resolveChunking('S', [2, 6, 3], -2, 2)).toEqual({ axis: 1, count: 3 });
    expect(resolveChunking('S', [2, 6, 3], -3, 1)).toEqual({ axis: 0, count: 2 });
    expect(resolveChunking('S', [2, 6, 3], 1, 6)).toEqual({ axis: 1, count: 1 });
    expect(resolveChunking('S', [2, 6, 3], 2, 1)).toEqual({ axis: 2, count: 3 });
  });

  it('rejects an axis past either end, or not an integer, naming the axis and the input shape', () => {
    for (const axis of [3, 4, -4, 1.5]) {
      const fn = () => resolveChunking('S', [2, 6, 3], axis, 1);
      expect(fn).toThrow(ShapeError);
      expect(thrown(fn)).toBe(`S: Chunked: axis ${axis} is out of range for input [2,6,3]`);
    }
  });

  it('rejects a size that does not divide the axis, naming size, axis, length and input', () => {
    expect(thrown(() => resolveChunking('S', [2, 6, 3], -2, 4))).toBe('S: Chunked: chunk size 4 does not divide axis 1 of length 6 (input [2,6,3])');
  });
});

describe('Chunked options', () => {
  it('rejects a size that is not a positive integer and an axis that is not an integer', () => {
    expect(thrown(() => Chunked(Dense(3), { axis: 0, size: 0 }))).toBe("Chunked: option 'size' must be a positive integer, got 0");
    expect(thrown(() => Chunked(Dense(3), { axis: 0, size: 1.5 }))).toBe("Chunked: option 'size' must be a positive integer, got 1.5");
    expect(thrown(() => Chunked(Dense(3), { axis: 0.5, size: 2 }))).toBe("Chunked: option 'axis' must be an integer, got 0.5");
  });

  it('rejects a layer with more than one input or more than one output', () => {
    const add = Fn('Add', (a, b) => ops.add(a!, b!), 2);
    expect(thrown(() => Chunked(add, { axis: 0, size: 2 }))).toBe('Chunked: Add must map one tensor to one tensor, got 2 → 1');
    expect(thrown(() => Chunked(Dup(), { axis: 0, size: 2 }))).toBe('Chunked: Dup must map one tensor to one tensor, got 1 → 2');
  });

  it('is recognised by isChunked and describes its inner layer', () => {
    const inner = Dense(3);
    const layer = Chunked(inner, { axis: -2, size: 2 });
    expect(isChunked(layer)).toBe(true);
    expect(isChunked(inner)).toBe(false);
    expect(isChunked(Serial(layer))).toBe(false);
    expect(layer).toMatchObject({ kind: 'chunked', name: 'Chunked', nIn: 1, nOut: 1, inner, axis: -2, size: 2 });
  });

  it('takes one input: the arity error names the layer', () => {
    const params = Dense(3).init(new InitKey(0), [spec([4, 3])]);
    expect(thrown(() => trace(Chunked(Dense(3), { axis: 0, size: 2 }), params, [{ shape: [4, 3] }, { shape: [4, 3] }]))).toBe('Chunked: expects 1 input(s), got 2');
  });
});

describe('Chunked at init and trace', () => {
  it('initialises the inner layer once, with the chunk shape along the resolved axis', () => {
    const seen: number[][] = [];
    const probe: Layer = { name: 'Probe', nIn: 1, nOut: 1, init: (_key, [x]) => (seen.push([...x!.shape]), {}), apply: (_p, xs) => [...xs] };
    Chunked(probe, { axis: -2, size: 2 }).init(new InitKey(0), [spec([3, 6, 4])]);
    Chunked(probe, { axis: 0, size: 1 }).init(new InitKey(0), [spec([3, 6, 4])]);
    expect(seen).toEqual([
      [3, 2, 4],
      [1, 6, 4],
    ]);
  });

  it('names the layer path in a divisibility error at init and at trace, top level and nested', () => {
    const layer = Chunked(Dense(3), { axis: 0, size: 4 });
    const params = Dense(3).init(new InitKey(0), [spec([6, 3])]);
    const message = 'Chunked: chunk size 4 does not divide axis 0 of length 6 (input [6,3])';
    expect(thrown(() => layer.init(new InitKey(0), [spec([6, 3])]))).toBe(`Chunked: ${message}`);
    expect(thrown(() => trace(layer, params, [{ shape: [6, 3] }]))).toBe(`Chunked: ${message}`);
    expect(thrown(() => trace(Serial(Dense(3), layer), [params, params], [{ shape: [6, 3] }]))).toBe(`Serial[1].Chunked: ${message}`);
  });

  it("names the chunk (Chunked[0]) in an error raised by the inner layer's init", () => {
    const broken = Fn('Square', (x) => ops.matmul(x!, x!));
    const e = thrown(() => Serial(Dense(4), Chunked(broken, { axis: 1, size: 2 })).init(new InitKey(0), [spec([3, 4, 4])]));
    expect(e).toMatch(/^Serial\[1\]\.Chunked\[0\]\.Square: matmul: /);
  });

  /** Traces `inner` chunked along axis 1 in chunks of 2 on a `[2, 4, 3]` input, inside `Serial` when nested. */
  const traceChunked = (inner: Layer, nested: boolean) => {
    const layer = Chunked(inner, { axis: 1, size: 2 });
    const model = nested ? Serial(layer) : layer;
    const params: Params = nested ? [{}] : {};
    return () => trace(model, params, [{ shape: [2, 4, 3] }]);
  };

  it('rejects an inner layer that changes the length of the chunked axis, naming both shapes', () => {
    const widen = Fn('Widen', (x) => ops.concat([x!, x!], 1));
    const want = 'Widen maps chunk [2,2,3] to [2,4,3]; it must keep axis 1 of length 2';
    expect(thrown(traceChunked(widen, false))).toBe(`Chunked: ${want}`);
    expect(thrown(traceChunked(widen, true))).toBe(`Serial[0].Chunked: ${want}`);
  });

  it('rejects an inner layer that changes the rank even when the chunked axis keeps its length', () => {
    const addAxis = Fn('AddAxis', (x) => ops.reshape(x!, [2, 2, 3, 1]));
    expect(thrown(traceChunked(addAxis, false))).toBe('Chunked: AddAxis maps chunk [2,2,3] to [2,2,3,1]; it must keep axis 1 of length 2');
  });

  it('accepts an inner layer that changes other axes, and makes one recompute region per chunk named by path', () => {
    const t = trace(Serial(Chunked(Fn('Pair', (x) => ops.concat([x!, x!], 2)), { axis: 1, size: 2 })), [{}], [{ shape: [2, 4, 3] }]);
    expect(t.outputs[0]!.shape).toEqual([2, 4, 6]);
    expect(t.graph.recomputeRegions.map((r) => r.label)).toEqual(['Serial[0].Chunked[0]', 'Serial[0].Chunked[1]']);
    // nodes made inside chunk k carry Chunked[k] on their layer path
    const scopes = new Set(t.graph.nodes.map((n) => n.scope));
    expect(scopes).toContain('Serial[0].Chunked[0].Pair');
    expect(scopes).toContain('Serial[0].Chunked[1].Pair');
  });
});
