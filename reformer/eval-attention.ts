/**
 * Evaluating a trained model with another attention than it trained with: full attention in place
 * of LSH, or LSH with another number of hash rounds. `reformer eval` and the reproduction grid both
 * choose the evaluated model here, so an impossible choice is refused the same way in both.
 */
import { validateModelConfig, type ModelConfig } from './config.ts';
import type { ModelOverrides } from './model.ts';

export type EvalAttention = { readonly kind: 'trained' } | { readonly kind: 'full' } | { readonly kind: 'lsh'; readonly nHashes: number };

export interface EvalSetup {
  readonly model: ModelConfig;
  readonly overrides: ModelOverrides;
}

/**
 * The model that evaluates a trained config with another attention, or undefined when that
 * attention cannot reuse the trained weights (LSH needs shared-QK weights; local layers have no
 * full or LSH counterpart here). A shared-QK full model and an LSH model have the same parameters,
 * so each evaluates as the other.
 */
export function evalSetup(trained: ModelConfig, attention: EvalAttention): EvalSetup | undefined {
  const kinds = new Set(trained.attention);
  const allFull = kinds.size === 1 && kinds.has('full');
  const allLsh = kinds.size === 1 && kinds.has('lsh');
  switch (attention.kind) {
    case 'trained':
      return { model: trained, overrides: {} };
    case 'full':
      if (allFull) return { model: trained, overrides: {} };
      return allLsh ? { model: trained, overrides: { lshAsFull: true } } : undefined;
    case 'lsh':
      if (allLsh) return { model: trained, overrides: { nHashes: attention.nHashes } };
      if (allFull && trained.sharedQK === true) {
        return { model: validateModelConfig({ ...trained, attention: ['lsh'], nHashes: attention.nHashes }), overrides: {} };
      }
      return undefined;
  }
}

/** Why `attention` cannot evaluate `trained` (for an error message), or undefined when it can. */
export function evalRefusal(trained: ModelConfig, attention: EvalAttention): string | undefined {
  if (evalSetup(trained, attention) !== undefined) return undefined;
  const layers = trained.attention.join('/');
  return attention.kind === 'lsh'
    ? `LSH evaluation needs LSH layers or full attention with shared QK; this model has ${layers} attention${trained.sharedQK === true ? '' : ' without shared QK'}`
    : `full-attention evaluation needs all-LSH or all-full layers; this model has ${layers} attention`;
}
