/**
 * The webgpu read bound (planKernels' maxReads): WebGPU guarantees 8 storage buffers per shader
 * stage and gpu.js requests no more, so every kernel compiled for webgpu reads at most 7 buffers.
 * Checked in Node on the training step that exceeded it (10 reads); that the bounded plan computes
 * the same values is checked on webgpu in the page (backends.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { compile } from '../../compiler/codegen/compile.ts';
import { maxKernelReads, WEBGPU_MAX_KERNEL_READS } from '../../runtime/backend.ts';
import { trainStepCase } from './cases.ts';

describe('kernel read bound for webgpu', () => {
  it('only webgpu is bounded, at 7 reads', () => {
    expect(maxKernelReads('webgpu')).toBe(7);
    for (const b of ['webgl2', 'webgl', 'headlessgl', 'webasm', 'cpu'] as const) expect(maxKernelReads(b)).toBeUndefined();
  });

  it("splits the ReformerLM training step's wide fusions so no kernel reads more than 7 buffers", () => {
    const c = trainStepCase();
    const graph = c.objective.graph;
    const free = compile(graph, graph.outputs);
    const widest = Math.max(...free.kernels.map((k) => k.params.length));
    expect(widest).toBeGreaterThan(WEBGPU_MAX_KERNEL_READS); // the case this bound exists for
    const bounded = compile(graph, graph.outputs, { maxReads: WEBGPU_MAX_KERNEL_READS });
    expect(Math.max(...bounded.kernels.map((k) => k.params.length))).toBeLessThanOrEqual(WEBGPU_MAX_KERNEL_READS);
    expect(bounded.kernels.length).toBeGreaterThan(free.kernels.length);
  });
});
