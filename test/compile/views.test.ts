/**
 * Strided views: the view rule against the reference evaluator (every element of a view chain
 * addressed through offset + Σ c·stride equals the evaluated chain), and compiled matmuls whose
 * operands are view chains (transpose, merge/split reshapes, slices, broadcasts).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stridedView, viewStart } from '../../compiler/fuse/views.ts';
import { commonFactors } from '../../compiler/codegen/matmul-emit.ts';
import { planKernels } from '../../compiler/fuse/plan.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, stridesOf } from '../../compiler/ir/host-tensor.ts';
import type { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { expectMatchesReference, openRunners, values } from './support.ts';
import { chunk, lookAround } from '../../reformer/attention/chunks.ts';


let runners: CompiledRunner[] = [];
beforeAll(async () => {
  runners = await openRunners();
});
afterAll(() => runners.forEach((r) => r.destroy()));

const dim = fc.integer({ min: 1, max: 6 });

/** A random chain of view ops over x, each step seeded by one number. */
function viewChain(x: Tensor, steps: readonly number[]): Tensor {
  let t = x;
  for (const s of steps) {
    const kind = s % 5;
    const split = t.shape.findIndex((d) => d % 2 === 0 && d > 2);
    if (kind === 4 && split >= 0) {
      // split an axis in two (the high half outer), as chunking [n] → [n/c, c] does
      t = P.reshape(t, [...t.shape.slice(0, split), 2, t.shape[split]! / 2, ...t.shape.slice(split + 1)]);
      continue;
    }
    if (kind === 0 && t.rank > 1) {
      const perm = [...t.shape.keys()];
      const a = s % t.rank;
      const b = (a + 1) % t.rank;
      [perm[a], perm[b]] = [perm[b]!, perm[a]!];
      t = P.transpose(t, perm);
    } else if (kind === 1 && t.rank > 1) {
      const a = s % (t.rank - 1); // merge axes a, a+1 (a copy unless they are adjacent in memory)
      t = P.reshape(t, [...t.shape.slice(0, a), t.shape[a]! * t.shape[a + 1]!, ...t.shape.slice(a + 2)]);
    } else if (kind === 2) {
      t = P.broadcastTo(P.reshape(t, [1, ...t.shape]), [1 + (s % 2), ...t.shape]);
    } else {
      const a = s % t.rank;
      const begin = t.shape.map((d, i) => (i === a && d > 1 ? 1 : 0));
      const size = t.shape.map((d, i) => d - begin[i]!);
      t = P.slice(t, begin, size);
    }
  }
  return t;
}

