import * as ops from '../ops.ts';
import { noParams, positiveInt, type Layer } from '../layer.ts';

/**
 * Shifts token ids right along the last axis, filling with `padId`: the model predicts token t
 * from tokens before t.
 */
export function ShiftRight(options: { readonly padId?: number } = {}): Layer {
  const padId = options.padId ?? 0;
  return {
    name: 'ShiftRight',
    nIn: 1,
    nOut: 1,
    init: () => noParams,
    apply(_p, [x]) {
      const L = x!.shape[x!.rank - 1]!;
      const kept = ops.sliceAxis(x!, -1, 0, L - 1);
      const before = x!.shape.map((_, i) => (i === x!.rank - 1 ? 1 : 0));
      const padded = ops.pad(ops.sub(kept, padId), before, x!.shape.map(() => 0));
      return [ops.add(padded, padId)];
    },
  };
}

/**
 * Mean cross-entropy of logits [..., V] against i32 targets [...], optionally weighted by an f32
 * mask [...] (3 inputs). Returns a scalar.
 */
export function CrossEntropyLoss(options: { readonly weighted?: boolean } = {}): Layer {
  const weighted = options.weighted ?? false;
  return {
    name: 'CrossEntropyLoss',
    nIn: weighted ? 3 : 2,
    nOut: 1,
    init: () => noParams,
    apply(_p, [logits, targets, weights]) {
      const V = logits!.shape[logits!.rank - 1]!;
      positiveInt('CrossEntropyLoss', 'vocabulary size', V);
      const lead = logits!.shape.slice(0, -1);
      if (targets!.rank !== lead.length || targets!.shape.some((d, i) => d !== lead[i])) {
        throw new ops.ShapeError(
          logits!.graph.scope,
          `targets [${targets!.shape.join(',')}] do not match logits [${logits!.shape.join(',')}] without the last axis`,
        );
      }
      const logp = ops.logSoftmax(logits!, -1);
      const picked = ops.gather(logp, ops.reshape(targets!, [...lead, 1]), -1);
      const nll = ops.neg(ops.reshape(picked, lead));
      if (!weighted) return [ops.meanAll(nll)];
      return [ops.div(ops.sumAll(ops.mul(nll, weights!)), ops.maximum(ops.sumAll(weights!), 1e-9))];
    },
  };
}
