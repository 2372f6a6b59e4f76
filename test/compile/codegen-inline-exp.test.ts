/**
 * inline-exp.ts: every Math.exp of a kernel becomes arithmetic, wherever it stands, and the
 * arithmetic is exp to float32 accuracy (on the host in float64, and in a real webasm kernel in
 * float32), clamped at the ends of float32's normal range.
 */
import { GPU } from 'gpu.js';
import { describe, expect, it } from 'vitest';
import { inlineExp } from '../../compiler/codegen/inline-exp.ts';
import { binary, call, float, int, load, local, neg, paren, printKernel, select, thread, type Kernel } from '../../compiler/codegen/kernel-ir.ts';
import { compile } from '../../compiler/codegen/compile.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { availableBackends } from './support.ts';

const x = load('b0', thread('x'));

/** A kernel `function (b0) { … }` printed and run as JavaScript at thread x = i for each input. */
function runOnHost(k: Kernel, inputs: readonly number[]): number[] {
  const fn = new Function(`return ${printKernel(k)}`)() as (this: { thread: { x: number } }, b0: readonly number[]) => number;
  return inputs.map((_, i) => fn.call({ thread: { x: i } }, inputs));
}

const relErr = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);

describe('inlineExp', () => {
  it('replaces exp wherever it stands: a binding, inside an expression, a branch condition, a loop body, the result', () => {
    const k: Kernel = {
      params: ['b0'],
      body: [
        { kind: 'let', name: 'v0', value: call('exp', x) },
        { kind: 'let', name: 'v1', value: binary('+', float(1), call('exp', binary('*', local('v0'), float(0.5)))) },
        { kind: 'let', name: 'acc', value: float(0) },
        { kind: 'for', v: 'r', from: 0, to: 3, body: [{ kind: 'assign', name: 'acc', op: '+=', value: call('exp', local('r')) }] },
        { kind: 'if', cond: binary('>', call('exp', x), float(2)), then: [{ kind: 'assign', name: 'acc', op: '+=', value: float(1) }], else: [{ kind: 'assign', name: 'acc', op: '+=', value: call('log', local('v1')) }] },
        // exp under a negation, in parentheses, in both arms of a select, in a load's index, in an else arm, and a loop that breaks
        { kind: 'let', name: 'v2', value: neg(paren(call('exp', neg(x)))) },
        { kind: 'let', name: 'v3', value: select(binary('<', x, float(0)), call('exp', x), call('exp', neg(x))) },
        { kind: 'let', name: 'v4', value: load('b0', call('floor', call('exp', float(0)))) },
        { kind: 'if', cond: binary('>', x, float(100)), then: [], else: [{ kind: 'assign', name: 'acc', op: '+=', value: call('exp', binary('*', x, float(0.1))) }] },
        { kind: 'for', v: 'q', from: 0, to: 5, body: [{ kind: 'assign', name: 'acc', op: '+=', value: call('exp', local('q')) }, { kind: 'if', cond: binary('>=', local('q'), int(1)), then: [{ kind: 'break' }] }] },
      ],
      result: binary('+', binary('+', local('acc'), binary('+', local('v2'), binary('+', local('v3'), local('v4')))), call('exp', select(binary('<', x, float(0)), x, int(0)))),
    };
    const inlined = inlineExp(k);
    const text = printKernel(inlined);
    expect(text).not.toContain('Math.exp');
    expect(text).toContain('Math.log'); // other calls stay
    const inputs = [-3, -0.25, 0, 0.7, 1.9];
    const want = runOnHost(k, inputs);
    runOnHost(inlined, inputs).forEach((v, i) => expect(relErr(v, want[i]!)).toBeLessThan(1e-6));
  });

  it("compile's inlineExp writes out every exp and leaves the wasm product's source alone", () => {
    const g = new Graph();
    const logits = g.input('logits', [6, 10]);
    const e = P.unary('exp', logits);
    const product = P.matmul(g.input('a', [64, 32]), g.input('b', [32, 64])); // 2^17 multiply-adds: a wasm product under 'auto'
    g.outputs = [P.binary('div', e, P.broadcastTo(P.reduce('sum', e, 1), [6, 10])).id, P.unary('exp', product).id];
    const plain = compile(g, g.outputs, { matmul: 'auto' });
    const inlined = compile(g, g.outputs, { matmul: 'auto', inlineExp: true });
    expect(plain.kernels.filter((k) => k.source.includes('Math.exp(')).length).toBeGreaterThan(0);
    expect(inlined.kernels.map((k) => k.name)).toEqual(plain.kernels.map((k) => k.name));
    inlined.kernels.forEach((k, i) => {
      expect(k.source).not.toContain('Math.exp(');
      const before = plain.kernels[i]!;
      if (before.native !== undefined || !before.source.includes('Math.exp(')) expect(k.source).toBe(before.source);
      else expect(k.source).toContain('xp0_e');
    });
    expect(inlined.kernels.some((k) => k.native !== undefined)).toBe(true);
  });

  it('leaves a kernel without exp as it was', () => {
    const k: Kernel = { params: ['b0'], body: [{ kind: 'let', name: 'v0', value: call('tanh', x) }], result: local('v0') };
    expect(printKernel(inlineExp(k))).toBe(printKernel(k));
  });

  it('is exp to about 2e-7 over the float32 normal range, clamped past it, and keeps NaN (host, float64 arithmetic)', () => {
    const k: Kernel = { params: ['b0'], body: [], result: call('exp', x) };
    const inputs: number[] = [];
    for (let v = -87.3; v <= 88; v += 0.173) inputs.push(v);
    inputs.push(0, -0, 1e-9, -1e-9, Math.LN2, -Math.LN2, 64 * Math.LN2);
    const got = runOnHost(inlineExp(k), inputs);
    let worst = 0;
    inputs.forEach((v, i) => (worst = Math.max(worst, relErr(got[i]!, Math.exp(v)))));
    expect(worst).toBeLessThan(5e-7);
    const [below, above, nan] = runOnHost(inlineExp(k), [-1000, 1000, NaN]);
    expect(below).toBeCloseTo(Math.exp(-87.33654), 44);
    expect(below).toBeGreaterThan(0);
    expect(relErr(above!, Math.exp(88))).toBeLessThan(1e-6);
    expect(nan).toBeNaN();
  });

  it('is exp to float32 accuracy in a webasm kernel (float32 arithmetic)', async () => {
    if (!(await availableBackends()).includes('webasm')) return;
    const k: Kernel = { params: ['b0'], body: [], result: call('exp', x) };
    const n = 4096;
    const inputs = Float32Array.from({ length: n }, (_, i) => -87 + (175 * i) / (n - 1));
    const gpu = new GPU({ mode: 'webasm' } as ConstructorParameters<typeof GPU>[0]);
    try {
      const kernel = gpu.createKernel(printKernel(inlineExp(k)), { output: [n], tactic: 'precision' }) as unknown as (a: Float32Array) => Float32Array;
      const out = kernel(inputs);
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, relErr(out[i]!, Math.exp(inputs[i]!)));
      // float32 rounding of the reduction and the polynomial: a few units in the last place
      expect(worst).toBeLessThan(2e-6);
      expect(worst).toBeGreaterThan(0);
    } finally {
      gpu.destroy();
    }
  });
});
