/**
 * Checkpoints: one directory per saved step under a root, plus a `latest` pointer file.
 *
 *   root/
 *     latest                 "step-1200\n"
 *     step-1200/
 *       model.safetensors    parameters, named by their `flattenParams` path
 *       optimizer.safetensors  optimizer state tensors (including its step)
 *       config.json          model config, training state, and a SHA-256 of each tensor file
 *
 * Crash safety: a checkpoint is written into a hidden temp directory (each file fsynced), which is
 * then renamed to `step-N` in one step; only after that is `latest` replaced, again by writing a
 * temp file and renaming it. A crash at any point therefore leaves either the previous checkpoint
 * or the new one as `latest`, never a half-written one; leftover temp entries are removed by the
 * next save. Loading verifies the checksums, names, shapes and dtypes before returning anything,
 * and never writes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { HostTensor } from '../compiler/ir/host-tensor.ts';
import { formatShape } from '../compiler/ir/types.ts';
import { flattenParams, mapParams, type Params } from '../dsl/layer.ts';
import { decodeSafetensors, encodeSafetensors } from './safetensors.ts';

export const checkpointFormat = 'reformer-ts-checkpoint';
export const checkpointVersion = 1;

export interface CheckpointData {
  /** Number of completed training steps. */
  readonly step: number;
  readonly params: Params;
  /** Optimizer state, e.g. `optimizer.stateTensors()`; may be empty. */
  readonly optimizer?: ReadonlyMap<string, HostTensor>;
  /** Model configuration (JSON-serialisable). */
  readonly config: unknown;
  /** Everything else needed to resume deterministically: seed, data position, schedule… (JSON). */
  readonly training: unknown;
}

export interface LoadedCheckpoint {
  /** The step directory that was loaded. */
  readonly dir: string;
  readonly step: number;
  /** Same tree structure as `expectedParams` when given; otherwise a flat record by path. */
  readonly params: Params;
  readonly optimizer: Map<string, HostTensor>;
  readonly config: unknown;
  readonly training: unknown;
}

/** Points in `saveCheckpoint` where a test may inject a crash (by throwing). */
export type SaveStage = 'files-written' | 'dir-committed' | 'pointer-written';

export interface SaveOptions {
  /** How many step directories to keep (default 3); the one just written is always kept. */
  readonly keep?: number;
  /** Called at each stage; throwing from it simulates a crash there. */
  readonly onStage?: (stage: SaveStage) => void | Promise<void>;
}

export interface LoadOptions {
  /** The model's parameter tree (e.g. from `init`): names, shapes and dtypes are checked against it. */
  readonly expectedParams?: Params;
  /** Load this step instead of the latest. */
  readonly step?: number;
}

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

const stepDirName = (step: number) => `step-${step}`;
const stepDirPattern = /^step-(\d+)$/;
/** Names of files and folders being written atomically (renamed into place when complete). */
export const TEMP_PREFIX = '.tmp-';
const trashPrefix = '.trash-';

async function fsyncDir(dir: string): Promise<void> {
  // Makes a rename durable; some platforms cannot open directories, where this is best effort.
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* not supported here */
  }
}

