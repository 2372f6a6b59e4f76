/**
 * What the emitted kernels are, beyond the values a double-precision host run sees
 * (codegen-host.test.ts): index arithmetic as gpu.js types it (float locals and `/`, `%`, Math
 * results; integer literals, thread coordinates and `+ - * |` of integers in i32), replayed by a
 * small interpreter of the printed source that rounds float index values to a short significand;
 * reads that stay inside their buffers; a value used twice computed once; the wide mode's index
 * expressions; the checks and messages of compile(). No gpu.js.
 */
import { describe, expect, it } from 'vitest';
import { compile, CompileError, type CompileOptions } from '../../compiler/codegen/compile.ts';
import { indexing, KernelWriter } from '../../compiler/codegen/emit.ts';
import { binary, float, int, isInt, isZero, local, neg, paren, printExpr, printKernel } from '../../compiler/codegen/kernel-ir.ts';
import { StatementWriter } from '../../compiler/codegen/statements.ts';
import { planKernels } from '../../compiler/fuse/plan.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { NodeId } from '../../compiler/ir/types.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { expectClose } from '../support/numeric.ts';
import { values } from './support.ts';

// ---------------------------------------------------------------------------------------------
// A typed interpreter of kernel sources (the subset printKernel writes).

type Ex =
  | { readonly k: 'num'; readonly v: number; readonly int: boolean }
  | { readonly k: 'name'; readonly name: string }
  | { readonly k: 'load'; readonly buf: string; readonly index: Ex }
  | { readonly k: 'bin'; readonly op: string; readonly a: Ex; readonly b: Ex }
  | { readonly k: 'neg'; readonly x: Ex }
  | { readonly k: 'call'; readonly fn: string; readonly args: readonly Ex[] }
  | { readonly k: 'cond'; readonly c: Ex; readonly a: Ex; readonly b: Ex };

type St =
  | { readonly k: 'let' | '=' | '+='; readonly name: string; readonly value: Ex }
  | { readonly k: 'for'; readonly v: string; readonly from: number; readonly to: number; readonly step: number; readonly body: readonly St[] }
  | { readonly k: 'if'; readonly c: Ex; readonly then: readonly St[]; readonly else: readonly St[] }
  | { readonly k: 'break' };

interface Fn {
  readonly params: readonly string[];
  readonly body: readonly St[];
  readonly result: Ex;
}

const BINARY: Record<string, number> = { '||': 3, '&&': 4, '|': 5, '===': 8, '!==': 8, '<': 9, '<=': 9, '>': 9, '>=': 9, '+': 11, '-': 11, '*': 12, '/': 12, '%': 12 };

