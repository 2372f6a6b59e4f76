/**
 * `npm run bench -- memory [--json] [--quick] [--f dense|lsh]`: activation memory of training
 * steps, computed from static shapes and liveness (no evaluation, no RSS):
 *
 * - depth 1, 2, 4, 8, 12 of F = LayerNorm → attention (LSH, or a Dense stand-in with `--f dense`),
 *   G = LayerNorm → Dense(d_ff) → Relu → Dense(d_model), at L = 4096, d_model = 256, d_ff = 1024:
 *   the reversible schedule, the same two-stream network under plain backprop, and an ordinary
 *   residual stack (`Residual(F)`, `Residual(G)` per layer) under plain backprop;
 * - G chunked along the sequence vs unchunked.
 *
 * Retained = bytes kept from the forward pass for the backward pass; peak = most activation,
 * cotangent and state bytes alive at once. Parameters and their gradients are excluded (the same
 * for every schedule).
 */
import { Dense, InitKey, LayerNorm, Relu, Residual, Serial, spec, type Layer, type Params } from '../dsl/index.ts';
import { Reversible, ReversibleStack } from '../dsl/reversible.ts';
import { Chunked } from '../dsl/chunked.ts';
import { LSHSelfAttention } from '../reformer/attention/layers.ts';
import { compileReversibleStack } from '../compiler/reversible/compile.ts';
import { ordinaryBackprop } from '../compiler/reversible/backprop.ts';
import { compileChunked } from '../compiler/chunk/compile.ts';
import type { Suite, SuiteFlags } from './suites.ts';
import { formatTable } from './support/measure.ts';

export interface MemoryBenchArgs {
  readonly json?: boolean;
  readonly quick?: boolean;
  /** Attention in F: 'lsh' (default) or a Dense stand-in. */
  readonly f?: 'lsh' | 'dense';
}

interface DepthRow {
  depth: number;
  reversibleRetained: number;
  reversiblePeak: number;
  revnetBackpropRetained: number;
  revnetBackpropPeak: number;
  residualRetained: number;
  residualPeak: number;
}

