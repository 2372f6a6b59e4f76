/**
 * The emitted kernel module parses, exports every kernel's exact source under a valid identifier
 * (scratch kernels such as `k1_argsort.rank` included) and a plan listing them in order; the CLI
 * command writes it and prints one kernel on request.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Node, Project, SyntaxKind } from 'ts-morph';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { compileCommand } from '../../cli/commands/compile.ts';
import { compile, type CompiledGraph } from '../../compiler/codegen/compile.ts';
import { emitKernelModule, kernelIdentifier } from '../../compiler/emit-module.ts';
import { Graph } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';

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

  it('`compileCommand` writes <emit>/kernels.ts for the default model and prints a kernel on request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reformer-compile-'));
    dirs.push(dir);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
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
