/**
 * The reversible backward's deferred regions (compiler/grad/grad.ts, `deferredRegions` and
 * `replayAndWalkPart`): a recompute region inside a block's F or G whose values reach the rest of
 * the part only through nodes whose VJP reads none of them (vjpValueReads) is not replayed for the
 * rebuild of the block's input; its own VJP replays it once and hands the values on, and the nodes
 * after it are replayed after the walk. Which regions are replayed how often, and the gradients,
 * which must equal plain backprop's whatever is deferred.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../compiler/grad/grad.ts';
import { reversibleLeaks } from '../../compiler/grad/saved.ts';
import { vjpRules, vjpValueReads } from '../../compiler/grad/vjp-rules.ts';
import { Graph, liveNodes, type Tensor } from '../../compiler/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { operands, type Node } from '../../compiler/ir/types.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { expectClose } from '../support/numeric.ts';
import { rng, uniform } from './check.ts';

const sumAll = (t: Tensor) => P.reshape(P.reduce('sum', P.reshape(t, [-1]), 0), []);
const full = (g: Graph, v: number, shape: readonly number[]) => P.broadcastTo(P.constant(g, v), shape);

/** How the rows of a chunk are combined after the chunks (each a recompute region of its own). */
type After = 'concat' | 'concat-dropout' | 'concat-exp' | 'concat-mul-active' | 'concat-scale' | 'whole';

interface Built {
  readonly g: Graph;
  readonly loss: Tensor;
  readonly wrt: Tensor[];
  readonly feeds: Record<string, HostTensor>;
}

/**
 * One reversible block on a [4, 3] stream; `gChunks` (`fChunks`) rows of G (F) are computed in
 * chunks of two rows, `tanh(rows · W)`, each a recompute region labelled `G:k` (`F:k`), combined by
 * `after`. The part without chunks is a plain `tanh(x · V)`.
 */
function block(opts: { fChunks?: After; gChunks?: After; stopChunk?: number; loss?: 'both' | 'y1' }): Built {
  const g = new Graph();
  const x1 = g.input('x1', [4, 3]);
  const x2 = g.input('x2', [4, 3]);
  const w = g.input('w', [3, 3], 'f32', 'param');
  const v = g.input('v', [3, 3], 'f32', 'param');
  const s = g.input('s', [4, 3], 'f32', 'param');
  const seed = g.input('seed', [], 'i32', 'seed');
  const chunked = (name: string, t: Tensor, after: After): Tensor => {
    // the whole part one region, ending where the part ends
    if (after === 'whole') return g.recompute(`${name}:0`, () => g.withScope(`${name}:0`, () => P.unary('tanh', P.matmul(t, w))));
    const chunks = [0, 1].map((c) => {
      const out = g.recompute(`${name}:${c}`, () => g.withScope(`${name}:${c}`, () => P.unary('tanh', P.matmul(P.slice(t, [2 * c, 0], [2, 3]), w))));
      return opts.stopChunk === c ? P.stopGradient(out) : out;
    });
    const cat = P.concat(chunks, 0);
    switch (after) {
      case 'concat':
        return cat;
      case 'concat-dropout': {
        const keep = P.cast(P.compare('gt', P.random('uniform', seed, name === 'G' ? 11 : 12, [4, 3]), full(g, 0.25, [4, 3])), 'f32');
        return P.binary('mul', P.binary('mul', cat, keep), full(g, 4 / 3, [4, 3]));
      }
      case 'concat-exp':
        return P.unary('exp', cat);
      case 'concat-mul-active':
        // s needs a cotangent: its part reads the chunks' values
        return P.binary('mul', cat, s);
      default:
        // s is behind stopGradient here: only s is read
        return P.binary('mul', cat, P.stopGradient(s));
    }
  };
  const plain = (t: Tensor) => P.unary('tanh', P.matmul(t, v));
  const [y1, y2] = g.reversible(
    'B',
    x1,
    x2,
    (t) => (opts.fChunks === undefined ? plain(t) : chunked('F', t, opts.fChunks)),
    (t) => (opts.gChunks === undefined ? plain(t) : chunked('G', t, opts.gChunks)),
  );
  const loss = opts.loss === 'y1' ? sumAll(P.binary('mul', y1, y1)) : P.binary('add', sumAll(P.binary('mul', y1, y1)), sumAll(P.unary('exp', P.unary('tanh', y2))));
  const r = rng(3);
  const feeds = {
    x1: uniform(r, [4, 3], -1, 1),
    x2: uniform(r, [4, 3], -1, 1),
    w: uniform(r, [3, 3], -0.8, 0.8),
    v: uniform(r, [3, 3], -0.8, 0.8),
    s: uniform(r, [4, 3], 0.5, 1.5),
    seed: hostTensor([], [7], 'i32'),
  };
  return { g, loss, wrt: [x1, x2, w, v, s], feeds };
}

