import { OptionError } from '../../compiler/ir/graph.ts';
import * as ops from '../ops.ts';
import { positiveInt, tensorField, type Layer, type Params } from '../layer.ts';

export interface DenseOptions {
  /** Add a bias (default true). */
  readonly bias?: boolean;
  /** Initial weight scale: 'glorot' (default) uniform, or a standard deviation. */
  readonly init?: 'glorot' | number;
}

/**
 * Affine map of the last axis: `x · W + b`, W of shape [dIn, units].
 *
 * @example
 * const layer = Dense(128);                 // [..., 64] -> [..., 128]
 */
export function Dense(units: number, options: DenseOptions = {}): Layer {
  positiveInt('Dense', 'units', units);
  const bias = options.bias ?? true;
  const scale = options.init ?? 'glorot';
  if (scale !== 'glorot' && !(typeof scale === 'number' && scale > 0)) {
    throw new OptionError(`Dense: option 'init' must be 'glorot' or a positive number, got ${String(scale)}`);
  }
  return {
    name: 'Dense',
    nIn: 1,
    nOut: 1,
    init(key, [input]) {
      const dIn = input!.shape[input!.shape.length - 1]!;
      const w =
        scale === 'glorot'
          ? key.split('w').uniform([dIn, units], -Math.sqrt(6 / (dIn + units)), Math.sqrt(6 / (dIn + units)))
          : key.split('w').normal([dIn, units], scale);
      const params: Params = bias ? { w, b: key.split('b').normal([units], 1e-6) } : { w };
      return params;
    },
    apply(params, [x]) {
      const w = tensorField(params, 'w', 'Dense');
      if (x!.rank === 0) throw new ops.ShapeError(x!.graph.scope, `input must have rank >= 1, got []`);
      const dIn = x!.shape[x!.rank - 1]!;
      if (dIn !== w.shape[0]) {
        throw new ops.ShapeError(
          x!.graph.scope,
          `input [${x!.shape.join(',')}] has last axis ${dIn}, weight [${w.shape.join(',')}] expects ${w.shape[0]}`,
        );
      }
      const flat = ops.reshape(x!, [-1, dIn]);
      let y = ops.matmul(flat, w);
      if (bias) y = ops.add(y, tensorField(params, 'b', 'Dense'));
      return [ops.reshape(y, [...x!.shape.slice(0, -1), units])];
    },
  };
}
