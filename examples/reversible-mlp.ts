/**
 * A model module for `reformer verify` and `reformer compile` (the contract is in docs/cli.md):
 * a small reversible MLP on feature vectors, trained to reproduce its input.
 *
 *   npx reformer verify examples/reversible-mlp.ts --backend webasm
 *   npx reformer compile examples/reversible-mlp.ts --emit out/mlp-kernels --graph train
 */
import { Dense, Dup, Fn, LayerNorm, Relu, Reversible, ReversibleStack, Serial, ops, type InputSpec, type Layer } from '../index.ts';

const width = 16;

/**
 * One residual branch: Dense → ReLU → Dense, back to the stream width. (No LayerNorm inside the
 * branches: verify draws float inputs down to a scale of 1e-3, where a LayerNorm ahead of F or G
 * turns the float32 rounding of the rebuilt streams into gradient errors above verify's bound.)
 */
const branch = (): Layer => Serial(Dense(2 * width), Relu(), Dense(width));

/** Both streams start as the input; three reversible blocks; the streams are joined and projected. */
export const model: Layer = Serial(
  Dup(),
  ReversibleStack([Reversible(branch(), branch()), Reversible(branch(), branch()), Reversible(branch(), branch())]),
  Fn('Concatenate', (a, b) => ops.concat([a!, b!], -1), 2, 1),
  LayerNorm(),
  Dense(width),
);

/** A batch of 4 feature vectors. */
export const inputs: InputSpec[] = [{ shape: [4, width] }];

/** Parameters come from `model.init` with this seed. */
export const seed = 1;

/** `--graph train`: mean squared reconstruction error of [output, input]. */
export const loss: Layer = Fn('MeanSquaredError', (y, x) => ops.meanAll(ops.square(ops.sub(y!, x!))), 2, 1);