/**
 * Live copies the backward made of each chunk's product (VJP terms are in `grad(…)` scopes), by
 * chunk; the backward must read no forward value inside the block whatever it defers.
 */
function replays(b: Built): Record<string, number> {
  const forwardCount = b.g.nodes.length;
  const out = grad(b.g, b.loss.id, b.wrt.map((t) => t.id));
  expect(reversibleLeaks(out.graph, forwardCount).map((l) => `${l.where} %${l.node.id} ${l.node.op}`)).toEqual([]);
  const live = liveNodes(out.graph, out.graph.outputs);
  const counts: Record<string, number> = {};
  for (const n of out.graph.nodes.slice(forwardCount)) {
    if (live.has(n.id) && n.op === 'matmul' && /^[FG]:\d$/.test(n.scope)) counts[n.scope] = (counts[n.scope] ?? 0) + 1;
  }
  return counts;
}

/** Gradients with the block's schedule and with plain backprop, in float64. */
function expectPlainGradients(b: Built): void {
  const wrt = b.wrt.map((t) => t.id);
  const scheduled = evaluate(grad(b.g, b.loss.id, wrt).graph, b.feeds);
  const plain = evaluate(grad(b.g, b.loss.id, wrt, { memorySchedules: false }).graph, b.feeds);
  expect(scheduled.length).toBe(plain.length);
  scheduled.forEach((t, i) => expectClose(t.data, plain[i]!.data, 1e-12, 1e-12, `output ${i}`));
}

describe('deferred regions in a reversible block', () => {
  it.each(['concat', 'concat-dropout', 'concat-scale'] as const)('chunks of G followed by %s are replayed once each, by their own VJP', (after) => {
    const b = block({ gChunks: after });
    expect(replays(b)).toEqual({ 'G:0': 1, 'G:1': 1 });
    expectPlainGradients(b);
  });

  it.each(['concat', 'concat-dropout'] as const)('chunks of F followed by %s are replayed once each', (after) => {
    const b = block({ fChunks: after });
    expect(replays(b)).toEqual({ 'F:0': 1, 'F:1': 1 });
    expectPlainGradients(b);
  });

  it.each(['concat-exp', 'concat-mul-active'] as const)('chunks whose values a later VJP reads (%s) are replayed for the rebuild and again by their VJP', (after) => {
    const b = block({ gChunks: after });
    expect(replays(b)).toEqual({ 'G:0': 2, 'G:1': 2 });
    expectPlainGradients(b);
  });

  it('a chunk no cotangent reaches is replayed after the walk, once, for the rebuild', () => {
    const b = block({ gChunks: 'concat-dropout', stopChunk: 1 });
    expect(replays(b)).toEqual({ 'G:0': 1, 'G:1': 1 });
    expectPlainGradients(b);
  });

  it('a chunk no cotangent reaches before one that is walked is still replayed for the rebuild', () => {
    const b = block({ gChunks: 'concat-dropout', stopChunk: 0 });
    expect(replays(b)).toEqual({ 'G:0': 1, 'G:1': 1 });
    expectPlainGradients(b);
  });

  it('chunks in both parts, and a loss on Y1 only', () => {
    for (const loss of ['both', 'y1'] as const) {
      const b = block({ fChunks: 'concat-dropout', gChunks: 'concat', loss });
      expect(replays(b)).toEqual({ 'F:0': 1, 'F:1': 1, 'G:0': 1, 'G:1': 1 });
      expectPlainGradients(b);
    }
  });
});

