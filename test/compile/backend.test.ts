import { describe, expect, it } from 'vitest';
import { assertRanOn, BackendUnavailableError, openBackend, probeBackend } from '../../runtime/backend.ts';
import { createRunner } from '../../runtime/index.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import { hostTensor } from '../../compiler/ir/host-tensor.ts';
import { exp } from '../../dsl/ops.ts';

describe('backend selection', () => {
  it('an explicitly requested backend that cannot run throws, naming what is missing', async () => {
    for (const name of ['webgpu', 'headlessgl'] as const) {
      const gap = await probeBackend(name);
      if (gap === undefined) {
        console.log(`[backend test] ${name} works here; its unavailable-error path is not exercised`);
        continue;
      }
      await expect(openBackend(name)).rejects.toThrow(BackendUnavailableError);
      await expect(openBackend(name)).rejects.toThrow(name === 'webgpu' ? /dawn\.node|adapter/ : /`gl` package|display/);
    }
  });

  it('auto picks the first backend whose probe kernel runs, and says which', async () => {
    const b = await openBackend('auto');
    try {
      for (const earlier of ['webgpu', 'headlessgl', 'webasm', 'cpu'] as const) {
        if (earlier === b.name) break;
        expect(await probeBackend(earlier)).toBeDefined();
      }
    } finally {
      b.destroy();
    }
    const r = await createRunner();
    const g = new Graph();
    g.outputs = [exp(g.input('x', [3])).id];
    await r.run(g, { x: hostTensor([3], [1, 2, 3]) });
    expect(r.description).toMatch(new RegExp(`^gpu\\.js ${r.backend.name} \\(`));
    r.destroy();
  });

  it('a kernel that fell back or ran elsewhere is an error, not a silent degradation', () => {
    expect(() => assertRanOn('webasm', 'kernel k0', 'cpu', 'graphical mode')).toThrow(/fell back from webasm: graphical mode/);
    expect(() => assertRanOn('webasm', 'kernel k0', 'cpu', null)).toThrow(/ran on cpu, not the requested webasm/);
    expect(() => assertRanOn('cpu', 'kernel k0', 'cpu', null)).not.toThrow();
  });
});
