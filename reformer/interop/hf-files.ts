/**
 * HF checkpoint directories on disk: reading `config.json` + `model.safetensors` (or a sharded
 * `model.safetensors.index.json`), refusing pickles, and writing a directory atomically (a hidden
 * temp directory renamed into place, so a failed write leaves nothing behind).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { decodeSafetensors, encodeSafetensors } from '../../runtime/safetensors.ts';
import { InteropError } from './hf-config.ts';

/** Files that are Python pickles (or zip archives of pickles): never opened. */
const pickleNames = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i;

const pickleAdvice =
  'it is a Python pickle, which this importer never loads (unpickling can run arbitrary code). Convert it to safetensors with transformers: ' +
  'ReformerModelWithLMHead.from_pretrained(DIR).save_pretrained(OUT, safe_serialization=True), then import OUT';

export interface HfCheckpoint {
  readonly config: unknown;
  readonly tensors: Map<string, HostTensor>;
  /** Where the tensors came from, for error messages. */
  readonly source: string;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Refuses bytes that are a pickle or a torch zip archive, whatever the file is called. */
function refuseDisguisedPickle(bytes: Uint8Array, path: string): void {
  const pickle = bytes.length >= 2 && bytes[0] === 0x80 && bytes[1]! >= 2 && bytes[1]! <= 5;
  const zip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
  if (pickle || zip) throw new InteropError(`${path}: ${zip ? 'is a zip archive (torch.save format)' : 'starts like a pickle'}, not safetensors; ${pickleAdvice}`);
}

async function readTensors(path: string): Promise<Map<string, HostTensor>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new InteropError(`${path}: cannot read: ${(e as Error).message}`);
  }
  refuseDisguisedPickle(bytes, path);
  try {
    return decodeSafetensors(bytes, path).tensors;
  } catch (e) {
    throw new InteropError((e as Error).message);
  }
}

/** Reads an HF checkpoint directory; refuses pickles before opening anything else. */
export async function readHfCheckpoint(dir: string): Promise<HfCheckpoint> {
  if (!(await isDirectory(dir))) {
    if (pickleNames.test(dir)) throw new InteropError(`${dir}: ${pickleAdvice}`);
    throw new InteropError(`${dir}: not a directory; give the HF model directory (config.json + model.safetensors)`);
  }
  const names = await readdir(dir);
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  const hasSingle = names.includes('model.safetensors');
  const hasIndex = names.includes('model.safetensors.index.json');
  if (!hasSingle && !hasIndex) {
    const pickles = names.filter((n) => pickleNames.test(n));
    if (pickles.length > 0) throw new InteropError(`${join(dir, pickles[0]!)}: ${pickleAdvice}`);
    throw new InteropError(`${dir}: no model.safetensors (or model.safetensors.index.json) found`);
  }
  let config: unknown;
  try {
    config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  } catch (e) {
    throw new InteropError(`${join(dir, 'config.json')}: cannot read it as JSON: ${(e as Error).message}`);
  }
  if (hasSingle) return { config, tensors: await readTensors(single), source: single };
  let weightMap: Record<string, unknown>;
  try {
    weightMap = (JSON.parse(await readFile(index, 'utf8')) as { weight_map: Record<string, unknown> }).weight_map;
    if (typeof weightMap !== 'object' || weightMap === null) throw new Error('no weight_map object');
  } catch (e) {
    throw new InteropError(`${index}: not a safetensors index (${(e as Error).message})`);
  }
  const tensors = new Map<string, HostTensor>();
  for (const shard of [...new Set(Object.values(weightMap))]) {
    if (typeof shard !== 'string' || shard !== basename(shard)) throw new InteropError(`${index}: shard ${JSON.stringify(shard)} must be a file name in the same directory`);
    for (const [name, t] of await readTensors(join(dir, shard))) {
      if (weightMap[name] !== shard) throw new InteropError(`${join(dir, shard)}: tensor '${name}' is not listed for this shard in ${basename(index)}`);
      tensors.set(name, t);
    }
  }
  return { config, tensors, source: index };
}

/** Refuses an output path that already holds something (we never merge into or overwrite a directory). */
export async function assertFreshOutput(path: string, what: string): Promise<void> {
  if (!(await exists(path))) return;
  if ((await isDirectory(path)) && (await readdir(path)).length === 0) return;
  throw new InteropError(`${what} '${path}' already exists and is not empty; choose a new directory`);
}

/**
 * Creates directory `path` atomically: `fill` writes into a hidden sibling temp directory, which
 * is renamed into place only when `fill` succeeds; on failure it is removed.
 */
export async function writeDirectoryAtomic(path: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const parent = dirname(path);
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, `.tmp-${basename(path)}-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp);
  try {
    await fill(tmp);
    if (await exists(path)) await rm(path, { recursive: true }); // an empty directory (checked by the caller)
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
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

/** Writes an HF directory: config.json and model.safetensors (metadata format "pt", as HF expects). */
export async function writeHfCheckpoint(dir: string, config: Record<string, unknown>, tensors: ReadonlyMap<string, HostTensor>): Promise<void> {
  const bytes = encodeSafetensors(tensors, { format: 'pt' });
  await writeDirectoryAtomic(dir, async (tmp) => {
    await writeSynced(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    await writeSynced(join(tmp, 'model.safetensors'), bytes);
  });
}
