/**
 * The emitted kernel module parses, exports every kernel's exact source under a valid identifier
 * (scratch kernels such as `k1_argsort.rank` included) and a plan listing them in order; the CLI
 * command writes it and prints one kernel on request. The module runs alone: imported in a fresh
 * process from a folder that holds only it and gpu.js, a ReformerLM forward and train step match
 * the compiler's own runs on webasm and cpu.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Node, Project, SyntaxKind } from 'ts-morph';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { compileCommand, compileModelGraph, moduleGraph } from '../../cli/commands/compile.ts';
import { loadModelModule } from '../../cli/load-model.ts';
import { compile, type CompiledGraph } from '../../compiler/codegen/compile.ts';
import { emitKernelModule, kernelIdentifier } from '../../compiler/emit-module.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { normalAt, uniformAt } from '../../compiler/ir/random.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { flattenParams, InitKey, spec } from '../../dsl/layer.ts';
import { validateRunConfig, defaultRunConfig } from '../../reformer/config.ts';
import { buildModel } from '../../reformer/model.ts';
import { objectiveFeeds } from '../../reformer/train/objective.ts';
import { CompiledRunner } from '../../runtime/compiled-runner.ts';
import { closeness } from '../support/numeric.ts';
import { sizeOf } from '../../compiler/ir/types.ts';
import { availableBackends } from './support.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function checkModule(text: string, compiled: CompiledGraph): void {
  const project = new Project({ useInMemoryFileSystem: true });
  const file = project.createSourceFile('kernels.ts', text);
  expect(project.getProgram().getSyntacticDiagnostics(file).map((d) => d.getMessageText())).toEqual([]);
  for (const k of compiled.kernels) {
    const decl = file.getVariableDeclarationOrThrow(kernelIdentifier(k.name));
    expect(decl.getVariableStatementOrThrow().isExported()).toBe(true);
    const init = decl.getInitializerOrThrow();
    expect(Node.isNoSubstitutionTemplateLiteral(init)).toBe(true);
    if (Node.isNoSubstitutionTemplateLiteral(init)) expect(init.getLiteralValue()).toBe(k.source);
    expect(decl.getVariableStatementOrThrow().getJsDocs().at(-1)!.getDescription()).toContain(k.group);
  }
  const plan = file.getVariableDeclarationOrThrow('plan').getInitializerOrThrow().asKindOrThrow(SyntaxKind.AsExpression);
  const kernels = plan
    .getExpressionIfKindOrThrow(SyntaxKind.ObjectLiteralExpression)
    .getPropertyOrThrow('"kernels"')
    .asKindOrThrow(SyntaxKind.PropertyAssignment)
    .getInitializerIfKindOrThrow(SyntaxKind.ArrayLiteralExpression)
    .getElements();
  expect(kernels.map((e) => e.asKindOrThrow(SyntaxKind.ObjectLiteralExpression).getPropertyOrThrow('"source"').getText())).toEqual(
    compiled.kernels.map((k) => `"source": ${kernelIdentifier(k.name)}`),
  );
}

describe('emitted kernel module', () => {
  it('a graph with argsort scratch kernels, matmul, reduce: every kernel, exact sources, plan in order', () => {
    const g = new Graph();
    const x = g.input('x', [3, 6]);
    const keys = g.input('keys', [3, 6], 'i32');
    const order = P.argsort(keys, 1);
    const y = P.reduce('sum', P.matmul(P.gather(x, order, 1), g.input('w', [6, 5])), 1);
    g.outputs = [y.id, order.id];
    const compiled = compile(g);
    expect(compiled.kernels.some((k) => k.name.includes('.'))).toBe(true);
    checkModule(emitKernelModule(compiled, { title: 'test graph' }), compiled);
  });

  it('refuses a graph compiled with native WebAssembly matmul products, naming the kernel', () => {
    const g = new Graph();
    g.outputs = [P.matmul(g.input('a', [512, 512]), g.input('b', [512, 512])).id];
    const compiled = compile(g, g.outputs, { matmul: 'auto' });
    const native = compiled.kernels.find((k) => k.native !== undefined);
    expect(native).toBeDefined(); // 512³ multiply-adds are past PACKED_MATMUL_MIN_MACS
    expect(() => emitKernelModule(compiled)).toThrow(new RegExp(`kernel ${native!.name} is a native WebAssembly matmul product`));
  });

  it('`compileCommand` writes <emit>/kernels.ts for the default model and prints a kernel on request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reformer-compile-'));
    dirs.push(dir);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await expect(compileCommand({ model: 'default', graph: 'logits' })).rejects.toThrow(/give --emit DIR .* or --kernel NAME/);
      await compileCommand({ model: 'default', emit: dir, graph: 'logits' });
      expect(log.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/wrote .*kernels\.ts/);
      const text = readFileSync(join(dir, 'kernels.ts'), 'utf8');
      const first = /export const (k0_\w+)/.exec(text)![1]!;
      log.mockClear();
      await compileCommand({ model: 'default', emit: dir, graph: 'logits', kernel: first });
      expect(String(log.mock.calls[0]![0])).toContain('function (');
      await expect(compileCommand({ model: 'default', emit: dir, kernel: 'k9999_nope', graph: 'logits' })).rejects.toThrow(/no kernel named 'k9999_nope'/);
      await expect(compileCommand({ model: join(dir, 'missing.json'), emit: dir })).rejects.toThrow(/cannot read run config/);
    } finally {
      log.mockRestore();
    }
  });
});

/** A tiny ReformerLM with LSH and local attention, dropout (random buffers) and chunked feed-forward. */
const tiny = validateRunConfig({
  model: {
    ...defaultRunConfig.model,
    vocabSize: 32,
    seqLen: 16,
    dModel: 8,
    dFF: 16,
    nHeads: 2,
    dHead: 4,
    nLayers: 2,
    attention: ['lsh', 'local'],
    nHashes: 2,
    chunkLen: 4,
    ffChunkLen: 8,
    axialShape: [4, 4],
    axialDims: [4, 4],
    dropout: 0.1,
    attentionDropout: 0.1,
  },
  train: { ...defaultRunConfig.train, batchSize: 2 },
});