function parseKernel(src: string): Fn {
  const toks = src.match(/\d+\.\d*(?:e[+-]?\d+)?|\d+e[+-]?\d+|\d+|[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*|===|!==|<=|>=|&&|\|\||\+\+|\+=|[-+*/%|<>()[\]{},;?:=]/g) ?? [];
  let at = 0;
  const peek = (): string | undefined => toks[at];
  const next = (): string => {
    const t = toks[at++];
    if (t === undefined) throw new Error('kernel source ended early');
    return t;
  };
  const want = (t: string): void => {
    const got = next();
    if (got !== t) throw new Error(`kernel source: expected ${t}, got ${got} (token ${at})`);
  };
  const atom = (): Ex => {
    const t = next();
    if (t === '(') {
      const e = expr(0);
      want(')');
      return e;
    }
    if (t === '-') return { k: 'neg', x: expr(14) };
    if (/^\d/.test(t)) return { k: 'num', v: Number(t), int: /^\d+$/.test(t) };
    if (t.startsWith('Math.')) {
      want('(');
      const args: Ex[] = [expr(0)];
      while (peek() === ',') (next(), args.push(expr(0)));
      want(')');
      return { k: 'call', fn: t.slice(5), args };
    }
    if (peek() === '[') {
      next();
      const index = expr(0);
      want(']');
      return { k: 'load', buf: t, index };
    }
    return { k: 'name', name: t };
  };
  const expr = (min: number): Ex => {
    let left = atom();
    for (;;) {
      const t = peek();
      if (t === '?' && min <= 2) {
        next();
        const a = expr(2);
        want(':');
        left = { k: 'cond', c: left, a, b: expr(2) };
        continue;
      }
      const p = t === undefined ? undefined : BINARY[t];
      if (p === undefined || p < min) return left;
      next();
      left = { k: 'bin', op: t!, a: left, b: expr(p + 1) };
    }
  };
  const block = (): St[] => {
    want('{');
    const out: St[] = [];
    while (peek() !== '}' && peek() !== 'return') out.push(stmt());
    if (peek() === '}') next();
    return out;
  };
  const stmt = (): St => {
    const t = next();
    if (t === 'let') {
      const name = next();
      want('=');
      const value = expr(0);
      want(';');
      return { k: 'let', name, value };
    }
    if (t === 'for') {
      want('(');
      want('let');
      const v = next();
      want('=');
      const from = Number(next());
      want(';');
      want(v);
      want('<');
      const to = Number(next());
      want(';');
      want(v);
      let step = 1;
      if (next() === '+=') step = Number(next());
      want(')');
      return { k: 'for', v, from, to, step, body: block() };
    }
    if (t === 'if') {
      want('(');
      const c = expr(0);
      want(')');
      const then = block();
      if (peek() !== 'else') return { k: 'if', c, then, else: [] };
      next();
      return { k: 'if', c, then, else: peek() === 'if' ? [stmt()] : block() };
    }
    if (t === 'break') {
      want(';');
      return { k: 'break' };
    }
    const op = next();
    if (op !== '=' && op !== '+=') throw new Error(`kernel source: unexpected ${t} ${op}`);
    const value = expr(0);
    want(';');
    return { k: op, name: t, value };
  };
  want('function');
  want('(');
  const params: string[] = [];
  while (peek() !== ')') {
    params.push(next());
    if (peek() === ',') next();
  }
  want(')');
  const body = block();
  want('return');
  const result = expr(0);
  want(';');
  want('}');
  return { params, body, result };
}

/** A translated expression: JavaScript text, and whether gpu.js types it Integer and it is data (not an index). */
interface Typed {
  readonly js: string;
  readonly int: boolean;
  readonly data: boolean;
}

/**
 * Translates a parsed kernel to JavaScript that replays gpu.js's typing: Integer values (integer
 * literals, thread coordinates, `+ - *` of integers, `|`) stay exact i32; a float result, an
 * integer converted to float, and every local are rounded by `R` when they are index values; data
 * (read from a buffer, float literals and what is computed from them) stays exact, so results
 * compare with the float64 reference. Reads go through `L`, which checks the index.
 */
function translate(fn: Fn, scalars: number): (R: (v: number) => number, L: (b: ArrayLike<number>, i: number) => number, x: number, y: number, z: number, ...args: unknown[]) => number {
  const locals = new Map<string, boolean>();
  const asFloat = (t: Typed): string => (t.data || !t.int ? t.js : `$R(${t.js})`);
  const float = (js: string, data: boolean): Typed => ({ js: data ? js : `$R(${js})`, int: false, data });
  const ex = (e: Ex): Typed => {
    switch (e.k) {
      case 'num':
        return { js: String(e.v), int: e.int, data: !e.int };
      case 'name':
        if (e.name.startsWith('this.thread.')) return { js: `$t${e.name.slice(12)}`, int: true, data: false };
        // locals and scalar arguments are Float in gpu.js
        return { js: e.name, int: false, data: locals.get(e.name) ?? false };
      case 'load':
        return { js: `$L(${e.buf}, ${ex(e.index).js})`, int: false, data: true };
      case 'neg': {
        const x = ex(e.x);
        return { ...x, js: `(-${x.js})` };
      }
      case 'cond': {
        const [c, a, b] = [ex(e.c), ex(e.a), ex(e.b)];
        const int = a.int && b.int;
        const data = a.data || b.data;
        return { js: `(${c.js} ? ${int ? a.js : asFloat(a)} : ${int ? b.js : asFloat(b)})`, int, data };
      }
      case 'call': {
        const xs = e.args.map(ex);
        const data = xs.some((x) => x.data);
        return float(`Math.${e.fn}(${xs.map(asFloat).join(', ')})`, data);
      }
      case 'bin': {
        const [a, b] = [ex(e.a), ex(e.b)];
        const data = a.data || b.data;
        if (e.op === '|') return { js: `(${a.js} | ${b.js})`, int: true, data };
        if (e.op === '&&' || e.op === '||') return { js: `(${a.js} ${e.op} ${b.js})`, int: true, data: false };
        if (BINARY[e.op]! <= 9) return { js: `(${asFloat(a)} ${e.op} ${asFloat(b)})`, int: true, data: false };
        if (e.op === '*' && a.int && b.int) return { js: `Math.imul(${a.js}, ${b.js})`, int: true, data };
        if ((e.op === '+' || e.op === '-') && a.int && b.int) return { js: `((${a.js} ${e.op} ${b.js}) | 0)`, int: true, data };
        return float(`(${asFloat(a)} ${e.op} ${asFloat(b)})`, data);
      }
    }
  };
  const st = (s: St): string => {
    switch (s.k) {
      case 'let':
      case '=': {
        const v = ex(s.value);
        if (s.k === 'let' || !locals.has(s.name)) locals.set(s.name, v.data);
        const data = locals.get(s.name)!;
        return `${s.k === 'let' ? 'let ' : ''}${s.name} = ${data ? asFloat(v) : `$R(${v.js})`};`;
      }
      case '+=': {
        const v = ex(s.value);
        const data = locals.get(s.name)! || v.data;
        return `${s.name} = ${data ? `${s.name} + ${asFloat(v)}` : `$R(${s.name} + ${asFloat(v)})`};`;
      }
      case 'for':
        locals.set(s.v, false);
        return `for (let ${s.v} = ${s.from}; ${s.v} < ${s.to}; ${s.v} += ${s.step}) {\n${s.body.map(st).join('\n')}\n}`;
      case 'if':
        return `if (${ex(s.c).js}) {\n${s.then.map(st).join('\n')}\n} else {\n${s.else.map(st).join('\n')}\n}`;
      case 'break':
        return 'break;';
    }
  };
  const body = fn.body.map(st).join('\n');
  const result = ex(fn.result);
  const params = fn.params.slice(0, fn.params.length - scalars);
  const scalarNames = fn.params.slice(fn.params.length - scalars);
  const js = `return function ($R, $L, $tx, $ty, $tz, ${[...params, ...scalarNames].join(', ')}) {\n${body}\nreturn ${asFloat(result)};\n}`;
  return new Function(js)() as ReturnType<typeof translate>;
}

/** Rounds to a significand of `bits` bits (float32 has 24): integers are exact up to 2^bits. */
function rounding(bits: number): (v: number) => number {
  const exact = 2 ** bits;
  return (v) => {
    if ((Number.isInteger(v) && Math.abs(v) <= exact) || !Number.isFinite(v)) return v;
    let e = Math.floor(Math.log2(Math.abs(v)));
    while (2 ** e > Math.abs(v)) e--;
    while (2 ** (e + 1) <= Math.abs(v)) e++;
    const ulp = 2 ** (e - bits + 1);
    const q = v / ulp;
    const f = Math.floor(q);
    return (q - f > 0.5 || (q - f === 0.5 && f % 2 !== 0) ? f + 1 : f) * ulp;
  };
}

/** A read that must be an integer inside its buffer. */
function checkedLoad(b: ArrayLike<number>, i: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= b.length) throw new Error(`kernel reads element ${i} of a buffer of ${b.length}`);
  return b[i]!;
}

