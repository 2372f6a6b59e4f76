import { describe, expect, it } from 'vitest';
import { Dense, InitKey, LayerNorm, Relu, Serial, noParams, ops, spec, type Layer } from '../../dsl/index.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { verifyReversible } from '../../reformer/verify.ts';
import { buildResidual } from './support.ts';

/** A user bug: the layer's random stream depends on how many times it was traced, so a replay draws new noise. */
function ImpureNoise(): Layer {
  let calls = 0;
  return {
    name: 'ImpureNoise',
    nIn: 1,
    nOut: 1,
    init: () => noParams,
    apply: (_p, [x], ctx) => [ops.add(x!, ops.mul(ops.randomNormal(ctx.seed(), ctx.salt(String(calls++)), x!.shape), 0.1))],
  };
}

describe('verifyReversible', () => {
  it('passes on a well-formed stack with dropout', async () => {
    const d = 3;
    const mk = () =>
      Reversible(buildResidual({ norm: true, hidden: 4, act: 'gelu', dropout: true }, d), Serial(LayerNorm(), Dense(5), Relu(), Dense(d)));
    const stack = ReversibleStack([mk(), mk(), mk()]);
    const params = stack.init(new InitKey(2), [spec([2, d]), spec([2, d])]);
    const report = await verifyReversible(stack, params, { shape: [2, d], numRuns: 8, seed: 1 });
    expect(report.passed).toBe(true);
    expect(report.counterexample).toBeNull();
    expect(report.runs).toBe(8);
    expect(report.maxError).toBeLessThan(1e-9);
  });

  it('finds and shrinks a counterexample when a layer does not replay its randomness', async () => {
    const block = Reversible(Serial(Dense(3), ImpureNoise()), Dense(3));
    const params = block.init(new InitKey(2), [spec([2, 3]), spec([2, 3])]);
    const report = await verifyReversible(block, params, { shape: [2, 3], numRuns: 5, seed: 1 });
    expect(report.passed).toBe(false);
    expect(report.counterexample?.failure).toMatch(/inverse X1|dX|d\/d/);
    expect(report.maxError).toBeGreaterThan(1e-3);
  });

  it('rejects layers that are not reversible', async () => {
    await expect(verifyReversible(Dense(3), noParams, { shape: [2, 3] })).rejects.toThrow(/Dense is neither a Reversible block nor a ReversibleStack/);
  });
});
