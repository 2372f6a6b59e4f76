/**
 * Random two-stream models for the memory-schedule tests: `Dup → ReversibleStack → Concat`, blocks
 * with random F and G, optionally LSH attention (seeded dropout, stored buckets) in F and a
 * chunked feed-forward in G. Both gradient graphs of one trace, scheduled and plain backprop.
 */
import fc from 'fast-check';
import { Dense, Dup, Fn, InitKey, LayerNorm, Relu, Serial, flattenParams, ops, spec, trace, type Layer, type Params } from '../../dsl/index.ts';
import { Chunked } from '../../dsl/chunked.ts';
import { Reversible, ReversibleStack, type ReversibleBlock } from '../../dsl/reversible.ts';
import { vjp, type VjpGraph } from '../../compiler/grad/grad.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { LSHSelfAttention } from '../../reformer/attention/layers.ts';
import { rng, uniform } from '../grad/check.ts';
import { arbResidual, buildResidual, type ResidualSpec } from './support.ts';

export interface BlockSpec {
  readonly f: ResidualSpec;
  readonly g: ResidualSpec;
  /** F = LayerNorm → LSH attention (2 rounds, chunks of 2, attention dropout). */
  readonly lsh: boolean;
  /** G = Chunked(LayerNorm → Dense → Relu → Dense) along the sequence, chunks of 2. */
  readonly chunked: boolean;
}

export const arbBlock: fc.Arbitrary<BlockSpec> = fc.record({ f: arbResidual, g: arbResidual, lsh: fc.boolean(), chunked: fc.boolean() });

export const arbStack = (maxDepth: number) =>
  fc.record({
    blocks: fc.array(arbBlock, { minLength: 1, maxLength: maxDepth }),
    d: fc.integer({ min: 2, max: 4 }),
    seed: fc.integer({ min: 0, max: 1_000_000 }),
  });

export const SEQ = 4;

function block(s: BlockSpec, d: number): ReversibleBlock {
  const f = s.lsh
    ? Serial(LayerNorm(), LSHSelfAttention({ nHeads: 1, dHead: d, nHashes: 2, chunkLen: 2, causal: true, dropout: 0.2 }))
    : buildResidual(s.f, d);
  const g = s.chunked ? Chunked(Serial(LayerNorm(), Dense(d + 2), Relu(), Dense(d)), { axis: 1, size: 2 }) : buildResidual(s.g, d);
  return Reversible(f, g);
}

/** `[B=1, SEQ, d] → [1, SEQ, 2d]` through a reversible stack. */
export function twoStreamModel(blocks: readonly BlockSpec[], d: number): Layer {
  return Serial(Dup(), ReversibleStack(blocks.map((b) => block(b, d))), Fn('Concat', (a, b) => ops.concat([a!, b!], -1), 2));
}

export interface Differentiated {
  readonly scheduled: VjpGraph;
  readonly plain: VjpGraph;
  readonly forwardCount: number;
  readonly feeds: Record<string, HostTensor>;
  readonly params: Params;
}

/** Traces `layer` in train mode and differentiates it w.r.t. every parameter and the input, both ways. */
export function differentiate(layer: Layer, d: number, seed: number): Differentiated {
  const shape = [1, SEQ, d];
  const params = layer.init(new InitKey(seed), [spec(shape)]);
  const t = trace(layer, params, [{ shape }], { mode: 'train' });
  const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data').map((n) => n.id);
  const outs = t.outputs.map((o) => o.id);
  const r = rng(seed + 1);
  const feeds: Record<string, HostTensor> = { input0: uniform(r, shape, -1, 1), seed: hostTensor([], [seed % 65536], 'i32') };
  for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = p;
  t.outputs.forEach((o, i) => (feeds[`cotangent:${i}`] = uniform(r, o.shape, -1, 1)));
  return {
    scheduled: vjp(t.graph, outs, wrt),
    plain: vjp(t.graph, outs, wrt, { memorySchedules: false }),
    forwardCount: t.graph.nodes.length,
    feeds,
    params,
  };
}

/** Feeds restricted to the inputs `v` declares. */
export const feedsFor = (v: VjpGraph, feeds: Record<string, HostTensor>) =>
  Object.fromEntries(Object.entries(feeds).filter(([n]) => v.graph.inputNodes().some((i) => i.name === n)));
