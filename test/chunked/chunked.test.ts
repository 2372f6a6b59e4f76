/**
 * `Chunked`: each chunk is a recompute region, so the forward keeps only the chunk outputs and the
 * backward replays and differentiates one chunk at a time. Values and gradients equal the
 * unchunked layer for every chunk size dividing the axis.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Dense, Gelu, InitKey, LayerNorm, Relu, Serial, Dup, flattenParams, spec, trace, type Layer, type Params } from '../../dsl/index.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { grad } from '../../compiler/grad/grad.ts';
import { graphPeakBytes, savedActivationBytes } from '../../compiler/grad/saved.ts';
import { type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { Chunked } from '../../dsl/chunked.ts';
import { rng, uniform, weightedLoss } from '../grad/check.ts';
import { expectClose } from '../support/numeric.ts';

const divisors = (n: number) => Array.from({ length: n }, (_, i) => i + 1).filter((k) => n % k === 0);
const feedForward = (d: number, dff: number, act: 'relu' | 'gelu') => Serial(LayerNorm(), Dense(dff), act === 'relu' ? Relu() : Gelu(), Dense(d));

/** Loss and gradients (every parameter, then the input) of `layer` on `x`, f64. */
function lossAndGrads(layer: Layer, params: Params, x: HostTensor, seed: number, memorySchedules = true) {
  const t = trace(layer, params, [{ shape: x.shape }], { mode: 'train' });
  const loss = weightedLoss(t.outputs[0]!, rng(seed));
  const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data');
  const g = grad(t.graph, loss.id, wrt.map((n) => n.id), { memorySchedules });
  const feeds: Record<string, HostTensor> = { input0: x };
  for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
  return { values: evaluate(g.graph, feeds), graph: g.graph, forwardCount: t.graph.nodes.length, regions: t.graph.recomputeRegions.length };
}

describe('Chunked feed-forward', () => {
  it('equals the unchunked layer, loss and gradients, for every chunk size dividing the axis', () => {
    fc.assert(
      fc.property(
        fc.record({
          B: fc.integer({ min: 1, max: 2 }),
          L: fc.constantFrom(4, 6, 8, 12),
          d: fc.integer({ min: 2, max: 4 }),
          dff: fc.integer({ min: 2, max: 6 }),
          act: fc.constantFrom<'relu' | 'gelu'>('relu', 'gelu'),
          seed: fc.integer({ min: 0, max: 100_000 }),
        }),
        ({ B, L, d, dff, act, seed }) => {
          const ff = feedForward(d, dff, act);
          const params = ff.init(new InitKey(seed), [spec([B, L, d])]);
          const x = uniform(rng(seed + 1), [B, L, d], -1, 1);
          const ref = lossAndGrads(ff, params, x, seed).values;
          for (const size of divisors(L)) {
            const layer = Chunked(ff, { axis: 1, size });
            // The chunked layer shares the inner layer's parameters.
            expect(layer.init(new InitKey(seed), [spec([B, L, d])])).toEqual(params);
            const got = lossAndGrads(layer, params, x, seed);
            expect(got.regions).toBe(L / size);
            got.values.forEach((v, k) => expectClose(v.data, ref[k]!.data, 1e-10, 1e-12, `output ${k} (size ${size})`));
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
    expect(() => Chunked(Dup(), { axis: 0, size: 2 })).toThrow(/Dup must map one tensor to one tensor/);
    expect(() => Chunked(Dense(3), { axis: 0, size: 0 })).toThrow(/option 'size' must be a positive integer/);
  });

  it('holds one chunk of d_ff activations at a time: saved and peak bytes fall with the chunk size', () => {
    const L = 64;
    const d = 8;
    const dff = 64;
    const ff = feedForward(d, dff, 'relu');
    const params = ff.init(new InitKey(1), [spec([L, d])]);
    const x = uniform(rng(2), [L, d], -1, 1);
    const at = (size: number, memorySchedules = true) => {
      const r = lossAndGrads(Chunked(ff, { axis: 0, size }), params, x, 1, memorySchedules);
      return { saved: savedActivationBytes(r.graph, r.forwardCount), peak: graphPeakBytes(r.graph) };
    };
    const [whole, sixteen, four] = [64, 16, 4].map((s) => at(s));
    const plain = at(4, false);
    expect(sixteen!.peak).toBeLessThan(whole!.peak);
    expect(four!.peak).toBeLessThan(sixteen!.peak);
    expect(four!.peak * 3).toBeLessThan(plain.peak);
    // Between forward and backward the chunked schedule keeps no [L, d_ff] hidden at all.
    expect(four!.saved).toBeLessThan(L * dff * 4);
    expect(plain.saved).toBeGreaterThan(L * dff * 4);
  });
});