/**
 * Compiles `wanted` and runs every kernel through the interpreter above, with float index values
 * rounded to `bits` bits; returns the wanted outputs. Kernels returning `Array(4)` are not
 * interpreted (compile with the default one dot product per thread).
 */
function emulate(graph: Graph, feeds: Record<string, HostTensor>, wanted: readonly NodeId[], options: CompileOptions, bits: number): Float64Array[] {
  const c = compile(graph, wanted, options);
  const bufs = new Map<string, ArrayLike<number>>();
  for (const [id, source] of c.plan.buffers) {
    if (source === 'kernel') continue;
    const n = graph.node(id);
    bufs.set(`%${id}`, n.op === 'input' ? feeds[n.name]!.data : evaluate(graph, feeds, [id])[0]!.data);
  }
  for (const k of c.kernels) {
    if (k.components !== 1 || k.native !== undefined) throw new Error(`${k.name}: only one value per thread is interpreted`);
    const fn = parseKernel(k.source);
    const run = translate(fn, k.scalars?.length ?? 0);
    const args = [...k.params.map((p) => bufs.get(p)!), ...(k.scalars ?? [])];
    const R = rounding(bits);
    const out = new Float64Array(k.size);
    const [cols, rows = 1] = k.dims;
    for (let f = 0; f < k.size; f++) out[f] = run(R, checkedLoad, f % cols!, Math.floor(f / cols!) % rows, Math.floor(f / (cols! * rows)), ...args);
    bufs.set(k.output, out);
  }
  return wanted.map((id) => Float64Array.from(bufs.get(`%${id}`)!));
}

type Feeds = Record<string, HostTensor>;

function setup(): { g: Graph; feeds: Feeds; f32: (name: string, shape: number[], seed: number) => Tensor; i32: (name: string, shape: number[], seed: number, range: number) => Tensor } {
  const g = new Graph();
  const feeds: Feeds = {};
  const f32 = (name: string, shape: number[], seed: number) => {
    feeds[name] = hostTensor(shape, values(shape.reduce((a, b) => a * b, 1), seed));
    return g.input(name, shape);
  };
  const i32 = (name: string, shape: number[], seed: number, range: number) => {
    let s = seed;
    feeds[name] = hostTensor(
      shape,
      Int32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
        s = (Math.imul(s, 1103515245) + 12345) | 0;
        return ((s >>> 8) & 0xffff) % range;
      }),
      'i32',
    );
    return g.input(name, shape, 'i32');
  };
  return { g, feeds, f32, i32 };
}

/** Emulated outputs against the reference: throws on the first output that differs. */
function expectEmulated(g: Graph, feeds: Feeds, options: CompileOptions, bits: number): void {
  const ref = evaluate(g, feeds, g.outputs);
  emulate(g, feeds, g.outputs, options, bits).forEach((got, i) => expectClose(got, ref[i]!.data, 1e-9, 1e-9, `${JSON.stringify(options)} output ${i} (%${g.outputs[i]})`));
}

