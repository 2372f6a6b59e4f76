/**
 * The chunks of a Chunked layer share compiled kernels: where a chunk's slice (and its gradient's
 * pad) cuts the sequence reaches the kernel as an argument, not as source text, so the distinct
 * kernels of a chunked feed-forward's training graph do not grow with the number of chunks; and
 * those shared kernels, each fed its own cut, compute the reference's gradients in every executor.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grad } from '../../compiler/grad/grad.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { Dense, InitKey, LayerNorm, Relu, Serial, flattenParams, spec, trace } from '../../dsl/index.ts';
import { Chunked } from '../../dsl/chunked.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { rng, weightedLoss } from '../grad/check.ts';
import { availableBackends, expectMatchesReference, openRunners, values } from './support.ts';

const [B, L, D, DFF] = [2, 32, 6, 10];

/** Loss and the gradients of every parameter and of the input, for a feed-forward in `chunks` chunks. */
function chunkedTraining(chunks: number) {
  const ff = Serial(LayerNorm(), Dense(DFF), Relu(), Dense(D));
  const layer = Chunked(ff, { axis: 1, size: L / chunks });
  const params = layer.init(new InitKey(1), [spec([B, L, D])]);
  const t = trace(layer, params, [{ shape: [B, L, D] }], { mode: 'train' });
  const loss = weightedLoss(t.outputs[0]!, rng(2));
  const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.role === 'data');
  const { graph } = grad(t.graph, loss.id, wrt.map((n) => n.id));
  const feeds: Record<string, HostTensor> = { input0: hostTensor([B, L, D], values(B * L * D, 7)) };
  for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = hostTensor(p.shape, p.data);
  return { graph, feeds };
}

let runners: CompiledRunner[] = [];
beforeAll(async () => {
  runners = await openRunners();
  // kernel by kernel, each shared kernel called with its own cut
  runners.push(await CompiledRunner.create({ backend: (await availableBackends())[0]!, pipeline: false }));
});
afterAll(() => runners.forEach((r) => r.destroy()));

describe('Chunked layers compiled', () => {
  it('the distinct kernels of a chunked feed-forward training graph are the same for 2, 4, 8 and 16 chunks', async () => {
    const backend = (await availableBackends())[0]!;
    const counts: Array<{ chunks: number; distinct: number; launched: number }> = [];
    for (const chunks of [2, 4, 8, 16]) {
      // a fresh runner per graph: distinctKernels counts what its kernel cache holds
      const runner = await CompiledRunner.create({ backend });
      const { graph } = chunkedTraining(chunks);
      const { compiled } = runner.compiled(graph);
      counts.push({ chunks, distinct: runner.stats.distinctKernels, launched: compiled.kernels.length });
      runner.destroy();
    }
    expect(new Set(counts.map((c) => c.distinct)).size, JSON.stringify(counts)).toBe(1);
    // while the kernels launched grow with the chunks
    counts.slice(1).forEach((c, i) => expect(c.launched).toBeGreaterThan(2 * counts[i]!.launched - 10));
  });

  it('the gradients of a feed-forward in 4 chunks equal the reference in every executor', async () => {
    const { graph, feeds } = chunkedTraining(4);
    for (const r of runners) await expectMatchesReference(r, graph, feeds);
  });
});
