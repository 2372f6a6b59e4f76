/**
 * The browser demo: trains a small ReformerLM on the bytes of a text (a bundled Brown-corpus
 * excerpt, or text pasted or dropped into the page) with a live loss chart, then samples from it.
 * Uses the core entry only (no Node built-ins), bundled by examples/web/build.ts.
 *
 * URL parameters (used by the test and handy for links): backend, size (small|tiny), steps,
 * batch, lr, autostart=1 (train, then sample), length (sample length).
 *
 * The page state is published as `window.reformerDemo.state` for the headless test.
 */
import { BYTE_VOCAB_SIZE, decodeBytes, encodeBytes, EOS_ID, PAD_ID } from '../../reformer/data/bytes.ts';
import { heldOutSplit, WindowSampler, windowsBatch } from '../../reformer/data/split.ts';
import { validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { generate } from '../../reformer/generate.ts';
import { bitsPerChar, train, type DataSource, type TrainResult } from '../../reformer/train/trainer.ts';
import type { BackendName } from '../../runtime/backend.ts';
import { createRunner, type CompiledRunner } from '../../runtime/compiled-runner.ts';
import { drawLossChart } from './chart.ts';

export interface DemoState {
  status: 'idle' | 'loading' | 'training' | 'sampling' | 'done' | 'error';
  backend?: string;
  executor?: string;
  losses: number[];
  tokensPerSec: number[];
  sample?: string;
  error?: string;
}

const state: DemoState = { status: 'idle', losses: [], tokensPerSec: [] };
(globalThis as { reformerDemo?: { state: DemoState } }).reformerDemo = { state };

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

const SIZES: Record<string, Partial<RunConfig['model']>> = {
  small: {
    seqLen: 64, dModel: 64, dFF: 128, nHeads: 2, dHead: 32, nLayers: 2, attention: ['local', 'lsh'], nHashes: 2,
    chunkLen: 16, ffChunkLen: 32, axialShape: [8, 8], axialDims: [32, 32], dropout: 0,
  },
  tiny: {
    seqLen: 16, dModel: 32, dFF: 64, nHeads: 2, dHead: 16, nLayers: 2, attention: ['local', 'lsh'], nHashes: 2,
    chunkLen: 8, ffChunkLen: 8, axialShape: [4, 4], axialDims: [16, 16], dropout: 0,
  },
};

function setStatus(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.className = error ? 'error' : '';
}

function readNumber(id: string, fallback: number): number {
  const v = Number(($(id) as HTMLInputElement).value);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function runConfig(): RunConfig {
  const size = ($('size') as HTMLSelectElement).value;
  const steps = Math.round(readNumber('steps', 200));
  return validateRunConfig({
    model: SIZES[size] ?? SIZES.small,
    train: {
      batchSize: Math.round(readNumber('batch', 4)),
      steps,
      learningRate: readNumber('lr', 0.05),
      warmupSteps: Math.min(20, Math.max(1, Math.floor(steps / 4))),
      evalEvery: steps,
      evalBatches: 1,
      checkpointEvery: steps,
    },
  });
}

/** Random training windows and consecutive held-out windows of the text's bytes. */
function textSource(tokens: Int32Array, seqLen: number): DataSource {
  const { train: trainTokens, valid } = heldOutSplit(tokens, Math.min(0.5, Math.max(0.05, seqLen / tokens.length)));
  const ones = (n: number) => new Float32Array(n).fill(1);
  let sampler: WindowSampler | undefined;
  return {
    description: `${trainTokens.length} training / ${valid.length} held-out bytes`,
    trainBatch(seed, step, batchSize, L) {
      sampler ??= new WindowSampler(trainTokens, { batchSize, length: L, seed });
      return { tokens: sampler.batch(step), weights: { shape: [batchSize, L], dtype: 'f32', data: ones(batchSize * L) } };
    },
    evalBatch(index, batchSize, L) {
      const windows = Math.max(1, Math.floor(valid.length / L));
      const starts = Array.from({ length: batchSize }, (_, b) => ((index * batchSize + b) % windows) * L);
      return { tokens: windowsBatch(valid, starts, L), weights: { shape: [batchSize, L], dtype: 'f32', data: ones(batchSize * L) } };
    },
  };
}

let runner: CompiledRunner | undefined;
let runnerBackend: string | undefined;
let trained: { result: TrainResult; config: RunConfig } | undefined;
let stopRequested = false;

async function openRunner(requested: BackendName): Promise<CompiledRunner> {
  if (runner !== undefined && runnerBackend === requested) return runner;
  runner?.destroy();
  runner = await createRunner({ backend: requested });
  runnerBackend = requested;
  return runner;
}

function redraw(): void {
  drawLossChart($('chart') as HTMLCanvasElement, state.losses.map(bitsPerChar));
}

async function trainModel(): Promise<void> {
  const text = ($('text') as HTMLTextAreaElement).value;
  const config = runConfig();
  const tokens = encodeBytes(text);
  if (tokens.length < 2 * config.model.seqLen) {
    throw new Error(`the text has ${tokens.length} bytes; training needs at least ${2 * config.model.seqLen} (two windows of ${config.model.seqLen})`);
  }
  state.status = 'loading';
  setStatus('opening the backend…');
  const r = await openRunner(($('backend') as HTMLSelectElement).value as BackendName);
  state.backend = r.backend.name;
  $('statBackend').textContent = r.backend.name;
  state.losses = [];
  state.tokensPerSec = [];
  redraw();
  state.status = 'training';
  stopRequested = false;
  setStatus(`compiling and training on ${r.backend.name} (the first step compiles every kernel)…`);
  const result = await train({
    config,
    data: textSource(tokens, config.model.seqLen),
    runner: r,
    seed: 1,
    shouldStop: () => stopRequested,
    onRecord: (rec) => {
      if (rec.type !== 'train') return;
      state.losses.push(rec.loss);
      state.tokensPerSec.push(rec.tokensPerSec ?? 0);
      state.executor = r.stats.executor;
      $('statStep').textContent = `${rec.step}/${config.train.steps}`;
      $('statLoss').textContent = rec.bpc.toFixed(2);
      $('statSpeed').textContent = Math.round(rec.tokensPerSec ?? 0).toLocaleString('en');
      $('statBackend').textContent = `${r.backend.name}`;
      setStatus(`training on ${r.description}`);
      redraw();
    },
  });
  trained = { result, config };
  const done = result.stoppedAt ?? config.train.steps;
  const evalText = result.finalEval ? `; held-out ${result.finalEval.bpc.toFixed(2)} bits/char` : '';
  setStatus(`trained ${done} steps on ${r.description}${evalText}`);
}

async function sampleModel(): Promise<void> {
  if (trained === undefined || runner === undefined) throw new Error('train the model first');
  state.status = 'sampling';
  const { result, config } = trained;
  const prompt = ($('prompt') as HTMLInputElement).value;
  const length = Math.round(readNumber('length', 120));
  const temperature = Math.max(0, Number(($('temperature') as HTMLInputElement).value) || 0);
  const out = $('sample');
  out.innerHTML = '';
  const promptSpan = document.createElement('span');
  promptSpan.className = 'prompt';
  promptSpan.textContent = prompt;
  const continuation = document.createElement('span');
  out.append(promptSpan, continuation);
  const ids: number[] = [];
  const began = performance.now();
  await generate(runner, config.model, result.params, result.paramTree, Array.from(encodeBytes(prompt)), {
    length,
    temperature,
    topK: 0,
    seed: 7,
    forbidden: [PAD_ID, EOS_ID],
    onToken: (t) => {
      ids.push(t);
      continuation.textContent = decodeBytes(ids, false);
    },
  });
  state.sample = decodeBytes(ids, false);
  setStatus(`sampled ${length} bytes in ${((performance.now() - began) / 1000).toFixed(1)} s on ${runner.description}`);
}

function guard(task: () => Promise<void>): () => Promise<void> {
  return async () => {
    for (const id of ['train', 'sampleBtn']) ($(id) as HTMLButtonElement).disabled = true;
    ($('stop') as HTMLButtonElement).disabled = false;
    try {
      await task();
      state.status = 'done';
    } catch (e) {
      state.status = 'error';
      state.error = (e as Error).message;
      setStatus(`error: ${(e as Error).message}`, true);
    } finally {
      ($('train') as HTMLButtonElement).disabled = false;
      ($('sampleBtn') as HTMLButtonElement).disabled = trained === undefined;
      ($('stop') as HTMLButtonElement).disabled = true;
    }
  };
}

function describeText(): void {
  const text = ($('text') as HTMLTextAreaElement).value;
  $('textInfo').textContent = `${encodeBytes(text).length.toLocaleString('en')} bytes (vocabulary: ${BYTE_VOCAB_SIZE} byte tokens)`;
}

async function init(): Promise<void> {
  const area = $('text') as HTMLTextAreaElement;
  area.addEventListener('input', describeText);
  area.addEventListener('dragover', (e) => {
    e.preventDefault();
    area.classList.add('drop');
  });
  area.addEventListener('dragleave', () => area.classList.remove('drop'));
  area.addEventListener('drop', (e) => {
    e.preventDefault();
    area.classList.remove('drop');
    const file = e.dataTransfer?.files[0];
    if (file !== undefined) void file.text().then((t) => ((area.value = t), describeText()));
  });
  for (const [key, id] of [['backend', 'backend'], ['size', 'size'], ['steps', 'steps'], ['batch', 'batch'], ['lr', 'lr'], ['length', 'length']] as const) {
    const v = params.get(key);
    if (v !== null) ($(id) as HTMLInputElement | HTMLSelectElement).value = v;
  }
  const trainNow = guard(trainModel);
  const sampleNow = guard(sampleModel);
  $('train').addEventListener('click', () => void trainNow());
  $('sampleBtn').addEventListener('click', () => void sampleNow());
  $('stop').addEventListener('click', () => (stopRequested = true));
  const excerpt = await fetch('./excerpt.txt');
  area.value = excerpt.ok ? await excerpt.text() : '';
  describeText();
  redraw();
  document.title = 'reformer-ts demo: ready';
  if (params.get('autostart') === '1') {
    await trainNow();
    if (trained !== undefined) await sampleNow();
  }
}

void init().catch((e: Error) => {
  state.status = 'error';
  state.error = e.message;
  setStatus(`error: ${e.message}`, true);
  document.title = `error: ${e.message}`;
});
