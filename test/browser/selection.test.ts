/**
 * Backend selection in a browser page: `auto`'s order there, and a clear error for a backend that
 * cannot run (headlessgl is Node-only).
 */
import { describe, expect, it } from 'vitest';
import { call, useTestPage } from './backend-suite.ts';

const BACKENDS = ['webgpu', 'webgl2', 'webasm'] as const;

useTestPage();

describe('backend selection in the page', () => {
  it('auto tries webgpu -> webgl2 -> webgl -> webasm -> cpu and takes the first whose probe kernel runs', async () => {
    const env = await call('environment');
    console.log(`[browser] ${env.userAgent}; crossOriginIsolated=${env.crossOriginIsolated}; probes: ${JSON.stringify(env.gaps)}`);
    expect(env.preference).toEqual(['webgpu', 'webgl2', 'webgl', 'webasm', 'cpu']);
    for (const b of BACKENDS) expect(env.gaps[b], `${b} must work in headless Chromium`).toBeNull();
    const first = env.preference.find((b) => env.gaps[b] === null);
    expect(first).toBe('webgpu');
    expect(await call('open', 'auto')).toEqual({ name: 'webgpu' });
  });

  it('an explicit backend that cannot run here is a clear error, not a fallback', async () => {
    const r = await call('open', 'headlessgl');
    expect(r.error).toMatch(/^BackendUnavailableError: backend 'headlessgl' is unavailable: headlessgl: Node only/);
    const unknown = await call('open', 'metal' as never);
    expect(unknown.error).toMatch(/^BackendUnavailableError: unknown backend 'metal' \(expected one of auto, webgpu, webgl2/);
  });
});

