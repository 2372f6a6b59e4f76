/**
 * Random reversible networks for the property tests: F and G are built from DSL layers chosen by
 * fast-check, so the reversible pass is checked on architectures it was not written for.
 */
import fc from 'fast-check';
import { Dense, Dropout, Gelu, LayerNorm, Relu, Serial, Tanh, type Layer } from '../../dsl/index.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { closeness } from '../support/numeric.ts';
import { validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { tinyModelJson } from '../support/tiny-model.ts';

export interface ResidualSpec {
  readonly norm: boolean;
  /** Hidden width of a two-layer MLP, or 0 for one Dense. */
  readonly hidden: number;
  readonly act: 'relu' | 'tanh' | 'gelu';
  readonly dropout: boolean;
}

export const arbResidual: fc.Arbitrary<ResidualSpec> = fc.record({
  norm: fc.boolean(),
  hidden: fc.constantFrom(0, 3, 5),
  act: fc.constantFrom('relu', 'tanh', 'gelu'),
  dropout: fc.boolean(),
});

const acts = { relu: Relu, tanh: Tanh, gelu: Gelu } as const;

/** A residual function `[..., d] -> [..., d]` from its spec. */
export function buildResidual(s: ResidualSpec, d: number): Layer {
  const layers: Layer[] = [];
  if (s.norm) layers.push(LayerNorm());
  if (s.hidden > 0) layers.push(Dense(s.hidden), acts[s.act](), Dense(d));
  else layers.push(Dense(d), acts[s.act]());
  if (s.dropout) layers.push(Dropout(0.25));
  return Serial(...layers);
}

/** Largest closeness over tensors (≤ 1 means all close). */
export function worst(pairs: ReadonlyArray<readonly [HostTensor, HostTensor]>, rtol: number, atol: number): number {
  return Math.max(0, ...pairs.map(([a, b]) => closeness(a.data, b.data, rtol, atol)));
}

/**
 * A two-layer local/LSH ReformerLM small enough for the float64 reference: chunked feed-forward
 * (4 chunks of 4), dropout in the layers and in attention; `train` and `model` override.
 */
export function tinyScheduledConfig(train: Partial<RunConfig['train']> = {}, model: Partial<RunConfig['model']> = {}): RunConfig {
  return validateRunConfig({
    model: tinyModelJson({ nHashes: 2, chunkLen: 4, ffChunkLen: 4, attentionDropout: 0.1, ...model }),
    train,
  });
}
