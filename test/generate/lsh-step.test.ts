/**
 * Incremental LSH attention against its float64 definition (docs/attention.md, "Incremental
 * decoding"), written here as plain loops: position t, in round r, attends to the earlier positions
 * j with b_r(j) = b_r(t) or j > t − c, and to itself at −1e5; rounds combine by their
 * log-normalisers. The step layer runs on the reference runner with its caches kept by
 * `CachedSteps`. Also: the step model draws the same rotations (seed, salt, shape) as the window model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Graph } from '../../compiler/ir/graph.ts';
import { normalAt, saltOf } from '../../compiler/ir/random.ts';
import { InitKey, applyLayer, flattenParams, paramInputs, traceContext } from '../../dsl/layer.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { ReferenceRunner, type GraphRunner } from '../../runtime/runner.ts';
import { LSHSelfAttention } from '../../reformer/attention/layers.ts';
import { StepCollector } from '../../reformer/decode/cache-slots.ts';
import { CachedSteps, type StepGraph } from '../../reformer/decode/cached-steps.ts';
import { buildStepGraph } from '../../reformer/decode/decoder.ts';
import { LSHSelfAttentionStep } from '../../reformer/decode/step-attention.ts';
import { buildModel } from '../../reformer/model.ts';
import { logitsGraph } from '../../reformer/train/objective.ts';
import { randomArray } from '../attention/support.ts';
import { tinyModel } from './support.ts';

interface Case {
  readonly L: number;
  readonly c: number;
  readonly h: number;
  readonly d: number;
  readonly H: number;
  readonly dModel: number;
  readonly seed: number;
  /** Width of the block runs, and which runs are blocks (cycled). */
  readonly block: number;
  readonly blocks: readonly boolean[];
}

