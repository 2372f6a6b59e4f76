/**
 * `prepareReversibleCheck` / `verifyReversible` (reformer/verify.ts) from the caller's side: the
 * mode reaches the trace (train: dropout drawn and replayed; eval: no draws), the two gradient
 * graphs are the scheduled and the plain one, and a broken schedule is reported, not thrown.
 */
import { describe, expect, it } from 'vitest';
import { Dense, Dropout, Dup, Fn, InitKey, LayerNorm, Relu, Serial, ops, spec, type Layer, type Params } from '../../dsl/index.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { checkReversibleCase, prepareReversibleCheck, verifyReversible } from '../../reformer/verify.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';

const d = 3;

function stackWithDropout(): { model: Layer; params: Params } {
  const block = () => Reversible(Serial(LayerNorm(), Dense(d), Dropout(0.4)), Serial(Dense(4), Relu(), Dense(d), Dropout(0.4)));
  const model = Serial(Dup(), ReversibleStack([block(), block()]), Fn('Concat', (a, b) => ops.concat([a!, b!], -1), 2));
  return { model, params: model.init(new InitKey(8), [spec([2, d])]) };
}
const inputs = [{ shape: [2, d] }];
/** Dropout masks drawn by the traced forward (the scheduled backward draws each again in its replay). */
const draws = (c: ReturnType<typeof prepareReversibleCheck>) => c.scheduled.graph.nodes.slice(0, c.forwardCount).filter((n) => n.op === 'random').length;

describe('verifyReversible: mode', () => {
  it("traces in train mode by default (dropout masks drawn), and in eval mode when asked (none)", () => {
    const { model, params } = stackWithDropout();
    const byDefault = prepareReversibleCheck(model, params, { inputs });
    expect(draws(byDefault)).toBe(4);
    expect(draws(prepareReversibleCheck(model, params, { inputs, mode: 'train' }))).toBe(4);
    expect(draws(prepareReversibleCheck(model, params, { inputs, mode: 'eval' }))).toBe(0);
    expect(byDefault.scheduled.graph.inputNodes().some((n) => n.name === 'seed')).toBe(true);
  });

  it('passes in both modes; the scheduled graph rebuilds block inputs, the plain one does not', async () => {
    const { model, params } = stackWithDropout();
    for (const mode of ['train', 'eval'] as const) {
      const check = prepareReversibleCheck(model, params, { inputs, mode });
      expect(check.blocks).toBe(2);
      expect(check.blockOutputs).toHaveLength(4);
      expect(check.scheduled.rebuilt.size).toBe(3);
      expect(check.plain.rebuilt.size).toBe(0);
      expect(check.dataInputs).toEqual([{ name: 'input0', shape: [2, d], dtype: 'f32' }]);
      expect([...check.paramFeeds.keys()].every((k) => k.startsWith('params.'))).toBe(true);
      const report = await verifyReversible(model, params, { inputs, mode, numRuns: 3, seed: 4 }, check);
      expect(report.passed, report.worst).toBe(true);
      expect(report.runs).toBe(3);
      expect(report.worstRatio).toBeGreaterThan(0);
      expect(report.worstRatio).toBeLessThanOrEqual(1e-3);
    }
  });

  it('reports a broken inverse as a failed property with a counterexample, without throwing', async () => {
    const { model, params } = stackWithDropout();
    const check = prepareReversibleCheck(model, params, { inputs, mode: 'eval' });
    const g = check.scheduled.graph;
    const x2 = check.scheduled.rebuilt.get(g.reversibleRegions[1]!.x2)!;
    const node = g.nodes[x2]!;
    g.nodes[x2] = { ...node, fn: 'add' } as typeof node;
    const report = await verifyReversible(model, params, { inputs, mode: 'eval', numRuns: 5, seed: 1 }, check);
    expect(report.passed).toBe(false);
    expect(report.counterexample).not.toBeNull();
    expect(report.counterexample!.failure).toMatch(/ratio \d/);
    expect(report.worstRatio).toBeGreaterThan(1);
    const r = await checkReversibleCase(check, { dataSeed: 1, stepSeed: 2, scale: 1 }, new ReferenceRunner(), { inputs });
    expect(r.where).toMatch(/rebuilt input|gradient of/);
  });

  it('names the leak when the backward reads a forward value inside a block', async () => {
    const { model, params } = stackWithDropout();
    const check = prepareReversibleCheck(model, params, { inputs, mode: 'eval' });
    const leaky = { ...check, scheduled: check.plain };
    const r = await checkReversibleCase(leaky, { dataSeed: 1, stepSeed: 2, scale: 1 }, new ReferenceRunner(), { inputs });
    expect(r.ratio).toBe(Infinity);
    expect(r.where).toMatch(/^the backward reads forward value %\d+ \(.+\) (inside|at the inputs of) Serial\[1\]\.ReversibleStack\[\d\]\.Reversible$/);
  });
});
