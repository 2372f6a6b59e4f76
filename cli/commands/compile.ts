/**
 * `reformer compile`: compiles a model's train-step (or logits) graph and writes its kernels and
 * plan as a readable TypeScript module, <emit>/kernels.ts; `--kernel NAME` prints one kernel.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type CompiledGraph } from '../../compiler/codegen/compile.ts';
import { emitKernelModule } from '../../compiler/emit-module.ts';
import { InitKey, spec } from '../../dsl/layer.ts';
import { defaultRunConfig, validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { logitsGraph, trainObjective } from '../../reformer/train/objective.ts';
import { planMemory } from '../../runtime/memory-plan.ts';

export interface CompileCommandOptions {
  /** A run config JSON path, or 'default' for the built-in default config. */
  readonly model: string;
  /** Directory to write kernels.ts into (created if missing). */
  readonly emit: string;
  /** Print this kernel's source (a name from the summary, e.g. `k3_matmul`). */
  readonly kernel?: string;
  /** Which graph: the train step (loss and gradients, default) or the logits forward pass. */
  readonly graph?: 'train' | 'logits';
}

function loadConfig(model: string): RunConfig {
  if (model === 'default') return defaultRunConfig;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(model, 'utf8'));
  } catch (e) {
    throw new Error(`--model: cannot read run config '${model}': ${(e as Error).message}`);
  }
  return validateRunConfig(raw);
}

/** Compiles the graph `opts` names; exported for tests. */
export function compileModelGraph(config: RunConfig, graph: 'train' | 'logits' = 'train'): CompiledGraph {
  const { batchSize } = config.train;
  const { seqLen } = config.model;
  const model = buildModel(config.model);
  const params = model.init(new InitKey(0), [spec([batchSize, seqLen], 'i32')]);
  const obj = graph === 'train' ? trainObjective(model, params, batchSize, seqLen) : logitsGraph(model, params, batchSize, seqLen);
  return compile(obj.graph);
}

export async function compileCommand(opts: CompileCommandOptions): Promise<void> {
  const graph = opts.graph ?? 'train';
  if (graph !== 'train' && graph !== 'logits') throw new Error(`--graph must be 'train' or 'logits', got '${String(graph)}'`);
  const config = loadConfig(opts.model);
  const compiled = compileModelGraph(config, graph);
  if (opts.kernel !== undefined) {
    const k = compiled.kernels.find((x) => x.name === opts.kernel);
    if (k === undefined) {
      const names = compiled.kernels.map((x) => x.name);
      throw new Error(`--kernel: no kernel named '${opts.kernel}'; this graph has ${names.length}: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''}`);
    }
    console.log(`// ${k.name} -> ${k.output} [${k.dims.join(', ')}] reads ${k.params.join(', ') || 'nothing'}\n${k.source}`);
  }
  mkdirSync(opts.emit, { recursive: true });
  const path = join(opts.emit, 'kernels.ts');
  const { model, train } = config;
  const title = `${model.architecture} ${graph === 'train' ? 'train-step' : 'logits'} graph (batch ${train.batchSize}, seqLen ${model.seqLen}, dModel ${model.dModel}, vocab ${model.vocabSize}, config '${opts.model}')`;
  writeFileSync(path, emitKernelModule(compiled, { title }));
  if (opts.kernel !== undefined) return;
  const byKind = new Map<string, number>();
  for (const grp of compiled.plan.groups) byKind.set(grp.kind, (byKind.get(grp.kind) ?? 0) + 1);
  const memory = planMemory(compiled);
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  console.log(title);
  console.log(`${compiled.plan.graph.nodes.length} graph nodes -> ${compiled.plan.groups.length} groups, ${compiled.kernels.length} kernels`);
  console.log(`groups: ${[...byKind].map(([kind, n]) => `${n} ${kind}`).join(', ')}`);
  console.log(`memory: ${memory.slots.length} slots (${mb(memory.slotBytes)}), host ${mb(memory.hostBytes)}, peak ${mb(memory.peakBytes)}`);
  console.log(`wrote ${path}`);
}
