import { OptionError } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';
import { positiveInt, tensorField, type Layer } from '../../dsl/layer.ts';

export interface AxialOptions {
  /** Factorisation of the length: `n1 · n2 = L`. */
  readonly shape: readonly [number, number];
  /** Widths of the two parts: `e1 + e2 = dModel`. */
  readonly dims: readonly [number, number];
}

/**
 * Axial positional embeddings (Reformer §5 of our semantics): position p gets
 * `concat(E1[p div n2], E2[p mod n2])`, so a length-L table costs `n1·e1 + n2·e2` parameters.
 *
 * @example
 * const pos = AxialPositionalEmbedding({ shape: [32, 64], dims: [64, 192] }); // L = 2048, d = 256
 */
export function AxialPositionalEmbedding(options: AxialOptions): Layer {
  const [n1, n2] = options.shape;
  const [e1, e2] = options.dims;
  positiveInt('AxialPositionalEmbedding', 'shape[0]', n1);
  positiveInt('AxialPositionalEmbedding', 'shape[1]', n2);
  positiveInt('AxialPositionalEmbedding', 'dims[0]', e1);
  positiveInt('AxialPositionalEmbedding', 'dims[1]', e2);
  const check = (shape: readonly number[]) => {
    const L = shape[shape.length - 2];
    const d = shape[shape.length - 1];
    if (L !== n1 * n2) {
      throw new OptionError(`AxialPositionalEmbedding: shape [${n1},${n2}] has product ${n1 * n2}, but the sequence length is ${L}`);
    }
    if (d !== e1 + e2) {
      throw new OptionError(`AxialPositionalEmbedding: dims [${e1},${e2}] sum to ${e1 + e2}, but d_model is ${d}`);
    }
  };
  return {
    name: 'AxialPositionalEmbedding',
    nIn: 1,
    nOut: 1,
    init(key, [input]) {
      check(input!.shape);
      return { e1: key.split('e1').normal([n1, e1], 1), e2: key.split('e2').normal([n2, e2], 1) };
    },
    apply(params, [x]) {
      check(x!.shape);
      const a = ops.broadcastTo(ops.reshape(tensorField(params, 'e1', 'AxialPositionalEmbedding'), [n1, 1, e1]), [n1, n2, e1]);
      const b = ops.broadcastTo(ops.reshape(tensorField(params, 'e2', 'AxialPositionalEmbedding'), [1, n2, e2]), [n1, n2, e2]);
      const table = ops.reshape(ops.concat([a, b], -1), [n1 * n2, e1 + e2]);
      return [ops.add(x!, table)];
    },
  };
}
