/**
 * Every differentiable primitive's VJP rule against central finite differences, in float64, on
 * random shapes (sizes 1..7, so nothing is a multiple of 2 or 4 by luck) and random values kept away
 * from singularities and ties. The loss is `sum(out · W)` with fixed random W, so every output
 * element gets a distinct cotangent and a rule that mixes up elements cannot pass.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { grad } from '../../compiler/grad/grad.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { BinaryFn, Shape, UnaryFn } from '../../compiler/ir/types.ts';
import { sizeOf } from '../../compiler/ir/types.ts';
import { finiteDifference } from '../support/numeric.ts';
import { awayFromZero, checkGradients, distinct, randomInts, rng, uniform, weightedLoss, type Rand } from './check.ts';

const RUNS = 40;
const dims = (min: number, max: number) => fc.array(fc.integer({ min: 1, max: 7 }), { minLength: min, maxLength: max });
const seed = fc.nat();

/** Caps the element count so finite differences stay cheap; keeps leading dims. */
function capSize(shape: number[], max = 120): number[] {
  const out: number[] = [];
  let size = 1;
  for (const d of shape) {
    const k = Math.max(1, Math.min(d, Math.floor(max / size)));
    out.push(k);
    size *= k;
  }
  return out;
}

/** A shape that broadcasts to `full`: some leading dims dropped, some dims set to 1. */
function broadcastableFrom(r: Rand, full: readonly number[]): number[] {
  const drop = Math.floor(r() * (full.length + 1));
  return full.slice(drop).map((d) => (r() < 0.35 ? 1 : d));
}

interface Case {
  readonly graph: Graph;
  readonly out: Tensor;
  readonly feeds: Record<string, HostTensor>;
  readonly wrt: string[];
}

function input(g: Graph, feeds: Record<string, HostTensor>, name: string, value: HostTensor) {
  feeds[name] = value;
  return g.input(name, value.shape, value.dtype);
}

function runCase(c: Case, r: Rand): void {
  checkGradients(c.graph, c.out, c.feeds, c.wrt, r);
}

