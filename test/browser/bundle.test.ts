/**
 * `npm run build:web` output: the core entry and the demo bundle for a browser page with no
 * Node built-in in their import graphs, and the Node-only code kept behind node.ts.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { buildDemo, buildLibrary, nodeBuiltinImports } from '../../examples/web/build.ts';

describe('browser bundle', () => {
  it('dist/reformer.js bundles index.ts with no Node built-in import', async () => {
    const r = await buildLibrary();
    expect(nodeBuiltinImports(r.metafile)).toEqual([]);
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.some((p) => p.endsWith('runtime/compiled-runner.ts'))).toBe(true);
    // the Node-only modules stay out of the core
    for (const nodeOnly of ['runtime/checkpoint.ts', 'node/text-source.ts', 'node/safetensors-file.ts', 'reformer/train/run-dir.ts', 'reformer/data/brown.ts']) {
      expect(inputs.some((p) => p.endsWith(nodeOnly)), nodeOnly).toBe(false);
    }
    const text = await readFile(r.file, 'utf8');
    expect(text).not.toMatch(/\bfrom\s*["']node:/);
    expect(text).not.toMatch(/\bimport\(\s*["']node:/);
  });

  it('the core uses no Node global unguarded (setImmediate, Buffer, process, require, __dirname)', async () => {
    const r = await buildLibrary();
    const offending: string[] = [];
    const global = /\bsetImmediate\b|\bBuffer\.|\b__dirname\b|\b__filename\b|(?<![.\w])require\(|(?<![.\w])process\./;
    for (const input of Object.keys(r.metafile.inputs).filter((p) => !p.includes('node_modules'))) {
      const lines = (await readFile(input, 'utf8')).split('\n');
      lines.forEach((line, i) => {
        const code = line.trim();
        // comments, and uses behind a `typeof x` check, are fine
        if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*') || code.includes('typeof ')) return;
        if (global.test(code.replace(/\/\/.*$/, ''))) offending.push(`${input}:${i + 1}: ${code}`);
      });
    }
    expect(offending).toEqual([]);
  });

  it('the demo bundle has no Node built-in import either', async () => {
    const r = await buildDemo();
    expect(nodeBuiltinImports(r.metafile)).toEqual([]);
  });

  it('reports Node built-ins when a module imports one', () => {
    const meta = {
      inputs: { 'a.ts': { bytes: 1, imports: [{ path: 'node:fs', kind: 'import-statement' as const, original: 'node:fs' }] } },
      outputs: { 'out.js': { bytes: 1, inputs: {}, imports: [{ path: 'path', kind: 'import-statement' as const, external: true }], exports: [], entryPoint: 'a.ts' } },
    };
    expect(nodeBuiltinImports(meta)).toEqual(['node:fs', 'path']);
  });
});
