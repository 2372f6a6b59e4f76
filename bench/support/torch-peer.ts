/**
 * The PyTorch peer (`--peer torch`): runs bench/support/torch_peer.py in a child process with the
 * suite's shapes and returns its timings. Debian's python3-torch links the reference BLAS by
 * default; with libopenblas0-pthread installed its folder goes first on LD_LIBRARY_PATH so the
 * peer runs on OpenBLAS, and the script reports which BLAS library the process actually loaded.
 * Without a python3 that imports torch, the suite prints that the peer was not run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpujsThreads } from './runtimes.ts';

export interface TorchPeerResult {
  readonly version: string;
  readonly threads: number;
  readonly blas: string;
  readonly config: readonly string[];
  readonly results: ReadonlyArray<{ op: string; medianMs: number; minMs: number } & Record<string, unknown>>;
}

export type TorchPeerOutcome = TorchPeerResult | { readonly skipped: string };

export function peerRequested(rest: readonly string[]): boolean {
  const i = rest.indexOf('--peer');
  if (i < 0) return false;
  const which = rest[i + 1];
  if (which !== 'torch') throw new Error(`bench: --peer accepts only 'torch', got '${which ?? ''}'`);
  return true;
}

/** `/usr/bin/python3` first: on these machines the python3 first on PATH may lack torch. */
function findPython(): string | undefined {
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(candidate, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

/** OpenBLAS's folder from the Debian package's file list, or undefined. */
function openBlasDir(): string | undefined {
  try {
    const files = execFileSync('dpkg', ['-L', 'libopenblas0-pthread'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n');
    const lib = files.find((f) => /\/libblas\.so\.3$/.test(f));
    return lib === undefined ? undefined : path.dirname(lib);
  } catch {
    return undefined;
  }
}

export async function runTorchPeer(request: Record<string, unknown>): Promise<TorchPeerOutcome> {
  const python = findPython();
  if (python === undefined) return { skipped: 'no python3 here imports torch (Debian: apt-get install python3-torch libopenblas0-pthread)' };
  const blasDir = openBlasDir();
  const threads = gpujsThreads();
  const env = {
    ...process.env,
    ...(blasDir ? { LD_LIBRARY_PATH: [blasDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') } : {}),
    OPENBLAS_NUM_THREADS: String(threads),
    OMP_NUM_THREADS: String(threads),
    // idle OpenMP threads sleep instead of spinning: on shared cores spinning made the LSH layer
    // 20× slower (6.9 s vs 0.30 s at L=1K under load 20), which would flatter us
    OMP_WAIT_POLICY: 'PASSIVE',
  };
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_peer.py');
  const r = spawnSync(python, [script], { input: JSON.stringify({ threads, ...request }), env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) return { skipped: `torch peer failed (${python}): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}` };
  const result = JSON.parse(r.stdout) as TorchPeerResult;
  return blasDir ? result : { ...result, blas: `${result.blas} (libopenblas0-pthread not installed: reference BLAS)` };
}
