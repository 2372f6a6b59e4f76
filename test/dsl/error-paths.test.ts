/**
 * Errors name the same layer path whether they surface in `init` or in `trace`, also inside
 * Reversible blocks, ReversibleStack and Chunked (which push `Reversible[i]`, `ReversibleStack[i]`,
 * `Chunked[k]` when traced), and arity errors name the path too.
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../compiler/ir/graph.ts';
import { Chunked } from '../../dsl/chunked.ts';
import { Branch, Drop, Dup, Fn, Serial } from '../../dsl/combinators.ts';
import { applyLayer, ArityError, InitKey, outputSpecs, spec, trace, type Layer, type Params } from '../../dsl/layer.ts';
import { Dense } from '../../dsl/layers/dense.ts';
import * as ops from '../../dsl/ops.ts';
import { Reversible, ReversibleStack } from '../../dsl/reversible.ts';

/** A parameter-free layer that, when `broken`, multiplies its input by itself (a shape error for [.., 4]). */
const Bad = (broken: boolean) => Fn('Bad', (x) => (broken ? ops.matmul(x!, x!) : x!));

/** The message `init` throws for the broken model, and the one `trace` throws with the working model's params. */
function messages(make: (broken: boolean) => Layer, shape: number[]): { init: string; trace: string; initError: unknown } {
  let initError: unknown;
  try {
    make(true).init(new InitKey(0), [spec(shape)]);
  } catch (e) {
    initError = e;
  }
  const params: Params = make(false).init(new InitKey(0), [spec(shape)]);
  let traceMessage = '';
  try {
    trace(make(true), params, [{ shape }]);
  } catch (e) {
    traceMessage = (e as Error).message;
  }
  return { init: (initError as Error | undefined)?.message ?? '', trace: traceMessage, initError };
}

describe('init and trace name the same layer path', () => {
  const cases: Array<[string, (broken: boolean) => Layer, number[], string]> = [
    [
      'inside a Reversible block of a ReversibleStack (F)',
      (b) => Serial(Dense(4), Dup(), ReversibleStack([Reversible(Dense(4), Dense(4)), Reversible(Serial(Dense(4), Bad(b)), Dense(4))])),
      [2, 4],
      'Serial[2].ReversibleStack[1].Reversible[0].Serial[1].Bad: matmul: cannot multiply [2,4] by [2,4]',
    ],
    [
      'inside G of a lone Reversible block',
      (b) => Serial(Dup(), Reversible(Dense(4), Serial(Bad(b), Dense(4)))),
      [2, 4],
      'Serial[1].Reversible[1].Serial[0].Bad: matmul: cannot multiply [2,4] by [2,4]',
    ],
    [
      'inside Chunked',
      (b) => Serial(Dense(4), Chunked(Serial(Dense(4), Bad(b)), { axis: 1, size: 2 })),
      [3, 4, 4],
      'Serial[1].Chunked[0].Serial[1].Bad: matmul: cannot multiply [3,2,4] by [3,2,4]',
    ],
    [
      'Chunked inside a reversible block',
      (b) => Serial(Dup(), ReversibleStack([Reversible(Dense(4), Chunked(Bad(b), { axis: 1, size: 2 }))])),
      [3, 4, 4],
      'Serial[1].ReversibleStack[0].Reversible[1].Chunked[0].Bad: matmul: cannot multiply [3,2,4] by [3,2,4]',
    ],
  ];
  for (const [what, make, shape, want] of cases) {
    it(what, () => {
      const m = messages(make, shape);
      expect(m.initError).toBeInstanceOf(ShapeError);
      expect(m.init).toContain(want);
      expect(m.trace).toBe(m.init);
    });
  }
});

describe('arity errors name the layer path', () => {
  it('a layer returning fewer outputs than declared: the same path in init and trace', () => {
    const make = (broken: boolean) =>
      Serial(Dense(4), Serial(Dense(4), Fn('Split', (x) => (broken ? [x!] : [x!, x!]), 1, 2)), Drop());
    const m = messages(make, [2, 4]);
    expect(m.initError).toBeInstanceOf(ArityError);
    expect(m.init).toBe('Serial[1].Serial[1].Split: declared 2 output(s), returned 1');
    expect(m.trace).toBe(m.init);
  });

  it('a model given too few inputs: init and trace both name it', () => {
    const model = Serial(Dense(4), Branch(Fn('Add', (a, b) => ops.add(a!, b!), 2), Dense(4)));
    expect(() => model.init(new InitKey(0), [spec([2, 4])])).toThrow(new ArityError('Serial', 'expects 2 input(s), got 1'));
    const params = model.init(new InitKey(0), [spec([2, 4]), spec([2, 4])]);
    expect(() => trace(model, params, [{ shape: [2, 4] }])).toThrow('Serial: expects 2 input(s), got 1');
  });

  it('a layer applied with the wrong number of inputs deep inside a model: the path in init and trace', () => {
    // a hand-written combinator that hands its two-input child only one tensor
    const Add = Fn('Add', (a, b) => ops.add(a!, b!), 2);
    const wrapper: Layer = {
      name: 'Wrapper',
      nIn: 1,
      nOut: 1,
      children: [Add],
      init: (_key, [x]) => (outputSpecs(Add, {}, [x!]), {}),
      apply: (_p, [x], ctx) => applyLayer(Add, {}, [x!], ctx),
    };
    const make = (broken: boolean) => Serial(Dense(4), broken ? wrapper : Fn('Id', (x) => x!));
    const m = messages(make, [2, 4]);
    expect(m.initError).toBeInstanceOf(ArityError);
    expect(m.init).toBe('Serial[1].Add: expects 2 input(s), got 1');
    expect(m.trace).toBe(m.init);
  });
});
