/**
 * Multi-head attention layers on `[B, L, d_model]`: per-head projections (no biases), one of the
 * attention cores, and the output projection. LSH attention records its buckets as layer state, so
 * a replayed pass (the reversible backward) reuses the forward pass's buckets instead of re-hashing.
 *
 * @example
 * const attn = LSHSelfAttention({ nHeads: 4, dHead: 32, nHashes: 2, chunkLen: 64, causal: true });
 * const params = attn.init(new InitKey(0), [spec([1, 1024, 128])]);
 */
import { OptionError, ShapeError, type Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';
import { positiveInt, tensorField, type InitKey, type Layer, type Params, type TensorSpec } from '../../dsl/layer.ts';
import { fullAttend, localAttend } from './full.ts';
import { drawRotations, hashBuckets, rotationShape } from './hashing.ts';
import { lshAttend } from './lsh.ts';
import { checkLshOptions, resolveLsh, type LshOptions } from './options.ts';

interface HeadOptions {
  readonly nHeads: number;
  readonly dHead: number;
}

function glorot(key: InitKey, name: string, fanIn: number, fanOut: number) {
  const a = Math.sqrt(6 / (fanIn + fanOut));
  return key.split(name).uniform([fanIn, fanOut], -a, a);
}

/** Weights `[d_model, h·d]` for each named input projection and `wo: [h·d, d_model]`. */
function initProjections(key: InitKey, input: TensorSpec | undefined, layer: string, names: readonly string[], o: HeadOptions): Params {
  if (input === undefined || input.shape.length !== 3) {
    throw new OptionError(`${layer}: input must be [B, L, d_model], got [${input?.shape.join(',') ?? ''}]`);
  }
  const dModel = input.shape[2]!;
  const inner = o.nHeads * o.dHead;
  const params: Record<string, Params> = {};
  for (const n of names) params[n] = glorot(key, n, dModel, inner);
  params.wo = glorot(key, 'wo', inner, dModel);
  return params;
}

function checkInput(layer: string, x: Tensor): [number, number, number] {
  if (x.rank !== 3) throw new ShapeError(x.graph.scope, `${layer}: input must be [B, L, d_model], got [${x.shape.join(',')}]`);
  return x.shape as [number, number, number];
}

/** `[B, L, d_model] · W` split into heads: `[B, h, L, d]`. */
function project(layer: string, x: Tensor, w: Tensor, o: HeadOptions): Tensor {
  const [B, L, dModel] = x.shape as [number, number, number];
  if (w.shape[0] !== dModel || w.shape[1] !== o.nHeads * o.dHead) {
    throw new ShapeError(
      x.graph.scope,
      `${layer}: input [${x.shape.join(',')}] needs a projection [${dModel},${o.nHeads * o.dHead}], parameters have [${w.shape.join(',')}]`,
    );
  }
  const y = ops.reshape(ops.matmul(ops.reshape(x, [B * L, dModel]), w), [B, L, o.nHeads, o.dHead]);
  return ops.transpose(y, [0, 2, 1, 3]);
}

/** Heads `[B, h, L, d]` back to `[B, L, d_model]` through `wo`. */
function merge(heads: Tensor, wo: Tensor): Tensor {
  const [B, h, L, d] = heads.shape as [number, number, number, number];
  const flat = ops.reshape(ops.transpose(heads, [0, 2, 1, 3]), [B * L, h * d]);
  return ops.reshape(ops.matmul(flat, wo), [B, L, wo.shape[1]!]);
}

function checkHeads(layer: string, o: HeadOptions): void {
  positiveInt(layer, 'nHeads', o.nHeads);
  positiveInt(layer, 'dHead', o.dHead);
}

export interface LSHSelfAttentionOptions extends LshOptions, HeadOptions {
  /** Dropout rate on the attention weights in training mode (default 0). */
  readonly dropout?: number;
  /** When true the layer takes `[x, mask]` (mask `[B, L]`, nonzero = real token) and returns `[y, mask]`. */
  readonly padMask?: boolean;
  /**
   * Fixed rotations instead of seeded random ones: `[B, h, dHead, nHashes, nBuckets/2]` (Σ factor/2
   * when factorised), or `[h, dHead, nHashes, nBuckets/2]` shared by every example of the batch
   * (HF transformers' layout; with B = 1 the two layouts coincide). Told apart by their length.
   */
  readonly rotations?: Float32Array | readonly number[];
}

/**
 * Shared-QK LSH self-attention (Reformer). Buckets are layer state `buckets` (`[B, h, H, L]`).
 *
 * @example
 * const layer = LSHSelfAttention({ nHeads: 2, dHead: 16, nHashes: 4, chunkLen: 8, causal: true });
 */
export function LSHSelfAttention(options: LSHSelfAttentionOptions): Layer {
  const name = 'LSHSelfAttention';
  checkHeads(name, options);
  checkLshOptions(name, options);
  const rate = options.dropout ?? 0;
  if (!(rate >= 0 && rate < 1)) throw new OptionError(`${name}: option 'dropout' must be in [0, 1), got ${rate}`);
  const masked = options.padMask ?? false;
  return {
    name,
    nIn: masked ? 2 : 1,
    nOut: masked ? 2 : 1,
    init: (key, [input]) => initProjections(key, input, name, ['wqk', 'wv'], options),
    apply(params, inputs, ctx) {
      const x = inputs[0]!;
      const [B, L] = checkInput(name, x);
      const o = resolveLsh(name, x.graph.scope, options, L);
      const qk = project(name, x, tensorField(params, 'wqk', name), options);
      const v = project(name, x, tensorField(params, 'wv', name), options);
      let mask: Tensor | undefined;
      if (masked) {
        const m = inputs[1]!;
        if (m.rank !== 2 || m.shape[0] !== B || m.shape[1] !== L) {
          throw new ShapeError(x.graph.scope, `${name}: padding mask must be [B, L] = [${B},${L}], got [${m.shape.join(',')}]`);
        }
        mask = m.dtype === 'i32' ? m : ops.ne(m, 0);
      }
      const rotations = () => {
        if (options.rotations === undefined) return drawRotations(qk, ctx.seed(), ctx.salt('rotations'), o.nHashes, o.bucketFactors);
        const shape = rotationShape(qk, o.nHashes, o.bucketFactors);
        const n = shape.reduce((a, b) => a * b, 1);
        const shared = shape.slice(1);
        if (options.rotations.length === n / B && B > 1) {
          return ops.broadcastTo(ops.constant(x.graph, Array.from(options.rotations), [1, ...shared]), shape);
        }
        if (options.rotations.length !== n) {
          throw new ShapeError(
            x.graph.scope,
            `${name}: rotations have ${options.rotations.length} values, [B,h,dK,nHashes,nBuckets/2 or Σ factor/2] = [${shape.join(',')}] needs ${n} (or ${n / B} shared across the batch)`,
          );
        }
        return ops.constant(x.graph, Array.from(options.rotations), shape);
      };
      const buckets = ctx.state('buckets', () => hashBuckets(qk, rotations(), o.nHashes, o.bucketFactors, mask));
      const dropout = ctx.mode === 'train' && rate > 0 ? { rate, seed: ctx.seed(), salt: ctx.salt('dropout') } : undefined;
      const heads = lshAttend(qk, v, buckets, o, { padMask: mask, dropout });
      const y = merge(heads, tensorField(params, 'wo', name));
      return masked ? [y, inputs[1]!] : [y];
    },
  };
}

export interface FullAttentionOptions extends HeadOptions {
  readonly causal?: boolean;
  /** One projection for queries and keys, with LSH attention's key normalisation and self mask. */
  readonly sharedQK?: boolean;
}

/**
 * Full multi-head dot-product attention: the O(L²) baseline.
 *
 * @example
 * const layer = FullAttention({ nHeads: 4, dHead: 32, causal: true });
 */
export function FullAttention(options: FullAttentionOptions): Layer {
  const name = 'FullAttention';
  checkHeads(name, options);
  const shared = options.sharedQK ?? false;
  return {
    name,
    nIn: 1,
    nOut: 1,
    init: (key, [input]) => initProjections(key, input, name, shared ? ['wqk', 'wv'] : ['wq', 'wk', 'wv'], options),
    apply(params, [x]) {
      checkInput(name, x!);
      const p = (n: string) => project(name, x!, tensorField(params, n, name), options);
      const q = p(shared ? 'wqk' : 'wq');
      const k = shared ? q : p('wk');
      const heads = fullAttend(q, k, p('wv'), { causal: options.causal, sharedQK: shared });
      return [merge(heads, tensorField(params, 'wo', name))];
    },
  };
}

export interface LocalAttentionOptions extends HeadOptions {
  readonly chunkLen: number;
  readonly nChunksBefore?: number;
  readonly causal?: boolean;
}

/**
 * Local chunked attention: each chunk of positions attends to itself and the chunks before it.
 *
 * @example
 * const layer = LocalAttention({ nHeads: 4, dHead: 32, chunkLen: 128, causal: true });
 */
export function LocalAttention(options: LocalAttentionOptions): Layer {
  const name = 'LocalAttention';
  checkHeads(name, options);
  positiveInt(name, 'chunkLen', options.chunkLen);
  const before = options.nChunksBefore ?? 1;
  if (!Number.isInteger(before) || before < 0) {
    throw new OptionError(`${name}: option 'nChunksBefore' must be an integer >= 0, got ${before}`);
  }
  return {
    name,
    nIn: 1,
    nOut: 1,
    init: (key, [input]) => initProjections(key, input, name, ['wq', 'wk', 'wv'], options),
    apply(params, [x]) {
      checkInput(name, x!);
      const p = (n: string) => project(name, x!, tensorField(params, n, name), options);
      const heads = localAttend(p('wq'), p('wk'), p('wv'), { chunkLen: options.chunkLen, nChunksBefore: before, causal: options.causal });
      return [merge(heads, tensorField(params, 'wo', name))];
    },
  };
}
