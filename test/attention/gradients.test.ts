import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { grad, vjp } from '../../compiler/grad/grad.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import * as ops from '../../dsl/ops.ts';
import { InitKey, flattenParams, spec, trace, type Layer } from '../../dsl/layer.ts';
import { buildLshGraph, lshAttention } from '../../reformer/attention/api.ts';
import { FullAttention, LSHSelfAttention, LocalAttention } from '../../reformer/attention/layers.ts';
import { ReferenceRunner, type GraphRunner } from '../../runtime/runner.ts';
import { expectClose, finiteDifference } from '../support/numeric.ts';
import { randomArray, runnerCases } from './support.ts';

/** Appends `loss = Σ out · W` (W fixed) to a graph and returns the loss id. */
function weightedLoss(g: Graph, out: ops.Tensor, seed: number): number {
  const w = ops.constant(g, Array.from(randomArray(seed, out.shape.reduce((a, b) => a * b, 1))), out.shape);
  return ops.sumAll(ops.mul(out, w)).id;
}

type LshGraphOptions = Parameters<typeof buildLshGraph>[2];

/**
 * LSH attention on host qk/v with buckets hashed once (float64 reference) and then fixed: the
 * graph, its loss Σ out·W, the gradient graph w.r.t. qk and v, and the feeds.
 */
async function fixedBucketGradients(shape: readonly [number, number, number, number], dV: number, o: LshGraphOptions & { seed: number }) {
  const qk = randomArray(o.seed, shape.reduce((a, b) => a * b, 1));
  const v = randomArray(o.seed + 1, (shape[0] * shape[1] * shape[2]) * dV);
  const { buckets } = await lshAttention(qk, v, { shape, ...o, runner: new ReferenceRunner() });
  const built = buildLshGraph(shape, dV, { ...o, fixedBuckets: true });
  const loss = weightedLoss(built.graph, built.output, o.seed + 2);
  const feeds: Record<string, HostTensor> = {
    qk: hostTensor(built.qk.shape, qk),
    v: hostTensor(built.v.shape, v),
    buckets: hostTensor(built.buckets.shape, buckets, 'i32'),
  };
  return { graph: built.graph, loss, grads: grad(built.graph, loss, [built.qk.id, built.v.id]).graph, feeds };
}

describe('LSH attention gradients (buckets fixed)', () => {
  it('match central finite differences for qk and v', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          nHashes: fc.integer({ min: 1, max: 3 }),
          chunkLen: fc.constantFrom(2, 4),
          causal: fc.boolean(),
          allowDuplicateAttention: fc.boolean(),
          attendAcrossBuckets: fc.boolean(),
          // window groups of the chunk schedule (recomputed in the backward pass)
          chunksPerGroup: fc.integer({ min: 1, max: 8 }),
          recomputeScores: fc.boolean(),
          seed: fc.integer({ min: 0, max: 1 << 20 }),
        }),
        async (o) => {
          const { graph, loss, grads, feeds } = await fixedBucketGradients([1, 2, 8, 3], 2, o);
          const [, gqk, gv] = evaluate(grads, feeds);
          expectClose(gqk!.data, finiteDifference(graph, feeds, 'qk', loss), 1e-4, 1e-6, 'd/dqk');
          expectClose(gv!.data, finiteDifference(graph, feeds, 'v', loss), 1e-4, 1e-6, 'd/dv');
        },
      ),
      { numRuns: 12 },
    );
  });
});

