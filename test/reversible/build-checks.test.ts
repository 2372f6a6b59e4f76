/**
 * `Reversible` and `ReversibleStack` at build time: which F, G and streams they accept, the exact
 * errors and the layer paths those name (top level, nested, inside init), the per-block and per-
 * residual initialisation keys, and the regions and scopes a traced stack leaves in the graph.
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../compiler/ir/graph.ts';
import { Dup, Fn, Serial } from '../../dsl/combinators.ts';
import { InitKey, spec, trace, type Layer, type Params } from '../../dsl/layer.ts';
import { Dense } from '../../dsl/layers/dense.ts';
import * as ops from '../../dsl/ops.ts';
import { thrown } from '../support/thrown.ts';
import { isReversibleBlock, isReversibleStack, Reversible, ReversibleStack } from '../../dsl/reversible.ts';


const identity = () => Fn('Id', (x) => x!);
const add = () => Fn('Add', (a, b) => ops.add(a!, b!), 2);

describe('Reversible: F and G', () => {
  it('must each map one tensor to one tensor: more inputs or more outputs are refused, naming the role', () => {
    expect(thrown(() => Reversible(add(), identity()))).toBe('Reversible: F (Add) must map one tensor to one tensor, got 2 → 1');
    expect(thrown(() => Reversible(Dup(), identity()))).toBe('Reversible: F (Dup) must map one tensor to one tensor, got 1 → 2');
    expect(thrown(() => Reversible(identity(), add()))).toBe('Reversible: G (Add) must map one tensor to one tensor, got 2 → 1');
    expect(thrown(() => Reversible(identity(), Dup()))).toBe('Reversible: G (Dup) must map one tensor to one tensor, got 1 → 2');
  });

  it('describes itself as a two-stream block with its residual functions', () => {
    const f = identity();
    const g = Dense(3);
    const block = Reversible(f, g);
    expect(block).toMatchObject({ kind: 'reversible', name: 'Reversible', nIn: 2, nOut: 2, f, g });
    expect(isReversibleBlock(block)).toBe(true);
    expect(isReversibleStack(block)).toBe(false);
    const stack = ReversibleStack([block]);
    expect(stack).toMatchObject({ kind: 'reversible-stack', name: 'ReversibleStack', nIn: 2, nOut: 2, blocks: [block] });
    expect(isReversibleStack(stack)).toBe(true);
    expect(isReversibleBlock(stack)).toBe(false);
    expect(isReversibleBlock(f)).toBe(false);
  });

  it('names the block when its parameters lack an entry for F, G or a block', () => {
    const block = () => Reversible(identity(), identity());
    const streams = [{ shape: [2] }, { shape: [2] }];
    expect(thrown(() => trace(block(), [{}], streams))).toBe('Reversible: parameters have no entry for sub-layer 1');
    expect(thrown(() => trace(ReversibleStack([block(), block()]), [[{}, {}]], streams))).toBe('ReversibleStack: parameters have no entry for sub-layer 1');
  });

  it('takes two inputs: the arity error names the block', () => {
    expect(thrown(() => trace(Reversible(identity(), identity()), [{}, {}], [{ shape: [2] }]))).toBe('Reversible: expects 2 input(s), got 1');
    expect(thrown(() => trace(ReversibleStack([Reversible(identity(), identity())]), [[{}, {}]], [{ shape: [2] }]))).toBe(
      'ReversibleStack: expects 2 input(s), got 1',
    );
  });
});

describe('Reversible: streams and shapes', () => {
  const block = () => Reversible(identity(), identity());

  it('refuses streams of different rank, shape or dtype, at init and at trace', () => {
    const cases: Array<[Array<{ shape: number[]; dtype?: 'f32' | 'i32' }>, string]> = [
      [[{ shape: [2, 3] }, { shape: [2, 3, 1] }], 'X1 f32[2,3] and X2 f32[2,3,1]'],
      [[{ shape: [2, 3, 1] }, { shape: [2, 3] }], 'X1 f32[2,3,1] and X2 f32[2,3]'],
      [[{ shape: [2, 3] }, { shape: [2, 4] }], 'X1 f32[2,3] and X2 f32[2,4]'],
      [[{ shape: [2, 3] }, { shape: [2, 3], dtype: 'i32' }], 'X1 f32[2,3] and X2 i32[2,3]'],
    ];
    for (const [inputs, got] of cases) {
      const message = `the two streams must have the same shape, got ${got}`;
      expect(thrown(() => block().init(new InitKey(0), inputs.map((s) => spec(s.shape, s.dtype))))).toBe(`Reversible: ${message}`);
      const fn = () => trace(Serial(block()), [[{}, {}]], inputs);
      expect(fn).toThrow(ShapeError);
      expect(thrown(fn)).toBe(`Serial[0].Reversible: ${message}`);
      expect(thrown(() => trace(block(), [{}, {}], inputs))).toBe(`Reversible: ${message}`);
    }
    expect(() => block().init(new InitKey(0), [spec([2, 3]), spec([2, 3])])).not.toThrow();
  });

  /** F (or G, `which` = 1) that appends an axis of length 1: same leading shape, one more rank. */
  const addAxis = (which: 0 | 1) => {
    const grow = Fn('Grow', (x) => ops.reshape(x!, [...x!.shape, 1]));
    return which === 0 ? Reversible(grow, identity()) : Reversible(identity(), grow);
  };

  it('refuses F or G that change the rank of their stream, at init and at trace, naming the path', () => {
    for (const [which, role] of [
      [0, 'F'],
      [1, 'G'],
    ] as const) {
      const message = `${role} (Grow) output [2,3,1] does not match its input [2,3]`;
      expect(thrown(() => addAxis(which).init(new InitKey(0), [spec([2, 3]), spec([2, 3])]))).toBe(`Reversible: ${message}`);
      expect(thrown(() => trace(addAxis(which), [{}, {}], [{ shape: [2, 3] }, { shape: [2, 3] }]))).toBe(`Reversible: ${message}`);
      expect(thrown(() => trace(ReversibleStack([addAxis(which)]), [[{}, {}]], [{ shape: [2, 3] }, { shape: [2, 3] }]))).toBe(
        `ReversibleStack[0].Reversible: ${message}`,
      );
    }
  });

  it("names F's or G's own path (Reversible[0] / Reversible[1]) in an error raised by their init", () => {
    const broken = Fn('Square', (x) => ops.matmul(x!, x!));
    const inputs = [spec([2, 3, 4]), spec([2, 3, 4])];
    expect(thrown(() => Reversible(broken, identity()).init(new InitKey(0), inputs))).toMatch(/^Reversible\[0\]\.Square: matmul: /);
    expect(thrown(() => Reversible(identity(), broken).init(new InitKey(0), inputs))).toMatch(/^Reversible\[1\]\.Square: matmul: /);
    const stack = ReversibleStack([Reversible(identity(), identity()), Reversible(identity(), broken)]);
    expect(thrown(() => stack.init(new InitKey(0), inputs))).toMatch(/^ReversibleStack\[1\]\.Reversible\[1\]\.Square: matmul: /);
  });
});

