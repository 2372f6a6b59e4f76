/**
 * Runs every `ts` example of docs/dsl-guide.md, so the guide cannot go stale. Each block is
 * transpiled to JavaScript, its imports (`node:assert/strict` and the package entry `../index.ts`)
 * are bound to the real modules, and the body runs; the examples check themselves with assert.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as api from '../../index.ts';

const guide = readFileSync(new URL('../../docs/dsl-guide.md', import.meta.url), 'utf8');
const blocks = [...guide.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** Turns the example's ESM imports into bindings of the modules passed in. */
function toFunctionBody(source: string): string {
  const js = ts.transpileModule(source, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: false },
  }).outputText;
  return js
    .replace(/^import assert from 'node:assert\/strict';$/m, 'const assert = __assert;')
    .replace(/^import \{([^}]*)\} from '\.\.\/index\.ts';$/m, (_, names: string) => `const {${names}} = __api;`)
    .replace(/^export \{\};$/m, '');
}

describe('docs/dsl-guide.md examples', () => {
  it('has examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(8);
  });

  blocks.forEach((source, i) => {
    const title = source.split('\n').find((l) => l.startsWith('const ') || l.startsWith('function ')) ?? '';
    it(`example ${i + 1}: ${title.slice(0, 60)}`, async () => {
      const body = toFunctionBody(source);
      expect(body).not.toMatch(/^import /m);
      const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<void>;
      await new AsyncFunction('__api', '__assert', body)(api, assert);
    });
  });
});
