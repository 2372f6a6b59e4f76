/**
 * The kernel-by-kernel executor (`pipeline: false`, the per-kernel profile of `onKernel`) with
 * kernels shared by source: one compiled gpu.js kernel serves call sites whose operands differ in
 * size (a scatter's updates [B, n, 1] and [B, n, 4] under one sorted index), so it must take each
 * size as it comes.
 */
import { describe, expect, it } from 'vitest';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { availableBackends, expectMatchesReference, values } from '../compile/support.ts';

/** Two scatters through one sorted index: n large enough for the multi-pass scatter, whose passes share sources. */
function sharedScatters(n: number, seed: number) {
  const g = new Graph();
  const feeds: Record<string, HostTensor> = {
    keys: hostTensor([2, n], Int32Array.from({ length: 2 * n }, (_, i) => (i * 7919 + seed * 31) % 97), 'i32'),
    u1: hostTensor([2, n, 1], values(2 * n, seed)),
    u2: hostTensor([2, n, 4], values(2 * n * 4, seed + 1)),
  };
  const perm = P.reshape(P.argsort(g.input('keys', [2, n], 'i32'), 1), [2, n, 1]);
  const s1 = P.scatterAdd(g.input('u1', [2, n, 1]), perm, 1, n);
  const s2 = P.scatterAdd(g.input('u2', [2, n, 4]), P.broadcastTo(perm, [2, n, 4]), 1, n);
  g.outputs = [s1.id, s2.id];
  return { g, feeds };
}

describe('kernel by kernel', () => {
  it('runs a kernel shared by source on operands of other sizes, as the reference computes, and reports each kernel', async () => {
    if (!(await availableBackends()).includes('webasm')) return expect.fail('webasm is not available here');
    const profiled: string[] = [];
    const runner = await CompiledRunner.create({ backend: 'webasm', pipeline: false, onKernel: (name) => profiled.push(name) });
    try {
      const { g, feeds } = sharedScatters(512, 3);
      const { compiled } = runner.compiled(g);
      // the case under test: two kernels of one source whose operands differ in size
      const bySource = new Map<string, string[]>();
      for (const k of compiled.kernels) {
        const sizes = k.params.map((p) => compiled.buffers.get(p)!.size).join(',');
        bySource.set(k.source, [...(bySource.get(k.source) ?? []), sizes]);
      }
      expect([...bySource.values()].some((sizes) => new Set(sizes).size > 1)).toBe(true);
      await expectMatchesReference(runner, g, feeds);
      expect(runner.stats.executor).toBe('kernel-by-kernel');
      expect(runner.stats.distinctKernels).toBeLessThan(compiled.kernels.length);
      // two runs (a poisoned one first), every kernel reported on each
      expect(profiled).toEqual([...compiled.kernels, ...compiled.kernels].map((k) => k.name));
    } finally {
      runner.destroy();
    }
  });
});