/** Float index values exact only up to 2^12 here: the graphs below index past it. */
const BITS = 12;

describe('wide mode keeps every index exact where float locals would round', () => {
  it('the interpreter sees float rounding: float-index kernels past 2^12 elements go wrong, wide ones do not', () => {
    const { g, feeds, f32 } = setup();
    const x = f32('x', [5, 30, 40], 1);
    // after the outer coordinate (stride 4200), the rest is still past 2^12
    const long = f32('long', [2100, 2, 2], 17);
    g.outputs = [P.unary('exp', P.transpose(x, [2, 0, 1])).id, P.unary('exp', P.transpose(long, [1, 2, 0])).id];
    expectEmulated(g, feeds, { wide: true }, BITS);
    expect(() => expectEmulated(g, feeds, {}, BITS)).toThrow(/differ|of a buffer of/);
    // with float32's 24 bits both are exact at this size
    expectEmulated(g, feeds, {}, 24);
  });

  it('remaps: transpose, slice, pad, broadcast, concat, gather and iota over 6000 elements', () => {
    const { g, feeds, f32, i32 } = setup();
    const x = f32('x', [5, 30, 40], 2);
    const y = f32('y', [30, 1], 3);
    const tr = P.transpose(x, [1, 2, 0]);
    const sl = P.slice(x, [1, 3, 2], [3, 24, 36]);
    const pd = P.pad(P.slice(x, [0, 0, 1], [5, 28, 39]), [0, 1, 0], [0, 1, 1]);
    const bc = P.binary('mul', x, P.broadcastTo(P.reshape(y, [1, 30, 1]), [5, 30, 40]));
    const cat = P.concat([x, f32('none', [5, 0, 40], 12), P.unary('neg', x)], 1);
    const ix = i32('ix', [5, 30, 40], 4, 40);
    const ga = P.gather(x, ix, 2);
    const io = P.binary('add', x, P.cast(P.iota(g, [5, 30, 40], 1), 'f32'));
    g.outputs = [tr, sl, pd, bc, cat, ga, io].map((t) => P.unary('tanh', t).id);
    expectEmulated(g, feeds, { wide: true }, BITS);
    expectEmulated(g, feeds, { wide: true, grid: false }, BITS);
  });

  it('reductions, matmuls (plain, batched, transposed operands), argsort and scatterAdd', () => {
    const { g, feeds, f32, i32 } = setup();
    const x = f32('x', [5, 30, 40], 5);
    const a = f32('a', [70, 8], 6);
    const b = f32('b', [8, 64], 7);
    const ba = f32('ba', [3, 40, 6], 8);
    const bb = f32('bb', [3, 50, 6], 9);
    const keys = i32('keys', [110, 40], 10, 9);
    const u = f32('u', [110, 40], 11);
    g.outputs = [
      P.reduce('sum', x, 1).id,
      P.reduce('max', P.transpose(x, [2, 1, 0]), 2).id,
      P.argmax(x, 0).id,
      P.matmul(a, b).id,
      P.matmul(ba, P.transpose(bb, [0, 2, 1])).id,
      P.argsort(keys, 1).id,
      P.scatterAdd(u, keys, 1, 9).id,
    ];
    expectEmulated(g, feeds, { wide: true }, BITS);
    expectEmulated(g, feeds, { wide: true, grid: false }, BITS);
  });
});

describe('reads stay inside their buffers', () => {
  it('a gather index out of range is clamped to the axis (the reference refuses it)', () => {
    const { g, feeds, f32 } = setup();
    const x = f32('x', [3, 5], 13);
    const ix = g.input('ix', [3, 4], 'i32');
    feeds.ix = hostTensor([3, 4], Int32Array.from([-2, 0, 4, 9, 5, 1, -1, 3, 7, 2, 6, 0]), 'i32');
    g.outputs = [P.gather(x, ix, 1).id];
    const clamped = { ...feeds, ix: hostTensor([3, 4], Int32Array.from([0, 0, 4, 4, 4, 1, 0, 3, 4, 2, 4, 0]), 'i32') };
    const [want] = evaluate(g, clamped, g.outputs);
    for (const options of [{}, { wide: true }]) expect(Array.from(emulate(g, feeds, g.outputs, options, 24)[0]!), JSON.stringify(options)).toEqual(Array.from(want!.data));
  });
});

/** The sources of `g`'s kernels compiled with `options`. */
const sources = (g: Graph, options: CompileOptions = {}): string[] => compile(g, g.outputs, options).kernels.map((k) => k.source);
const count = (text: string, part: string): number => text.split(part).length - 1;