const dot = (a: readonly number[], b: readonly number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

/** `x [L, dModel] · w [dModel, h·d]` as rows per head: `[h][L][d]`. */
function heads(x: number[][], w: ArrayLike<number>, h: number, d: number): number[][][] {
  const width = h * d;
  return Array.from({ length: h }, (_, hd) => x.map((row) => Array.from({ length: d }, (_, i) => row.reduce((s, v, m) => s + v * w[m * width + hd * d + i]!, 0))));
}

/** The float64 definition of incremental LSH attention: the layer's output `[L][dModel]`, and the buckets `[h][H][L]`. */
function definition(k: Case, x: number[][], p: Map<string, ArrayLike<number>>, rotations: ArrayLike<number>) {
  const nb = (2 * k.L) / k.c;
  const half = nb / 2;
  const qk = heads(x, p.get('wqk')!, k.h, k.d);
  const v = heads(x, p.get('wv')!, k.h, k.d);
  const buckets = qk.map((rows, hd) =>
    Array.from({ length: k.H }, (_, r) =>
      rows.map((q) => {
        const rot = Array.from({ length: half }, (_, b) => q.reduce((s, qi, i) => s + qi * rotations[((hd * k.d + i) * k.H + r) * half + b]!, 0));
        const both = [...rot, ...rot.map((y) => -y)];
        return both.indexOf(Math.max(...both)) + r * nb;
      }),
    ),
  );
  const out = x.map(() => new Array<number>(k.dModel).fill(0));
  for (let hd = 0; hd < k.h; hd++) {
    const keys = qk[hd]!.map((q) => q.map((y) => y / Math.sqrt(dot(q, q) + 1e-6 * k.d)));
    for (let t = 0; t < k.L; t++) {
      const rounds = Array.from({ length: k.H }, (_, r) => {
        const seen = Array.from({ length: t + 1 }, (_, j) => j).filter((j) => j === t || buckets[hd]![r]![j] === buckets[hd]![r]![t] || j > t - k.c);
        const logits = seen.map((j) => dot(qk[hd]![t]!, keys[j]!) - (j === t ? 1e5 : 0));
        const m = Math.max(...logits);
        const sum = logits.reduce((s, l) => s + Math.exp(l - m), 0);
        const o = Array.from({ length: k.d }, (_, i) => seen.reduce((s, j, n) => s + (Math.exp(logits[n]! - m) / sum) * v[hd]![j]![i]!, 0));
        return { o, lse: m + Math.log(sum) };
      });
      const top = Math.max(...rounds.map((r) => r.lse));
      const total = rounds.reduce((s, r) => s + Math.exp(r.lse - top), 0);
      const combined = Array.from({ length: k.d }, (_, i) => rounds.reduce((s, r) => s + (Math.exp(r.lse - top) / total) * r.o[i]!, 0));
      const wo = p.get('wo')!;
      for (let m = 0; m < k.dModel; m++) out[t]![m]! += combined.reduce((s, y, i) => s + y * wo[(hd * k.d + i) * k.dModel + m]!, 0);
    }
  }
  return { out, buckets };
}

const cases = fc.record({
  L: fc.constantFrom(8, 16),
  c: fc.constantFrom(2, 4),
  h: fc.integer({ min: 1, max: 2 }),
  d: fc.integer({ min: 2, max: 4 }),
  H: fc.integer({ min: 1, max: 3 }),
  dModel: fc.integer({ min: 3, max: 6 }),
  seed: fc.integer({ min: 0, max: 1 << 20 }),
  block: fc.integer({ min: 2, max: 5 }),
  blocks: fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
});

describe('incremental LSH attention', () => {
  it('equals its float64 definition at every position, buckets included, decoded one position at a time or in blocks', async () => {
    await fc.assert(
      fc.asyncProperty(cases, async (k) => {
        const window = LSHSelfAttention({ nHeads: k.h, dHead: k.d, nHashes: k.H, chunkLen: k.c, causal: true });
        const tree = window.init(new InitKey(k.seed), [{ shape: [1, k.L, k.dModel], dtype: 'f32' }]);
        const stepOf = (width: number): StepGraph => {
          const graph = new Graph();
          const collector = new StepCollector(graph, k.L, width);
          const step = LSHSelfAttentionStep({ nHeads: k.h, dHead: k.d, nHashes: k.H, chunkLen: k.c, bucketFactors: (2 * k.L) / k.c }, collector);
          const [y] = applyLayer(step, paramInputs(graph, tree), [graph.input('x', [1, width, k.dModel])], traceContext(graph, 'eval'));
          graph.outputs = [y!.id, ...collector.slots.map((s) => s.row.id)];
          return { graph, slots: collector.slots, width };
        };
        const single = stepOf(1);
        const block = stepOf(k.block);
        const params = new Map(flattenParams(tree));
        const fixed = Object.fromEntries([...params].map(([n, t]) => [`params.${n}`, t]));
        const seed = k.seed % 5;
        // a runner that keeps each run's outputs, to read the bucket rows
        const reference = new ReferenceRunner();
        let outputs: HostTensor[] = [];
        const spy: GraphRunner = { description: 'spy', run: async (g, f) => (outputs = await reference.run(g, f)) };
        const steps = new CachedSteps(spy, k.L, { ...fixed, seed: { shape: [], dtype: 'i32', data: Int32Array.of(seed) } });
        const bucketRow = 1 + single.slots.findIndex((s) => s.input.endsWith('.buckets'));

        // rotations [1, h, dK, H, nb/2] as the layer draws them: seed, and the salt of its layer path
        const nRot = k.h * k.d * k.H * (k.L / k.c);
        const rotations = Array.from({ length: nRot }, (_, i) => normalAt(seed, saltOf('LSHSelfAttention|rotations'), i));
        const xs = Array.from({ length: k.L }, (_, t) => Array.from(randomArray(k.seed * 31 + t, k.dModel)));
        const want = definition(k, xs, new Map([...params].map(([n, t]) => [n, t.data])), rotations);
        // runs of one position or of a block, as `blocks` says, until the window is full
        for (let t = 0, r = 0; t < k.L; r++) {
          const run = k.blocks[r % k.blocks.length]! && t + block.width <= k.L ? block : single;
          const x = xs.slice(t, t + run.width).flat();
          const got = await steps.run(run, { x: { shape: [1, run.width, k.dModel], dtype: 'f32', data: Float64Array.from(x) } });
          const buckets = Array.from(outputs[bucketRow]!.data);
          for (let i = 0; i < run.width; i++, t++) {
            Array.from(got.data.subarray(i * k.dModel, (i + 1) * k.dModel)).forEach((g, m) => expect(Math.abs(g - want.out[t]![m]!)).toBeLessThan(1e-9));
            // rows [1, h, H, width]: position i of every (head, round)
            expect(buckets.filter((_, n) => n % run.width === i)).toEqual(want.buckets.flatMap((rounds) => rounds.map((b) => b[t]!)));
          }
        }
      }),
      { numRuns: 20 },
    );
  });

  it('draws the rotations of the window model: the same seed input, salt and shape for every LSH layer', () => {
    const m = tinyModel({ architecture: 'reformer', attention: ['lsh', 'local', 'lsh'], seqLen: 16, chunkLen: 4, nLayers: 3, nHeads: 2, nHashes: 2, seed: 0 });
    const draws = (g: Graph) =>
      g.nodes.flatMap((n) => (n.op === 'random' ? [{ salt: n.salt, shape: n.shape, seed: g.node(n.seed).op === 'input' ? 'input' : 'other' }] : []));
    const window = draws(logitsGraph(buildModel(m.config), m.paramTree, 1, 16).graph);
    expect(window).toHaveLength(2);
    expect(draws(buildStepGraph(m.config, m.paramTree).graph)).toEqual(window);
  });
});
