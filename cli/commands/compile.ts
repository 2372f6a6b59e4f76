/**
 * `reformer compile`: compiles a model's graph and writes its kernels, plan and a small runner as a
 * self-contained TypeScript module, <emit>/kernels.ts (compiler/emit-module.ts); `--kernel NAME`
 * prints one kernel. The model is 'default', a run config JSON, or a model module (cli/load-model.ts):
 * stock models compile their train step ('train', default) or logits; a module its forward pass
 * ('forward', default) or, when it exports `loss`, the loss and its parameter gradients ('train').
 * Nothing is written without `--emit`.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type CompiledGraph } from '../../compiler/codegen/compile.ts';
import { emitKernelModule } from '../../compiler/emit-module.ts';
import { grad } from '../../compiler/grad/grad.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import type { NodeId } from '../../compiler/ir/types.ts';
import { applyLayer, flattenParams, InitKey, paramInputs, spec, traceContext } from '../../dsl/layer.ts';
import { defaultRunConfig, validateRunConfig, type RunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { logitsGraph, trainObjective } from '../../reformer/train/objective.ts';
import { planMemory } from '../../runtime/memory-plan.ts';
import { isModelModulePath, loadModelModule, type ModelModule } from '../load-model.ts';

export type CompileGraphKind = 'train' | 'logits' | 'forward';

export interface CompileCommandOptions {
  /** 'default', a run config JSON path, or a model module (`.ts`/`.js`). */
  readonly model: string;
  /** Directory to write kernels.ts into (created if missing); required unless `kernel` is given. */
  readonly emit?: string;
  /** Print this kernel's source (a name from the summary, e.g. `k3_matmul`). */
  readonly kernel?: string;
  /**
   * Which graph. Stock models: 'train' (loss and gradients, default) or 'logits'. Model modules:
   * 'forward' (default) or 'train' (needs a `loss` export).
   */
  readonly graph?: CompileGraphKind;
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

/** Compiles a stock model's train-step or logits graph; exported for tests. */
export function compileModelGraph(config: RunConfig, graph: 'train' | 'logits' = 'train'): CompiledGraph {
  const { batchSize } = config.train;
  const { seqLen } = config.model;
  const model = buildModel(config.model);
  const params = model.init(new InitKey(0), [spec([batchSize, seqLen], 'i32')]);
  const obj = graph === 'train' ? trainObjective(model, params, batchSize, seqLen) : logitsGraph(model, params, batchSize, seqLen);
  return compile(obj.graph);
}

/**
 * A model module's graph. 'forward': the model traced in eval mode, its outputs. 'train': traced in
 * train mode, then `loss` on [...outputs, ...inputs]; outputs [loss, ...gradients of every
 * parameter, in `params.<path>` input order]. Inputs: `params.<path>`, the module's inputs
 * (`input0`, … or their names) and `seed` where randomness needs it.
 */
export function moduleGraph(m: ModelModule, kind: 'forward' | 'train'): Graph {
  const graph = new Graph();
  const sym = paramInputs(graph, m.params);
  const ins = m.inputs.map((s, i) => graph.input(s.name ?? `input${i}`, s.shape, s.dtype ?? 'f32'));
  const ctx = traceContext(graph, kind === 'train' ? 'train' : 'eval');
  const outs = applyLayer(m.model, sym, ins, ctx);
  if (kind === 'forward') {
    graph.outputs = outs.map((t) => t.id);
    return graph;
  }
  const lossLayer = m.loss;
  if (lossLayer === undefined) {
    throw new Error(`--graph train: model module '${m.path}' has no export 'loss' (a Layer taking the model's outputs then its inputs, returning a scalar first)`);
  }
  const lossInputs = [...outs, ...ins];
  if (lossLayer.nIn > lossInputs.length) {
    throw new Error(`--graph train: loss ${lossLayer.name} takes ${lossLayer.nIn} input(s), but the model gives ${outs.length} output(s) and ${ins.length} input(s)`);
  }
  const args = lossInputs.slice(0, lossLayer.nIn);
  const lossParams = lossLayer.init(new InitKey(m.seed).split('loss'), args.map((t) => spec(t.shape, t.dtype)));
  if (flattenParams(lossParams).length > 0) throw new Error(`--graph train: loss ${lossLayer.name} of '${m.path}' has parameters; a loss must have none`);
  const [loss] = applyLayer(lossLayer, paramInputs(graph, lossParams, 'loss'), args, ctx);
  if (loss === undefined || loss.shape.length !== 0) {
    throw new Error(`--graph train: loss ${lossLayer.name} of '${m.path}' must return a scalar first, got shape [${loss?.shape.join(',') ?? ''}]`);
  }
  const wrt: NodeId[] = graph.inputNodes().filter((n) => n.role === 'param').map((n) => n.id);
  return grad(graph, loss.id, wrt, { memorySchedules: true }).graph;
}

/** Writes `text` to `path` atomically (a temporary file renamed over it). */
function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export async function compileCommand(opts: CompileCommandOptions): Promise<void> {
  if (opts.emit === undefined && opts.kernel === undefined) {
    throw new Error('compile: give --emit DIR (where kernels.ts is written) or --kernel NAME (print one kernel)');
  }
  let compiled: CompiledGraph;
  let title: string;
  if (isModelModulePath(opts.model)) {
    const graph = opts.graph ?? 'forward';
    if (graph !== 'forward' && graph !== 'train') throw new Error(`--graph must be 'forward' or 'train' for a model module, got '${String(graph)}'`);
    const m = await loadModelModule(opts.model);
    compiled = compile(moduleGraph(m, graph));
    const shapes = m.inputs.map((s) => `${s.dtype ?? 'f32'}[${s.shape.join(',')}]`).join(', ');
    title = `${m.model.name} ${graph === 'train' ? 'train-step' : 'forward'} graph of model module '${opts.model}' (inputs ${shapes})`;
  } else {
    const graph = opts.graph ?? 'train';
    if (graph !== 'train' && graph !== 'logits') throw new Error(`--graph must be 'train' or 'logits', got '${String(graph)}'`);
    const config = loadConfig(opts.model);
    compiled = compileModelGraph(config, graph);
    const { model, train } = config;
    title = `${model.architecture} ${graph === 'train' ? 'train-step' : 'logits'} graph (batch ${train.batchSize}, seqLen ${model.seqLen}, dModel ${model.dModel}, vocab ${model.vocabSize}, config '${opts.model}')`;
  }
  if (opts.kernel !== undefined) {
    const k = compiled.kernels.find((x) => x.name === opts.kernel);
    if (k === undefined) {
      const names = compiled.kernels.map((x) => x.name);
      throw new Error(`--kernel: no kernel named '${opts.kernel}'; this graph has ${names.length}: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''}`);
    }
    console.log(`// ${k.name} -> ${k.output} [${k.dims.join(', ')}] reads ${k.params.join(', ') || 'nothing'}\n${k.source}`);
  }
  if (opts.emit === undefined) return;
  mkdirSync(opts.emit, { recursive: true });
  const path = join(opts.emit, 'kernels.ts');
  writeAtomic(path, emitKernelModule(compiled, { title }));
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