describe('the emitted source does each thing once', () => {
  it('a value used twice is computed once', () => {
    const g = new Graph();
    const e = P.unary('exp', g.input('x', [2, 3]));
    g.outputs = [P.binary('mul', e, P.binary('add', e, P.constant(g, 1))).id];
    for (const options of [{}, { wide: true }]) {
      const [src] = sources(g, options);
      expect(count(src!, 'Math.exp('), JSON.stringify(options)).toBe(1);
      expect(count(src!, 'b0['), JSON.stringify(options)).toBe(1);
    }
  });

  it('an i32 value cast to f32 is read as it is; a cast to i32 truncates', () => {
    const g = new Graph();
    const k = g.input('k', [4], 'i32');
    const x = g.input('x', [4]);
    g.outputs = [P.binary('add', P.cast(k, 'f32'), x).id, P.cast(x, 'i32').id];
    const [toF32, toI32] = sources(g);
    expect(toF32).not.toContain('Math.trunc');
    expect(toI32).toContain('Math.trunc(');
  });

  it('index terms are not multiplied or divided by 1, nor taken modulo 1', () => {
    const { g, f32 } = setup();
    const x = f32('x', [3, 1, 4, 5], 14);
    g.outputs = [P.unary('exp', P.transpose(x, [3, 1, 0, 2])).id, P.unary('exp', P.slice(P.reshape(x, [12, 5]), [2, 1], [9, 3])).id];
    for (const options of [{}, { wide: true }]) {
      for (const src of sources(g, options)) {
        expect(src, JSON.stringify(options)).not.toMatch(/ [*/%] 1\b(?!\.)/);
        expect(src).not.toMatch(/\b0 \* /);
      }
    }
  });

  it('a slice or pad takes a scalar argument only for the axes it cuts, and checks only the axes it pads', () => {
    const g = new Graph();
    const x = g.input('x', [4, 6]);
    g.outputs = [P.unary('exp', P.slice(x, [1, 0], [2, 6])).id, P.unary('exp', P.pad(x, [0, 2], [0, 1])).id, P.unary('exp', P.slice(P.pad(x, [1, 0], [1, 0]), [1, 0], [4, 6])).id];
    const ks = compile(g).kernels;
    expect(ks.map((k) => k.scalars)).toEqual([[1], [2], [1, 1]]);
    expect(count(ks[1]!.source, '>= 0')).toBe(1);
    expect(count(ks[1]!.source, '< 6')).toBe(1);
    // one slice read at two indices (both halves of a concat) is one scalar
    const h = new Graph();
    const y = h.input('y', [5, 3]);
    const s = P.slice(y, [2, 0], [3, 3]);
    h.outputs = [P.unary('exp', P.concat([s, s], 0)).id];
    expect(compile(h).kernels[0]!.scalars).toEqual([2]);
  });

  it('a kernel with no cut has no scalars entry', () => {
    const g = new Graph();
    g.outputs = [P.unary('exp', g.input('x', [3])).id];
    expect('scalars' in compile(g).kernels[0]!).toBe(false);
  });
});