describe('LSH gradients without duplicate attention, for every combination of the switches (buckets fixed)', () => {
  // N_ij is a per-query count of unmasked slots; it is a constant of the graph, so gradients flow
  // only through the logits and values.
  const compiled = runnerCases.find((rc) => rc.name.startsWith('compiled'))!.runner;
  for (const causal of [false, true]) {
    for (const attendAcrossBuckets of [false, true]) {
      for (const nHashes of [1, 2, 4]) {
        it(`match finite differences (f64), and the compiled gradient equals the reference (causal=${causal}, attendAcrossBuckets=${attendAcrossBuckets}, nHashes=${nHashes})`, async () => {
          for (const seed of [11 + nHashes, 101 + 7 * nHashes]) {
            const o = { nHashes, chunkLen: 2, causal, attendAcrossBuckets, allowDuplicateAttention: false, seed };
            const { graph, loss, grads, feeds } = await fixedBucketGradients([1, 2, 8, 3], 2, o);
            const reference = evaluate(grads, feeds);
            expectClose(reference[1]!.data, finiteDifference(graph, feeds, 'qk', loss), 1e-4, 1e-6, 'd/dqk');
            expectClose(reference[2]!.data, finiteDifference(graph, feeds, 'v', loss), 1e-4, 1e-6, 'd/dv');
            const onDevice = await compiled.run(grads, feeds);
            reference.forEach((t, i) => expectClose(onDevice[i]!.data, t.data, 2e-3, 2e-4, `output ${i}, compiled`));
          }
        });
      }
    }
  }
});

describe('LSH gradients under the chunk schedule', () => {
  it('equal the one-group gradients (f64), and the compiled gradient equals the reference', async () => {
    const compiled = runnerCases.find((rc) => rc.name.startsWith('compiled'))!.runner;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          nHashes: fc.integer({ min: 1, max: 3 }),
          chunkLen: fc.constantFrom(1, 3),
          causal: fc.boolean(),
          allowDuplicateAttention: fc.boolean(),
          nChunksAfter: fc.integer({ min: 0, max: 1 }),
          per: fc.integer({ min: 1, max: 5 }),
          recomputeScores: fc.boolean(),
          seed: fc.integer({ min: 0, max: 1 << 20 }),
        }),
        async ({ per, ...o }) => {
          const gradsWith = async (chunksPerGroup: number, runner?: GraphRunner) => {
            const { grads, feeds } = await fixedBucketGradients([2, 1, 9, 3], 2, { ...o, chunksPerGroup });
            return runner === undefined ? evaluate(grads, feeds) : runner.run(grads, feeds);
          };
          const one = await gradsWith(1000);
          const grouped = await gradsWith(per);
          one.forEach((t, i) => expectClose(grouped[i]!.data, t.data, 1e-12, 1e-12, `output ${i}, f64`));
          const onDevice = await gradsWith(per, compiled);
          one.forEach((t, i) => expectClose(onDevice[i]!.data, t.data, 2e-3, 2e-4, `output ${i}, compiled`));
        },
      ),
      { numRuns: 8 },
    );
  });
});

/** Traces a layer on [B, L, d] in replay mode with its stored states, returning graph, feeds and the traced pieces. */
function replayed(layer: Layer, B: number, L: number, d: number, seed: number) {
  const params = layer.init(new InitKey(seed), [spec([B, L, d])]);
  const x = hostTensor([B, L, d], randomArray(seed + 3, B * L * d));
  const feeds: Record<string, HostTensor> = { input0: x, seed: hostTensor([], [seed], 'i32') };
  for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
  const forward = trace(layer, params, [{ shape: [B, L, d] }]);
  const stateNames = [...forward.states.keys()];
  const stateValues = evaluate(forward.graph, feeds, [...forward.states.values()].map((t) => t.id));
  stateNames.forEach((n, i) => (feeds[n] = stateValues[i]!));
  const t = trace(layer, params, [{ shape: [B, L, d] }], { stateMode: 'replay' });
  return { t, feeds, params, stateNames };
}

