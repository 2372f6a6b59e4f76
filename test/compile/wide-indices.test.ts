/**
 * Tensors beyond 2^24 elements: float32 index arithmetic would round there, so such kernels are
 * written with exact i32 indices. Checked at a real size (2^24 + 8200 elements) on webasm, where
 * a rounded index would read a neighbouring element; values are distinct integers so any misread shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler/codegen/compile.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { hostTensor } from '../../compiler/ir/host-tensor.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { availableBackends } from './support.ts';
import { InitKey, ops, spec, trace } from '../../dsl/index.ts';
import { LSHSelfAttention } from '../../reformer/attention/index.ts';
import { grad } from '../../compiler/grad/grad.ts';

let runner: CompiledRunner | undefined;
beforeAll(async () => {
  if ((await availableBackends()).includes('webasm')) runner = await CompiledRunner.create({ backend: 'webasm' });
  else console.log('[wide indices] webasm is not available here; the big-tensor check needs it');
});
afterAll(() => runner?.destroy());

describe('kernels over more than 2^24 elements', () => {
  it('transpose and gather address every element exactly', async () => {
    if (runner === undefined) throw new Error('webasm backend missing: this test needs it');
    const [R, C] = [4098, 4096];
    const g = new Graph();
    const x = g.input('x', [R, C]);
    const t = P.transpose(x, [1, 0]); // [C, R]
    const rows = g.input('rows', [3, 1], 'i32');
    const picked = P.gather(x, P.broadcastTo(rows, [3, C]), 0); // three whole rows of x
    g.outputs = [P.binary('add', t, P.broadcastTo(P.constant(g, 1), [C, R])).id, picked.id];
    expect(compile(g).kernels.length).toBe(2);
    // distinct exact values: x[i] = i mod 2^23 + i / 2^23 (an index off by one changes the value)
    const data = new Float32Array(R * C);
    for (let i = 0; i < data.length; i++) data[i] = (i % 8388608) + Math.floor(i / 8388608) * 0.25;
    const picks = [R - 1, 4097, 0];
    const [ty, py] = await runner.run(g, { x: hostTensor([R, C], data), rows: hostTensor([3, 1], picks, 'i32') });
    const out = ty!.data;
    for (const [c, r] of [[C - 1, R - 1], [C - 1, R - 2], [C - 2, R - 1], [0, R - 1], [C - 1, 0], [1234, 4001]] as const) {
      expect(out[c * R + r]).toBe(data[r * C + c]! + 1);
    }
    let bad = 0;
    for (let f = 0; f < out.length; f += 997) if (out[f] !== data[(f % R) * C + Math.floor(f / R)]! + 1) bad++;
    expect(bad).toBe(0);
    picks.forEach((r, k) => {
      for (const c of [0, 1, C - 2, C - 1]) expect(py!.data[k * C + c]).toBe(data[r * C + c]);
    });
  });

  it('loops over a large tensor (reduction, matmul along k with both strides) stay exact', async () => {
    if (runner === undefined) throw new Error('webasm backend missing: this test needs it');
    // gpu.js loop counters are floats too: base + r must be formed in i32 beyond 2^24
    const [R, C] = [4098, 4096];
    const g = new Graph();
    const x = g.input('x', [R, C]);
    const ones = P.broadcastTo(P.constant(g, 1), [C, 4]);
    const rowSums = P.reduce('sum', x, 1); // [R, 1]
    const viaMatmul = P.matmul(x, ones); // [R, 4], k walks a row
    const colSums = P.matmul(P.transpose(x, [1, 0]), P.broadcastTo(P.constant(g, 1), [R, 4])); // k walks a column
    g.outputs = [rowSums.id, viaMatmul.id, colSums.id];
    // small integers: every sum is exact in float32, so any misread element shows
    const data = new Float32Array(R * C);
    for (let i = 0; i < data.length; i++) data[i] = ((i * 7919) % 13) - 6;
    const [rs, mm, cs] = await runner.run(g, { x: hostTensor([R, C], data) });
    const wantRow = new Float64Array(R);
    const wantCol = new Float64Array(C);
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) {
      wantRow[r]! += data[r * C + c]!;
      wantCol[c]! += data[r * C + c]!;
    }
    let bad = 0;
    for (let r = 0; r < R; r++) {
      if (rs!.data[r] !== wantRow[r]) bad++;
      for (let j = 0; j < 4; j++) if (mm!.data[r * 4 + j] !== wantRow[r]) bad++;
    }
    for (let c = 0; c < C; c++) for (let j = 0; j < 4; j++) if (cs!.data[c * 4 + j] !== wantCol[c]) bad++;
    expect(bad).toBe(0);
  });

  it('every kernel of an LSH layer gradient graph is valid source in wide mode (regression: memoised coordinates)', () => {
    const layer = LSHSelfAttention({ nHeads: 2, dHead: 8, nHashes: 2, chunkLen: 16, causal: true, bucketFactors: 'auto' });
    const shape = [1, 256, 16];
    const t = trace(layer, layer.init(new InitKey(3), [spec(shape)]), [{ shape }], { mode: 'train' });
    const loss = ops.sumAll(t.outputs[0]!);
    const wrt = t.graph.inputNodes().filter((n) => n.role === 'param' || n.name === 'input0');
    const g = grad(t.graph, loss.id, wrt.map((n) => n.id));
    const bad = compile(g.graph, g.graph.outputs, { wide: true }).kernels.filter((k) => {
      try {
        new Function(`return ${k.source}`);
        return false;
      } catch {
        return true;
      }
    });
    expect(bad.map((k) => k.name)).toEqual([]);
  });
});