describe('ReversibleStack', () => {
  it('refuses a block that is not Reversible(F, G), naming its index and name', () => {
    const notBlock = Dense(3) as unknown as ReturnType<typeof Reversible>;
    expect(thrown(() => ReversibleStack([Reversible(identity(), identity()), notBlock]))).toBe(
      'ReversibleStack: block 1 (Dense) is not a Reversible(F, G) block',
    );
  });

  it('initialises F, G and every block from keys of their own', () => {
    const stack = ReversibleStack([Reversible(Dense(4), Dense(4)), Reversible(Dense(4), Dense(4))]);
    const params = stack.init(new InitKey(3), [spec([2, 4]), spec([2, 4])]) as Params[][];
    const weights = params.flatMap((block) => block.map((p) => JSON.stringify(p)));
    expect(weights).toHaveLength(4);
    expect(new Set(weights).size).toBe(4);
    // the same key gives the same parameters
    expect(stack.init(new InitKey(3), [spec([2, 4]), spec([2, 4])])).toEqual(params);
  });

  it('traces each block as a reversible region under its own path, F and G under Reversible[0] and [1]', () => {
    const blocks: Layer[] = [0, 1].map(() => Reversible(Fn('F', (x) => ops.mul(x!, 2)), Fn('G', (x) => ops.mul(x!, 3))));
    const stack = ReversibleStack(blocks as ReturnType<typeof Reversible>[]);
    const t = trace(Serial(stack), [[[{}, {}], [{}, {}]]], [{ shape: [2] }, { shape: [2] }]);
    expect(t.graph.reversibleRegions.map((r) => r.label)).toEqual(['Serial[0].ReversibleStack[0].Reversible', 'Serial[0].ReversibleStack[1].Reversible']);
    const scopes = new Set(t.graph.nodes.map((n) => n.scope));
    for (const i of [0, 1]) {
      expect(scopes).toContain(`Serial[0].ReversibleStack[${i}].Reversible[0].F`);
      expect(scopes).toContain(`Serial[0].ReversibleStack[${i}].Reversible[1].G`);
    }
    // each block's outputs feed the next: Y1 = X1 + 2·X2, Y2 = X2 + 3·Y1, twice
    const [r0, r1] = t.graph.reversibleRegions;
    expect([r1!.x1, r1!.x2]).toEqual([r0!.y1, r0!.y2]);
    expect(t.outputs.map((o) => o.id)).toEqual([r1!.y1, r1!.y2]);
  });
});
