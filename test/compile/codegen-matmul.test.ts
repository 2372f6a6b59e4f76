/**
 * Matmul and scatter code generation, run on the host (support.ts `runCompiledOnHost`) and read
 * structurally: dot products walked over k axes of several factors (heads merged into a model
 * width), 2-D launches and which reads stay uniform across a launch row, packed products (when a
 * group is packed, its kernels, launch shapes and buffer sizes), scatter grids and merge-sort
 * passes. Values are checked against the float64 reference; the launch decisions, which leave
 * values equal, are checked on the emitted kernels. No gpu.js, so the `codegen` mutation group
 * runs this file (stryker/groups.mjs).
 */
import { describe, expect, it } from 'vitest';
import { compile, type CompileOptions, type CompiledGraph } from '../../compiler/codegen/compile.ts';
import { commonFactors } from '../../compiler/codegen/matmul-emit.ts';
import { PACKED_MATMUL_MIN_MACS, PACKED_UNROLL, packedGeometry, packedProductSource } from '../../compiler/codegen/packed-matmul.ts';
import { productShapeOf } from '../../compiler/codegen/wasm-matmul.ts';
import { DIRECT_SCATTER_MAX_LEN, RANK_SORT_MAX_LEN } from '../../compiler/codegen/sort-kernels.ts';
import type { KernelSource } from '../../compiler/codegen/kernel-spec.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { runCompiledOnHost, values } from './support.ts';

type Feeds = Record<string, HostTensor>;

/** Option sets a case is compiled with: 2-D launches on and off, wide indices, each matmul strategy. */
const OPTIONS: readonly CompileOptions[] = [{}, { grid: false }, { wide: true }, { matmul: 'packed' }, { matmul: 'wasm' }, { matmul: 'wasm', grid: false }];

/**
 * A feed array that throws on a read outside it (an index past either end, fractional or NaN), so
 * a kernel reading a clamped neighbour it then discards still fails if the clamp is wrong.
 */
function guarded(data: Float64Array | Int32Array): Float64Array {
  return new Proxy(data, {
    get(target, prop) {
      if (typeof prop === 'string' && prop !== '' && (prop === 'NaN' || !Number.isNaN(Number(prop)))) {
        const at = Number(prop);
        if (!Number.isInteger(at) || at < 0 || at >= target.length) throw new RangeError(`read at ${prop} of a buffer of ${target.length}`);
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as Float64Array;
}

class Case {
  readonly g = new Graph();
  readonly feeds: Feeds = {};

  f32(name: string, shape: number[], seed = name.length * 7 + shape.length): Tensor {
    this.feeds[name] = hostTensor(shape, values(shape.reduce((a, b) => a * b, 1), seed));
    return this.g.input(name, shape);
  }

  /** Integers in [0, range), as an i32 feed. */
  i32(name: string, shape: number[], range: number, seed = 3): Tensor {
    let s = seed;
    const data = Int32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
      s = (Math.imul(s, 1103515245) + 12345) | 0;
      return ((s >>> 8) & 0xffff) % range;
    });
    this.feeds[name] = hostTensor(shape, data, 'i32');
    return this.g.input(name, shape, 'i32');
  }

  /** Host-runs every output with each option set (feeds read through `guarded`) against the reference. */
  run(outs: readonly Tensor[], options: readonly CompileOptions[] = OPTIONS): void {
    this.g.outputs = outs.map((t) => t.id);
    const ref = evaluate(this.g, this.feeds, this.g.outputs);
    const checked: Feeds = {};
    for (const [name, t] of Object.entries(this.feeds)) checked[name] = { ...t, data: guarded(t.data as Float64Array) };
    for (const o of options) runCompiledOnHost(this.g, checked, this.g.outputs, ref, {}, o);
  }

  compile(outs: readonly Tensor[], options: CompileOptions = {}): CompiledGraph {
    this.g.outputs = outs.map((t) => t.id);
    return compile(this.g, this.g.outputs, options);
  }
}

/** The kernel writing `t`'s buffer. */
function writer(c: CompiledGraph, t: Tensor): KernelSource {
  const k = c.kernels.find((x) => x.output === `%${t.id}`);
  if (k === undefined) throw new Error(`no kernel writes %${t.id}`);
  return k;
}

/**
 * For each read of buffer `key` in a kernel, whether its index varies along `this.thread.x` (the
 * lanes of one webasm SIMD step): locals are followed through their assignments.
 */
function laneVarying(k: KernelSource, key: string): boolean[] {
  const names = /^function \(([^)]*)\)/.exec(k.source)![1]!.split(',').map((s) => s.trim());
  const param = names[k.params.indexOf(key)];
  if (param === undefined) throw new Error(`${k.name} does not read ${key}`);
  const varying = new Set<string>();
  const depends = (expr: string): boolean => expr.includes('this.thread.x') || [...expr.matchAll(/[A-Za-z_]\w*/g)].some((m) => varying.has(m[0]));
  const out: boolean[] = [];
  for (const line of k.source.split('\n')) {
    for (const m of line.matchAll(/\b(\w+)\[([^[\]]+)\]/g)) if (m[1] === param) out.push(depends(m[2]!));
    const assign = /^\s*(?:let |const )?(\w+) (?:=|\+=) (.+);$/.exec(line);
    if (assign && depends(assign[2]!)) varying.add(assign[1]!);
  }
  return out;
}

/** Index terms an emitter should have folded: `x * 1`, `x * 0`, `0 + x`, `x + 0`. */
function unfolded(source: string): string[] {
  return [...source.matchAll(/\* [01](?![\d.])|\b0 \+ |\+ 0(?![\d.])/g)].map((m) => m[0]);
}

/** Locals a kernel assigns without declaring them (gpu.js needs every one declared). */
function undeclared(source: string): string[] {
  const declared = new Set(/^function \(([^)]*)\)/.exec(source)![1]!.split(',').map((s) => s.trim()));
  for (const m of source.matchAll(/\b(?:let|const) (\w+)/g)) declared.add(m[1]!);
  return [...source.matchAll(/^\s*(\w+) (?:=|\+=) /gm)].map((m) => m[1]!).filter((x) => !declared.has(x));
}

