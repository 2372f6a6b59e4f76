/**
 * Hugging Face transformers' `ReformerConfig` (the `config.json` of a `ReformerModelWithLMHead`)
 * and our ModelConfig, both ways. Every HF field is either mapped to one of ours, checked against
 * the one value our model implements, or listed as having no effect on the language model's
 * numbers; anything else is refused with an error naming the field and its value. The table in
 * docs/interop.md is this file, in words.
 */
import { validateModelConfig, type ModelConfig } from '../config.ts';
import { PAD_ID } from '../model.ts';

export class InteropError extends Error {
  override readonly name = 'InteropError';
}

/** ReformerConfig's defaults, for fields a config.json leaves out (save_pretrained omits some). */
export const hfReformerDefaults: Readonly<Record<string, unknown>> = {
  attention_head_size: 64,
  attn_layers: ['local', 'lsh', 'local', 'lsh', 'local', 'lsh'],
  axial_pos_embds: true,
  axial_pos_shape: [64, 64],
  axial_pos_embds_dim: [64, 192],
  feed_forward_size: 512,
  hash_seed: null,
  hidden_act: 'relu',
  hidden_dropout_prob: 0.05,
  hidden_size: 256,
  is_decoder: false,
  layer_norm_eps: 1e-12,
  local_num_chunks_before: 1,
  local_num_chunks_after: 0,
  local_attention_probs_dropout_prob: 0.05,
  local_attn_chunk_length: 64,
  lsh_attn_chunk_length: 64,
  lsh_attention_probs_dropout_prob: 0,
  lsh_num_chunks_before: 1,
  lsh_num_chunks_after: 0,
  max_position_embeddings: 4096,
  num_attention_heads: 12,
  num_buckets: null,
  num_hashes: 1,
  vocab_size: 320,
  tie_word_embeddings: false,
  chunk_size_feed_forward: 0,
};

/**
 * Fields with no effect on the language model's forward pass or loss (initialisation, token ids
 * for generation, bookkeeping, memory schedules): accepted on import and not carried over.
 */
export const hfIgnoredFields: readonly string[] = [
  'architectures', 'model_type', 'transformers_version', 'torch_dtype', 'dtype', '_name_or_path', '_commit_hash',
  'initializer_range', 'axial_norm_std', 'chunk_size_lm_head', 'use_cache', 'classifier_dropout',
  'pad_token_id', 'eos_token_id', 'bos_token_id', 'sep_token_id', 'decoder_start_token_id',
  'id2label', 'label2id', 'num_labels', 'problem_type', 'finetuning_task', 'task_specific_params', 'tokenizer_class', 'prefix',
  'output_hidden_states', 'output_attentions', 'return_dict', 'torchscript', 'use_bfloat16', 'tf_legacy_loss',
  'max_length', 'min_length', 'do_sample', 'early_stopping', 'num_beams', 'num_beam_groups', 'diversity_penalty', 'temperature',
  'top_k', 'top_p', 'typical_p', 'repetition_penalty', 'length_penalty', 'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size',
  'bad_words_ids', 'num_return_sequences', 'output_scores', 'return_dict_in_generate', 'forced_bos_token_id', 'forced_eos_token_id',
  'remove_invalid_values', 'exponential_decay_length_penalty', 'suppress_tokens', 'begin_suppress_tokens',
];

/** Fields that must hold one value (ours) to be importable: field → [value, why]. */
export const hfFixedFields: Readonly<Record<string, readonly [unknown, string]>> = {
  is_decoder: [true, 'our ReformerLM is causal; an encoder-only (is_decoder false) Reformer has no counterpart here'],
  axial_pos_embds: [true, 'our ReformerLM has axial positional embeddings only'],
  hash_seed: [null, 'our rotations come from the run seed (or are supplied per LSH layer), not a fixed torch seed'],
  tie_word_embeddings: [false, 'our decoder is not tied to the token embeddings'],
  lsh_num_chunks_before: [1, 'our LSH layers look back one chunk'],
  lsh_num_chunks_after: [0, 'our LSH layers do not look ahead'],
  local_num_chunks_before: [1, 'our local layers look back one chunk'],
  local_num_chunks_after: [0, 'our local layers do not look ahead'],
  local_attention_probs_dropout_prob: [0, 'our local attention has no attention dropout'],
  add_cross_attention: [false, 'our ReformerLM has no cross-attention'],
  is_encoder_decoder: [false, 'our ReformerLM is a decoder only'],
  tie_encoder_decoder: [false, 'our ReformerLM is a decoder only'],
  cross_attention_hidden_size: [null, 'our ReformerLM has no cross-attention'],
  pruned_heads: [{}, 'our attention layers have no pruned heads'],
};

/** HF activation names and ours: HF's 'gelu' is the exact erf GELU, ours is the tanh form (HF 'gelu_new'). */
const activationToOurs: Readonly<Record<string, ModelConfig['ffActivation']>> = { relu: 'relu', gelu_new: 'gelu' };
const activationToHf: Readonly<Record<ModelConfig['ffActivation'], string>> = { relu: 'relu', gelu: 'gelu_new' };