describe('layer gradients and causality', () => {
  it('LSHSelfAttention: parameter and input gradients match finite differences with buckets replayed', () => {
    const layer = LSHSelfAttention({ nHeads: 2, dHead: 3, nHashes: 2, chunkLen: 2, causal: true });
    const { t, feeds, stateNames } = replayed(layer, 1, 8, 4, 5);
    expect(stateNames).toEqual(['state:LSHSelfAttention.buckets']);
    const loss = weightedLoss(t.graph, t.outputs[0]!, 6);
    const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.name === 'input0');
    const g = grad(t.graph, loss, wrt.map((n) => n.id));
    const outs = evaluate(g.graph, feeds);
    wrt.forEach((n, k) => expectClose(outs[k + 1]!.data, finiteDifference(t.graph, feeds, n.name, loss), 1e-4, 1e-6, n.name));
  });

  /** Gradient of output row i w.r.t. every input row: returns |∂out_i/∂x_j| summed per j. */
  function rowJacobian(layer: Layer, L: number, seed: number): number[][] {
    const d = 4;
    const { t, feeds } = replayed(layer, 1, L, d, seed);
    const v = vjp(t.graph, [t.outputs[0]!.id], [t.inputs[0]!.id]);
    return Array.from({ length: L }, (_, i) => {
      const ct = new Float64Array(L * d);
      for (let e = 0; e < d; e++) ct[i * d + e] = 1 + e;
      const [, gx] = evaluate(v.graph, { ...feeds, 'cotangent:0': hostTensor([1, L, d], ct) });
      return Array.from({ length: L }, (_, j) => Array.from({ length: d }, (_, e) => Math.abs(gx!.data[j * d + e]!)).reduce((a, b) => a + b, 0));
    });
  }

  const causalLayers: Array<[string, Layer]> = [
    ['LSHSelfAttention', LSHSelfAttention({ nHeads: 2, dHead: 3, nHashes: 2, chunkLen: 2, causal: true })],
    ['LSHSelfAttention (one chunk per window group)', LSHSelfAttention({ nHeads: 2, dHead: 3, nHashes: 2, chunkLen: 2, causal: true, chunksPerGroup: 1, recomputeScores: true })],
    ['LSHSelfAttention (paper switches)', LSHSelfAttention({ nHeads: 1, dHead: 3, nHashes: 3, chunkLen: 2, causal: true, allowDuplicateAttention: false, attendAcrossBuckets: false })],
    ['FullAttention', FullAttention({ nHeads: 2, dHead: 3, causal: true })],
    ['FullAttention sharedQK', FullAttention({ nHeads: 2, dHead: 3, causal: true, sharedQK: true })],
    ['LocalAttention', LocalAttention({ nHeads: 2, dHead: 3, chunkLen: 2, causal: true })],
  ];
  for (const [name, layer] of causalLayers) {
    it(`${name}: ∂out_i/∂x_j = 0 exactly for j > i, and some past gradient is nonzero`, () => {
      const J = rowJacobian(layer, 8, 21);
      J.forEach((row, i) => {
        row.forEach((g, j) => {
          if (j > i) expect(g).toBe(0);
        });
        // (Not j = i itself: with a self mask, out_1 = v_0 exactly, so it does not depend on x_1.)
        expect(Math.max(...row.slice(0, i + 1))).toBeGreaterThan(0);
      });
    });
  }

  for (const [name, layer] of causalLayers.filter(([n]) => !n.startsWith('LSH'))) {
    it(`${name}: causal outputs do not depend on the values of future tokens`, () => {
      const B = 1, L = 8, d = 4;
      const params = layer.init(new InitKey(2), [spec([B, L, d])]);
      const t = trace(layer, params, [{ shape: [B, L, d] }]);
      const feeds: Record<string, HostTensor> = {};
      for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
      const x = randomArray(4, B * L * d);
      const [a] = evaluate(t.graph, { ...feeds, input0: hostTensor([B, L, d], x) });
      for (let cut = 1; cut < L; cut++) {
        const x2 = x.map((e, i) => (Math.floor(i / d) >= cut ? e + 3 * Math.cos(i) : e));
        const [b] = evaluate(t.graph, { ...feeds, input0: hostTensor([B, L, d], x2) });
        expect(Array.from(b!.data.slice(0, cut * d))).toEqual(Array.from(a!.data.slice(0, cut * d)));
      }
    });
  }
});
