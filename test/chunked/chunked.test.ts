import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Dense, Gelu, InitKey, LayerNorm, Relu, Serial, Dup, spec, trace } from '../../dsl/index.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { Chunked } from '../../dsl/chunked.ts';
import { compileChunked } from '../../compiler/chunk/compile.ts';
import { ordinaryBackprop } from '../../compiler/reversible/backprop.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { printSchedule } from '../../runtime/schedule/schedule.ts';
import { rng, uniform } from '../grad/check.ts';
import { expectClose } from '../support/numeric.ts';

const runner = new ReferenceRunner();
const divisors = (n: number) => Array.from({ length: n }, (_, i) => i + 1).filter((k) => n % k === 0);
const feedForward = (d: number, dff: number, act: 'relu' | 'gelu') => Serial(LayerNorm(), Dense(dff), act === 'relu' ? Relu() : Gelu(), Dense(d));

describe('Chunked feed-forward', () => {
  it('equals the unchunked layer, forward and gradients, for every chunk size dividing the axis', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          B: fc.integer({ min: 1, max: 2 }),
          L: fc.constantFrom(4, 6, 8, 12),
          d: fc.integer({ min: 2, max: 4 }),
          dff: fc.integer({ min: 2, max: 6 }),
          act: fc.constantFrom<'relu' | 'gelu'>('relu', 'gelu'),
          seed: fc.integer({ min: 0, max: 100_000 }),
        }),
        async ({ B, L, d, dff, act, seed }) => {
          const ff = feedForward(d, dff, act);
          const params = ff.init(new InitKey(seed), [spec([B, L, d])]);
          const r = rng(seed);
          const x = uniform(r, [B, L, d], -1, 1);
          const dy = uniform(r, [B, L, d], -1, 1);
          const ref = await ordinaryBackprop(ff, params, spec([B, L, d])).run(runner, [x], [dy]);
          for (const size of divisors(L)) {
            const layer = Chunked(ff, { axis: 1, size });
            // The chunked layer shares the inner layer's parameters.
            expect(layer.init(new InitKey(seed), [spec([B, L, d])])).toEqual(params);
            const c = compileChunked(layer, params, { shape: [B, L, d] });
            expect(c.chunks).toBe(L / size);
            const y = await c.forward(runner, x);
            expectClose(y.data, ref.outputs[0]!.data, 1e-12, 1e-12, `y (size ${size})`);
            const back = await c.backward(runner, x, dy);
            expectClose(back.dx.data, ref.inputGrads[0]!.data, 1e-10, 1e-12, `dx (size ${size})`);
            for (const [path, g] of ref.gradsByParamPath) {
              expectClose(back.gradsByParamPath.get(path)!.data, g.data, 1e-10, 1e-12, `${path} (size ${size})`);
            }
            // Traced as a plain layer, the chunked graph gives the same values too.
            const t = trace(layer, params, [{ shape: [B, L, d] }]);
            const feeds: Record<string, HostTensor> = { input0: x };
            for (const n of t.graph.inputNodes()) if (n.role === 'param') feeds[n.name] = byPath(params, n.name);
            expectClose(evaluate(t.graph, feeds)[0]!.data, ref.outputs[0]!.data, 1e-12, 1e-12, `traced y (size ${size})`);
          }
        },
      ),
      { numRuns: 15, seed: 3 },
    );
  });

  it('errors at build time when the chunk size does not divide the axis, naming both', () => {
    const layer = Chunked(Dense(3), { axis: 0, size: 4 });
    expect(() => layer.init(new InitKey(0), [spec([6, 3])])).toThrow(/chunk size 4 does not divide axis 0 of length 6/);
    const params = Dense(3).init(new InitKey(0), [spec([6, 3])]);
    expect(() => trace(Serial(Dup(), layer), [{}, params], [{ shape: [6, 3] }])).toThrow(
      /Serial\[1\]\.Chunked: Chunked: chunk size 4 does not divide axis 0 of length 6/,
    );
    expect(() => compileChunked(layer, params, { shape: [6, 3] })).toThrow(/chunk size 4 does not divide axis 0 of length 6/);
    expect(() => Chunked(Dup(), { axis: 0, size: 2 })).toThrow(/Dup must map one tensor to one tensor/);
    expect(() => Chunked(Dense(3), { axis: 0, size: 0 })).toThrow(/option 'size' must be a positive integer/);
  });

  it('holds one chunk of d_ff activations at a time: peak well below unchunked', () => {
    const L = 64;
    const d = 8;
    const dff = 64;
    const ff = feedForward(d, dff, 'relu');
    const params = ff.init(new InitKey(1), [spec([L, d])]);
    const peaks = [64, 16, 4].map((size) => compileChunked(Chunked(ff, { axis: 0, size }), params, { shape: [L, d] }).memory());
    const unchunked = peaks[0]!.unchunked.peakBytes;
    const chunkedPeak = peaks.map((m) => m.chunked.peakBytes);
    // One chunk of the hidden layer is L/size times smaller; the peak falls with the chunk size.
    expect(chunkedPeak[1]).toBeLessThan(chunkedPeak[0]!);
    expect(chunkedPeak[2]).toBeLessThan(chunkedPeak[1]!);
    expect(chunkedPeak[2]! * 3).toBeLessThan(unchunked);
    // Between forward and backward the chunked schedule keeps only its input.
    expect(peaks[2]!.chunked.retainedActivationBytes).toBe(L * d * 4);
    expect(peaks[2]!.unchunked.retainedActivationBytes).toBeGreaterThan(L * dff * 4);
  });

  it('prints the backward schedule chunk by chunk', () => {
    const ff = feedForward(2, 3, 'relu');
    const params = ff.init(new InitKey(1), [spec([4, 2])]);
    const text = printSchedule(compileChunked(Chunked(ff, { axis: 0, size: 2 }), params, { shape: [4, 2] }).backwardSchedule);
    expect(text).toContain('split cotangent: dy → dy.0[2,2] dy.1[2,2]');
    expect(text).toMatch(/chunk 1 vjp: x dy\.1 grad\.0\.scale .*→ dx\.1\[2,2\] grad\.0\.scale\[2\]/);
    expect(text).toContain('concat input gradients: dx.0 dx.1 → dx[4,2]');
  });
});

function byPath(params: unknown, name: string): HostTensor {
  let node = params as Record<string, unknown>;
  for (const k of name.split('.').slice(1)) node = node[k] as Record<string, unknown>;
  return node as unknown as HostTensor;
}
