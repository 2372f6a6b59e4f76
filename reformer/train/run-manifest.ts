/**
 * The run manifest, `run.json`: everything that decides a run's numbers (resolved config, seed,
 * data identity, backend) plus the package version. It is written once when a run starts (and when
 * `--steps` extends it) and is the truth for `--resume`, `eval` and `generate`.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../runtime/checkpoint.ts';
import { validateRunConfig, type RunConfig } from '../config.ts';
import type { DataIdentity } from './data-source.ts';

export const RUN_MANIFEST = 'run.json';
const manifestFormat = 'reformer-ts-run';
const manifestVersion = 1;

export interface RunManifest {
  readonly config: RunConfig;
  readonly seed: number;
  readonly data: DataIdentity;
  /** The `--backend` asked for, and what it resolved to when the run started. */
  readonly backend: { readonly requested: string; readonly resolved: string };
  readonly packageVersion: string;
  readonly createdAt: string;
}

/** The version in this package's package.json. */
export function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

export async function writeRunManifest(dir: string, manifest: RunManifest): Promise<void> {
  await writeFileAtomic(join(dir, RUN_MANIFEST), `${JSON.stringify({ format: manifestFormat, version: manifestVersion, ...manifest }, null, 2)}\n`);
}

/** Reads `dir/run.json`; undefined when there is none. Errors name the file and what is wrong. */
export async function readRunManifest(dir: string): Promise<RunManifest | undefined> {
  const path = join(dir, RUN_MANIFEST);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new Error(`cannot read run manifest '${path}': ${(e as Error).message}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`run manifest '${path}' is not valid JSON (${(e as Error).message})`);
  }
  if (raw.format !== manifestFormat) throw new Error(`'${path}' is not a ${manifestFormat} manifest`);
  if (raw.version !== manifestVersion) throw new Error(`run manifest '${path}' has version ${JSON.stringify(raw.version)}; this reformer reads version ${manifestVersion}`);
  const data = raw.data as DataIdentity | undefined;
  const backend = raw.backend as RunManifest['backend'] | undefined;
  if (typeof raw.seed !== 'number' || data === undefined || typeof data.kind !== 'string' || backend === undefined || typeof backend.requested !== 'string') {
    throw new Error(`run manifest '${path}' lacks seed, data or backend`);
  }
  let config: RunConfig;
  try {
    config = validateRunConfig(raw.config);
  } catch (e) {
    throw new Error(`run manifest '${path}': ${(e as Error).message}`);
  }
  return {
    config,
    seed: raw.seed,
    data,
    backend,
    packageVersion: String(raw.packageVersion ?? 'unknown'),
    createdAt: String(raw.createdAt ?? 'unknown'),
  };
}

/** The first field (dotted path) where two JSON values differ, with both values; undefined if equal. */
export function firstDifference(a: unknown, b: unknown, path = ''): { field: string; left: unknown; right: unknown } | undefined {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], Array.isArray(a) ? `${path}[${k}]` : path ? `${path}.${k}` : k);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return Object.is(a, b) ? undefined : { field: path, left: a, right: b };
}