/** The script the fresh process runs: it imports only gpu.js and the emitted modules. */
const STANDALONE = `
import { readFileSync, writeFileSync } from 'node:fs';
import { GPU } from 'gpu.js';
import * as logits from './logits.ts';
import * as train from './train.ts';
import * as example from './example.ts';

const read = (file) =>
  Object.fromEntries(Object.entries(JSON.parse(readFileSync(file, 'utf8'))).map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.data) }]));
const feeds = read('feeds.json');
const exampleFeeds = read('example-feeds.json');
const out = {};
for (const mode of JSON.parse(readFileSync('backends.json', 'utf8'))) {
  const gpu = new GPU({ mode });
  out[mode] = {
    logits: (await logits.run(gpu, feeds)).map((a) => Array.from(a)),
    train: (await train.run(gpu, feeds)).map((a) => Array.from(a)),
    example: (await example.run(gpu, exampleFeeds)).map((a) => Array.from(a)),
  };
  gpu.destroy();
}
const draws = [];
for (const [seed, salt] of [[0, 0], [7, 458625780], [16777216, 123]]) {
  for (let i = 0; i < 50; i++) draws.push(logits.randomAt('uniform', seed, salt, i), logits.randomAt('normal', seed, salt, i));
}
writeFileSync('out.json', JSON.stringify({ out, draws }));
process.exit(0);
`;