describe('wide mode: the index forms', () => {
  it('coordinates past the float-local limit are peeled from the outermost axis, each corrected once in i32', () => {
    const g = new Graph();
    g.outputs = [P.unary('exp', P.transpose(g.input('x', [3, 4, 5]), [2, 0, 1])).id];
    expect(sources(g, { wide: true })[0]).toBe(
      [
        'function (b0) {',
        '  let c0 = Math.floor(this.thread.x / 12);',
        '  let c1 = c0 + Math.floor((this.thread.x - (c0 | 0) * 12) / 12);',
        '  let c2 = this.thread.x - (c1 | 0) * 12;',
        '  let c3 = Math.floor(c2 / 4);',
        '  let c4 = c2 - (c3 | 0) * 4;',
        '  let v5 = b0[(((c1 | 0) + (c3 | 0) * 20 + (c4 | 0) * 5))];',
        '  let v6 = Math.exp(v5);',
        '  return v6;',
        '}',
      ].join('\n'),
    );
    // float indices: one division or remainder per coordinate, the flat index bound once
    expect(sources(g)[0]).toBe(
      [
        'function (b0) {',
        '  let c0 = Math.floor(this.thread.x / 12);',
        '  let c1 = Math.floor(this.thread.x / 4);',
        '  let c2 = c1 % 3;',
        '  let c3 = this.thread.x % 4;',
        '  let i4 = (c0 + c2 * 20 + c3 * 5);',
        '  let v5 = b0[i4];',
        '  let v6 = Math.exp(v5);',
        '  return v6;',
        '}',
      ].join('\n'),
    );
  });

  it('an index below the limit is held in a float local; cuts and clamped positions enter the index as i32', () => {
    const g = new Graph();
    const x = g.input('x', [4, 6]);
    g.outputs = [P.unary('exp', P.slice(x, [1, 0], [2, 6])).id];
    expect(sources(g, { wide: true })[0]).toBe(
      [
        'function (b0, o0) {',
        '  let c0 = this.thread.x;',
        '  let c1 = Math.floor(c0 / 6);',
        '  let c2 = c0 % 6;',
        '  let v3 = b0[((((c1 + o0) | 0) * 6 + (c2 | 0)))];',
        '  let v4 = Math.exp(v3);',
        '  return v4;',
        '}',
      ].join('\n'),
    );
    const h = new Graph();
    h.outputs = [P.unary('exp', P.gather(h.input('y', [3, 5]), h.input('ix', [3, 2], 'i32'), 1)).id];
    expect(sources(h, { wide: true })[0]).toContain('let v5 = b0[(((c1 | 0) * 5 + ((j4 | 0) | 0)))];');
  });

  it('a pad reads element 0 where it pads, in i32 terms', () => {
    const g = new Graph();
    g.outputs = [P.unary('exp', P.pad(g.input('x', [4, 6]), [0, 2], [0, 1])).id];
    expect(sources(g, { wide: true })[0]).toContain('let v5 = b0[((ok4 ? ((c1 | 0) * 6 + (c3 | 0)) : 0))];');
  });

  it('a matmul launched 2-D takes thread.y as exact while a quarter of its output is below the limit', () => {
    const withRows = (b: number, m: number, n: number) => {
      const g = new Graph();
      g.outputs = [P.matmul(g.input('a', [b, m, 2]), g.input('b', [b, 2, n])).id];
      return sources(g, { wide: true })[0]!;
    };
    // forced wide mode holds values below 16 in float locals: 48 and 64 outputs, then 72
    expect(withRows(2, 3, 8)).toContain('let c0 = Math.floor(this.thread.y / 3);\n  let c1 = this.thread.y % 3;');
    expect(withRows(2, 4, 8)).toContain('let c0 = Math.floor(this.thread.y / 4);\n  let c1 = this.thread.y % 4;');
    expect(withRows(2, 3, 12)).toContain('let c1 = c0 + Math.floor((this.thread.y - (c0 | 0) * 3) / 3);');
  });

  it('only wide kernels convert to i32', () => {
    const { g, f32 } = setup();
    const x = f32('x', [4, 6], 15);
    g.outputs = [P.unary('exp', P.transpose(x, [1, 0])).id, P.matmul(x, f32('w', [6, 8], 16)).id];
    for (const src of sources(g)) expect(src).not.toContain('| 0');
    // packing kernels and the epilogue (the product kernel is written by hand)
    const packed = compile(g, g.outputs, { matmul: 'packed' }).kernels.filter((k) => !k.name.endsWith('.product'));
    expect(packed.map((k) => k.name)).toEqual(['k0_elementwise', 'k1_matmul.packA', 'k1_matmul.packB', 'k1_matmul']);
    for (const k of packed) expect(k.source).not.toContain('| 0');
    for (const src of sources(g, { wide: true })) expect(src).toContain('| 0');
  });
});

describe('index modes', () => {
  it('mode 0 is float indices; any other mode is wide with that float-local limit', () => {
    expect(indexing(0)).toEqual({ wide: false });
    expect(indexing(16)).toEqual({ wide: true, exactBelow: 16 });
  });
});

describe('KernelWriter: internal errors', () => {
  it('a node that must be a buffer, asked for as a value, is an internal error naming it', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const seed = g.input('seed', [], 'i32');
    const k = g.input('k', [2, 3], 'i32');
    const nodes = [x, P.random('uniform', seed, 1, [2, 3]), P.reduce('sum', x, 1), P.argmax(x, 1), P.argsort(k, 1), P.scatterAdd(x, k, 1, 3)];
    g.outputs = nodes.map((t) => t.id);
    const plan = planKernels(g, g.outputs);
    for (const t of nodes) {
      const w = new KernelWriter(plan, t.id, new Map());
      expect(() => w.value(t.id, int(0))).toThrow(`codegen internal: %${t.id} (${g.node(t.id).op}) must be materialised`);
    }
    const table = P.constant(g, [1, 2], [2]);
    expect(() => new KernelWriter(plan, table.id, new Map()).value(table.id, int(0))).toThrow(`codegen internal: const %${table.id} with many values must be a buffer`);
  });

  it('a buffer read that is not a parameter of the kernel is an internal error', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const e = P.unary('exp', x);
    g.outputs = [e.id];
    const plan = planKernels(g, g.outputs);
    expect(() => new KernelWriter(plan, e.id, new Map()).value(e.id, int(0))).toThrow(`codegen internal: buffer %${x.id} is not a parameter of this kernel`);
  });
});