interface ChunkRow {
  chunk: number;
  retained: number;
  peak: number;
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(2);

function makeLayers(f: 'lsh' | 'dense', dModel: number, dff: number, L: number): { F: () => Layer; G: () => Layer } {
  const attention = () =>
    f === 'lsh' ? LSHSelfAttention({ nHeads: 4, dHead: dModel / 4, nHashes: 2, chunkLen: Math.min(64, L), causal: true }) : Dense(dModel);
  return {
    F: () => Serial(LayerNorm(), attention()),
    G: () => Serial(LayerNorm(), Dense(dff), Relu(), Dense(dModel)),
  };
}

/** Runs the suite; prints tables unless `json`, and returns the rows. */
export async function runMemoryBench(args: MemoryBenchArgs = {}): Promise<{ config: object; depths: DepthRow[]; chunks: ChunkRow[] }> {
  const f = args.f ?? 'lsh';
  const { L, dModel, dff, depths } = args.quick
    ? { L: 256, dModel: 64, dff: 256, depths: [1, 2, 4] }
    : { L: 4096, dModel: 256, dff: 1024, depths: [1, 2, 4, 8, 12] };
  const shape = [1, L, dModel];
  const { F, G } = makeLayers(f, dModel, dff, L);
  const maxDepth = Math.max(...depths);
  const log = (m: string) => {
    if (!args.json) process.stderr.write(`  ${m}\n`);
  };

  // Parameters once for the deepest stack; shallower stacks use its first blocks.
  const deepest = ReversibleStack(Array.from({ length: maxDepth }, () => Reversible(F(), G())));
  const allParams = deepest.init(new InitKey(0), [spec(shape), spec(shape)]) as readonly Params[];
  const depthRows: DepthRow[] = [];
  for (const depth of depths) {
    const stack = ReversibleStack(deepest.blocks.slice(0, depth));
    const params = allParams.slice(0, depth);
    const { reversible, backprop } = compileReversibleStack(stack, params, { shape }).memory();
    // An ordinary residual stack with the same F and G (and the same parameters) on one stream.
    const residual = Serial(...deepest.blocks.slice(0, depth).flatMap((b) => [Residual(b.f), Residual(b.g)]));
    // Residual(F) wraps F in a Serial: its parameters are `[[fParams]]`.
    const residualParams = params.flatMap((p) => [[[(p as readonly Params[])[0]!]], [[(p as readonly Params[])[1]!]]]);
    const res = ordinaryBackprop(residual, residualParams, spec(shape)).memory();
    depthRows.push({
      depth,
      reversibleRetained: reversible.retainedActivationBytes,
      reversiblePeak: reversible.peakBytes,
      revnetBackpropRetained: backprop.retainedActivationBytes,
      revnetBackpropPeak: backprop.peakBytes,
      residualRetained: res.retainedActivationBytes,
      residualPeak: res.peakBytes,
    });
    log(`depth ${depth} done`);
  }

  const g = G();
  const gParams = g.init(new InitKey(1), [spec(shape)]);
  const chunkRows: ChunkRow[] = [];
  for (const chunk of [L, L / 4, L / 16, L / 64].filter((c) => Number.isInteger(c) && c >= 1)) {
    const c = compileChunked(Chunked(g, { axis: 1, size: chunk }), gParams, { shape });
    const m = c.memory();
    if (chunk === L) chunkRows.push({ chunk: 0, retained: m.unchunked.retainedActivationBytes, peak: m.unchunked.peakBytes });
    chunkRows.push({ chunk, retained: m.chunked.retainedActivationBytes, peak: m.chunked.peakBytes });
  }

  const config = { L, dModel, dff, batch: 1, f: f === 'lsh' ? 'LayerNorm → LSH attention (4 heads, 2 hashes, chunk 64)' : 'LayerNorm → Dense' };
  if (args.json) {
    console.log(JSON.stringify({ config, depths: depthRows, chunks: chunkRows }, null, 2));
  } else {
    console.log(`memory: L=${L} d_model=${dModel} d_ff=${dff}; F = ${config.f}; MiB of f32 buffers (params excluded)\n`);
    console.log(
      formatTable(
        ['depth', 'reversible retained', 'reversible peak', 'revnet backprop retained', 'revnet backprop peak', 'residual retained', 'residual peak'],
        depthRows.map((r) => [
          String(r.depth),
          MiB(r.reversibleRetained),
          MiB(r.reversiblePeak),
          MiB(r.revnetBackpropRetained),
          MiB(r.revnetBackpropPeak),
          MiB(r.residualRetained),
          MiB(r.residualPeak),
        ]),
      ),
    );
    console.log('\nfeed-forward G, forward + backward:');
    console.log(
      formatTable(
        ['chunk', 'retained', 'peak'],
        chunkRows.map((r) => [r.chunk === 0 ? 'unchunked (backprop)' : `chunked ${r.chunk}`, MiB(r.retained), MiB(r.peak)]),
      ),
    );
  }
  return { config, depths: depthRows, chunks: chunkRows };
}

function parseF(rest: readonly string[]): 'lsh' | 'dense' {
  const i = rest.indexOf('--f');
  const v = i >= 0 ? rest[i + 1] : 'lsh';
  if (v !== 'lsh' && v !== 'dense') throw new Error(`bench memory: --f must be 'lsh' or 'dense', got '${v}'`);
  return v;
}

export const memorySuite: Suite = {
  name: 'memory',
  description: 'retained and peak activation bytes: reversible vs backprop vs residual, chunked vs unchunked feed-forward',
  run: (flags: SuiteFlags) => runMemoryBench({ json: flags.json, quick: flags.quick, f: parseF(flags.rest) }),
};
