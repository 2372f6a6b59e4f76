/**
 * The demo page (examples/web/), built as `npm run build:web` builds it, in headless Chromium:
 * it trains a tiny ReformerLM on webgpu for a few steps, the loss read back from the page falls,
 * and it samples text. The test takes a screenshot of the page; with REFORMER_SCREENSHOT=1 it is
 * saved as docs/browser-demo.png (the picture in docs/browser.md), otherwise in the OS temp folder.
 */
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo, WEB_DIST } from '../../examples/web/build.ts';
import type { DemoState } from '../../examples/web/demo.ts';
import { openPage, type OpenPage } from './chromium.ts';

const STEPS = Number(process.env.DEMO_STEPS ?? 16);
const DOCS = join(fileURLToPath(new URL('../../docs', import.meta.url)));

let page: OpenPage | undefined;
beforeAll(async () => {
  await buildDemo();
  page = await openPage(new Map(), `/?backend=webgpu&size=tiny&steps=${STEPS}&batch=4&lr=0.03&length=32&autostart=1`, 'reformer-ts demo: ready', WEB_DIST);
}, 120_000);
afterAll(async () => {
  await page?.close();
});

describe('the demo page', () => {
  it('trains on webgpu with a falling loss, samples, and shows the backend and tokens/s', async () => {
    const p = page!.page;
    await p.waitForFunction(
      () => {
        const s = (window as unknown as { reformerDemo: { state: DemoState } }).reformerDemo.state;
        return (s.status === 'done' && s.sample !== undefined) || s.status === 'error';
      },
      undefined,
      { timeout: 380_000, polling: 500 },
    );
    const state = await p.evaluate(() => (window as unknown as { reformerDemo: { state: DemoState } }).reformerDemo.state);
    expect(state.error).toBeUndefined();
    expect(state.backend).toBe('webgpu');
    expect(state.losses).toHaveLength(STEPS);
    expect(state.losses.every(Number.isFinite)).toBe(true);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(state.losses.slice(0, 2));
    const last = mean(state.losses.slice(-4));
    console.log(`[demo] webgpu (${state.executor}): loss ${state.losses.map((l) => l.toFixed(3)).join(' ')}; ${Math.round(state.tokensPerSec.at(-1)!)} tokens/s; sample ${JSON.stringify(state.sample)}`);
    expect(last).toBeLessThan(first - 0.5);
    expect(state.sample!.length).toBeGreaterThan(0);
    expect(await p.textContent('#statBackend')).toBe('webgpu');
    expect(Number((await p.textContent('#statSpeed'))!.replace(/,/g, ''))).toBeGreaterThan(0);
    expect(page!.errors).toEqual([]);
    const png = await p.screenshot({ fullPage: true });
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    const target = process.env.REFORMER_SCREENSHOT === '1' ? join(DOCS, 'browser-demo.png') : join(tmpdir(), 'reformer-browser-demo.png');
    await writeFile(target, png);
    console.log(`[demo] screenshot: ${target}`);
  }, 400_000);
});