describe('kernel IR', () => {
  it('isInt matches integer literals, through parentheses, optionally of one value; isZero is the literal 0', () => {
    expect(isInt(int(3))).toBe(true);
    expect(isInt(int(3), 3)).toBe(true);
    expect(isInt(int(3), 0)).toBe(false);
    expect(isInt(paren(paren(int(0))), 0)).toBe(true);
    expect(isInt(paren(local('a')))).toBe(false);
    expect(isInt(float(3))).toBe(false);
    expect(isInt(local('a'), undefined)).toBe(false);
    expect(isZero(int(0))).toBe(true);
    expect(isZero(paren(int(0)))).toBe(true);
    expect(isZero(int(1))).toBe(false);
    expect(isZero(float(0))).toBe(false);
  });

  it('a negative integer literal under a minus is parenthesised', () => {
    expect(printExpr(neg(int(-3)))).toBe('-(-3)');
    expect(printExpr(neg(int(0)))).toBe('-0');
    expect(printExpr(neg(int(2)))).toBe('-2');
    expect(printExpr(binary('*', int(-2), local('a')))).toBe('-2 * a');
  });

  it('an else holding one if prints as else-if; any other else prints as a block', () => {
    const cond = binary('<', local('a'), int(1));
    const set = (v: number) => ({ kind: 'assign' as const, name: 'r', op: '=' as const, value: int(v) });
    const chain = printKernel({ params: ['a'], body: [{ kind: 'if', cond, then: [set(1)], else: [{ kind: 'if', cond, then: [set(2)] }] }], result: local('r') });
    expect(chain).toContain('  } else if (a < 1) {\n    r = 2;\n  }');
    const two = printKernel({ params: ['a'], body: [{ kind: 'if', cond, then: [set(1)], else: [{ kind: 'if', cond, then: [set(2)] }, set(3)] }], result: local('r') });
    expect(two).toContain('  } else {\n    if (a < 1) {\n      r = 2;\n    }\n    r = 3;\n  }');
    const empty = printKernel({ params: ['a'], body: [{ kind: 'if', cond, then: [set(1)], else: [] }], result: local('r') });
    expect(empty).toContain('  if (a < 1) {\n    r = 1;\n  } else {\n  }');
  });
});

describe('StatementWriter', () => {
  it('a keyed binding is made once and reused; an atom is not bound', () => {
    const w = new StatementWriter();
    const a = w.bind(binary('+', local('x'), int(1)), 't', 'k');
    expect(w.bind(binary('+', local('x'), int(2)), 't', 'k')).toBe(a);
    for (const atom of [local('y'), int(2), float(1.5), paren(int(4)), paren(float(0.5))]) expect(w.bind(atom)).toBe(atom);
    // unnamed temporaries are t<n>
    const b = w.bind(binary('*', local('x'), local('x')));
    expect(printKernel(w.finish([], binary('+', a, b)))).toBe('function () {\n  let t0 = x + 1;\n  let t1 = x * x;\n  return t0 + t1;\n}');
  });

  it('an if without an else prints none; loops raise loopMax to their bound', () => {
    const w = new StatementWriter();
    w.loopBy('p', 0, 12, 4, () => w.ifBlock(binary('<', local('p'), int(3)), () => w.stmt({ kind: 'break' })));
    w.loop('q', 0, 7, () => undefined);
    expect(w.loopMax).toBe(12);
    expect(printKernel(w.finish(['b0'], int(0)))).toBe(
      ['function (b0) {', '  for (let p = 0; p < 12; p += 4) {', '    if (p < 3) {', '      break;', '    }', '  }', '  for (let q = 0; q < 7; q++) {', '  }', '  return 0;', '}'].join('\n'),
    );
  });
});

describe('compile: checks and tables', () => {
  it('errors are CompileErrors by name; a computed seed at top level says so', () => {
    const g = new Graph();
    const r = P.random('uniform', P.binary('add', g.input('s', [], 'i32'), P.constant(g, 1, [], 'i32')), 1, [3]);
    g.outputs = [r.id];
    let error: unknown;
    try {
      compile(g);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompileError);
    expect((error as Error).name).toBe('CompileError');
    expect((error as Error).message).toBe(`top level: random %${r.id} needs its seed to be a graph input or constant (it is drawn on the host)`);
  });

  it('f32 constants of any size compile', () => {
    const g = new Graph();
    g.outputs = [P.binary('mul', g.input('x', [3]), P.constant(g, [1e30, -3e9, 2], [3])).id];
    expect(() => compile(g)).not.toThrow();
  });

  it('maxReads is passed to the planner', () => {
    const g = new Graph();
    const xs = [0, 1, 2, 3].map((i) => g.input(`x${i}`, [5]));
    g.outputs = [xs.reduce((a, b) => P.binary('add', a, P.unary('exp', b))).id];
    expect(compile(g).kernels).toHaveLength(1);
    expect(compile(g, g.outputs, { maxReads: 2 }).kernels.length).toBeGreaterThan(1);
    for (const k of compile(g, g.outputs, { maxReads: 2 }).kernels) expect(k.params.length).toBeLessThanOrEqual(2);
  });

  it("a kernel writing a node's buffer lists it with the node and its dtype", () => {
    const g = new Graph();
    const k = g.input('k', [4], 'i32');
    const sum = P.binary('add', k, k);
    g.outputs = [sum.id];
    expect(compile(g).buffers.get(`%${sum.id}`)).toEqual({ key: `%${sum.id}`, size: 4, dtype: 'i32', node: sum.id });
  });
});