describe('deferred regions: edges', () => {
  it.each(['F', 'G'] as const)('a part of %s that is one region, from its first node to its last, is replayed once', (part) => {
    const b = block(part === 'F' ? { fChunks: 'whole' } : { gChunks: 'whole' });
    const region = b.g.recomputeRegions[0]!;
    const block0 = b.g.reversibleRegions[0]!;
    const range = part === 'F' ? block0.f : block0.g;
    expect([region.start, region.end]).toEqual([range.start, range.end]);
    expect(replays(b)).toEqual({ [`${part}:0`]: 1 });
    expectPlainGradients(b);
  });

  it('a region nested in a deferred one is replayed again inside it; only the outer one is deferred', () => {
    const b = block({ gChunks: 'concat' });
    // the tanh and product of chunk 1, a region inside that chunk's region (Graph.recompute never nests, so it is added here)
    const outer = b.g.recomputeRegions.find((r) => r.label === 'G:1')!;
    b.g.recomputeRegions.push({ label: 'G:1 inner', start: outer.start + 1, end: outer.end });
    expect(replays(b)).toEqual({ 'G:0': 1, 'G:1': 2 });
    expectPlainGradients(b);
  });

  it('a region nested in one whose values a later VJP reads is not deferred on its own', () => {
    const g = new Graph();
    const [x1, x2] = [g.input('x1', [4, 3]), g.input('x2', [4, 3])];
    const [w, v] = [g.input('w', [3, 3], 'f32', 'param'), g.input('v', [3, 3], 'f32', 'param')];
    let inner = { label: 'G:0 product', start: 0, end: 0 };
    const [y1, y2] = g.reversible(
      'B',
      x1,
      x2,
      (t) => P.unary('tanh', P.matmul(t, v)),
      (t) => {
        // the product flows on only through an add; the region's tanh is read by the next tanh's VJP
        const r = g.recompute('G:0', () =>
          g.withScope('G:0', () => {
            const lin = P.matmul(t, w);
            inner = { ...inner, start: lin.id, end: lin.id + 1 };
            return { lin, nl: P.unary('tanh', t) };
          }),
        );
        return P.binary('add', r.lin, P.unary('tanh', r.nl));
      },
    );
    g.recomputeRegions.push(inner);
    const loss = P.binary('add', sumAll(P.binary('mul', y1, y1)), sumAll(P.binary('mul', y2, y2)));
    const r = rng(5);
    const b: Built = { g, loss, wrt: [x1, x2, w, v], feeds: { x1: uniform(r, [4, 3], -1, 1), x2: uniform(r, [4, 3], -1, 1), w: uniform(r, [3, 3], -1, 1), v: uniform(r, [3, 3], -1, 1) } };
    // the rebuild's copy of the product is the live one; nothing inside the block is read
    expect(replays(b)).toEqual({ 'G:0': 1 });
    expectPlainGradients(b);
  });

  it('block outputs are materialised under memory schedules only', () => {
    const b = block({ gChunks: 'concat' });
    const { y1, y2 } = b.g.reversibleRegions[0]!;
    const wrt = b.wrt.map((t) => t.id);
    const scheduled = grad(b.g, b.loss.id, wrt).graph.materialize;
    expect([scheduled.has(y1), scheduled.has(y2)]).toEqual([true, true]);
    const plain = grad(b.g, b.loss.id, wrt, { memorySchedules: false }).graph.materialize;
    expect([plain.has(y1), plain.has(y2)]).toEqual([false, false]);
  });
});

