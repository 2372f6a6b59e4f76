import { describe, expect, it } from 'vitest';
import { Dense, InitKey, LayerNorm, Relu, Serial, noParams, spec } from '../../dsl/index.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { defaultRunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { checkReversibleCase, prepareReversibleCheck, verifyReversible } from '../../reformer/verify.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { availableBackends } from '../compile/support.ts';
import { buildResidual } from './support.ts';

describe('verifyReversible', () => {
  it('passes on a well-formed stack with dropout (f64 reference)', async () => {
    const d = 3;
    const mk = () => Reversible(buildResidual({ norm: true, hidden: 4, act: 'gelu', dropout: true }, d), Serial(LayerNorm(), Dense(5), Relu(), Dense(d)));
    const stack = ReversibleStack([mk(), mk(), mk()]);
    const params = stack.init(new InitKey(2), [spec([2, d]), spec([2, d])]);
    const report = await verifyReversible(stack, params, { inputs: [{ shape: [2, d] }, { shape: [2, d] }], numRuns: 8, seed: 1 });
    expect(report.passed).toBe(true);
    expect(report.counterexample).toBeNull();
    expect(report.runs).toBe(8);
    expect(report.blocks).toBe(3);
    expect(report.worstRatio).toBeLessThan(1e-3);
  });

  it('the stock ReformerLM passes on every compiled backend here, with float32 bounds', async () => {
    const cfg = { ...defaultRunConfig.model, seqLen: 32, axialShape: [4, 8] as const, chunkLen: 8, ffChunkLen: 16 };
    const model = buildModel(cfg);
    const params = model.init(new InitKey(0), [spec([1, 32], 'i32')]);
    for (const backend of await availableBackends()) {
      const runner = await CompiledRunner.create({ backend });
      const report = await verifyReversible(model, params, { inputs: [{ shape: [1, 32], dtype: 'i32' }], intHigh: cfg.vocabSize, numRuns: 3, seed: 2, runner });
      expect(report.passed, `${backend}: ${report.worst}`).toBe(true);
      expect(report.worstRatio).toBeGreaterThan(0);
    }
  });

  it('LayerNorm-first branches at input scale 1e-3: the float64 run measures the ill-conditioned rebuild, and float32 still passes', async () => {
    const d = 8;
    const branch = () => Serial(LayerNorm(), Dense(2 * d), Relu(), Dense(d));
    const stack = ReversibleStack([Reversible(branch(), branch()), Reversible(branch(), branch()), Reversible(branch(), branch())]);
    const params = stack.init(new InitKey(1), [spec([4, d]), spec([4, d])]);
    const options = { inputs: [{ shape: [4, d] }, { shape: [4, d] }] };
    const check = prepareReversibleCheck(stack, params, options);
    for (const backend of await availableBackends()) {
      const runner = await CompiledRunner.create({ backend });
      const tiny = await checkReversibleCase(check, { dataSeed: 0, stepSeed: 0, scale: 1e-3 }, runner, options);
      const unit = await checkReversibleCase(check, { dataSeed: 0, stepSeed: 0, scale: 1 }, runner, options);
      expect(tiny.ratio, `${backend}: ${tiny.where}`).toBeLessThanOrEqual(1);
      expect(unit.ratio, `${backend}: ${unit.where}`).toBeLessThanOrEqual(1);
      // Rounding is amplified far more by the rebuild at the tiny scale than at the unit one.
      expect(tiny.amplification).toBeGreaterThan(100 * unit.amplification);
    }
  });

  it('the planted example examples/planted/leaky-block.ts fails with a counterexample naming the value its F reads', async () => {
    const { model, inputs } = await import('../../examples/planted/leaky-block.ts');
    const params = model.init(new InitKey(0), inputs.map((i) => spec(i.shape)));
    const report = await verifyReversible(model, params, { inputs, numRuns: 3, seed: 1 });
    expect(report.passed).toBe(false);
    expect(report.counterexample?.failure).toMatch(/the backward reads forward value %\d+ \(Serial\[2\]\.Double\) at the inputs of LeakyBlock/);
  });

  it('rejects layers that hold no reversible block', async () => {
    await expect(verifyReversible(Dense(3), Dense(3).init(new InitKey(0), [spec([2, 3])]), { inputs: [{ shape: [2, 3] }] })).rejects.toThrow(/Dense holds no Reversible block/);
    await expect(verifyReversible(Relu(), noParams, { inputs: [{ shape: [2, 3] }] })).rejects.toThrow(/no Reversible block/);
  });
});