describe('strided views', () => {
  it('address exactly the elements the reference computes for a view chain', () => {
    let checked = 0;
    fc.assert(
      fc.property(fc.array(dim, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(40), { maxLength: 5 }), (shape, steps) => {
        const g = new Graph();
        const x = g.input('x', shape);
        const y = viewChain(x, steps);
        g.outputs = [P.unary('exp', y).id];
        // only x is a buffer: the whole chain is resolved as one view of it
        const view = stridedView(g, (id) => id === x.id, y.id);
        const n = shape.reduce((a, b) => a * b, 1);
        const data = Float64Array.from({ length: n }, (_, i) => i);
        const ref = evaluate(g, { x: hostTensor(shape, data) }, [y.id])[0]!;
        if (view === undefined) return; // a merge of non-adjacent axes: no view, the caller decomposes
        expect(view.buffer).toBe(x.id);
        checked++;
        const ys = stridesOf(y.shape);
        for (let f = 0; f < ref.data.length; f++) {
          let at = viewStart(view);
          y.shape.forEach((d, a) => {
            let c = Math.floor(f / ys[a]!) % d;
            // mixed radix, innermost factor last
            for (let j = view.axes[a]!.length - 1; j >= 0; j--) {
              const { size, stride } = view.axes[a]![j]!;
              at += (c % size) * stride;
              c = Math.floor(c / size);
            }
          });
          expect(data[at]).toBe(ref.data[f]);
        }
      }),
      { numRuns: 200 },
    );
    expect(checked).toBeGreaterThan(100);
  });

  it('a merge of axes that are not adjacent in memory is a two-factor axis; an uneven cut is not a view', () => {
    const g = new Graph();
    const x = g.input('x', [3, 4]);
    const y = P.reshape(P.transpose(x, [1, 0]), [12]);
    const z = P.reshape(P.transpose(P.reshape(x, [2, 6]), [1, 0]), [4, 3]);
    const consumer = P.binary('add', P.reshape(y, [4, 3]), z);
    g.outputs = [consumer.id];
    const plan = planKernels(g);
    const isBuffer = (id: number) => id !== consumer.id && plan.buffers.has(id);
    expect(stridedView(g, isBuffer, y.id)?.axes).toEqual([[{ size: 4, stride: 1 }, { size: 3, stride: 4 }]]);
    expect(stridedView(g, isBuffer, z.id)).toBeUndefined();
  });

  it('compiled matmuls over view-chain operands equal the reference', async () => {
    await fc.assert(
      fc.asyncProperty(dim, dim, dim, fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 1000 }), async (b, m, n, k, seed) => {
        const g = new Graph();
        // heads-style operands: [b·m, k] split and transposed, a sliced and broadcast weight
        const a0 = g.input('a', [m, b, k]);
        const a = P.transpose(a0, [1, 0, 2]); // [b, m, k]
        const w0 = g.input('w', [k + 1, n + 2]);
        const w = P.broadcastTo(P.reshape(P.slice(w0, [1, 2], [k, n]), [1, k, n]), [b, k, n]);
        const c = P.matmul(a, w);
        const ct = P.matmul(P.transpose(c, [0, 2, 1]), a); // [b, n, k]: both operands transposed views
        g.outputs = [c.id, ct.id];
        const feeds = {
          a: hostTensor([m, b, k], values(m * b * k, seed)),
          w: hostTensor([k + 1, n + 2], values((k + 1) * (n + 2), seed + 1)),
        };
        for (const r of runners) await expectMatchesReference(r, g, feeds);
      }),
      { numRuns: 15 },
    );
  });

  it('look-around windows (concats of rolled chunks) are read in place by matmuls, along k or not', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 1 }),
        fc.integer({ min: 1, max: 1000 }),
        async (nC, c, d, before, after, seed) => {
          const g = new Graph();
          const x = g.input('x', [2, nC * c, d]);
          const q = g.input('q', [2, nC, c, d]);
          const win = lookAround(chunk(x, 1, c), 1, before, after); // [2, nC, w, d]
          const logits = P.matmul(q, P.transpose(win, [0, 1, 3, 2])); // window along n
          const out = P.matmul(logits, win); // window along k: one loop segment per piece
          g.outputs = [out.id];
          const plan = planKernels(g);
          expect([...plan.buffers.keys()].some((id) => g.node(id).op === 'concat')).toBe(false);
          const w = c * (before + 1 + after);
          const feeds = {
            x: hostTensor([2, nC * c, d], values(2 * nC * c * d, seed)),
            q: hostTensor([2, nC, c, d], values(2 * nC * c * d, seed + 1)),
          };
          expect(logits.shape).toEqual([2, nC, c, w]);
          for (const r of runners) await expectMatchesReference(r, g, feeds);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('matmuls over merged heads (a k axis of several factors) walk it with nested loops', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 1000 }), async (h, d, L, n, seed) => {
        const g = new Graph();
        const heads = g.input('heads', [1, h, L, d]);
        const merged = P.reshape(P.transpose(heads, [0, 2, 1, 3]), [L, h * d]); // k = (head, d)
        const w = g.input('w', [h * d, n]);
        const y = P.matmul(merged, w);
        const dy = g.input('dy', [L, n]);
        const dW = P.matmul(P.transpose(merged, [1, 0]), dy); // merged heads as the outer axis
        g.outputs = [y.id, dW.id];
        const feeds = {
          heads: hostTensor([1, h, L, d], values(h * L * d, seed)),
          w: hostTensor([h * d, n], values(h * d * n, seed + 1)),
          dy: hostTensor([L, n], values(L * n, seed + 2)),
        };
        for (const r of runners) await expectMatchesReference(r, g, feeds);
      }),
      { numRuns: 15 },
    );
  });

  it('commonFactors refines two factorisations of one axis, or refuses uneven cuts', () => {
    expect(commonFactors([{ size: 4, stride: 100 }, { size: 64, stride: 1 }], [{ size: 256, stride: 3 }])).toEqual([
      { size: 4, sa: 100, sb: 192 },
      { size: 64, sa: 1, sb: 3 },
    ]);
    expect(commonFactors([{ size: 6, stride: 1 }], [{ size: 2, stride: 10 }, { size: 3, stride: 1 }])).toEqual([
      { size: 2, sa: 3, sb: 10 },
      { size: 3, sa: 1, sb: 1 },
    ]);
    expect(commonFactors([{ size: 2, stride: 6 }, { size: 6, stride: 1 }], [{ size: 3, stride: 4 }, { size: 4, stride: 1 }])).toBeUndefined();
  });
});
