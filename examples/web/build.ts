/**
 * `npm run build:web`: bundles the core entry (index.ts) as dist/reformer.js and the demo page
 * into dist/web/ with esbuild (ESM, browser platform: any Node built-in in the import graph fails
 * the build). The demo's text excerpt is cut from the Brown corpus package at build time.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { brownCorpusText } from '../../reformer/data/brown.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIST = join(ROOT, 'dist');
export const WEB_DIST = join(DIST, 'web');

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Imports of Node built-ins anywhere in a bundle's metafile (inputs or outputs). */
export function nodeBuiltinImports(meta: Metafile): string[] {
  const found = new Set<string>();
  for (const input of Object.values(meta.inputs)) {
    for (const imp of input.imports) if (BUILTINS.has(imp.path) || imp.path.startsWith('node:')) found.add(imp.path);
  }
  for (const output of Object.values(meta.outputs)) {
    for (const imp of output.imports) if (BUILTINS.has(imp.path) || imp.path.startsWith('node:') || imp.external) found.add(imp.path);
  }
  return [...found].sort();
}

async function writeAtomic(path: string, body: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, body);
  await rename(tmp, path);
}

export interface BundleResult {
  readonly file: string;
  readonly bytes: number;
  readonly metafile: Metafile;
}

async function bundleEntry(entry: string, outfile: string, minify: boolean): Promise<BundleResult> {
  const out = await build({
    entryPoints: [join(ROOT, entry)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify,
    sourcemap: false,
    write: false,
    metafile: true,
    logLevel: 'silent',
    outfile,
  });
  const file = out.outputFiles[0]!;
  await writeAtomic(outfile, file.contents);
  const builtins = nodeBuiltinImports(out.metafile);
  if (builtins.length > 0) throw new Error(`${entry}: the browser bundle imports Node built-ins: ${builtins.join(', ')}`);
  return { file: outfile, bytes: file.contents.length, metafile: out.metafile };
}

/** dist/reformer.js: the core entry as one ES module. */
export function buildLibrary(): Promise<BundleResult> {
  return bundleEntry('index.ts', join(DIST, 'reformer.js'), true);
}

/** dist/web/: the demo page, its script and a ~40 KB text excerpt. */
export async function buildDemo(): Promise<BundleResult> {
  const result = await bundleEntry('examples/web/demo.ts', join(WEB_DIST, 'demo.js'), true);
  await writeAtomic(join(WEB_DIST, 'index.html'), await readFile(join(ROOT, 'examples', 'web', 'index.html')));
  const excerpt = brownCorpusText({ categories: ['news'], maxDocuments: 20 }).slice(0, 40_000);
  await writeAtomic(join(WEB_DIST, 'excerpt.txt'), excerpt.slice(0, excerpt.lastIndexOf('\n') + 1));
  return result;
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  for (const r of [await buildLibrary(), await buildDemo()]) {
    console.log(`${r.file.slice(ROOT.length + 1)}  ${(r.bytes / 1024).toFixed(0)} KiB  (${Object.keys(r.metafile.inputs).length} modules, no Node built-ins)`);
  }
}
