/**
 * `Chunked(layer, { axis, size })`: runs a position-wise layer on slices of `size` along `axis` and
 * concatenates the results. Values equal the unchunked layer. Each chunk is a recompute region
 * (`Graph.recompute`), so the forward keeps only the chunk outputs and the backward replays and
 * differentiates one chunk at a time: one chunk's intermediates (e.g. the d_ff activations of a
 * feed-forward block) are alive at once, and parameter gradients are summed chunk by chunk.
 *
 * Parameters are exactly the inner layer's, so a chunked and an unchunked layer share them.
 * Randomness inside the layer is salted per chunk (`Chunked[k]` on the layer path): a dropout mask
 * therefore differs from the unchunked layer's, though it replays identically in a backward pass.
 *
 * @example
 * const ff = Chunked(Serial(LayerNorm(), Dense(1024), Relu(), Dense(256)), { axis: 1, size: 512 });
 */
import { OptionError, ShapeError, type Tensor } from '../compiler/ir/graph.ts';
import * as ops from './ops.ts';
import { applyLayer, initInPath, positiveInt, type ApplyContext, type Layer, type SymbolicParams } from './layer.ts';

export interface ChunkOptions {
  /** The axis to split (negative counts from the end). */
  readonly axis: number;
  /** Chunk length; must divide the axis. */
  readonly size: number;
}

export interface ChunkedLayer extends Layer {
  readonly kind: 'chunked';
  readonly inner: Layer;
  readonly axis: number;
  readonly size: number;
}

export function isChunked(layer: Layer): layer is ChunkedLayer {
  return (layer as Partial<ChunkedLayer>).kind === 'chunked';
}

/** Scope name of chunk `k`, as pushed on the layer path. */
export const chunkScope = (k: number) => `Chunked[${k}]`;

/** Resolves the axis against a rank and checks that `size` divides it; errors name both sizes. */
export function resolveChunking(scope: string, shape: readonly number[], axis: number, size: number): { axis: number; count: number } {
  const a = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(a) || a < 0 || a >= shape.length) {
    throw new ShapeError(scope, `Chunked: axis ${axis} is out of range for input [${shape.join(',')}]`);
  }
  const len = shape[a]!;
  if (len % size !== 0) {
    throw new ShapeError(scope, `Chunked: chunk size ${size} does not divide axis ${a} of length ${len} (input [${shape.join(',')}])`);
  }
  return { axis: a, count: len / size };
}

/** Applies `layer` to `part`, chunk `k`, within the chunk's scope, checking that it keeps the chunk's axis length. */
export function applyChunk(inner: Layer, params: SymbolicParams, part: Tensor, axis: number, k: number, ctx: ApplyContext): Tensor {
  const g = part.graph;
  const size = part.shape[axis]!;
  const [y] = g.withScope(chunkScope(k), () => applyLayer(inner, params, [part], ctx));
  if (y!.rank !== part.rank || y!.shape[axis] !== size) {
    throw new ShapeError(
      g.scope ? `${g.scope}.Chunked` : 'Chunked',
      `${inner.name} maps chunk [${part.shape.join(',')}] to [${y!.shape.join(',')}]; it must keep axis ${axis} of length ${size}`,
    );
  }
  return y!;
}

export function Chunked(layer: Layer, options: ChunkOptions): ChunkedLayer {
  positiveInt('Chunked', 'size', options.size);
  if (!Number.isInteger(options.axis)) throw new OptionError(`Chunked: option 'axis' must be an integer, got ${options.axis}`);
  if (layer.nIn !== 1 || layer.nOut !== 1) {
    throw new OptionError(`Chunked: ${layer.name} must map one tensor to one tensor, got ${layer.nIn} → ${layer.nOut}`);
  }
  return {
    kind: 'chunked',
    name: 'Chunked',
    nIn: 1,
    nOut: 1,
    inner: layer,
    axis: options.axis,
    size: options.size,
    // Stryker disable next-line ArrayDeclaration: applyLayer reads only whether a layer has children, not which
    children: [layer],
    init(key, inputs) {
      const x = inputs[0]!;
      const { axis } = resolveChunking('Chunked', x.shape, options.axis, options.size);
      // Parameters depend on the chunk's shape only through its position-wise axes.
      // (initialised at chunk 0's path, where tracing reports errors first)
      return initInPath(chunkScope(0), () => layer.init(key, [{ shape: x.shape.map((d, i) => (i === axis ? options.size : d)), dtype: x.dtype }]));
    },
    apply(params, [x], ctx) {
      const scope = x!.graph.scope ? `${x!.graph.scope}.Chunked` : 'Chunked';
      const { axis, count } = resolveChunking(scope, x!.shape, options.axis, options.size);
      // Each chunk is a recompute region: its intermediates (e.g. the d_ff hidden) die as soon as
      // its output exists, and the backward replays and differentiates one chunk at a time.
      const parts = Array.from({ length: count }, (_, k) =>
        x!.graph.recompute(`${scope}[${k}]`, () => applyChunk(layer, params, ops.sliceAxis(x!, axis, k * options.size, options.size), axis, k, ctx)),
      );
      return [ops.concat(parts, axis)];
    },
  };
}