describe('index arithmetic: each coordinate once, nothing dead', () => {
  it('coordinates of one index in one shape are computed once, in both modes', () => {
    const g = new Graph();
    g.outputs = [P.binary('add', P.transpose(g.input('x', [3, 4, 5]), [2, 0, 1]), P.transpose(g.input('y', [3, 4, 5]), [2, 0, 1])).id];
    expect(count(sources(g)[0]!, 'Math.floor(')).toBe(2);
    expect(count(sources(g, { wide: true })[0]!, 'Math.floor(')).toBe(3);
  });

  it('a size-1 axis has the coordinate 0, computed from nothing', () => {
    const g = new Graph();
    g.outputs = [P.unary('exp', P.transpose(g.input('x', [1, 3, 4]), [0, 2, 1])).id];
    expect(sources(g)[0]).not.toContain('/ 12');
    const h = new Graph();
    h.outputs = [P.unary('exp', P.broadcastTo(h.input('x', [3, 1]), [2, 3, 4])).id];
    expect(sources(h)[0]).toContain('let v4 = b0[c2];');
    expect(sources(h, { wide: true })[0]).toContain('let v5 = b0[((c3 | 0))];');
    const one = new Graph();
    one.outputs = [P.unary('exp', P.broadcastTo(one.input('x', [1, 1]), [3, 4])).id];
    for (const options of [{}, { wide: true }]) expect(sources(one, options)[0]).toMatch(/let v\d+ = b0\[0\];/);
  });

  it('the float-local limit is inclusive: 16 elements are indexed from a local, a rest below stride 16 is bound', () => {
    const g = new Graph();
    g.outputs = [P.unary('exp', P.transpose(g.input('x', [4, 4]), [1, 0])).id];
    expect(sources(g, { wide: true })[0]).toContain('let c0 = this.thread.x;\n  let c1 = Math.floor(c0 / 4);');
    const h = new Graph();
    h.outputs = [P.unary('exp', P.transpose(h.input('x', [16, 3]), [1, 0])).id];
    expect(sources(h, { wide: true })[0]).toContain('let c2 = this.thread.x - (c1 | 0) * 16;');
  });

  it('a matmul row base is bound when its buffer is within the limit, else held as hi·4096 + lo; thread.x is used as it is', () => {
    const mm = (b: number, m: number, n: number) => {
      const g = new Graph();
      g.outputs = [P.matmul(g.input('a', [b, m, 2]), g.input('b', [b, 2, n])).id];
      return sources(g, { wide: true })[0]!;
    };
    const small = mm(2, 3, 4);
    expect(small).toContain('let i3 = (c0 | 0) * 8;');
    expect(small).not.toContain('4096');
    const large = mm(2, 3, 12);
    expect(large).toContain('Math.floor(((c1 | 0) * 24) / 4096)');
    expect(large).toContain('((c7 | 0) * 4096 + (c8 | 0))');
    for (const src of [small, large]) expect(src).not.toContain('(this.thread.x | 0)');
    // one batch: B's base is 0, which needs no holding however large B is
    expect(mm(1, 3, 12)).not.toContain('4096');
  });

  it('matmul operand views: no zero terms, no zero offsets, one remainder per inner factor', () => {
    const g = new Graph();
    const [L, h, d] = [6, 2, 4];
    const q = g.input('q', [L, h * d]);
    const heads = P.transpose(P.reshape(q, [L, h, d]), [1, 0, 2]);
    const merged = P.reshape(P.transpose(heads, [1, 0, 2]), [L, h * d]);
    const kv = g.input('kv', [4, 3, d]);
    const rolled = P.concat([P.slice(kv, [3, 0, 0], [1, 3, d]), P.slice(kv, [0, 0, 0], [3, 3, d])], 0);
    const window = P.concat([kv, rolled], 1);
    const shared = P.broadcastTo(g.input('shared', [6, 4]), [3, 6, 4]);
    g.outputs = [
      P.matmul(heads, P.transpose(heads, [0, 2, 1])).id,
      P.matmul(g.input('qc', [4, 3, d]), P.transpose(window, [0, 2, 1])).id,
      P.matmul(merged, g.input('wo', [h * d, 5])).id,
      P.matmul(g.input('ab', [3, 5, 6]), shared).id,
    ];
    for (const options of [{}, { wide: true }]) {
      for (const src of sources(g, options)) {
        expect(src).not.toMatch(/[-+*] 0\b(?!\.)/);
        expect(src).not.toMatch(/\b0 \* /);
      }
    }
    expect(sources(g).map((src) => count(src, ' % '))).toEqual([2, 2, 1, 1]);
  });
});
