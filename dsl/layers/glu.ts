/**
 * Gated linear unit feed-forward (Shazeer 2020, "GLU Variants Improve Transformer"):
 * `Dense(dModel)( a · sigmoid(b) )` where `[a, b] = split(Dense(2·dFF)(x))`.
 *
 * Written only with the DSL (combinators, layers and ops): it needs no shape rule, reference
 * implementation, VJP rule or kernel of its own, because it lowers to existing primitives. It is the
 * worked example of "a new layer touches no compiler file" in docs/architecture.md.
 *
 * @example
 * const ffn = GLU(256);                    // [..., 64] -> [..., 64], hidden width 256
 * const block = Residual(LayerNorm(), ffn);
 */
import * as ops from '../ops.ts';
import { Dense } from './dense.ts';
import { Fn, Serial } from '../combinators.ts';
import { applyLayer, positiveInt, type Layer, type TensorSpec } from '../layer.ts';

/** Splits the last axis in two halves `[a, b]` and returns `a · sigmoid(b)`. */
export function gluGate(h: ops.Tensor): ops.Tensor {
  const width = h.shape[h.rank - 1]!;
  if (width % 2 !== 0) {
    throw new ops.ShapeError(h.graph.scope, `GLU gate needs an even last axis, got [${h.shape.join(',')}]`);
  }
  const half = width / 2;
  return ops.mul(ops.sliceAxis(h, -1, 0, half), ops.sigmoid(ops.sliceAxis(h, -1, half, half)));
}

/** GLU feed-forward; the output has the input's width. */
export function GLU(dFF: number): Layer {
  positiveInt('GLU', 'dFF', dFF);
  // The output width is the input's, known only from the input spec, so the body is built per width.
  const body = (dModel: number) => Serial(Dense(2 * dFF), Fn('Gate', gluGate), Dense(dModel));
  const width = (s: { readonly shape: readonly number[] }) => {
    const d = s.shape[s.shape.length - 1];
    if (d === undefined) throw new ops.ShapeError('GLU', `input must have rank >= 1, got []`);
    return d;
  };
  return {
    name: 'GLU',
    nIn: 1,
    nOut: 1,
    init: (key, inputs: readonly TensorSpec[]) => body(width(inputs[0]!)).init(key, inputs),
    apply: (params, inputs, ctx) => applyLayer(body(width(inputs[0]!)), params, inputs, ctx),
  };
}
