/** Supplied LSH rotations: HF's batch-shared layout, and one tensor per LSH layer at the model level. */
import { describe, expect, it } from 'vitest';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor } from '../../compiler/ir/host-tensor.ts';
import { flattenParams, InitKey, spec, trace } from '../../dsl/layer.ts';
import { LSHSelfAttention } from '../../reformer/attention/layers.ts';
import { validateModelConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';

const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(1.3 * i + k) + Math.cos(0.7 * i * k));

describe('LSHSelfAttention rotations', () => {
  const B = 3, L = 8, d = 6, h = 2, dK = 3, H = 2, half = 2;
  const x = values(B * L * d, 1);
  const run = (rotations: Float32Array) => {
    const layer = LSHSelfAttention({ nHeads: h, dHead: dK, nHashes: H, nBuckets: 2 * half, chunkLen: 4, causal: true, rotations });
    const params = layer.init(new InitKey(0), [spec([B, L, d])]);
    const t = trace(layer, params, [{ shape: [B, L, d] }]);
    const feeds = { ...Object.fromEntries(flattenParams(params).map(([p, v]) => [`params.${p}`, v])), input0: hostTensor([B, L, d], x) };
    const buckets = [...t.states.values()][0]!;
    const [out, b] = evaluate(t.graph, feeds, [t.graph.outputs[0]!, buckets.id]);
    return { out: Array.from(out!.data), buckets: Array.from(b!.data) };
  };

  it("[h, dK, H, nb/2] (HF's layout) is shared by every example: equal to the per-example layout tiled over the batch", () => {
    const shared = values(h * dK * H * half, 2);
    const tiled = new Float32Array(B * shared.length);
    for (let b = 0; b < B; b++) tiled.set(shared, b * shared.length);
    const a = run(shared);
    const b = run(tiled);
    expect(a.buckets).toEqual(b.buckets);
    expect(a.out).toEqual(b.out);
    // and differs from per-example rotations that are not all the same
    expect(run(values(tiled.length, 5)).buckets).not.toEqual(a.buckets);
  });
});

describe('buildModel lshRotations', () => {
  const cfg = validateModelConfig({ seqLen: 16, dModel: 8, dFF: 8, nHeads: 2, dHead: 4, nLayers: 3, attention: ['lsh', 'local'], chunkLen: 4, ffChunkLen: 0, axialShape: [4, 4], axialDims: [4, 4] });

  it('needs one rotation tensor per LSH layer, in layer order', () => {
    const one = [values(2 * 4 * 2 * 4, 0)];
    expect(() => buildModel(cfg, { lshRotations: one })).toThrow(/option 'lshRotations' has 1 entries, but LSH layer 1 needs one/);
    expect(() => buildModel(cfg, { lshRotations: [...one, values(2 * 4 * 2 * 4, 1)] })).not.toThrow();
  });
});