describe('vjpValueReads is exact where deferral relies on it', () => {
  /** One node of each primitive vjpValueReads names, over [2, 3] operands x and y. */
  function listed(): { g: Graph; nodes: Node[] } {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const y = g.input('y', [2, 3]);
    const seed = g.input('seed', [], 'i32', 'seed');
    const first = g.nodes.length;
    const idx = P.argsort(P.iota(g, [2, 3], 1), 1);
    P.constant(g, [1, 2, 3], [3]);
    P.random('uniform', seed, 1, [2]);
    P.argmax(x, 1);
    P.cast(P.compare('lt', x, y), 'f32');
    P.cast(x, 'i32');
    for (const fn of ['add', 'sub', 'mul', 'div', 'max'] as const) P.binary(fn, x, y);
    P.matmul(x, P.transpose(y, [1, 0]));
    P.where(P.compare('gt', x, y), x, y);
    P.reduce('sum', x, 0);
    P.reduce('max', x, 0);
    P.broadcastTo(P.reshape(x, [1, 2, 3]), [2, 2, 3]);
    P.pad(P.slice(x, [0, 1], [2, 2]), [1, 0], [0, 1]);
    P.concat([x, y], 0);
    P.gather(x, idx, 1);
    P.scatterAdd(x, idx, 1, 3);
    P.stopGradient(x);
    return { g, nodes: [g.node(x.id), ...g.nodes.slice(first)] };
  }

  it('declares exactly the operands and output that the needed parts of each rule read', () => {
    const { g, nodes } = listed();
    const seen = new Set<string>();
    for (const node of nodes) {
      const into = operands(node);
      const canNeed = into.map((o) => g.node(o).dtype === 'f32');
      for (let mask = 0; mask < 1 << into.length; mask++) {
        const needs = into.map((_, k) => (mask & (1 << k)) !== 0);
        // operands that cannot need a cotangent (i32) do not; nodes with one that can need one are asked with some need
        if (needs.some((n, k) => n && !canNeed[k]!) || (mask === 0 && canNeed.some(Boolean))) continue;
        const args = into.map((o) => g.input(`arg:${g.nodes.length}`, g.node(o).shape, g.node(o).dtype));
        const out = g.input(`out:${g.nodes.length}`, node.shape, node.dtype);
        const ct = g.input(`ct:${g.nodes.length}`, node.shape, 'f32');
        const parts = vjpRules[node.op]({ node, out, args, g: ct });
        const reached = liveNodes(g, parts.flatMap((p, k) => (p !== null && needs[k] ? [p.id] : [])));
        const declared = vjpValueReads(node, needs);
        const label = `${node.op}${'fn' in node ? ` ${node.fn}` : ''} needs [${needs.join(',')}]`;
        const wantOperands = args.flatMap((a, k) => (reached.has(a.id) ? [k] : []));
        expect({ operands: [...declared.operands].sort(), out: declared.out }, label).toEqual({ operands: wantOperands, out: reached.has(out.id) });
        seen.add(node.op);
      }
    }
    expect([...seen].sort()).toEqual(
      ['argmax', 'argsort', 'binary', 'broadcast', 'cast', 'compare', 'concat', 'const', 'gather', 'input', 'iota', 'matmul', 'pad', 'random', 'reduce', 'reshape', 'scatterAdd', 'slice', 'stopGradient', 'transpose', 'where'].sort(),
    );
  });

  it('products and quotients whose operands need no cotangent read nothing', () => {
    const g = new Graph();
    const [x, y] = [g.input('x', [2, 2]), g.input('y', [2, 2])];
    for (const t of [P.binary('mul', x, y), P.binary('div', x, y), P.matmul(x, y), P.binary('add', x, y)]) {
      expect(vjpValueReads(t.node, [false, false])).toEqual({ operands: new Set(), out: false });
    }
  });

  it('any other primitive is declared to read all its operands and its output', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    for (const t of [P.unary('exp', x), P.unary('neg', x), P.unary('log', x)]) {
      expect(vjpValueReads(t.node, [true])).toEqual({ operands: new Set([0]), out: true });
    }
  });
});