async function writeSynced(path: string, bytes: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `path` atomically: a temp file in the same directory, fsynced, then renamed over it. */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
  try {
    await writeSynced(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dir);
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Steps that have a committed directory under `root`, ascending. */
export async function listCheckpoints(root: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  return names
    .map((n) => stepDirPattern.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** The step `latest` points to; falls back to the highest step directory if the pointer is missing or stale. */
export async function latestCheckpoint(root: string): Promise<number | undefined> {
  const steps = await listCheckpoints(root);
  try {
    const m = stepDirPattern.exec((await readFile(join(root, 'latest'), 'utf8')).trim());
    if (m !== null && steps.includes(Number(m[1]))) return Number(m[1]);
  } catch {
    /* no pointer yet: fall back */
  }
  return steps.at(-1);
}

/** Saves a checkpoint for `data.step` under `root` and returns its directory. */
export async function saveCheckpoint(root: string, data: CheckpointData, options: SaveOptions = {}): Promise<string> {
  const keep = options.keep ?? 3;
  if (!Number.isSafeInteger(data.step) || data.step < 0) throw new CheckpointError(`saveCheckpoint: step must be a non-negative integer, got ${data.step}`);
  if (!Number.isInteger(keep) || keep < 1) throw new CheckpointError(`saveCheckpoint: option 'keep' must be a positive integer, got ${keep}`);
  const stage = async (s: SaveStage) => options.onStage?.(s);
  await mkdir(root, { recursive: true });
  await removeLeftovers(root);

  const model = encodeSafetensors(flattenParams(data.params), { format: checkpointFormat, step: String(data.step) });
  const optimizer = encodeSafetensors(data.optimizer ?? new Map(), { format: checkpointFormat, step: String(data.step) });
  const manifest = {
    format: checkpointFormat,
    version: checkpointVersion,
    step: data.step,
    config: data.config,
    training: data.training,
    files: {
      'model.safetensors': { bytes: model.length, sha256: sha256(model) },
      'optimizer.safetensors': { bytes: optimizer.length, sha256: sha256(optimizer) },
    },
  };
  const tmp = join(root, `${TEMP_PREFIX}${stepDirName(data.step)}-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp);
  await writeSynced(join(tmp, 'model.safetensors'), model);
  await writeSynced(join(tmp, 'optimizer.safetensors'), optimizer);
  // The manifest goes last: a directory with a valid config.json has all its files.
  await writeSynced(join(tmp, 'config.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await fsyncDir(tmp);
  await stage('files-written');

  const final = join(root, stepDirName(data.step));
  if (await exists(final)) {
    // Re-saving a step (e.g. right after resuming): move the old copy aside first, since rename
    // cannot replace a non-empty directory. `latestCheckpoint` falls back if we crash in between.
    await rename(final, join(root, `${trashPrefix}${stepDirName(data.step)}-${randomBytes(6).toString('hex')}`));
  }
  await rename(tmp, final);
  await fsyncDir(root);
  await stage('dir-committed');

  await writeFileAtomic(join(root, 'latest'), `${stepDirName(data.step)}\n`);
  await stage('pointer-written');

  const steps = await listCheckpoints(root);
  const others = steps.filter((s) => s !== data.step);
  for (const s of others.slice(0, Math.max(0, others.length - (keep - 1)))) await rm(join(root, stepDirName(s)), { recursive: true, force: true });
  await removeLeftovers(root);
  return final;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes temp and trash entries left by an interrupted save. Assumes a single writer per root. */
async function removeLeftovers(root: string): Promise<void> {
  for (const name of await readdir(root)) {
    if (name.startsWith(TEMP_PREFIX) || name.startsWith(trashPrefix)) await rm(join(root, name), { recursive: true, force: true });
  }
}

/**
 * Loads a checkpoint. `path` is a checkpoint root (loads `latest`, or `options.step`) or a step
 * directory itself. Everything is verified before anything is returned.
 */
export async function loadCheckpoint(path: string, options: LoadOptions = {}): Promise<LoadedCheckpoint> {
  const dir = await resolveStepDir(path, options.step);
  const fail = (msg: string): never => {
    throw new CheckpointError(`${dir}: ${msg}`);
  };
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    return fail(`cannot read config.json (${(e as Error).message}); the checkpoint is incomplete or corrupt`);
  }
  if (manifest === null || typeof manifest !== 'object' || manifest.format !== checkpointFormat) fail(`config.json is not a ${checkpointFormat} manifest`);
  if (manifest.version !== checkpointVersion) fail(`checkpoint version ${JSON.stringify(manifest.version)} is not supported (expected ${checkpointVersion})`);
  const step = manifest.step;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) return fail(`config.json has an invalid step ${JSON.stringify(step)}`);
  const files = (manifest.files ?? {}) as Record<string, { bytes?: unknown; sha256?: unknown } | undefined>;

  const readChecked = async (name: string) => {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(join(dir, name));
    } catch (e) {
      return fail(`cannot read ${name}: ${(e as Error).message}`);
    }
    const info = files[name];
    if (info === undefined) return fail(`config.json has no checksum for ${name}`);
    if (info.bytes !== bytes.length) fail(`${name} is ${bytes.length} bytes but config.json records ${String(info.bytes)} (truncated or replaced)`);
    if (info.sha256 !== sha256(bytes)) fail(`${name} does not match its SHA-256 in config.json (corrupt)`);
    return decodeSafetensors(bytes, join(dir, name));
  };
  const model = await readChecked('model.safetensors');
  const optimizer = await readChecked('optimizer.safetensors');
  const params = options.expectedParams === undefined ? (Object.fromEntries(model.tensors) as Params) : checkParams(model.tensors, options.expectedParams, dir);
  return { dir, step, params, optimizer: optimizer.tensors, config: manifest.config, training: manifest.training };
}

async function resolveStepDir(path: string, step: number | undefined): Promise<string> {
  if (step === undefined && (await exists(join(path, 'config.json')))) return path;
  const chosen = step ?? (await latestCheckpoint(path));
  if (chosen === undefined) throw new CheckpointError(`${path}: no checkpoint found (no step-N directories)`);
  const dir = join(path, stepDirName(chosen));
  if (!(await exists(dir))) {
    const steps = await listCheckpoints(path);
    throw new CheckpointError(`${path}: no checkpoint for step ${chosen} (available: ${steps.length > 0 ? steps.join(', ') : 'none'})`);
  }
  return dir;
}

/**
 * Rebuilds `expected`'s tree from loaded tensors, checking names, shapes and dtypes both ways;
 * `dir` names the checkpoint in errors.
 */
export function checkParams(loaded: ReadonlyMap<string, HostTensor>, expected: Params, dir: string): Params {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${dir}: checkpoint is for a different model: ${msg}`);
  };
  const wanted = new Map(flattenParams(expected));
  for (const [name, t] of loaded) {
    if (!wanted.has(name)) fail(`it has parameter '${name}' ${formatShape(t.shape)} that the model does not have`);
  }
  return mapParams(expected, (leaf: HostTensor, path) => {
    const t = loaded.get(path);
    if (t === undefined) return fail(`parameter '${path}' is missing (the model expects shape ${formatShape(leaf.shape)})`);
    if (t.shape.length !== leaf.shape.length || t.shape.some((d, i) => d !== leaf.shape[i])) {
      fail(`parameter '${path}' has shape ${formatShape(t.shape)} but the model expects ${formatShape(leaf.shape)}`);
    }
    if (t.dtype !== leaf.dtype) fail(`parameter '${path}' is ${t.dtype} but the model expects ${leaf.dtype}`);
    return t;
  });
}
