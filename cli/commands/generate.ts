/** `reformer generate`: samples bytes from a checkpoint and prints them as they come. */
import { loadRun } from '../../node.ts';
import { contextLength, escapeControlChars, generate, windowStart } from '../../reformer/generate.ts';
import { checkSeed } from '../../reformer/config.ts';
import { encodeText, SPECIAL_TOKENS, tokenByte } from '../../reformer/train/data-source.ts';
import { openRunner } from './runner.ts';

export interface GenerateCommandOptions {
  readonly checkpoint: string;
  readonly prompt: string;
  readonly length: number;
  readonly temperature: number;
  readonly topK: number;
  readonly seed: number;
  readonly backend: string;
}

export async function generateCommand(opts: GenerateCommandOptions): Promise<void> {
  if (opts.length < 1) throw new Error(`--length must be at least 1, got ${opts.length}`);
  if (opts.temperature < 0) throw new Error(`--temperature must be >= 0, got ${opts.temperature}`);
  if (opts.topK < 0) throw new Error(`--top-k must be >= 0, got ${opts.topK}`);
  checkSeed('--seed', opts.seed);
  const run = await loadRun(opts.checkpoint, {}, 1);
  if (run.config.model.vocabSize !== 258) throw new Error('generate needs a byte-level text model (vocabSize 258); this checkpoint is not one');
  const runner = await openRunner(opts.backend);
  process.stderr.write(`backend: ${runner.description}; checkpoint step ${run.step}\n`);
  const prompt = encodeText(opts.prompt);
  const context = contextLength(run.config.model.seqLen);
  if (prompt.length > context) {
    const seen = prompt.length - windowStart(prompt.length, 0, run.config.model.seqLen);
    process.stderr.write(
      `note: the prompt is ${prompt.length} bytes; the model sees only the last ${seen} (its window holds seqLen ${run.config.model.seqLen} positions; a full window slides by half)\n`,
    );
  }
  // Control bytes (the prompt's or sampled ones, e.g. NUL or ESC) are printed escaped, never raw.
  process.stdout.write(escapeControlChars(opts.prompt));
  const decoder = new TextDecoder('utf-8');
  const tokens = await generate(runner, run.config.model, run.params, run.paramTree, prompt, {
    length: opts.length,
    temperature: opts.temperature,
    topK: opts.topK,
    seed: opts.seed,
    forbidden: SPECIAL_TOKENS,
    onToken: (t) => {
      const byte = tokenByte(t);
      if (byte !== undefined) process.stdout.write(escapeControlChars(decoder.decode(Uint8Array.of(byte), { stream: true })));
    },
  });
  process.stdout.write(`${escapeControlChars(decoder.decode())}\n`);
  if (tokens.length !== opts.length) throw new Error('generation stopped early');
}
