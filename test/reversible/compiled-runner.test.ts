/**
 * The same reversible and chunked properties through the compiled gpu.js runner (float32), with
 * float32 tolerances: the schedules are runner-agnostic.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { Dense, Gelu, InitKey, LayerNorm, Serial, spec } from '../../dsl/index.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';
import { Chunked } from '../../dsl/chunked.ts';
import { compileReversibleStack } from '../../compiler/reversible/compile.ts';
import { compileChunked } from '../../compiler/chunk/compile.ts';
import { ordinaryBackprop } from '../../compiler/reversible/backprop.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { rng, uniform } from '../grad/check.ts';
import { expectClose } from '../support/numeric.ts';
import { arbResidual, buildResidual } from './support.ts';

let runner: CompiledRunner;
beforeAll(async () => {
  runner = await CompiledRunner.create();
});

describe('reversible and chunked schedules on the compiled runner (float32)', () => {
  it('inverse within rtol 1e-5 and backward equal to backprop within rtol 1e-4, up to 12 blocks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          blocks: fc.array(fc.tuple(arbResidual, arbResidual), { minLength: 1, maxLength: 12 }),
          seed: fc.integer({ min: 0, max: 100_000 }),
        }),
        async ({ blocks, seed }) => {
          const [L, d] = [3, 4];
          const stack = ReversibleStack(blocks.map(([f, g]) => Reversible(buildResidual(f, d), buildResidual(g, d))));
          const params = stack.init(new InitKey(seed), [spec([L, d]), spec([L, d])]);
          const c = compileReversibleStack(stack, params, { shape: [L, d] });
          const r = rng(seed);
          const [x1, x2, dy1, dy2] = [0, 1, 2, 3].map(() => uniform(r, [L, d], -1, 1)) as [HostTensor, HostTensor, HostTensor, HostTensor];
          const { saved } = await c.forward(runner, { x1, x2, seed });
          const [rx1, rx2] = await c.reverse(runner, saved);
          expectClose(rx1.data, x1.data, 1e-5, 1e-5, 'X1');
          expectClose(rx2.data, x2.data, 1e-5, 1e-5, 'X2');
          const back = await c.backward(runner, saved, [dy1, dy2]);
          const ref = await ordinaryBackprop(stack, params, spec([L, d])).run(runner, [x1, x2], [dy1, dy2], seed);
          expectClose(back.dX1.data, ref.inputGrads[0]!.data, 1e-4, 1e-5, 'dX1');
          expectClose(back.dX2.data, ref.inputGrads[1]!.data, 1e-4, 1e-5, 'dX2');
          for (const [p, g] of ref.gradsByParamPath) expectClose(back.gradsByParamPath.get(p)!.data, g.data, 1e-4, 1e-5, p);
        },
      ),
      { numRuns: 4, seed: 5 },
    );
    expect(runner.description).toMatch(/^gpu\.js /);
  });

  it('chunked feed-forward equals unchunked, forward and gradients', async () => {
    const [L, d] = [8, 4];
    const ff = Serial(LayerNorm(), Dense(6), Gelu(), Dense(d));
    const params = ff.init(new InitKey(3), [spec([L, d])]);
    const r = rng(8);
    const x = uniform(r, [L, d], -1, 1);
    const dy = uniform(r, [L, d], -1, 1);
    const ref = await ordinaryBackprop(ff, params, spec([L, d])).run(runner, [x], [dy]);
    for (const size of [1, 2, 4, 8]) {
      const c = compileChunked(Chunked(ff, { axis: 0, size }), params, { shape: [L, d] });
      expectClose((await c.forward(runner, x)).data, ref.outputs[0]!.data, 1e-5, 1e-6, `y (size ${size})`);
      const back = await c.backward(runner, x, dy);
      expectClose(back.dx.data, ref.inputGrads[0]!.data, 1e-4, 1e-5, `dx (size ${size})`);
      for (const [p, g] of ref.gradsByParamPath) expectClose(back.gradsByParamPath.get(p)!.data, g.data, 1e-4, 1e-5, `${p} (size ${size})`);
    }
  });
});