describe('dot products over a k axis of several factors', () => {
  /** [L, h·d] read as heads [L, d, h] merged back in the other order: k = (d, h), strides (1, d). */
  const permutedWidth = (c: Case, name: string, L: number, h: number, d: number): Tensor =>
    P.reshape(P.transpose(P.reshape(c.f32(name, [L, h * d]), [L, h, d]), [0, 2, 1]), [L, d * h]);

  it('walks A, B or both by nested loops, with remainders and unit digits, batched or not', () => {
    const c = new Case();
    const outs: Tensor[] = [];
    for (const [L, h, d, n] of [
      [3, 2, 4, 5],
      [1, 3, 5, 8],
      [4, 2, 1, 3],
      [2, 1, 6, 4],
      [5, 4, 3, 1],
      [2, 3, 9, 4],
    ] as const) {
      const a = permutedWidth(c, `a${L}${h}${d}${n}`, L, h, d);
      outs.push(P.matmul(a, c.f32(`w${L}${h}${d}${n}`, [h * d, n])));
      // B's k axis from weights stored [h, d, n] read as (d, h)
      const wb = P.reshape(P.transpose(c.f32(`v${L}${h}${d}${n}`, [h, d, n]), [1, 0, 2]), [d * h, n]);
      outs.push(P.matmul(c.f32(`x${L}${h}${d}${n}`, [L, d * h]), wb), P.matmul(a, wb));
    }
    // three factors: [L, a, b, e] read as k = (b, a, e)
    const x4 = c.f32('x4', [3, 2, 3, 5]);
    const k3 = P.reshape(P.transpose(x4, [0, 2, 1, 3]), [3, 30]);
    outs.push(P.matmul(k3, c.f32('w3', [30, 4])), P.unary('tanh', P.matmul(k3, c.f32('w3b', [30, 6]))));
    // batched: heads [B, h, L, d] merged per batch into [B, L, h·d]
    const hb = c.f32('hb', [2, 3, 4, 2]);
    const mb = P.reshape(P.transpose(hb, [0, 2, 1, 3]), [2, 4, 6]);
    outs.push(P.matmul(mb, c.f32('wb', [2, 6, 4])), P.matmul(mb, P.broadcastTo(c.f32('ws', [6, 3]), [2, 6, 3])));
    c.run(outs);
  });

  it('a k factor of stride 0 (a broadcast along part of k) adds nothing to that operand', () => {
    const c = new Case();
    const x = c.f32('x', [4, 3, 1]);
    const a = P.reshape(P.broadcastTo(x, [4, 3, 5]), [4, 15]);
    const b = P.reshape(P.broadcastTo(c.f32('y', [5, 1, 2]), [5, 3, 2]), [15, 2]);
    // both operands broadcast along the same inner factor: one digit where neither advances
    const b2 = P.reshape(P.broadcastTo(c.f32('y2', [3, 1, 2]), [3, 5, 2]), [15, 2]);
    // B's k axis with a unit-stride factor: the transpose of merged heads
    const bt = P.transpose(P.reshape(P.transpose(P.reshape(c.f32('h', [3, 12]), [3, 2, 6]), [0, 2, 1]), [3, 12]), [1, 0]);
    const outs = [P.matmul(a, c.f32('w', [15, 8])), P.matmul(c.f32('z', [2, 15]), b), P.matmul(a, b2), P.matmul(c.f32('z2', [2, 12]), bt)];
    c.run(outs);
    const compiled = c.compile(outs);
    for (const t of outs) {
      expect(writer(compiled, t).source).toMatch(/for \(let q/);
      expect(unfolded(writer(compiled, t).source)).toEqual([]);
    }
  });

  it('the walked loops read both operands in place, with A uniform along a launch row', () => {
    const c = new Case();
    const q = c.f32('q', [3, 12]);
    const a = P.reshape(P.transpose(P.reshape(q, [3, 2, 6]), [0, 2, 1]), [3, 12]);
    const w = c.f32('w', [12, 8]);
    const y = P.matmul(a, w);
    const compiled = c.compile([y]);
    const k = writer(compiled, y);
    expect(k.dims).toEqual([8, 3]);
    expect(k.source).toMatch(/for \(let q\d+ = 0; q\d+ < 6; q\d+\+\+\)/);
    expect(k.source).not.toContain('Math.floor');
    expect(laneVarying(k, `%${q.id}`)).toEqual([false, false]);
    expect(laneVarying(k, `%${w.id}`)).toEqual([true, true]);
    // the innermost digit (h = 2) is one unrolled trip of two reads, nothing left over
    expect(k.source.match(/acc\d+ \+=/g)).toHaveLength(2);
    expect(undeclared(k.source)).toEqual([]);
    expect(unfolded(k.source)).toEqual([]);
  });

  it('walked loops fold unit and zero strides and a zero origin, and unroll the innermost digit with a straight-line rest', () => {
    const c = new Case();
    // one row (origin 0); k = (d, h) = (6, 1)·… with a broadcast factor, and a digit of 5 (one trip of 4, one left)
    const q = c.f32('q', [1, 10]);
    const a = P.reshape(P.transpose(P.reshape(q, [1, 2, 5]), [0, 2, 1]), [1, 10]);
    const w = c.f32('w', [10, 4]);
    const y = P.matmul(a, w);
    const x = c.f32('x', [1, 3, 1]);
    const bc = P.reshape(P.broadcastTo(x, [1, 3, 5]), [1, 15]);
    const z = P.matmul(bc, c.f32('v', [15, 4]));
    c.run([y, z]);
    const compiled = c.compile([y, z]);
    for (const t of [y, z]) {
      const k = writer(compiled, t);
      expect(unfolded(k.source)).toEqual([]);
      expect(undeclared(k.source)).toEqual([]);
    }
    // y: digits (5, 1)·(2, 5): the outer loop of 5, the inner digit of 2 in one unrolled trip
    expect(writer(compiled, y).source).toMatch(/for \(let q\d+ = 0; q\d+ < 5; q\d+\+\+\)/);
    // z: digits (3)·(5): inner loop of 5 unrolled by 4, then one straight-line step
    const zs = writer(compiled, z).source;
    expect(zs).toMatch(/for \(let p\d+ = 0; p\d+ < 4; p\d+ \+= 4\)/);
    expect(zs.match(/acc\d+ \+=/g)).toHaveLength(5);
  });

  it('factorisations whose cuts do not nest fall back to one flat loop (same values)', () => {
    const c = new Case();
    // A: k = (3, 4) with strides (1, 3); B: k = (2, 6) with strides (6n, n)... cut at 4 vs 6 does not nest
    const a = P.reshape(P.transpose(P.reshape(c.f32('a', [2, 12]), [2, 4, 3]), [0, 2, 1]), [2, 12]);
    const b = P.reshape(P.transpose(P.reshape(c.f32('b', [12, 3]), [6, 2, 3]), [1, 0, 2]), [12, 3]);
    const y = P.matmul(a, b);
    c.run([y]);
    const k = writer(c.compile([y]), y);
    expect(k.source).not.toMatch(/for \(let q/);
    expect(k.source).toMatch(/for \(let p\d+ = 0; p\d+ < 12; p\d+ \+= 4\)/);
  });

  it('a fallback read whose base is held is declared before the loop, so the straight-line rest after it sees it (k % 4 ≠ 0)', () => {
    const c = new Case();
    // k = 15 on both sides from broadcasts: A's factors (3, 5) and B's (3, 5) with other strides; the cuts do not nest
    const a = P.reshape(P.broadcastTo(c.f32('x', [4, 3, 1]), [4, 3, 5]), [4, 15]);
    const b = P.reshape(P.broadcastTo(c.f32('y', [5, 1, 2]), [5, 3, 2]), [15, 2]);
    const y = P.matmul(a, b);
    // before the fix the held base was declared inside the first loop body: ReferenceError in the rest
    c.run([y]);
  });

  it('a concat along k with a multi-factor piece, and a computed operand, read by flat index', () => {
    const c = new Case();
    const a = P.concat([P.reshape(P.transpose(c.f32('h', [2, 3, 2]), [1, 0, 2]), [3, 4]), c.f32('t', [3, 3])], 1);
    const ix = c.i32('ix', [3, 7], 5);
    const computed = P.cast(ix, 'f32');
    const w = c.f32('w', [7, 4]);
    const y = P.matmul(a, w);
    const z = P.matmul(computed, w);
    const zt = P.matmul(P.transpose(w, [1, 0]), P.transpose(computed, [1, 0]));
    c.run([y, z, zt]);
    const compiled = c.compile([y, z, zt]);
    for (const t of [y, z, zt]) expect(undeclared(writer(compiled, t).source)).toEqual([]);
  });

  it('concats along k on both sides (rolled windows) are read in place, one loop per stretch between cuts', () => {
    const c = new Case();
    const x = c.f32('x', [2, 7]);
    const w = c.f32('w', [7, 4]);
    const a = P.concat([P.slice(x, [0, 3], [2, 4]), P.slice(x, [0, 0], [2, 3])], 1);
    const b = P.concat([P.slice(w, [5, 0], [2, 4]), P.slice(w, [0, 0], [5, 4])], 0);
    const y = P.matmul(a, b);
    c.run([y]);
    const k = writer(c.compile([y]), y);
    expect([...k.source.matchAll(/for \(let p\d+ = (\d+); p\d+ < (\d+);/g)].map((m) => [Number(m[1]), Number(m[2])])).toEqual([
      [0, 2],
      [2, 4],
      [4, 7],
    ]);
    expect(k.source).not.toContain('Math.floor');
    expect(k.params.slice(0, 2)).toEqual([`%${x.id}`, `%${w.id}`]);
  });

  it('a k axis broadcast whole, k shorter than the unroll, and k = 0: no zero stride, one trip, no loop', () => {
    const c = new Case();
    const y = P.matmul(P.broadcastTo(c.f32('a', [2, 1]), [2, 6]), c.f32('b', [6, 4]));
    const z = P.matmul(c.f32('p', [3, 3]), c.f32('q', [3, 4]));
    const empty = P.matmul(c.f32('e', [3, 0]), c.f32('f', [0, 4]));
    c.run([y, z, empty]);
    const compiled = c.compile([y, z, empty]);
    expect(unfolded(writer(compiled, y).source)).toEqual([]);
    expect(writer(compiled, y).source).toMatch(/for \(let p\d+ = 0; p\d+ < 4; p\d+ \+= 4\)/);
    // k = 3: one trip of three
    expect(writer(compiled, z).source).toMatch(/for \(let p\d+ = 0; p\d+ < 3; p\d+ \+= 3\)/);
    expect(unfolded(writer(compiled, z).source)).toEqual([]);
    expect(writer(compiled, z).source.match(/acc\d+ \+=/g)).toHaveLength(3);
    expect(writer(compiled, empty).source).not.toContain('for (');
  });

  it('a concat along k of views of one buffer, one piece of several factors: read by flat index', () => {
    const c = new Case();
    const x = c.f32('x', [3, 2, 3]);
    const a = P.concat([P.reshape(P.transpose(x, [0, 2, 1]), [3, 6]), P.reshape(x, [3, 6])], 1);
    const y = P.matmul(a, c.f32('w', [12, 4]));
    c.run([y]);
  });

  it('commonFactors: the common refinement of two factorisations, or undefined when cuts do not nest', () => {
    expect(commonFactors([{ size: 6, stride: 1 }], [{ size: 6, stride: 5 }])).toEqual([{ size: 6, sa: 1, sb: 5 }]);
    expect(commonFactors([{ size: 2, stride: 1 }, { size: 3, stride: 2 }], [{ size: 6, stride: 7 }])).toEqual([
      { size: 2, sa: 1, sb: 21 },
      { size: 3, sa: 2, sb: 7 },
    ]);
    expect(commonFactors([{ size: 3, stride: 10 }, { size: 2, stride: 0 }, { size: 4, stride: 1 }], [{ size: 6, stride: 4 }, { size: 4, stride: 100 }])).toEqual([
      { size: 3, sa: 10, sb: 8 },
      { size: 2, sa: 0, sb: 4 },
      { size: 4, sa: 1, sb: 100 },
    ]);
    expect(commonFactors([{ size: 3, stride: 4 }, { size: 4, stride: 1 }], [{ size: 2, stride: 6 }, { size: 6, stride: 1 }])).toBeUndefined();
    expect(commonFactors([{ size: 3, stride: 1 }], [{ size: 2, stride: 1 }])).toBeUndefined();
    // factorisations of different totals: one side is left over
    expect(commonFactors([{ size: 4, stride: 1 }], [{ size: 2, stride: 1 }])).toBeUndefined();
    expect(commonFactors([{ size: 2, stride: 1 }], [{ size: 2, stride: 9 }, { size: 2, stride: 1 }])).toBeUndefined();
    expect(commonFactors([], [])).toEqual([]);
    // cuts that do not nest, even where the totals agree
    expect(commonFactors([{ size: 2, stride: 3 }, { size: 3, stride: 1 }], [{ size: 3, stride: 2 }, { size: 2, stride: 1 }])).toBeUndefined();
  });
});

/** `[batch, m, k] · [batch, k, n]` with a tanh epilogue, for each shape. */
function products(c: Case, shapes: ReadonlyArray<readonly [number, number, number, number]>): Tensor[] {
  return shapes.map(([b, m, k, n]) => P.unary('tanh', P.matmul(c.f32(`a${b}_${m}_${k}_${n}`, [b, m, k]), c.f32(`w${b}_${m}_${k}_${n}`, [b, k, n]))));
}

describe('2-D launches of matmul groups', () => {
  const SHAPES = [
    [2, 3, 5, 8],
    [1, 3, 5, 8],
    [1, 1, 6, 4],
    [3, 1, 5, 4],
    [2, 4, 3, 12],
  ] as const;

  it('launch [n, rows] where n is a multiple of 4, with A read uniformly along a launch row', () => {
    const c = new Case();
    const outs = products(c, SHAPES);
    c.run(outs);
    const compiled = c.compile(outs);
    outs.forEach((t, i) => {
      const [b, m, , n] = SHAPES[i]!;
      const k = writer(compiled, t);
      expect(k.dims).toEqual([n, b * m]);
      const [a, w] = k.params;
      expect(laneVarying(k, a!).some((x) => x)).toBe(false);
      expect(laneVarying(k, w!).every((x) => x)).toBe(true);
      // the row and batch come from thread.y alone: the flat index is never taken apart
      expect(k.source).not.toMatch(/i_flat [/%]/);
      expect(k.source.includes(`Math.floor(this.thread.y / ${m})`)).toBe(b > 1 && m > 1);
      expect(k.source.includes(`this.thread.y % ${m}`)).toBe(b > 1 && m > 1);
      // one row: thread.y only builds the flat index
      if (b * m === 1) expect(k.source.match(/this\.thread\.y/g)).toHaveLength(1);
      expect(undeclared(k.source)).toEqual([]);
      expect(unfolded(k.source)).toEqual([]);
      // each unrolled offset is bound once and read by both operands
      expect(k.source).toMatch(/let (i\d+) = p\d+ \+ 1;[^]*\1 \* /);
    });
  });

  it('stay 1-D at other widths, with the grid off, and for other group kinds', () => {
    const c = new Case();
    const ragged = P.matmul(c.f32('a', [3, 5]), c.f32('w', [5, 6]));
    const one = P.matmul(c.f32('v', [4, 5]), c.f32('u', [5, 1]));
    const x = c.f32('x', [3, 8]);
    const ew = P.unary('exp', x);
    const red = P.reduce('sum', c.f32('r', [4, 8, 8]), 1);
    const square = P.matmul(c.f32('s', [4, 2]), c.f32('t', [2, 8]));
    const outs = [ragged, one, ew, red, square];
    c.run(outs);
    const on = c.compile(outs);
    expect([ragged, one, ew, red, square].map((t) => writer(on, t).dims)).toEqual([[18], [4], [24], [32], [8, 4]]);
    // an epilogue flattening the product to one axis launches 1-D, dot or packed
    const flat = P.reshape(P.unary('exp', P.matmul(c.f32('f', [3, 5]), c.f32('g', [5, 4]))), [12]);
    c.run([flat]);
    expect(writer(c.compile([flat]), flat).dims).toEqual([12]);
    expect(writer(c.compile([flat], { matmul: 'packed' }), flat).dims).toEqual([12]);
    expect(writer(c.compile([square], { matmul: 'packed' }), square).dims).toEqual([8, 4]);
    // no batch axis: no batch coordinate is taken from the flat index
    expect(writer(on, ragged).source).not.toContain('/ 18)');
    const off = c.compile(outs, { grid: false });
    expect(writer(off, square).dims).toEqual([32]);
    expect(writer(off, square).source).not.toContain('/ 32)');
    const k = writer(off, square);
    expect(laneVarying(k, k.params[0]!).every((v) => v)).toBe(true);
    expect(k.source).not.toContain('this.thread.y');
  });

  it('a matmul read at another index than the launch cell (a transposed epilogue) takes its own coordinates', () => {
    const c = new Case();
    const sq = P.matmul(c.f32('a', [8, 3]), c.f32('b', [3, 8]));
    const tr = P.transpose(P.unary('exp', sq), [1, 0]);
    const bt = P.transpose(P.matmul(c.f32('p', [2, 4, 3]), c.f32('q', [2, 3, 4])), [0, 2, 1]);
    c.run([tr, bt]);
    const compiled = c.compile([tr, bt]);
    expect(writer(compiled, tr).dims).toEqual([8, 8]);
    expect(writer(compiled, tr).source).toMatch(/Math\.floor\(i_flat \/ 8\)/);
  });

  it('wide mode keeps the flat index an inline i32 expression instead of a float local', () => {
    const c = new Case();
    const y = P.matmul(c.f32('a', [3, 5]), c.f32('w', [5, 8]));
    expect(writer(c.compile([y]), y).source).toContain('let i_flat = this.thread.y * 8 + this.thread.x;');
    const wide = writer(c.compile([y], { wide: true }), y);
    expect(wide.dims).toEqual([8, 3]);
    expect(wide.source).not.toContain('i_flat');
    expect(laneVarying(wide, wide.params[0]!).some((v) => v)).toBe(false);
    // the lane coordinate stays out of every (float) local: B is read at `thread.x·stride + …` inline
    expect(wide.source).not.toMatch(/let [ic]\d+ = .*this\.thread\.x/);
    const one = P.matmul(c.f32('r', [1, 6]), c.f32('s', [6, 4]));
    const wideOne = writer(c.compile([one], { wide: true }), one);
    expect(wideOne.source).not.toMatch(/let [ic]\d+ = .*this\.thread\.x/);
    expect(wideOne.source).toContain('b1[(this.thread.x * 1 + 4 * 4)]');
  });
});

describe('packed matmul groups', () => {
  /** Names of a compiled graph's kernels, by group. */
  const names = (c: CompiledGraph): string[] => c.kernels.map((k) => k.name);

  it('the wasm product reads a buffer, a reshape of one or one with its last two axes swapped itself; other views get a pack kernel', () => {
    const c = new Case();
    const x = c.f32('x', [2, 5, 6]);
    const w = c.f32('w', [2, 7, 6]);
    const plain = P.matmul(P.reshape(c.f32('flat', [60]), [2, 5, 6]), P.transpose(w, [0, 2, 1])); // [2, 5, 7]: no pack kernels
    const batchSwap = P.matmul(P.transpose(c.f32('xs', [5, 2, 6]), [1, 0, 2]), P.transpose(w, [0, 2, 1])); // A's batch and row axes swapped
    // batch axes swapped as well as the last two: not a plain transposed read either
    const bothSwapped = P.matmul(P.transpose(c.f32('x4', [2, 3, 5, 6]), [1, 0, 3, 2]), c.f32('w4', [3, 2, 5, 4]));
    // A with its last two axes swapped (xᵀ·dy) and B row-major: both read in place
    const aSwapped = P.matmul(P.transpose(c.f32('xt', [2, 3, 6, 5]), [0, 1, 3, 2]), c.f32('dy', [2, 3, 6, 7]));
    const outs = [plain, batchSwap, bothSwapped, aSwapped, P.matmul(P.unary('tanh', x), P.transpose(w, [0, 2, 1]))];
    c.run(outs, [{ matmul: 'wasm' }]);
    const compiled = c.compile(outs, { matmul: 'wasm' });
    const packs = (t: Tensor): string[] => {
      const group = writer(compiled, t).group;
      return compiled.kernels.filter((k) => k.group === group && k.name.includes('.pack')).map((k) => k.name.replace(/^.*\./, ''));
    };
    // B read transposed is packed (its octets would be strided loads); A reads rows or transposed rows itself
    expect(outs.slice(0, 4).map(packs)).toEqual([['packB'], ['packA', 'packB'], ['packA'], []]);
    const natives = outs.slice(0, 4).map((t) => compiled.kernels.find((k) => k.group === writer(compiled, t).group && k.native !== undefined)!.native!);
    expect(natives.map((nt) => [nt.a, nt.b])).toEqual([
      ['rows', 'packed'],
      ['packed', 'packed'],
      ['packed', 'rows'],
      ['transposed', 'rows'],
    ]);
  });

  it('which strategy packs a group: dot never, packed and wasm always, auto from PACKED_MATMUL_MIN_MACS on; never with the grid off', () => {
    const c = new Case();
    const y = P.matmul(c.f32('a', [3, 5]), c.f32('w', [5, 8]));
    expect(names(c.compile([y]))).toEqual(['k0_matmul']);
    expect(names(c.compile([y], { matmul: 'dot' }))).toEqual(['k0_matmul']);
    expect(names(c.compile([y], { matmul: 'auto' }))).toEqual(['k0_matmul']);
    expect(names(c.compile([y], { matmul: 'packed' }))).toEqual(['k0_matmul.packA', 'k0_matmul.packB', 'k0_matmul.product', 'k0_matmul']);
    expect(names(c.compile([y], { matmul: 'packed', grid: false }))).toEqual(['k0_matmul']);
    expect(names(c.compile([y], { matmul: 'packed', wide: true }))).toEqual(['k0_matmul']);
    // the wasm product reads both plain buffers itself
    expect(names(c.compile([y], { matmul: 'wasm' }))).toEqual(['k0_matmul.product', 'k0_matmul']);
    const product = c.compile([y], { matmul: 'packed' }).kernels[2]!;
    expect(product.components).toBe(4);
    expect(product.native).toBeUndefined();
    expect(c.compile([y], { matmul: 'wasm' }).kernels[0]!.native).toBeDefined();
    // an empty inner axis (a sum of nothing) stays a dot product: no product of k = 0 exists
    const empty = P.matmul(c.f32('e0', [4, 0]), c.f32('e1', [0, 8]));
    expect(c.compile([empty], { matmul: 'wasm' }).kernels.map((k) => [k.name, k.native])).toEqual([['k0_matmul', undefined]]);

    // 'auto' at exactly PACKED_MATMUL_MIN_MACS multiply-adds, and one row fewer
    const big = new Case();
    const [m, k, n] = [64, 32, PACKED_MATMUL_MIN_MACS / (64 * 32)];
    const at = P.matmul(big.g.input('a', [m, k]), big.g.input('b', [k, n]));
    const below = P.matmul(big.g.input('c', [m - 1, k]), big.g.input('d', [k, n]));
    const auto = big.compile([at, below], { matmul: 'auto' });
    // a bare product with m a multiple of 4 and n of 8 is written straight into the output
    expect(auto.kernels.filter((k) => k.native !== undefined).map((k) => k.output)).toEqual([`%${at.id}`]);
  });

  it('is not packed when a packed buffer would pass 2^24 floats, or when k, m or n is 0', () => {
    const c = new Case();
    // 4093 rows or columns pad to 4096 (4096 · 4096 = 2^24), while every tensor stays below 2^24 (no wide mode)
    const mm = (name: string, m: number, k: number, n: number): Tensor => P.matmul(c.g.input(`${name}a`, [m, k]), c.g.input(`${name}b`, [k, n]));
    const cases: Array<[Tensor, boolean]> = [
      [mm('fit', 4093, 4096, 4), true], // packed A exactly 2^24
      [mm('a', 4093, 4097, 4), false], // packed A past it
      [mm('b', 4, 4097, 4093), false], // packed B past it
      [mm('c', 4093, 1, 4097), false], // the product past it
      [mm('cfit', 4093, 1, 4093), true],
      [mm('wide', 4096, 4097, 4), false], // A itself past 2^24: a wide-mode group
      [mm('k0', 4, 0, 4), false],
      [mm('m0', 0, 3, 4), false],
      [mm('n0', 4, 3, 0), false],
    ];
    const packed = cases.map(([t]) => c.compile([t], { matmul: 'packed' }).kernels.some((k) => k.name.endsWith('.product')));
    expect(packed).toEqual(cases.map(([, p]) => p));
  });

  it('the epilogue launches [n, rows] where n is a multiple of 4 and reads the product uniformly but for its column', () => {
    const c = new Case();
    const shapes = [
      [2, 3, 5, 8],
      [1, 3, 5, 8],
      [1, 1, 21, 8],
      [3, 1, 5, 4],
      [1, 8, 3, 8],
      [2, 5, 17, 6],
    ] as const;
    const outs = products(c, shapes);
    c.run(outs, [{ matmul: 'packed' }, { matmul: 'wasm' }]);
    for (const engine of ['packed', 'wasm'] as const) {
      const compiled = c.compile(outs, { matmul: engine });
      outs.forEach((t, i) => {
        const [b, m, , n] = shapes[i]!;
        const k = writer(compiled, t);
        expect(k.dims).toEqual(n % 4 === 0 ? [n, b * m] : [b * m * n]);
        expect(k.params).toEqual([`${k.group}.product`]);
        expect(k.source.includes('i_flat')).toBe(n % 4 === 0);
        if (n % 4 !== 0) return;
        expect(k.source).not.toMatch(/i_flat [/%]/);
        expect(k.source.includes(`this.thread.y / ${m}`)).toBe(b > 1 && m > 1);
        expect(k.source.includes(`this.thread.y % ${m}`)).toBe(b > 1 && m > 1);
        if (b * m === 1) expect(k.source.match(/this\.thread\.y/g)).toHaveLength(1);
        // only the column term varies along a launch row
        expect(k.source.match(/this\.thread\.x/g)).toHaveLength(2);
      });
    }
  });

  it('a transposed square epilogue reads the product at its own coordinates', () => {
    const c = new Case();
    const sq = P.matmul(c.f32('a', [8, 3]), c.f32('b', [3, 8]));
    const tr = P.transpose(P.unary('exp', sq), [1, 0]);
    c.run([tr], [{ matmul: 'packed' }, { matmul: 'wasm' }]);
  });

  it('packs operands with a fused prologue, clamps ragged panels inside the operand, and keeps the epilogue reads of its own', () => {
    const c = new Case();
    // inputs made in an order where the epilogue visits a later buffer first
    const late = c.f32('late', [5, 6]);
    const early = c.f32('early', [5, 6]);
    const x = c.i32('x', [5, 7], 9);
    const w = c.f32('w', [7, 6]);
    const y = P.binary('add', P.binary('mul', P.matmul(P.cast(x, 'f32'), w), early), late);
    c.run([y], [{ matmul: 'packed' }, { matmul: 'wasm' }]);
    for (const engine of ['packed', 'wasm'] as const) {
      const compiled = c.compile([y], { matmul: engine });
      const epilogue = writer(compiled, y);
      expect(epilogue.params).toEqual([`%${late.id}`, `%${early.id}`, `${epilogue.group}.product`].sort((p, q) => (p.startsWith('%') && q.startsWith('%') ? Number(p.slice(1)) - Number(q.slice(1)) : p.startsWith('%') ? -1 : 1)));
      const packA = compiled.kernels.find((k) => k.name === `${epilogue.group}.packA`)!;
      expect(packA.params).toEqual([`%${x.id}`]);
      expect(packA.source).toContain('Math.min');
      expect(undeclared(packA.source)).toEqual([]);
      const packB = compiled.kernels.find((k) => k.name === `${epilogue.group}.packB`);
      expect(packB === undefined).toBe(engine === 'wasm');
    }
  });

  it('pack kernels lay operands out as panels of four rows (A) or of 4 / 8 columns (B), zero past the operand, reading only inside it', () => {
    for (const engine of ['packed', 'wasm'] as const) {
      const c = new Case();
      // casts fuse into the pack kernels, so even the wasm product gets both operands packed
      const a = c.i32('a', [2, 5, 3], 50, 7);
      const b = c.i32('b', [2, 3, 6], 50, 8);
      const y = P.matmul(P.cast(a, 'f32'), P.cast(b, 'f32'));
      const compiled = c.compile([y], { matmul: engine });
      const group = writer(compiled, y).group;
      const [A, B] = [c.feeds.a!.data, c.feeds.b!.data];
      const bufs = { [`%${a.id}`]: guarded(A as Int32Array), [`%${b.id}`]: guarded(B as Int32Array) };
      const run = (name: string): number[] => {
        const k = compiled.kernels.find((x) => x.name === `${group}.${name}`)!;
        const fn = new Function(`return ${k.source}`)() as (...args: unknown[]) => number;
        const args = k.params.map((p) => bufs[p]);
        return Array.from({ length: k.size }, (_, x) => fn.apply({ thread: { x, y: 0, z: 0 } }, args));
      };
      const width = engine === 'wasm' ? 8 : 4;
      const expectA: number[] = [];
      for (let z = 0; z < 2; z++) for (let q = 0; q < 2; q++) for (let kk = 0; kk < 3; kk++) for (let r = 0; r < 4; r++) expectA.push(4 * q + r < 5 ? A[z * 15 + (4 * q + r) * 3 + kk]! : 0);
      const expectB: number[] = [];
      for (let z = 0; z < 2; z++) for (let p = 0; p < 8 / width; p++) for (let kk = 0; kk < 3; kk++) for (let j = 0; j < width; j++) expectB.push(width * p + j < 6 ? B[z * 18 + kk * 6 + width * p + j]! : 0);
      expect(run('packA')).toEqual(expectA);
      expect(run('packB')).toEqual(expectB);
      // operands of whole panels are read without clamp or select
      const d = new Case();
      const z = P.matmul(P.cast(d.i32('a', [4, 3], 5), 'f32'), P.cast(d.i32('b', [3, 8], 5), 'f32'));
      for (const k of d.compile([z], { matmul: engine }).kernels.filter((x) => x.name.includes('.pack'))) expect(k.source).not.toMatch(/Math\.min|\?/);
    }
  });

  it('a bare wasm product with m a multiple of 4 and n of 8 writes the output itself; otherwise an epilogue copies it', () => {
    const c = new Case();
    const direct = P.matmul(c.f32('a', [8, 3]), c.f32('b', [3, 16]));
    const padded = P.matmul(c.f32('p', [6, 3]), c.f32('q', [3, 16]));
    const narrow = P.matmul(c.f32('r', [8, 3]), c.f32('s', [3, 12]));
    c.run([direct, padded, narrow], [{ matmul: 'wasm' }]);
    const compiled = c.compile([direct, padded, narrow], { matmul: 'wasm' });
    const d = writer(compiled, direct);
    expect(d.native).toEqual({ batch: 1, m: 8, mPad: 8, k: 3, n: 16, nPad: 16, a: 'rows', b: 'rows' });
    expect(d.dims).toEqual([128]);
    expect(d.size).toBe(128);
    expect(productShapeOf(d.source)).toEqual(d.native);
    expect(compiled.kernels.filter((k) => k.group === d.group)).toHaveLength(1);
    for (const [t, mPad, nPad] of [
      [padded, 8, 16],
      [narrow, 8, 16],
    ] as const) {
      const group = compiled.kernels.filter((k) => k.group === writer(compiled, t).group);
      expect(group.map((k) => k.name.slice(k.group.length))).toEqual(['.product', '']);
      expect(group[0]!.size).toBe(mPad * nPad);
      expect(compiled.buffers.get(group[0]!.output)!.size).toBe(mPad * nPad);
    }
  });

  it('the Array(4) product unrolls k by PACKED_UNROLL with a straight-line remainder; batch 1 never reads thread.z', () => {
    const mm = (b: number, m: number, k: number, n: number) => {
      const g = new Graph();
      const t = P.matmul(g.input('a', [b, m, k]), g.input('b', [b, k, n])).node;
      if (t.op !== 'matmul') throw new Error('not a matmul');
      return packedGeometry(t, [b, m, k], 'gpujs');
    };
    const g21 = mm(1, 5, 21, 6);
    const src = packedProductSource(g21);
    expect(src).toContain(`for (let kk = 0; kk < ${PACKED_UNROLL}; kk += ${PACKED_UNROLL}) {`);
    expect(src.match(/s0 \+=/g)).toHaveLength(21);
    expect(src).toContain('const bt4 = b[(bq | 0) + 80];');
    expect(src).not.toContain('thread.z');
    expect(src).not.toMatch(/\+ 0\]/);
    expect(src.split('\n')[0]).toBe('function (a, b) {');
    expect(packedProductSource(mm(2, 5, 21, 6))).toContain('(this.thread.z * 2 + this.thread.y) * 84');
    expect(packedProductSource(mm(2, 5, 3, 6))).toContain('this.thread.z * 2 + (this.thread.x >> 2)');
    expect(packedProductSource(g21, 4)).toContain('for (let kk = 0; kk < 20; kk += 4) {');
  });
});

describe('scatter grids, sort passes and wide indices', () => {
  it('a scatterAdd of whole rows by a broadcast index launches [inner, outer·lenOut] where inner is a multiple of 4', () => {
    const c = new Case();
    const rows = (name: string, outer: number[], len: number, inner: number, lenOut: number, index: 'rows' | 'shared' | 'full' = 'rows'): Tensor => {
      const shape = [...outer, len, inner];
      const u = c.f32(`u${name}`, shape);
      const ix =
        index === 'rows'
          ? P.broadcastTo(c.i32(`p${name}`, [...outer, len, 1], lenOut), shape)
          : index === 'shared'
            ? P.broadcastTo(c.i32(`p${name}`, [len, 1], lenOut), shape)
            : c.i32(`p${name}`, shape, lenOut);
      return P.scatterAdd(u, ix, outer.length, lenOut);
    };
    const cases: Array<[Tensor, number[]]> = [
      [rows('a', [3], 6, 8, 5), [8, 15]],
      [rows('b', [], 6, 8, 5), [8, 5]],
      [rows('c', [2, 3], 5, 4, 1), [4, 6]],
      [rows('d', [3], 6, 8, 4, 'shared'), [8, 12]],
      [rows('e', [3], 6, 6, 5), [90]],
      [rows('f', [3], 6, 8, 5, 'full'), [120]],
      [rows('g', [2], DIRECT_SCATTER_MAX_LEN + 3, 8, 5), [8, 10]],
      [rows('h', [], DIRECT_SCATTER_MAX_LEN + 3, 4, 3, 'full'), [4, 3]],
      [rows('i', [2], DIRECT_SCATTER_MAX_LEN + 3, 6, 5), [60]],
      [rows('j', [2], DIRECT_SCATTER_MAX_LEN + 3, 1, 5, 'full'), [10]],
      // one outer row kept as an axis of 1
      [rows('k', [1], 6, 8, 5), [8, 5]],
      [rows('l', [1], DIRECT_SCATTER_MAX_LEN + 3, 4, 3), [4, 3]],
      // an index of lower rank than the updates, varying along an outer axis
      [P.scatterAdd(c.f32('um', [2, 3, 6, 8]), P.broadcastTo(c.i32('pm', [3, 6, 1], 5), [2, 3, 6, 8]), 2, 5), [8, 30]],
      [P.scatterAdd(c.f32('un', [2, 3, 35, 4]), P.broadcastTo(c.i32('pn', [3, 35, 1], 5), [2, 3, 35, 4]), 2, 5), [4, 30]],
    ];
    // a broadcast index constant along the scatter axis as well: every update of a row hits one target
    cases.push([P.scatterAdd(c.f32('uo', [2, 35, 8]), P.broadcastTo(c.i32('po', [2, 1, 1], 5), [2, 35, 8]), 1, 5), [8, 10]]);
    // exactly DIRECT_SCATTER_MAX_LEN updates per row: the direct loop, one kernel
    const direct = P.scatterAdd(c.f32('udirect', [2, DIRECT_SCATTER_MAX_LEN, 4]), c.i32('pdirect', [2, DIRECT_SCATTER_MAX_LEN, 4], 3), 1, 3);
    cases.push([direct, [24]]);
    // a broadcast index that is a buffer itself (also an output) is read as it is
    const kept = P.broadcastTo(c.i32('pkept', [3, 6, 1], 5), [3, 6, 8]);
    cases.push([P.scatterAdd(c.f32('ukept', [3, 6, 8]), kept, 1, 5), [120]]);
    // a lower-rank index varying after the scatter axis
    const sharedAcross = P.scatterAdd(c.f32('us', [3, 4, 8]), P.broadcastTo(c.i32('ps', [4, 8], 4), [3, 4, 8]), 1, 4);
    cases.push([sharedAcross, [96]]);
    // an index varying after the scatter axis is not constant along the launch row
    const across = P.scatterAdd(c.f32('ux', [3, 4, 8]), P.broadcastTo(c.i32('px', [3, 1, 8], 4), [3, 4, 8]), 1, 4);
    cases.push([across, [96]]);
    const outs = [...cases.map(([t]) => t), kept];
    c.run(outs, [{}, { grid: false }, { wide: true }]);
    const on = c.compile(outs);
    expect(cases.map(([t]) => writer(on, t).dims)).toEqual(cases.map(([, d]) => d));
    const off = c.compile(outs, { grid: false });
    expect(cases.map(([t]) => writer(off, t).dims)).toEqual(cases.map(([t]) => [t.shape.reduce((a, b) => a * b, 1)]));
    for (const k of [...on.kernels, ...off.kernels]) expect(undeclared(k.source)).toEqual([]);
    // one row of outputs (outer 1): the target is thread.y itself, no division
    expect(writer(on, cases[1]![0]).source).not.toContain('Math.floor(this.thread.y');
    expect(writer(on, cases[0]![0]).source).toContain('Math.floor(this.thread.y / 5)');
    expect(writer(on, cases[7]![0]).source).not.toContain('Math.floor(this.thread.y');
    expect(writer(on, cases[6]![0]).source).toContain('Math.floor(this.thread.y / 5)');
    for (const i of [1, 7, 10, 11]) expect(writer(on, cases[i]![0]).source).not.toMatch(/Math\.floor\(this\.thread\.y|this\.thread\.y %/);
    // a sorted scatter by a broadcast index sorts the small index only: passes over [outer', len], not [outer, len, inner]
    const sorted = (t: Tensor) => on.kernels.filter((k) => k.group === writer(on, t).group);
    const g = sorted(cases[6]![0]);
    expect(g.map((k) => k.name.slice(k.group.length))).toEqual(['.pass0', '.pass1', '.pass2', '.pass3', '.pass4', '.pass5', '.starts', '']);
    expect(g.map((k) => k.output.slice(k.group.length))).toEqual(['.pass0', '.pass1', '.pass2', '.pass3', '.pass4', '.order', '.starts', '']);
    expect(g.map((k) => k.size)).toEqual([70, 70, 70, 70, 70, 70, 12, 80]);
    expect(sorted(cases[13]![0]).map((k) => k.size)).toEqual([105, 105, 105, 105, 105, 105, 18, 120]);
    expect(sorted(cases[7]![0]).map((k) => k.size)).toEqual([140, 140, 140, 140, 140, 140, 16, 12]);
  });

  it('a scatterAdd with no updates along its axis sums nothing', () => {
    const c = new Case();
    const y = P.scatterAdd(c.f32('u', [3, 0, 8]), P.broadcastTo(c.i32('p', [3, 0, 1], 4), [3, 0, 8]), 1, 4);
    const z = P.scatterAdd(c.f32('v', [0, 5]), c.i32('q', [0, 5], 2), 0, 2);
    c.run([y, z], [{}, { grid: false }]);
    for (const t of [y, z]) expect(writer(c.compile([y, z]), t).source).not.toContain('for (');
  });

  it('merge sorts take ⌈log₂ len⌉ passes, the last one writing the output, and read keys only inside their rows', () => {
    for (const len of [RANK_SORT_MAX_LEN + 1, 64, 70]) {
      const c = new Case();
      const k = c.i32('k', [3, len, 2], 11);
      const s = P.argsort(k, 1);
      c.run([s], [{}, { wide: true }]);
      const kernels = c.compile([s]).kernels;
      const passes = Math.ceil(Math.log2(len));
      expect(kernels.map((x) => x.name)).toEqual(Array.from({ length: passes }, (_, i) => `${kernels[0]!.group}.pass${i}`));
      expect(kernels.map((x) => x.output)).toEqual([...kernels.slice(0, -1).map((x) => x.name), `%${s.id}`]);
      for (const x of kernels) expect(undeclared(x.source)).toEqual([]);
    }
  });

  it('rank sorts of short rows: a rank kernel and a select kernel, rows of one included', () => {
    const c = new Case();
    const outs = [1, 5, RANK_SORT_MAX_LEN].map((len) => P.argsort(c.i32(`k${len}`, [2, len, 3], 5, len), 1));
    c.run(outs, [{}, { wide: true }]);
    const compiled = c.compile(outs);
    for (const t of outs) {
      const group = compiled.kernels.filter((k) => k.group === writer(compiled, t).group);
      expect(group.map((k) => k.name.slice(k.group.length))).toEqual(['.rank', '.select']);
      expect(group.map((k) => k.output)).toEqual([`${group[0]!.group}.rank`, `%${t.id}`]);
      for (const k of group) expect(undeclared(k.source)).toEqual([]);
    }
  });

  it('reductions: argmax alone keeps a best position; an axis of one needs no loop; the last axis steps by 1', () => {
    const c = new Case();
    const x = c.f32('x', [3, 1, 5]);
    const sum = P.reduce('sum', x, 2);
    const one = P.reduce('max', x, 1);
    const arg = P.argmax(x, 2);
    c.run([sum, one, arg], [{}, { wide: true }]);
    const compiled = c.compile([sum, one, arg]);
    expect(writer(compiled, sum).source).not.toContain('best');
    expect(writer(compiled, arg).source).toContain('best');
    expect(writer(compiled, one).source).not.toContain('for (');
    for (const t of [sum, arg]) expect(unfolded(writer(compiled, t).source)).toEqual([]);
    const scat = P.scatterAdd(c.f32('u', [2, 5]), c.i32('i', [2, 5], 3), 1, 3);
    expect(unfolded(writer(c.compile([scat]), scat).source)).toEqual([]);
  });

  it('a row of one sorts without taking the thread index apart', () => {
    const c = new Case();
    const s = P.argsort(c.i32('k', [2, 1, 3], 4), 1);
    c.run([s], [{}]);
    for (const k of c.compile([s]).kernels) expect(k.source).not.toContain('Math.floor');
  });

  it('wide mode holds a reused base in one float local only up to its exact limit (16 under `wide: true`)', () => {
    /** For each kernel compiled from `make` with wide indices, whether it splits a base as hi·4096 + lo. */
    const splits = (make: (c: Case) => Tensor, options: CompileOptions = {}): boolean[] => {
      const c = new Case();
      return c.compile([make(c)], { wide: true, ...options }).kernels.map((k) => k.source.includes('4096'));
    };
    expect(splits((c) => P.reduce('sum', c.f32('x', [2, 4, 2]), 1))).toEqual([false]);
    expect(splits((c) => P.reduce('sum', c.f32('x', [4, 5, 2]), 1))).toEqual([true]);
    expect(splits((c) => P.scatterAdd(c.f32('u', [2, 3, 2]), c.i32('i', [2, 3, 2], 5), 1, 5))).toEqual([false]);
    expect(splits((c) => P.scatterAdd(c.f32('u', [3, 3, 2]), c.i32('i', [3, 3, 2], 2), 1, 2))).toEqual([true]);
    expect(splits((c) => P.argsort(c.i32('k', [1, 3, 4], 3), 1))).toEqual([false, false]);
    expect(splits((c) => P.argsort(c.i32('k', [1, 5, 4], 3), 1))).toEqual([true, true]);
    expect(splits((c) => P.argsort(c.i32('k', [1, RANK_SORT_MAX_LEN + 1, 4], 3), 1))).toEqual([true, true, true, true, true, true]);
    const scatter = (c: Case) => P.scatterAdd(c.f32('u', [1, DIRECT_SCATTER_MAX_LEN + 1, 4]), c.i32('i', [1, DIRECT_SCATTER_MAX_LEN + 1, 4], 3), 1, 3);
    expect(splits(scatter, { grid: false })).toEqual([true, true, true, true, true, true, true, true]);
    // and how many: in the sorted scatter's last kernel both held bases (the key row, the updates' base) are split
    const c8 = new Case();
    const counts = c8.compile([scatter(c8)], { wide: true, grid: false }).kernels.map((k) => (k.source.match(/4096/g) ?? []).length);
    expect(counts).toEqual([8, 12, 12, 12, 12, 12, 6, 10]);
    expect(splits((c) => P.matmul(c.f32('a', [3, 5]), c.f32('b', [5, 4])))).toEqual([false]);
    expect(splits((c) => P.matmul(c.f32('a', [4, 5]), c.f32('b', [5, 4])))).toEqual([true]);
    expect(splits((c) => P.matmul(P.cast(c.i32('a', [3, 5], 4), 'f32'), c.f32('b', [5, 4])))).toEqual([false]);
    expect(splits((c) => P.matmul(P.cast(c.i32('a', [4, 5], 4), 'f32'), c.f32('b', [5, 4])))).toEqual([true]);
  });

  it('kernels touching more than 2^24 elements index in exact i32; exactly 2^24 stays float', () => {
    const c = new Case();
    const big = c.g.input('big', [2, 2 ** 23 + 1]);
    const edge = c.g.input('edge', [2, 2 ** 23]);
    const sumBig = P.reduce('sum', big, 1);
    const sumEdge = P.reduce('sum', edge, 1);
    const compiled = c.compile([sumBig, sumEdge]);
    expect(writer(compiled, sumBig).source).toContain('| 0');
    expect(writer(compiled, sumEdge).source).not.toContain('| 0');
    // forced wide mode, as the tests use it
    const small = new Case();
    const y = P.reduce('sum', small.f32('x', [3, 5]), 1);
    expect(writer(small.compile([y]), y).source).not.toContain('| 0');
    expect(writer(small.compile([y], { wide: true }), y).source).toContain('| 0');
  });
});
