/**
 * A planted bug for `reformer verify`: a hand-built reversible block whose F reads X1 as well as its
 * own input X2. Its values are right, but the backward can no longer rebuild the block from its
 * outputs alone: it must keep X1 from the forward pass, so memory grows with depth again. verify
 * finds this on every backend and prints a counterexample naming the value read:
 *
 *   npx reformer verify examples/planted/leaky-block.ts      # FAIL: the backward reads forward value …
 *
 * (The other planted bugs of the issue — a replay drawing fresh randomness, a wrong sign in the
 * inverse — cannot be written as a model: replays read the forward's draws and the inverse is
 * derived by the compiler. test/reversible/reversible.test.ts plants them in the graph instead.)
 */
import { Dense, Dup, Fn, Serial, noParams, ops, type InputSpec, type Layer } from '../../index.ts';

const width = 8;

const leaky: Layer = {
  name: 'LeakyBlock',
  nIn: 2,
  nOut: 2,
  init: () => noParams,
  apply: (_params, [x1, x2]) =>
    x1!.graph.reversible(
      'LeakyBlock',
      x1!,
      x2!,
      (x) => ops.tanh(ops.add(x, x1!)),
      (y) => ops.tanh(y),
    ),
};

export const model: Layer = Serial(Dense(width), Dup(), Fn('Double', (x) => ops.mul(x, 2)), leaky, Fn('Join', (a, b) => ops.add(a!, b!), 2, 1));

export const inputs: InputSpec[] = [{ shape: [2, width] }];
