/**
 * Autoregressive sampling from a causal LM, decoded incrementally: each new token runs one step of
 * the model at one position (`reformer/decode/`), reading the cached keys and values of the
 * positions before it, instead of a forward pass over the whole window.
 *
 * The model runs at its fixed length L with absolute positions, so the context lives in a window
 * of L positions: the token at index n is predicted at position n − start. When the window is full,
 * it slides by half: the last ⌊L/2⌋ tokens are decoded again as the start of a new window
 * (`windowStart`). `reformer/decode/whole-window.ts` reruns the whole window for every token
 * instead: the reference the tests compare with, equal for full and local attention; LSH layers
 * decode with their incremental semantics (docs/attention.md, "Incremental decoding").
 */
import { uniformAt } from '../compiler/ir/random.ts';
import type { HostTensor } from '../compiler/ir/host-tensor.ts';
import type { Params } from '../dsl/layer.ts';
import type { GraphRunner } from '../runtime/runner.ts';
import type { ModelConfig } from './config.ts';
import { IncrementalDecoder } from './decode/decoder.ts';
import { PAD_ID } from './model.ts';

export interface SampleOptions {
  /** 0 = greedy (argmax). */
  readonly temperature: number;
  /** Sample among the k most likely tokens; 0 = all. */
  readonly topK: number;
  readonly seed: number;
  /** Token ids never sampled (e.g. padding). */
  readonly forbidden?: readonly number[];
}

/** Picks a token from one row of logits. Pure: the draw depends on (seed, position) only. */
export function sampleToken(logits: ArrayLike<number>, options: SampleOptions, position: number): number {
  const V = logits.length;
  const banned = new Set(options.forbidden ?? []);
  const ids = Array.from({ length: V }, (_, i) => i).filter((i) => !banned.has(i));
  ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (options.temperature === 0) return ids[0]!;
  const pool = options.topK > 0 ? ids.slice(0, options.topK) : ids;
  const top = logits[pool[0]!]!;
  const weights = pool.map((i) => Math.exp((logits[i]! - top) / options.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let u = uniformAt(options.seed, 0x5eed, position) * total;
  for (let j = 0; j < pool.length; j++) {
    u -= weights[j]!;
    if (u < 0) return pool[j]!;
  }
  return pool[pool.length - 1]!;
}

/** Tokens of context the model sees at most at length `seqLen`: L−1 (position L−1 predicts the next one). */
export const contextLength = (seqLen: number) => seqLen - 1;

/**
 * The window start for predicting the token at index `n`, given the current start: unchanged while
 * n − start ≤ L − 1 (the prediction's position fits the window), otherwise n − ⌊L/2⌋.
 */
export function windowStart(n: number, start: number, seqLen: number): number {
  return n - start <= seqLen - 1 ? start : n - Math.floor(seqLen / 2);
}

/**
 * Makes text safe to print to a terminal: control characters (C0 except newline and tab, DEL, and
 * C1, which terminals may read as escape sequences) become visible `\xNN` escapes.
 */
export function escapeControlChars(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export interface GenerateOptions extends SampleOptions {
  readonly length: number;
  /** Called with each new token as it is produced. */
  readonly onToken?: (token: number) => void;
}

/** Logits predicting the token at index `tokens.length`, from the window starting at `start`. */
export type NextLogits = (tokens: readonly number[], start: number) => Promise<ArrayLike<number>>;

/** The sampling loop shared by the incremental path and its whole-window reference. */
export async function sampleWith(next: NextLogits, seqLen: number, prompt: readonly number[], options: GenerateOptions): Promise<number[]> {
  const tokens = [...prompt];
  const out: number[] = [];
  let start = 0;
  while (out.length < options.length) {
    start = windowStart(tokens.length, start, seqLen);
    const token = sampleToken(await next(tokens, start), options, tokens.length);
    tokens.push(token);
    out.push(token);
    options.onToken?.(token);
  }
  return out;
}

/** The token before `position` of the window starting at `start` (the padding id at position 0). */
export const inputAt = (tokens: readonly number[], start: number, position: number) => (position === 0 ? PAD_ID : tokens[start + position - 1]!);

/**
 * Continues `prompt` (token ids) by `options.length` tokens, decoding incrementally with the model
 * `buildModel(config)` and its parameters.
 */
export async function generate(
  runner: GraphRunner,
  config: ModelConfig,
  params: ReadonlyMap<string, HostTensor>,
  paramTree: Params,
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<number[]> {
  const decoder = new IncrementalDecoder(runner, config, params, paramTree);
  let windowAt = 0;
  const next: NextLogits = async (tokens, start) => {
    if (start !== windowAt) {
      decoder.reset();
      windowAt = start;
    }
    // decode every position of the window not yet decoded, up to the one predicting tokens.length
    const positions = Array.from({ length: tokens.length - start + 1 - decoder.position }, (_, k) => decoder.position + k);
    const logits = await decoder.decode(positions.map((p) => inputAt(tokens, start, p)));
    return logits[logits.length - 1]!;
  };
  return sampleWith(next, config.seqLen, prompt, options);
}
