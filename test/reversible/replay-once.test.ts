/**
 * A reversible block whose G is a chunked feed-forward (then dropout) replays each chunk once in
 * the backward pass: the chunk's own VJP replays it and hands its output to the rebuild of the
 * block's input, instead of a whole-G replay for the rebuild followed by a replay per chunk.
 */
import { describe, expect, it } from 'vitest';
import { reversibleLeaks } from '../../compiler/grad/saved.ts';
import { liveNodes } from '../../compiler/ir/graph.ts';
import { InitKey, spec } from '../../dsl/index.ts';
import { buildModel } from '../../reformer/model.ts';
import { trainObjective } from '../../reformer/train/objective.ts';
import { tinyScheduledConfig } from './support.ts';

const model = (dropout: number) => tinyScheduledConfig({}, { dropout, attentionDropout: 0 }).model;

/** Live matmuls inside the feed-forward's chunks that compute values (not VJP terms). */
function chunkProducts(dropout: number, memorySchedules: boolean) {
  const cfg = model(dropout);
  const m = buildModel(cfg);
  const params = m.init(new InitKey(0), [spec([1, cfg.seqLen], 'i32')]);
  const o = trainObjective(m, params, 1, cfg.seqLen, { memorySchedules });
  const live = liveNodes(o.graph, o.graph.outputs);
  const products = o.graph.nodes.filter((n) => live.has(n.id) && n.op === 'matmul' && n.scope.includes('Chunked') && !n.scope.includes('grad('));
  return { forward: products.filter((n) => n.id < o.forwardCount).length, backward: products.filter((n) => n.id >= o.forwardCount).length, leaks: reversibleLeaks(o.graph, o.forwardCount) };
}

describe('chunked feed-forward inside a reversible block', () => {
  it.each([0, 0.1])('is replayed once per chunk in the backward (dropout %s), reading no forward value of the block', (dropout) => {
    const scheduled = chunkProducts(dropout, true);
    expect(scheduled.forward).toBe(2 * 4 * 2); // 2 layers × 4 chunks × 2 Dense
    expect(scheduled.backward).toBe(scheduled.forward);
    expect(scheduled.leaks).toEqual([]);
    const plain = chunkProducts(dropout, false);
    expect(plain.backward).toBe(0);
  });
});