describe('unary VJPs', () => {
  const fns: UnaryFn[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh'];
  for (const fn of fns) {
    it(`${fn} matches finite differences`, () => {
      fc.assert(
        fc.property(dims(0, 3), seed, (shape, s) => {
          const r = rng(s);
          const g = new Graph();
          const feeds: Record<string, HostTensor> = {};
          const positive = fn === 'log' || fn === 'sqrt' || fn === 'rsqrt';
          const x = input(g, feeds, 'x', positive ? uniform(r, capSize(shape), 0.2, 3) : uniform(r, capSize(shape), -2, 2));
          runCase({ graph: g, out: P.unary(fn, x), feeds, wrt: ['x'] }, r);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

describe('binary VJPs with broadcasting', () => {
  const fns: Exclude<BinaryFn, 'mod'>[] = ['add', 'sub', 'mul', 'div', 'max', 'min'];
  const operands = (fn: BinaryFn, r: Rand, sa: Shape, sb: Shape): [HostTensor, HostTensor] => {
    if (fn === 'max' || fn === 'min') {
      // Two lattices offset by half a step: a and b never tie, even after broadcasting.
      return [distinct(r, sa, 0), distinct(r, sb, 0.1)];
    }
    if (fn === 'div') return [uniform(r, sa, -2, 2), awayFromZero(r, sb, 0.5, 2)];
    return [uniform(r, sa, -2, 2), uniform(r, sb, -2, 2)];
  };
  const build = (fn: BinaryFn, r: Rand, sa: Shape, sb: Shape): Case => {
    const g = new Graph();
    const feeds: Record<string, HostTensor> = {};
    const [va, vb] = operands(fn, r, sa, sb);
    const a = input(g, feeds, 'a', va);
    const b = input(g, feeds, 'b', vb);
    return { graph: g, out: P.binary(fn, a, b), feeds, wrt: ['a', 'b'] };
  };

  for (const fn of fns) {
    it(`${fn} matches finite differences on random broadcastable shapes`, () => {
      fc.assert(
        fc.property(dims(0, 3), seed, fc.boolean(), (full, s, swap) => {
          const r = rng(s);
          const shape = capSize(full, 60);
          const other = broadcastableFrom(r, shape);
          const [sa, sb] = swap ? [other, shape] : [shape, other];
          runCase(build(fn, r, sa, sb), r);
        }),
        { numRuns: RUNS },
      );
    });

    it(`${fn}: [3,1,5] with [4,1], and scalar with tensor`, () => {
      const r = rng(7);
      runCase(build(fn, r, [3, 1, 5], [4, 1]), r);
      runCase(build(fn, r, [], [2, 3]), r);
      runCase(build(fn, r, [5, 1], []), r);
    });
  }
});

describe('structural VJPs', () => {
  it('where (condition broadcast against both branches)', () => {
    fc.assert(
      fc.property(dims(0, 3), seed, (full, s) => {
        const r = rng(s);
        const shape = capSize(full, 60);
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const cond = input(g, feeds, 'cond', randomInts(r, broadcastableFrom(r, shape), 2));
        const a = input(g, feeds, 'a', uniform(r, broadcastableFrom(r, shape), -2, 2));
        const b = input(g, feeds, 'b', uniform(r, shape, -2, 2));
        runCase({ graph: g, out: P.where(cond, a, b), feeds, wrt: ['a', 'b'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('broadcast', () => {
    fc.assert(
      fc.property(dims(0, 4), seed, (full, s) => {
        const r = rng(s);
        const shape = capSize(full);
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const x = input(g, feeds, 'x', uniform(r, broadcastableFrom(r, shape), -2, 2));
        runCase({ graph: g, out: P.broadcastTo(x, shape), feeds, wrt: ['x'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('matmul with batched and broadcast batch dimensions', () => {
    fc.assert(
      fc.property(dims(0, 2), dims(3, 3), seed, (batch, [m, k, n], s) => {
        const r = rng(s);
        const b0 = capSize(batch, 6);
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const a = input(g, feeds, 'a', uniform(r, [...broadcastableFrom(r, b0), m!, k!], -1, 1));
        const b = input(g, feeds, 'b', uniform(r, [...broadcastableFrom(r, b0), k!, n!], -1, 1));
        runCase({ graph: g, out: P.matmul(a, b), feeds, wrt: ['a', 'b'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  for (const fn of ['sum', 'max'] as const) {
    it(`reduce ${fn} along a random axis`, () => {
      fc.assert(
        fc.property(dims(1, 3), seed, fc.nat(), (full, s, ax) => {
          const r = rng(s);
          const shape = capSize(full);
          const g = new Graph();
          const feeds: Record<string, HostTensor> = {};
          const x = input(g, feeds, 'x', fn === 'max' ? distinct(r, shape) : uniform(r, shape, -2, 2));
          runCase({ graph: g, out: P.reduce(fn, x, ax % shape.length), feeds, wrt: ['x'] }, r);
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('reduce max splits the cotangent evenly among tied maxima', () => {
    const g = new Graph();
    const x = g.input('x', [4]);
    const y = P.reduce('max', x, 0);
    const loss = P.reshape(P.binary('mul', y, P.constant(g, 3, [1])), []);
    const d = grad(g, loss.id, [x.id]);
    const [, dx] = evaluate(d.graph, { x: hostTensor([4], [1, 5, 2, 5]) });
    expect(Array.from(dx!.data)).toEqual([0, 1.5, 0, 1.5]);
  });

  it('reshape', () => {
    fc.assert(
      fc.property(dims(1, 4), seed, (full, s) => {
        const r = rng(s);
        const shape = capSize(full);
        // A different factorisation of the same size: shuffle the dims, then merge two neighbours.
        const target = [...shape].sort(() => r() - 0.5);
        if (target.length > 1 && r() < 0.5) target.splice(0, 2, target[0]! * target[1]!);
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const x = input(g, feeds, 'x', uniform(r, shape, -2, 2));
        runCase({ graph: g, out: P.reshape(x, target), feeds, wrt: ['x'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('transpose', () => {
    fc.assert(
      fc.property(dims(2, 4), seed, (full, s) => {
        const r = rng(s);
        const shape = capSize(full);
        const perm = shape.map((_, i) => i).sort(() => r() - 0.5);
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const x = input(g, feeds, 'x', uniform(r, shape, -2, 2));
        runCase({ graph: g, out: P.transpose(x, perm), feeds, wrt: ['x'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('slice', () => {
    fc.assert(
      fc.property(dims(1, 3), seed, (full, s) => {
        const r = rng(s);
        const shape = capSize(full);
        const begin = shape.map((d) => Math.floor(r() * d));
        const size = shape.map((d, i) => 1 + Math.floor(r() * (d - begin[i]!)));
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const x = input(g, feeds, 'x', uniform(r, shape, -2, 2));
        runCase({ graph: g, out: P.slice(x, begin, size), feeds, wrt: ['x'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('pad', () => {
    fc.assert(
      fc.property(dims(1, 3), seed, (full, s) => {
        const r = rng(s);
        const shape = capSize(full, 40);
        const before = shape.map(() => Math.floor(r() * 3));
        const after = shape.map(() => Math.floor(r() * 3));
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const x = input(g, feeds, 'x', uniform(r, shape, -2, 2));
        runCase({ graph: g, out: P.pad(x, before, after), feeds, wrt: ['x'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('concat of 2..4 tensors along a random axis', () => {
    fc.assert(
      fc.property(dims(1, 3), seed, fc.integer({ min: 2, max: 4 }), fc.nat(), (full, s, count, ax) => {
        const r = rng(s);
        const shape = capSize(full, 30);
        const axis = ax % shape.length;
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const xs = Array.from({ length: count }, (_, i) =>
          input(g, feeds, `x${i}`, uniform(r, shape.map((d, j) => (j === axis ? 1 + Math.floor(r() * 4) : d)), -2, 2)),
        );
        runCase({ graph: g, out: P.concat(xs, axis), feeds, wrt: xs.map((_, i) => `x${i}`) }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('gather (with repeated indices)', () => {
    fc.assert(
      fc.property(dims(1, 3), seed, fc.nat(), fc.integer({ min: 1, max: 7 }), (full, s, ax, count) => {
        const r = rng(s);
        const shape = capSize(full, 40);
        const axis = ax % shape.length;
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const x = input(g, feeds, 'x', uniform(r, shape, -2, 2));
        const idxShape = shape.map((d, i) => (i === axis ? count : d));
        const index = input(g, feeds, 'index', randomInts(r, idxShape, shape[axis]!));
        runCase({ graph: g, out: P.gather(x, index, axis), feeds, wrt: ['x'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('scatterAdd (with colliding indices)', () => {
    fc.assert(
      fc.property(dims(1, 3), seed, fc.nat(), fc.integer({ min: 1, max: 7 }), (full, s, ax, size) => {
        const r = rng(s);
        const shape = capSize(full, 40);
        const axis = ax % shape.length;
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const u = input(g, feeds, 'u', uniform(r, shape, -2, 2));
        const index = input(g, feeds, 'index', randomInts(r, shape, size));
        runCase({ graph: g, out: P.scatterAdd(u, index, axis, size), feeds, wrt: ['u'] }, r);
      }),
      { numRuns: RUNS },
    );
  });

  it('a node used twice accumulates both cotangents (x·x, x + x)', () => {
    fc.assert(
      fc.property(dims(0, 3), seed, (full, s) => {
        const r = rng(s);
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const x = input(g, feeds, 'x', uniform(r, capSize(full), -2, 2));
        const out = P.binary('add', P.binary('mul', x, x), P.binary('add', x, x));
        runCase({ graph: g, out, feeds, wrt: ['x'] }, r);
      }),
      { numRuns: 10 },
    );
  });
});

describe('non-differentiable primitives give zero gradient', () => {
  /**
   * Builds `out` from x through a non-differentiable op and checks the gradient is exactly 0. Where
   * the op is piecewise constant (`flat`), finite differences must agree; stopGradient is not.
   */
  const expectZero = (build: (x: Tensor) => Tensor, values: (r: Rand, shape: Shape) => HostTensor, flat = true) => {
    fc.assert(
      fc.property(dims(1, 3), seed, (full, s) => {
        const r = rng(s);
        const shape = capSize(full, 60);
        const g = new Graph();
        const feeds: Record<string, HostTensor> = {};
        const x = input(g, feeds, 'x', values(r, shape));
        const loss = weightedLoss(build(x), r);
        const d = grad(g, loss.id, [x.id]);
        const [, dx] = evaluate(d.graph, feeds);
        expect(dx!.data.every((v) => v === 0)).toBe(true);
        if (flat) expect(finiteDifference(g, feeds, 'x', loss.id).every((v) => v === 0)).toBe(true);
      }),
      { numRuns: 10 },
    );
  };
  // Values on a 0.2-lattice offset by 0.05: never within a finite-difference step of a threshold.
  const lattice = (r: Rand, shape: Shape) => distinct(r, shape, 0.05);

  it('compare', () => expectZero((x) => P.compare('gt', x, P.constant(x.graph, 0.5)), lattice));
  it('argmax', () => expectZero((x) => P.argmax(x, x.rank - 1), lattice));
  it('argsort', () => expectZero((x) => P.argsort(P.cast(P.binary('mul', x, P.constant(x.graph, 10)), 'i32'), -1), lattice));
  it('cast (f32 -> i32 -> f32)', () => expectZero((x) => P.cast(P.cast(P.binary('mul', x, P.constant(x.graph, 10)), 'i32'), 'f32'), lattice));
  it('stopGradient', () => expectZero((x) => P.binary('mul', P.stopGradient(x), P.stopGradient(x)), lattice, false));

  it('iota and random add nothing to the gradient of what they are combined with', () => {
    const r = rng(3);
    const g = new Graph();
    const feeds: Record<string, HostTensor> = { x: uniform(r, [3, 4], -1, 1), seed: hostTensor([], [11], 'i32') };
    const x = g.input('x', [3, 4]);
    const sd = g.input('seed', [], 'i32');
    const noise = P.random('normal', sd, 5, [3, 4]);
    const pos = P.cast(P.iota(g, [3, 4], 1), 'f32');
    // out = x·noise + pos: d out/dx = noise exactly; iota and random themselves carry no gradient.
    const out = P.binary('add', P.binary('mul', x, noise), pos);
    const w = rng(99);
    const { analytic } = checkGradients(g, out, feeds, ['x'], w);
    const [noiseValues] = evaluate(g, feeds, [noise.id]);
    const again = rng(99);
    const weights = Array.from({ length: 12 }, () => 2 * again() - 1);
    expect(Array.from(analytic.x!)).toEqual(weights.map((wt, i) => wt * noiseValues!.data[i]!));
  });

  it('gradient with respect to an input the loss does not depend on is zero', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const unused = g.input('unused', [4]);
    const loss = weightedLoss(P.unary('exp', x), rng(1));
    const d = grad(g, loss.id, [unused.id]);
    const [, du] = evaluate(d.graph, { x: uniform(rng(2), [2, 3], -1, 1), unused: uniform(rng(3), [4], -1, 1) });
    expect(Array.from(du!.data)).toEqual([0, 0, 0, 0]);
    expect(sizeOf(du!.shape)).toBe(4);
  });
});
