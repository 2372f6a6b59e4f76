import { OptionError } from '../../compiler/ir/graph.ts';
import * as ops from '../ops.ts';
import { filled, tensorField, type Layer } from '../layer.ts';

/**
 * Layer normalisation over the last axis with learned scale and offset.
 *
 * @example
 * const ln = LayerNorm();            // [..., d] -> [..., d]
 */
export function LayerNorm(options: { readonly epsilon?: number } = {}): Layer {
  const eps = options.epsilon ?? 1e-6;
  if (!(eps > 0)) throw new OptionError(`LayerNorm: option 'epsilon' must be positive, got ${eps}`);
  return {
    name: 'LayerNorm',
    nIn: 1,
    nOut: 1,
    init(_key, [input]) {
      const d = input!.shape[input!.shape.length - 1]!;
      return { scale: filled([d], 1), bias: filled([d], 0) };
    },
    apply(params, [x]) {
      const scale = tensorField(params, 'scale', 'LayerNorm');
      const d = x!.shape[x!.rank - 1];
      if (d !== scale.shape[0]) {
        throw new ops.ShapeError(x!.graph.scope, `input [${x!.shape.join(',')}] has last axis ${d}, parameters expect ${scale.shape[0]}`);
      }
      return [ops.add(ops.mul(ops.normalize(x!, eps), scale), tensorField(params, 'bias', 'LayerNorm'))];
    },
  };
}
