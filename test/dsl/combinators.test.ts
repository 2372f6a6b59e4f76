/**
 * Semantics of the combinators and the basic layers, on the float64 reference evaluator: data
 * flow on the stack, seeded dropout, the LM helpers, and the quality of errors (layer paths, both
 * shapes, option names with allowed values).
 */
import { describe, expect, it } from 'vitest';
import { Graph, OptionError, ShapeError, printGraph } from '../../compiler/ir/graph.ts';
import { evaluate } from '../../compiler/reference/evaluate.ts';
import { hostTensor, type HostTensor } from '../../compiler/ir/host-tensor.ts';
import {
  Branch,
  CrossEntropyLoss,
  Dense,
  Drop,
  Dropout,
  Dup,
  Embedding,
  Fn,
  InitKey,
  LayerNorm,
  Parallel,
  Relu,
  Residual,
  Select,
  Serial,
  ShiftRight,
  Swap,
  activation,
  applyLayer,
  flattenParams,
  ops,
  paramInputs,
  spec,
  trace,
  traceContext,
  type Layer,
  type Params,
} from '../../dsl/index.ts';
import { rng, uniform } from '../grad/check.ts';

type Feeds = Record<string, HostTensor>;

function paramFeeds(params: Params): Feeds {
  const feeds: Feeds = {};
  for (const [path, p] of flattenParams(params)) feeds[`params.${path}`] = hostTensor(p.shape, p.data, p.dtype);
  return feeds;
}

/** Traces and evaluates `layer` on concrete inputs; returns all outputs as plain arrays. */
function run(layer: Layer, inputs: HostTensor[], options: { mode?: 'train' | 'eval'; seed?: number; params?: Params } = {}): number[][] {
  const params = options.params ?? layer.init(new InitKey(3), inputs.map((t) => spec(t.shape, t.dtype)));
  const t = trace(layer, params, inputs.map((x) => ({ shape: x.shape, dtype: x.dtype })), { mode: options.mode ?? 'eval' });
  const feeds = paramFeeds(params);
  inputs.forEach((x, i) => (feeds[`input${i}`] = x));
  if (t.graph.inputNodes().some((n) => n.name === 'seed')) feeds.seed = hostTensor([], [options.seed ?? 1], 'i32');
  return evaluate(t.graph, feeds).map((v) => Array.from(v.data));
}

const vec = (...xs: number[]) => hostTensor([xs.length], xs);
const Double = () => Fn('Double', (x) => ops.mul(x, 2));
const PlusOne = () => Fn('PlusOne', (x) => ops.add(x, 1));

describe('combinators', () => {
  it('Serial equals manual composition of its layers', () => {
    const layers = [Dense(4), Relu(), Dense(3), LayerNorm()];
    const model = Serial(...layers);
    const x = uniform(rng(1), [2, 5], -1, 1);
    const params = model.init(new InitKey(8), [spec([2, 5])]);
    const viaSerial = run(model, [x], { params });

    const g = new Graph();
    const sym = paramInputs(g, params);
    const ctx = traceContext(g, 'eval');
    let h = g.input('input0', [2, 5]);
    layers.forEach((l, i) => ([h] = applyLayer(l, (sym as readonly typeof sym[])[i]!, [h], ctx)));
    g.outputs = [h.id];
    const [manual] = evaluate(g, { ...paramFeeds(params), input0: x });
    expect(viaSerial[0]).toEqual(Array.from(manual!.data));
  });

  it('Serial passes untouched stack entries through', () => {
    const model = Serial(Dup(), Double());
    expect(model.nIn).toBe(1);
    expect(model.nOut).toBe(2);
    expect(run(model, [vec(1, 2)])).toEqual([[2, 4], [1, 2]]);
  });

  it('Branch gives each layer the same inputs', () => {
    expect(run(Branch(Double(), PlusOne()), [vec(1, 2)])).toEqual([[2, 4], [2, 3]]);
    const Sub = Fn('Sub', (a, b) => ops.sub(a, b), 2);
    const both = Branch(Sub, Double());
    expect([both.nIn, both.nOut]).toEqual([2, 2]);
    expect(run(both, [vec(5, 7), vec(1, 2)])).toEqual([[4, 5], [10, 14]]);
  });

  it('Parallel splits the stack among its layers', () => {
    const p = Parallel(Double(), PlusOne());
    expect([p.nIn, p.nOut]).toEqual([2, 2]);
    expect(run(p, [vec(1, 2), vec(10, 20)])).toEqual([[2, 4], [11, 21]]);
  });

  it('Residual is x + f(x), and rejects a body that changes the shape', () => {
    const x = uniform(rng(2), [3, 4], -1, 1);
    const f = Serial(Dense(4), Relu());
    const params = f.init(new InitKey(4), [spec([3, 4])]);
    const [fx] = run(f, [x], { params });
    // Residual wraps its layers in a Serial, so its parameters are [[f's parameters]].
    const [res] = run(Residual(f), [x], { params: [[params]] });
    expect(res).toEqual(Array.from(x.data).map((v, i) => v + fx![i]!));

    const bad = Serial(Dense(2), Residual(Dense(3)));
    expect(() => run(bad, [uniform(rng(3), [1, 2], -1, 1)])).toThrow(/Serial\[1\]\.Residual: body output \[1,3\] does not match input \[1,2\]/);
  });

  it('Select, Dup, Swap and Drop rearrange the stack', () => {
    const [a, b, c] = [vec(1), vec(2), vec(3)];
    expect(run(Select([2, 0, 0]), [a, b, c])).toEqual([[3], [1], [1]]);
    expect(run(Select([1], 3), [a, b, c])).toEqual([[2]]);
    expect(run(Dup(), [a])).toEqual([[1], [1]]);
    expect(run(Swap(), [a, b])).toEqual([[2], [1]]);
    expect(run(Drop(), [a])).toEqual([]);
    // [a, b] -> Swap -> [b, a] -> Double reads only the top -> [2b, a]
    expect(run(Serial(Swap(), Double()), [a, b])).toEqual([[4], [1]]);
    // [a, b, c] -> Serial reads 2 deep, c passes through untouched -> [b, a, c]
    const deep = Serial(Select([1, 0], 2));
    expect(run(Serial(Fn('Three', (p, q, r) => [p, q, r], 3, 3), deep), [a, b, c])).toEqual([[2], [1], [3]]);
    expect(() => Select([0, 3], 2)).toThrow(/Select: indices \[0,3\] must be integers in \[0, 2\)/);
  });
});

