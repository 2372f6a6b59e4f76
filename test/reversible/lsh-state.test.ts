import { describe, expect, it } from 'vitest';
import { InitKey, LayerNorm, Serial, Dense, Relu, spec } from '../../dsl/index.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { LSHSelfAttention } from '../../reformer/attention/layers.ts';
import { compileReversibleStack } from '../../compiler/reversible/compile.ts';
import { ordinaryBackprop } from '../../compiler/reversible/backprop.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { rng, uniform } from '../grad/check.ts';
import { expectClose } from '../support/numeric.ts';
import { worst } from './support.ts';

const runner = new ReferenceRunner();

const [B, L, d] = [1, 8, 4];
const shape = [B, L, d];
const r = rng(21);
const [x1, x2, dy1, dy2] = [0, 1, 2, 3].map(() => uniform(r, shape, -1, 1)) as [HostTensor, HostTensor, HostTensor, HostTensor];
/** Two reversible blocks of LSH attention (the given chunk schedule) and a feed-forward. */
function lshStack(schedule: { chunksPerGroup?: number; recomputeScores?: boolean } = {}) {
  const block = () =>
    Reversible(
      Serial(LayerNorm(), LSHSelfAttention({ nHeads: 1, dHead: 4, nHashes: 2, chunkLen: 2, causal: true, ...schedule })),
      Serial(LayerNorm(), Dense(6), Relu(), Dense(d)),
    );
  const stack = ReversibleStack([block(), block()]);
  const params = stack.init(new InitKey(4), [spec(shape), spec(shape)]);
  return { stack, params, c: compileReversibleStack(stack, params, { shape }) };
}

describe('reversible LSH attention: stored buckets', () => {
  const { stack, params, c } = lshStack();

  it('keeps each layer\'s buckets, and the backward with them equals ordinary backprop', async () => {
    const { saved } = await c.forward(runner, { x1, x2, seed: 1 });
    expect([...saved.states.keys()]).toEqual([
      'state:ReversibleStack[0].Reversible[0].Serial[1].LSHSelfAttention.buckets',
      'state:ReversibleStack[1].Reversible[0].Serial[1].LSHSelfAttention.buckets',
    ]);
    const back = await c.backward(runner, saved, [dy1, dy2]);
    const ref = await ordinaryBackprop(stack, params, spec(shape)).run(runner, [x1, x2], [dy1, dy2], 1);
    expectClose(back.x1.data, x1.data, 1e-9, 1e-9, 'X1');
    expectClose(back.dX1.data, ref.inputGrads[0]!.data, 1e-8, 1e-10, 'dX1');
    expectClose(back.dX2.data, ref.inputGrads[1]!.data, 1e-8, 1e-10, 'dX2');
    for (const [p, g] of ref.gradsByParamPath) expectClose(back.gradsByParamPath.get(p)!.data, g.data, 1e-8, 1e-10, p);
  });

  it('NEGATIVE: re-hashed buckets (from another seed) in the backward break reconstruction and gradients', async () => {
    const { saved } = await c.forward(runner, { x1, x2, seed: 1 });
    const other = (await c.forward(runner, { x1, x2, seed: 2 })).saved;
    const key = [...saved.states.keys()][1]!;
    expect(Array.from(other.states.get(key)!.data)).not.toEqual(Array.from(saved.states.get(key)!.data));
    const rehashed = { ...saved, states: other.states };
    const bad = await c.backward(runner, rehashed, [dy1, dy2]);
    const ref = await ordinaryBackprop(stack, params, spec(shape)).run(runner, [x1, x2], [dy1, dy2], 1);
    expect(worst([[bad.x1, x1]], 1e-5, 1e-5)).toBeGreaterThan(10);
    expect(worst([...ref.gradsByParamPath].map(([p, g]) => [bad.gradsByParamPath.get(p)!, g] as const), 1e-4, 1e-6)).toBeGreaterThan(10);
  });
});

describe('reversible LSH attention under the chunk schedule', () => {
  it('recomputed window groups inside reversible blocks: the backward equals ordinary backprop of the same stack', async () => {
    const { stack, params, c } = lshStack({ chunksPerGroup: 1, recomputeScores: true });
    const { saved } = await c.forward(runner, { x1, x2, seed: 3 });
    const back = await c.backward(runner, saved, [dy1, dy2]);
    const ref = await ordinaryBackprop(stack, params, spec(shape)).run(runner, [x1, x2], [dy1, dy2], 3);
    expectClose(back.dX1.data, ref.inputGrads[0]!.data, 1e-8, 1e-10, 'dX1');
    expectClose(back.dX2.data, ref.inputGrads[1]!.data, 1e-8, 1e-10, 'dX2');
    for (const [p, g] of ref.gradsByParamPath) expectClose(back.gradsByParamPath.get(p)!.data, g.data, 1e-8, 1e-10, p);
    // and the same values as the one-group stack (the schedule changes memory, not results)
    const one = lshStack();
    const plain = await one.c.backward(runner, (await one.c.forward(runner, { x1, x2, seed: 3 })).saved, [dy1, dy2]);
    expectClose(back.dX1.data, plain.dX1.data, 1e-9, 1e-12, 'dX1 vs one group');
  });
});