describe('the emitted module runs alone', () => {
  it('a fresh process that imports only the module and gpu.js reproduces the compiler\'s ReformerLM forward and train step, and an example model module compiled by the CLI (webasm, cpu)', async () => {
    const backends = await availableBackends();
    expect(backends.length).toBeGreaterThan(0);
    const dir = mkdtempSync(join(tmpdir(), 'reformer-standalone-'));
    dirs.push(dir);
    const logits = compileModelGraph(tiny, 'logits');
    const train = compileModelGraph(tiny, 'train');
    for (const [name, compiled] of [['logits', logits], ['train', train]] as const) {
      const text = emitKernelModule(compiled, { title: `tiny ReformerLM ${name}` });
      expect(text).not.toMatch(/^\s*import\s/m);
      writeFileSync(join(dir, `${name}.ts`), text);
    }
    // gpu.js is the only package the folder can resolve
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(resolve('node_modules/gpu.js'), join(dir, 'node_modules', 'gpu.js'), 'dir');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(join(dir, 'run.ts'), STANDALONE);
    writeFileSync(join(dir, 'backends.json'), JSON.stringify(backends));

    // the compiler's own feeds: parameters as compileModelGraph initialises them, a batch, a seed
    const { batchSize } = tiny.train;
    const { seqLen, vocabSize } = tiny.model;
    const params = buildModel(tiny.model).init(new InitKey(0), [spec([batchSize, seqLen], 'i32')]);
    const byPath = new Map(flattenParams(params) as Array<[string, HostTensor]>);
    const tokens: HostTensor = { shape: [batchSize, seqLen], dtype: 'i32', data: Int32Array.from({ length: batchSize * seqLen }, (_, i) => (i * 7 + 3) % vocabSize) };
    const weights: HostTensor = { shape: [batchSize, seqLen], dtype: 'f32', data: new Float32Array(batchSize * seqLen).fill(1) };
    const feeds: Record<string, HostTensor> = { ...objectiveFeeds(logits.plan.graph, byPath, { tokens }, 5), ...objectiveFeeds(train.plan.graph, byPath, { tokens, weights }, 5) };
    expect(train.plan.buffers.size).toBeGreaterThan(0);
    expect([...train.plan.buffers.values()]).toContain('random'); // dropout and LSH rotations
    // a model module through the CLI: `reformer compile examples/tiny-reformer.ts --emit DIR`
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await compileCommand({ model: 'examples/tiny-reformer.ts', emit: join(dir, 'emitted') });
    } finally {
      log.mockRestore();
    }
    renameSync(join(dir, 'emitted', 'kernels.ts'), join(dir, 'example.ts'));
    const m = await loadModelModule('examples/tiny-reformer.ts');
    const exampleGraph = moduleGraph(m, 'forward');
    const exampleParams = new Map(flattenParams(m.params) as Array<[string, HostTensor]>);
    const exampleFeeds: Record<string, HostTensor> = { seed: { shape: [], dtype: 'i32', data: Int32Array.of(5) } };
    for (const n of exampleGraph.inputNodes()) {
      if (n.role === 'param') exampleFeeds[n.name] = exampleParams.get(n.name.slice('params.'.length))!;
      else if (n.name === 'tokens') exampleFeeds.tokens = { shape: n.shape, dtype: 'i32', data: Int32Array.from({ length: sizeOf(n.shape) }, (_, i) => (i * 5 + 1) % m.intHigh) };
    }
    const asJson = (f: Record<string, HostTensor>) => JSON.stringify(Object.fromEntries(Object.entries(f).map(([k, t]) => [k, { shape: t.shape, data: Array.from(t.data) }])));
    writeFileSync(join(dir, 'feeds.json'), asJson(feeds));
    writeFileSync(join(dir, 'example-feeds.json'), asJson(exampleFeeds));

    // the fresh process runs on the other core while this one runs the same graphs compiled
    const alone = promisify(execFile)(resolve('node_modules/.bin/tsx'), ['run.ts'], { cwd: dir, timeout: 240_000 });
    const ours = new Map<string, HostTensor[]>();
    for (const backend of backends) {
      const runner = await CompiledRunner.create({ backend });
      try {
        for (const [name, graph, wanted, own] of [
          ['logits', logits.plan.graph, logits.plan.wanted, feeds],
          ['train', train.plan.graph, train.plan.wanted, feeds],
          ['example', exampleGraph, exampleGraph.outputs, exampleFeeds],
        ] as const) {
          ours.set(`${backend} ${name}`, await runner.run(graph, own, wanted));
        }
      } finally {
        runner.destroy();
      }
    }
    await alone;
    const { out, draws } = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as { out: Record<string, Record<'logits' | 'train' | 'example', number[][]>>; draws: number[] };

    // the emitted generator is the compiler's, bit for bit
    const want: number[] = [];
    for (const [seed, salt] of [[0, 0], [7, 458625780], [16777216, 123]] as const) {
      for (let i = 0; i < 50; i++) want.push(uniformAt(seed, salt, i), normalAt(seed, salt, i));
    }
    expect(draws).toEqual(want);

    for (const backend of backends) {
      for (const name of ['logits', 'train', 'example'] as const) {
        const compiled = ours.get(`${backend} ${name}`)!;
        const standalone = out[backend]![name];
        expect(standalone.length).toBe(compiled.length);
        compiled.forEach((t, i) => {
          const scale = Math.max(1e-6, ...Array.from(t.data, Math.abs));
          // float32 tolerance, relative to each output's scale (gradients span decades)
          const c = closeness(standalone[i]!, Array.from(t.data), 1e-4, 1e-4 * scale);
          expect(c, `${backend} ${name} output ${i}`).toBeLessThanOrEqual(1);
        });
      }
    }
  });
});

