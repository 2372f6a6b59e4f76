/**
 * The compiled runner's memory plan (runtime/memory-plan.ts): host-drawn random buffers live from
 * their first reading kernel to their last, so draws with disjoint readers never count together;
 * inputs and constants live for the whole run.
 */
import { describe, expect, it } from 'vitest';
import { compile } from '../../compiler/codegen/compile.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { matmul, mul, relu } from '../../dsl/ops.ts';
import { planMemory } from '../../runtime/memory-plan.ts';

const ROW = 64 * 4;

/**
 * Eight dense steps on a [1, 64] row; `masks(seed)` gives the draws multiplied into each step and
 * the extra outputs. Returns the compiled graph, its memory plan and the draws' buffer keys.
 */
function maskedChain(masks: (seed: Tensor) => { steps: ReadonlyMap<number, Tensor>; extraOutputs?: readonly Tensor[] }) {
  const g = new Graph();
  let t = g.input('x', [1, 64]);
  const { steps, extraOutputs = [] } = masks(g.input('seed', [], 'i32', 'seed'));
  for (let i = 0; i < 8; i++) {
    const mask = steps.get(i);
    t = matmul(mask === undefined ? relu(t) : mul(relu(t), mask), g.input(`w${i}`, [64, 64]));
  }
  g.outputs = [t.id, ...extraOutputs.map((o) => o.id)];
  const compiled = compile(g);
  return { compiled, mem: planMemory(compiled) };
}

describe('memory plan: random buffers', () => {
  it('are drawn before their first reader and freed after their last; disjoint draws never add up', () => {
    let early!: Tensor;
    let late!: Tensor;
    const { compiled, mem } = maskedChain((seed) => {
      early = P.random('uniform', seed, 1, [1, 64]);
      late = P.random('uniform', seed, 2, [1, 64]);
      return { steps: new Map([[1, early], [2, early], [6, late]]) };
    });
    const readers = (t: Tensor) => compiled.kernels.flatMap((k, i) => (k.params.includes(`%${t.id}`) ? [i] : []));
    for (const t of [early, late]) {
      const at = readers(t);
      expect(at.length).toBeGreaterThan(0);
      mem.drawBefore.forEach((keys, i) => expect(keys.includes(`%${t.id}`), `draw %${t.id} before kernel ${i}`).toBe(i === at[0]));
      mem.freeAfter.forEach((keys, i) => expect(keys.includes(`%${t.id}`), `free %${t.id} after kernel ${i}`).toBe(i === at[at.length - 1]));
    }
    expect(readers(early).at(-1)!).toBeLessThan(readers(late)[0]!);
    expect(mem.randomBytes).toBe(2 * ROW);
    // x and the eight weights; the seed is one element
    expect(mem.hostBytes).toBe(ROW + 8 * 64 * ROW + 4);
    // two slots of a row each, and one mask at a time
    expect(mem.slots).toHaveLength(2);
    expect(mem.peakBytes).toBe(mem.hostBytes + 2 * ROW + ROW);
    expect(mem.peakKernel).toBe(readers(early)[0]);
  });

  it('a wanted draw is never freed; one no kernel reads is drawn after the last kernel', () => {
    let read!: Tensor;
    let unread!: Tensor;
    const { compiled, mem } = maskedChain((seed) => {
      read = P.random('normal', seed, 3, [1, 64]);
      unread = P.random('uniform', seed, 4, [2, 64]);
      return { steps: new Map([[0, read]]), extraOutputs: [read, unread] };
    });
    expect(mem.drawBefore).toHaveLength(compiled.kernels.length + 1);
    expect(mem.drawBefore[compiled.kernels.length]).toEqual([`%${unread.id}`]);
    expect(mem.drawBefore.flat().filter((k) => k === `%${read.id}`)).toHaveLength(1);
    expect(mem.freeAfter.flat()).not.toContain(`%${read.id}`);
    expect(mem.freeAfter.flat()).not.toContain(`%${unread.id}`);
    // the peak is at the end: both draws beside the chain's output (its other slot is free)
    expect(mem.peakBytes).toBe(mem.hostBytes + ROW + ROW + 2 * ROW);
    expect(mem.peakKernel).toBe(compiled.kernels.length);
  });
});
