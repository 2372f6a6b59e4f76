/**
 * Drives the system's headless Chromium through playwright-core (which never downloads a
 * browser): finds the executable, bundles a page entry with esbuild, serves it on 127.0.0.1 and
 * opens it. WebGPU needs --enable-unsafe-webgpu in headless mode; without a GPU, Chromium runs
 * WebGPU and WebGL2 on SwiftShader, a CPU rasteriser.
 */
import { existsSync } from 'node:fs';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startServer, type RunningServer, type StaticFile } from '../../examples/web/server.ts';

const CANDIDATES = ['/usr/bin/chromium-headless-shell', '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export const CHROMIUM_ARGS = ['--no-sandbox', '--enable-unsafe-webgpu', '--ignore-gpu-blocklist'];

/** The Chromium to drive: $CHROMIUM_PATH, else the first of `candidates` that exists. */
export function chromiumPath(candidates: readonly string[] = CANDIDATES): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH is set to '${fromEnv}', which does not exist`);
    return fromEnv;
  }
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) {
    throw new Error(
      `no headless Chromium found (looked for ${candidates.join(', ')}): the browser tests need one. ` +
        'Install it with `apt-get install -y chromium-headless-shell` (Debian; .ci/run does this) or set CHROMIUM_PATH.',
    );
  }
  return found;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
}

/** Bundles a TypeScript entry for the page (ESM, browser platform: a Node built-in fails the build). */
export async function bundle(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}

export interface OpenPage {
  readonly browser: Browser;
  readonly page: Page;
  readonly server: RunningServer;
  /** Console errors and uncaught exceptions seen in the page. */
  readonly errors: string[];
  close(): Promise<void>;
}

/** Serves `files`, opens `path` in a fresh headless Chromium and waits for `ready` (a page title). */
export async function openPage(files: ReadonlyMap<string, StaticFile>, path: string, ready: string, root?: string): Promise<OpenPage> {
  const server = await startServer(files, root === undefined ? {} : { root });
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    await page.goto(`${server.url}${path}`);
    await page.waitForFunction((t) => document.title === t || document.title.startsWith('error'), ready, { timeout: 60_000 });
    const title = await page.title();
    if (title !== ready) throw new Error(`page ${path} did not load: ${title}; ${errors.join('; ')}`);
    const b = browser;
    return { browser: b, page, server, errors, close: async () => (await b.close(), await server.close()) };
  } catch (e) {
    await browser?.close();
    await server.close();
    throw e;
  }
}

/** The page bundle of test/browser/page.ts in a minimal HTML page. */
export async function testPageFiles(): Promise<Map<string, StaticFile>> {
  const js = await bundle(new URL('./page.ts', import.meta.url).pathname);
  const html = '<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/page.js"></script>';
  return new Map([
    ['/index.html', { body: html, type: 'text/html; charset=utf-8' }],
    ['/page.js', { body: js, type: 'text/javascript; charset=utf-8' }],
  ]);
}
