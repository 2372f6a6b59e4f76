import * as ops from '../ops.ts';
import { positiveInt, tensorField, type Layer } from '../layer.ts';

/**
 * Token embedding: i32 ids [...] -> vectors [..., dModel].
 *
 * @example
 * const emb = Embedding(258, 64);    // i32 [B, L] -> f32 [B, L, 64]
 */
export function Embedding(vocabSize: number, dModel: number): Layer {
  positiveInt('Embedding', 'vocabSize', vocabSize);
  positiveInt('Embedding', 'dModel', dModel);
  return {
    name: 'Embedding',
    nIn: 1,
    nOut: 1,
    init: (key) => ({ table: key.split('table').normal([vocabSize, dModel], 1) }),
    apply(params, [ids]) {
      if (ids!.dtype !== 'i32') throw new ops.ShapeError(ids!.graph.scope, `ids must be i32, got ${ids!.dtype}[${ids!.shape.join(',')}]`);
      const table = tensorField(params, 'table', 'Embedding');
      const flat = ops.reshape(ids!, [-1, 1]);
      const n = flat.shape[0]!;
      const index = ops.broadcastTo(flat, [n, dModel]);
      const rows = ops.gather(table, index, 0);
      return [ops.reshape(rows, [...ids!.shape, dModel])];
    },
  };
}
