/**
 * Autoregressive sampling from a causal LM. The model runs at its fixed length L; the context is
 * the last L−1 tokens, so each new token costs one forward pass (no incremental cache yet).
 */
import { uniformAt } from '../compiler/ir/random.ts';
import type { HostTensor } from '../compiler/ir/host-tensor.ts';
import type { Layer } from '../dsl/layer.ts';
import type { GraphRunner } from '../runtime/runner.ts';
import { logitsGraph, objectiveFeeds } from './train/objective.ts';
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

/** Tokens of context the model sees at length `seqLen`: the last L−1 (position L−1 predicts the next one). */
export const contextLength = (seqLen: number) => seqLen - 1;

/**
 * Makes text safe to print to a terminal: control characters (C0 except newline and tab, DEL, and
 * C1, which terminals may read as escape sequences) become visible `\xNN` escapes.
 */
export function escapeControlChars(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export interface GenerateOptions extends SampleOptions {
  readonly seqLen: number;
  readonly length: number;
  /** Called with each new token as it is produced. */
  readonly onToken?: (token: number) => void;
}

/** Continues `prompt` (token ids) by `length` tokens. */
export async function generate(
  runner: GraphRunner,
  model: Layer,
  params: ReadonlyMap<string, HostTensor>,
  paramTree: Parameters<typeof logitsGraph>[1],
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<number[]> {
  const L = options.seqLen;
  const { graph } = logitsGraph(model, paramTree, 1, L);
  const tokens = [...prompt];
  const out: number[] = [];
  for (let n = 0; n < options.length; n++) {
    // Position t of the window predicts the token at t from tokens before it (the model shifts right).
    const context = tokens.slice(-contextLength(L));
    const t = context.length;
    const window = new Int32Array(L).fill(PAD_ID);
    window.set(context);
    const feeds = objectiveFeeds(graph, params, { tokens: { shape: [1, L], dtype: 'i32', data: window } }, 0);
    const [logits] = await runner.run(graph, feeds);
    const V = logits!.shape[2]!;
    const row = logits!.data.subarray(t * V, (t + 1) * V);
    const next = sampleToken(row, options, tokens.length);
    tokens.push(next);
    out.push(next);
    options.onToken?.(next);
  }
  return out;
}