/** The fields mapped to ours (see `fromHfConfig`). */
export const hfMappedFields: readonly string[] = [
  'vocab_size', 'hidden_size', 'feed_forward_size', 'num_attention_heads', 'attention_head_size', 'attn_layers', 'num_hidden_layers',
  'num_hashes', 'num_buckets', 'lsh_attn_chunk_length', 'local_attn_chunk_length', 'chunk_size_feed_forward', 'hidden_act',
  'layer_norm_eps', 'max_position_embeddings', 'axial_pos_shape', 'axial_pos_embds_dim', 'hidden_dropout_prob',
  'lsh_attention_probs_dropout_prob',
];

const show = (v: unknown) => JSON.stringify(v);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Reads an HF config.json object into our ModelConfig; `source` names the file in errors. */
export function fromHfConfig(raw: unknown, source: string): ModelConfig {
  const fail = (field: string, value: unknown, why: string): never => {
    throw new InteropError(`${source}: ReformerConfig field '${field}' = ${show(value)}: ${why}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InteropError(`${source}: config.json must be a JSON object`);
  const given = raw as Record<string, unknown>;
  for (const [k, v] of Object.entries(given)) {
    if (!hfMappedFields.includes(k) && !(k in hfFixedFields) && !hfIgnoredFields.includes(k)) fail(k, v, 'is not a ReformerConfig field this importer knows; refusing rather than guessing');
  }
  if (given.model_type !== undefined && given.model_type !== 'reformer') fail('model_type', given.model_type, "must be 'reformer'");
  const archs = given.architectures;
  if (Array.isArray(archs) && archs.length > 0 && !archs.includes('ReformerModelWithLMHead')) {
    fail('architectures', archs, 'this importer reads ReformerModelWithLMHead checkpoints (a causal language model)');
  }
  const c = { ...hfReformerDefaults, ...given };
  for (const [k, [want, why]] of Object.entries(hfFixedFields)) {
    if (c[k] !== undefined && !same(c[k], want)) fail(k, c[k], `only ${show(want)} is supported: ${why}`);
  }
  const layers = c.attn_layers;
  if (!Array.isArray(layers) || layers.length === 0 || !layers.every((l) => l === 'lsh' || l === 'local')) {
    fail('attn_layers', layers, "must be a non-empty list of 'lsh' and 'local'");
  }
  const kinds = layers as ('lsh' | 'local')[];
  if (c.num_hidden_layers !== undefined && c.num_hidden_layers !== kinds.length) {
    fail('num_hidden_layers', c.num_hidden_layers, `must equal the length of attn_layers (${kinds.length})`);
  }
  const lshChunk = c.lsh_attn_chunk_length;
  const localChunk = c.local_attn_chunk_length;
  const usesLsh = kinds.includes('lsh');
  const usesLocal = kinds.includes('local');
  if (Array.isArray(c.num_buckets)) fail('num_buckets', c.num_buckets, 'factorised buckets (a list) are not a ModelConfig option here; use an even integer');
  const act = activationToOurs[String(c.hidden_act)];
  if (act === undefined) {
    fail('hidden_act', c.hidden_act, `supported: ${Object.keys(activationToOurs).map(show).join(', ')} (our gelu is the tanh approximation, HF's 'gelu_new'; HF 'gelu' is the exact erf form)`);
  }
  const shape = c.axial_pos_shape;
  if (!Array.isArray(shape) || shape.length !== 2) fail('axial_pos_shape', shape, 'our axial embeddings have exactly two factors');
  const dims = c.axial_pos_embds_dim;
  if (!Array.isArray(dims) || dims.length !== 2) fail('axial_pos_embds_dim', dims, 'our axial embeddings have exactly two parts');
  const seqLen = (shape as number[])[0]! * (shape as number[])[1]!;
  if (c.max_position_embeddings !== seqLen) {
    fail('max_position_embeddings', c.max_position_embeddings, `must equal the product of axial_pos_shape ${show(shape)} (${seqLen}): our sequence length is fixed by it`);
  }
  const ffChunk = c.chunk_size_feed_forward;
  if (typeof ffChunk !== 'number' || !Number.isInteger(ffChunk) || ffChunk < 0 || (ffChunk > 0 && seqLen % ffChunk !== 0)) {
    fail('chunk_size_feed_forward', ffChunk, `must be 0 or a divisor of the sequence length ${seqLen} (our ffChunkLen chunks the same way, along the sequence)`);
  }
  for (const [field, value, used] of [['lsh_attn_chunk_length', lshChunk, usesLsh], ['local_attn_chunk_length', localChunk, usesLocal]] as const) {
    if (used && (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || seqLen % value !== 0)) {
      fail(field, value, `must divide the sequence length ${seqLen} (HF attends in full when a chunk exceeds the sequence; our chunks tile it)`);
    }
  }
  const chunkLen = usesLsh ? lshChunk : localChunk;
  const nBucketsDefault = usesLsh && typeof chunkLen === 'number' && chunkLen > 0 ? hfDefaultBuckets(seqLen, chunkLen, c.max_position_embeddings as number) : undefined;
  let nBuckets = c.num_buckets ?? nBucketsDefault;
  if (Array.isArray(nBuckets)) {
    fail('num_buckets', null, `HF would choose factorised buckets ${show(nBuckets)} for length ${seqLen} (not a ModelConfig option here); set an even integer num_buckets`);
  }
  if (!usesLsh) nBuckets = undefined;
  const ours = {
    architecture: 'reformer',
    vocabSize: c.vocab_size,
    seqLen,
    dModel: c.hidden_size,
    dFF: c.feed_forward_size,
    nHeads: c.num_attention_heads,
    dHead: c.attention_head_size,
    nLayers: kinds.length,
    attention: kinds,
    nHashes: c.num_hashes,
    chunkLen,
    // local layers get their own chunk length only when it differs (our chunkLen serves both otherwise)
    ...(usesLsh && usesLocal && localChunk !== lshChunk ? { localChunkLen: localChunk } : {}),
    ...(nBuckets !== undefined ? { nBuckets } : {}),
    ffChunkLen: c.chunk_size_feed_forward,
    ffActivation: act,
    layerNormEpsilon: c.layer_norm_eps,
    axialShape: shape,
    axialDims: dims,
    dropout: c.hidden_dropout_prob,
    attentionDropout: c.lsh_attention_probs_dropout_prob,
  };
  try {
    return validateModelConfig(ours);
  } catch (e) {
    throw new InteropError(`${source}: ${(e as Error).message} (from the ReformerConfig fields; see docs/interop.md for the mapping)`);
  }
}

/** HF's choice when num_buckets is null: a power of two near 2·L/c, factorised beyond a limit. */
function hfDefaultBuckets(L: number, chunkLen: number, maxPositions: number): number | number[] {
  const pow = (2 * Math.floor(L / chunkLen)).toString(2).length - 1;
  const nb = 2 ** pow;
  const limit = 2 * Math.max(Math.floor(Math.sqrt(Math.floor(maxPositions / chunkLen))), chunkLen);
  return nb > limit ? [2 ** Math.floor(pow / 2), 2 ** (pow - Math.floor(pow / 2))] : nb;
}

/** Our ModelConfig as an HF config.json object; refuses what ReformerConfig cannot express. */
export function toHfConfig(cfg: ModelConfig): Record<string, unknown> {
  const fail = (option: string, value: unknown, why: string): never => {
    throw new InteropError(`model option '${option}' = ${show(value)}: ${why}`);
  };
  if (cfg.architecture !== 'reformer') fail('architecture', cfg.architecture, 'HF ReformerModelWithLMHead is a reversible Reformer; the full-attention Transformer baseline has no HF Reformer form');
  const kinds = Array.from({ length: cfg.nLayers }, (_, i) => cfg.attention[i % cfg.attention.length]!);
  const full = kinds.indexOf('full');
  if (full >= 0) fail('attention', cfg.attention, `layer ${full} is 'full'; HF's Reformer has only 'lsh' and 'local' layers`);
  const L = cfg.seqLen;
  return {
    architectures: ['ReformerModelWithLMHead'],
    model_type: 'reformer',
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.dModel,
    feed_forward_size: cfg.dFF,
    num_attention_heads: cfg.nHeads,
    attention_head_size: cfg.dHead,
    attn_layers: kinds,
    num_hidden_layers: kinds.length,
    num_hashes: cfg.nHashes,
    num_buckets: cfg.nBuckets ?? (2 * L) / cfg.chunkLen,
    lsh_attn_chunk_length: cfg.chunkLen,
    local_attn_chunk_length: cfg.localChunkLen ?? cfg.chunkLen,
    lsh_num_chunks_before: 1,
    lsh_num_chunks_after: 0,
    local_num_chunks_before: 1,
    local_num_chunks_after: 0,
    chunk_size_feed_forward: cfg.ffChunkLen,
    chunk_size_lm_head: 0,
    hidden_act: activationToHf[cfg.ffActivation],
    layer_norm_eps: cfg.layerNormEpsilon ?? 1e-6,
    max_position_embeddings: L,
    axial_pos_embds: true,
    axial_pos_shape: [...cfg.axialShape],
    axial_pos_embds_dim: [...cfg.axialDims],
    axial_norm_std: 1.0,
    hidden_dropout_prob: cfg.dropout,
    lsh_attention_probs_dropout_prob: cfg.attentionDropout,
    local_attention_probs_dropout_prob: 0,
    is_decoder: true,
    hash_seed: null,
    tie_word_embeddings: false,
    pad_token_id: PAD_ID,
    initializer_range: 0.02,
    torch_dtype: 'float32',
  };
}
