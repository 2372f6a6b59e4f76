/**
 * The step graph compiled (the default runner, gpu.js webasm on a CPU machine) against the float64
 * reference: the logits of every position of a window, for a model with local, LSH and full layers,
 * and the bytes greedy decoding picks.
 */
import { describe, expect, it } from 'vitest';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { defaultRunner } from '../../reformer/attention/api.ts';
import { IncrementalDecoder } from '../../reformer/decode/decoder.ts';
import { generate, inputAt } from '../../reformer/generate.ts';
import { tinyModel } from './support.ts';

describe('incremental decoding on the compiled runner', () => {
  it('matches the float64 reference at every position (local, LSH and full layers)', async () => {
    const compiled = await defaultRunner();
    for (const architecture of ['reformer', 'transformer'] as const) {
      const m = tinyModel({ architecture, attention: ['local', 'lsh', 'full'], seqLen: 16, chunkLen: 4, nLayers: 3, nHeads: 2, seed: 11 });
      const window = Array.from({ length: 16 }, (_, i) => 1 + ((5 * i + 3) % 11));
      const reference = new IncrementalDecoder(new ReferenceRunner(), m.config, m.params, m.paramTree);
      const fast = new IncrementalDecoder(compiled, m.config, m.params, m.paramTree);
      for (let p = 0; p < 16; p++) {
        const want = await reference.step(inputAt(window, 0, p));
        const got = await fast.step(inputAt(window, 0, p));
        expect(got).toHaveLength(want.length);
        want.forEach((x, i) => expect(Math.abs(got[i]! - x)).toBeLessThan(1e-4 * Math.max(1, Math.abs(x))));
      }
      const options = { temperature: 0, topK: 0, seed: 0, length: 24 };
      expect(await generate(compiled, m.config, m.params, m.paramTree, [2, 7], options)).toEqual(
        await generate(new ReferenceRunner(), m.config, m.params, m.paramTree, [2, 7], options),
      );
    }
  });
});
