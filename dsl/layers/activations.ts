import { OptionError } from '../../compiler/ir/graph.ts';
import * as ops from '../ops.ts';
import { noParams, type Layer } from '../layer.ts';
import { Fn } from '../combinators.ts';

export const Relu = (): Layer => Fn('Relu', ops.relu);
export const Gelu = (): Layer => Fn('Gelu', ops.gelu);
export const Tanh = (): Layer => Fn('Tanh', ops.tanh);
export const Sigmoid = (): Layer => Fn('Sigmoid', ops.sigmoid);
export const LogSoftmax = (): Layer => Fn('LogSoftmax', (x) => ops.logSoftmax(x, -1));
export const Softmax = (): Layer => Fn('Softmax', (x) => ops.softmax(x, -1));

const activations = { relu: Relu, gelu: Gelu, tanh: Tanh, sigmoid: Sigmoid } as const;
export type ActivationName = keyof typeof activations;

/** Looks up an activation by name, with an error listing the allowed names. */
export function activation(name: string, layer = 'activation'): Layer {
  const make = (activations as Record<string, (() => Layer) | undefined>)[name];
  if (make === undefined) {
    throw new OptionError(`${layer}: unknown activation '${name}'; allowed: ${Object.keys(activations).join(', ')}`);
  }
  return make();
}

/**
 * Inverted dropout, seeded and replayable: the mask is a pure function of the step seed and the
 * layer path, so a backward pass (or a re-run) sees exactly the same mask.
 */
export function Dropout(rate: number): Layer {
  if (!(rate >= 0 && rate < 1)) throw new OptionError(`Dropout: option 'rate' must be in [0, 1), got ${rate}`);
  return {
    name: 'Dropout',
    nIn: 1,
    nOut: 1,
    init: () => noParams,
    apply(_p, [x], ctx) {
      if (ctx.mode === 'eval' || rate === 0) return [x!];
      const keep = ops.ge(ops.randomUniform(ctx.seed(), ctx.salt('dropout'), x!.shape), rate);
      return [ops.where(keep, ops.div(x!, 1 - rate), 0)];
    },
  };
}