describe('Dropout', () => {
  const x = hostTensor([40, 50], Array.from({ length: 2000 }, (_, i) => 1 + (i % 7)));

  it('replays identically for the same seed and differs for another seed', () => {
    const layer = Dropout(0.25);
    const [a] = run(layer, [x], { mode: 'train', seed: 7 });
    const [b] = run(layer, [x], { mode: 'train', seed: 7 });
    const [c] = run(layer, [x], { mode: 'train', seed: 8 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('keeps about 1 − rate of the elements, scaled by 1 / (1 − rate)', () => {
    for (const rate of [0.1, 0.5, 0.8]) {
      const [y] = run(Dropout(rate), [x], { mode: 'train', seed: 11 });
      let kept = 0;
      y!.forEach((v, i) => {
        if (v === 0) return;
        kept++;
        expect(v).toBeCloseTo(x.data[i]! / (1 - rate), 12);
      });
      // 2000 Bernoulli draws: the standard deviation of the fraction is at most 0.012.
      expect(Math.abs(kept / 2000 - (1 - rate))).toBeLessThan(0.04);
    }
  });

  it('is the identity in eval mode and for rate 0', () => {
    expect(run(Dropout(0.5), [x], { mode: 'eval' })[0]).toEqual(Array.from(x.data));
    expect(run(Dropout(0), [x], { mode: 'train' })[0]).toEqual(Array.from(x.data));
  });

  it('two dropout layers at different paths draw different masks from one seed', () => {
    const [a, b] = run(Branch(Dropout(0.5), Dropout(0.5)), [x], { mode: 'train', seed: 3 });
    expect(a).not.toEqual(b);
  });
});

describe('LM layers', () => {
  it('ShiftRight shifts ids right along the last axis, filling with padId', () => {
    const ids = hostTensor([2, 3], [5, 6, 7, 8, 9, 10], 'i32');
    expect(run(ShiftRight(), [ids])).toEqual([[0, 5, 6, 0, 8, 9]]);
    expect(run(ShiftRight({ padId: 3 }), [ids])).toEqual([[3, 5, 6, 3, 8, 9]]);
  });

  it('Embedding looks up table rows', () => {
    const layer = Embedding(5, 3);
    const params = layer.init(new InitKey(2), [spec([2, 2], 'i32')]);
    const table = Array.from(flattenParams(params)[0]![1].data);
    const [y] = run(layer, [hostTensor([2, 2], [4, 0, 4, 2], 'i32')], { params });
    const row = (i: number) => table.slice(3 * i, 3 * i + 3);
    expect(y).toEqual([...row(4), ...row(0), ...row(4), ...row(2)]);
  });

  it('CrossEntropyLoss matches a hand computation, plain and weighted', () => {
    const logits = [1, 2, 0.5, -1, 0, 3];
    const targets = [1, 2];
    const nll = [0, 1].map((r) => {
      const row = logits.slice(3 * r, 3 * r + 3);
      return Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[targets[r]!]!;
    });
    const L = hostTensor([2, 3], logits);
    const T = hostTensor([2], targets, 'i32');
    expect(run(CrossEntropyLoss(), [L, T])[0]![0]).toBeCloseTo((nll[0]! + nll[1]!) / 2, 12);
    const W = hostTensor([2], [0.25, 1]);
    expect(run(CrossEntropyLoss({ weighted: true }), [L, T, W])[0]![0]).toBeCloseTo((0.25 * nll[0]! + nll[1]!) / 1.25, 12);
  });

  it('LayerNorm output has mean 0 and variance 1 per row (initial scale and bias)', () => {
    const [y] = run(LayerNorm(), [uniform(rng(5), [4, 9], -3, 5)]);
    for (let r = 0; r < 4; r++) {
      const row = y!.slice(9 * r, 9 * r + 9);
      const mean = row.reduce((s, v) => s + v, 0) / 9;
      const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / 9;
      expect(Math.abs(mean)).toBeLessThan(1e-12);
      expect(variance).toBeCloseTo(1, 4);
    }
  });
});

describe('errors', () => {
  it('shape errors name the full layer path and both shapes', () => {
    const model = Serial(Fn('Id', (t) => t), Relu(), Branch(Dense(3), Dense(2)));
    const params = model.init(new InitKey(1), [spec([2, 5])]);
    const attempt = () => trace(model, params, [{ shape: [2, 7] }]);
    expect(attempt).toThrow(ShapeError);
    expect(attempt).toThrow('Serial[2].Branch[0].Dense: input [2,7] has last axis 7, weight [5,3] expects 5');
  });

  it('primitive shape errors inside a layer carry the layer path', () => {
    const model = Serial(Dense(3), Fn('Square', (t) => ops.matmul(t, t)));
    expect(() => run(model, [uniform(rng(1), [2, 4], 0, 1)])).toThrow(
      'Serial[1].Square: matmul: cannot multiply [2,3] by [2,3] (inner sizes 3 and 2)',
    );
  });

  it('regression: shape errors raised during init named only the leaf, not its layer path', () => {
    // init traces each child on a scratch graph to learn its output shape; errors raised there
    // used to read 'Bad: …' instead of the full path that tracing reports.
    const Bad = () => Fn('Bad', (t) => ops.matmul(t, t));
    const model = Serial(Dense(2), Branch(Relu(), Serial(Bad())));
    expect(() => model.init(new InitKey(1), [spec([3, 4])])).toThrow(
      'Serial[1].Branch[1].Serial[0].Bad: matmul: cannot multiply [3,2] by [3,2] (inner sizes 2 and 3)',
    );
    const inParallel = Serial(Dup(), Parallel(Relu(), Residual(Dense(5))));
    expect(() => inParallel.init(new InitKey(1), [spec([3, 4])])).toThrow(
      'Serial[1].Parallel[1].Residual: body output [3,5] does not match input [3,4]',
    );
  });

  it('invalid options name the option and the allowed values', () => {
    expect(() => Dense(-3)).toThrow(OptionError);
    expect(() => Dense(-3)).toThrow("Dense: option 'units' must be a positive integer, got -3");
    expect(() => Dense(2.5)).toThrow("Dense: option 'units' must be a positive integer, got 2.5");
    expect(() => activation('foo')).toThrow("activation: unknown activation 'foo'; allowed: relu, gelu, tanh, sigmoid");
    expect(() => Dropout(1.5)).toThrow("Dropout: option 'rate' must be in [0, 1), got 1.5");
    expect(() => Dropout(-0.1)).toThrow(OptionError);
    expect(() => Embedding(0, 4)).toThrow("Embedding: option 'vocabSize' must be a positive integer, got 0");
    expect(() => LayerNorm({ epsilon: 0 })).toThrow("LayerNorm: option 'epsilon' must be positive, got 0");
  });
});

describe('printGraph', () => {
  it('prints a small model in the compact text form', () => {
    const model = Serial(Dense(2), Relu());
    const t = trace(model, model.init(new InitKey(1), [spec([1, 3])]), [{ shape: [1, 3] }]);
    expect(printGraph(t.graph)).toBe(
      [
        "%0:f32[3,2] = input param 'params.0.w'",
        "%1:f32[2] = input param 'params.0.b'",
        "%2:f32[1,3] = input data 'input0'",
        '%3:f32[1,2] = matmul %2 %0  # Serial[0].Dense',
        '%4:f32[1,2] = broadcast %1  # Serial[0].Dense',
        '%5:f32[1,2] = add %3 %4  # Serial[0].Dense',
        '%6:f32[] = const 0  # Serial[1].Relu',
        '%7:f32[1,2] = broadcast %6  # Serial[1].Relu',
        '%8:f32[1,2] = max %5 %7  # Serial[1].Relu',
        'outputs %8',
      ].join('\n'),
    );
  });
});
