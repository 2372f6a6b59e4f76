/**
 * Byte-level tokenisation (the paper's enwik8 setting, vocabulary 258):
 *
 *   id 0 = padding, id 1 = end of sequence, id b + 2 = byte b (0..255)
 *
 * Text is encoded as UTF-8 bytes, so any input round-trips exactly; decoding drops padding and stops
 * at the first EOS. Also reads a training corpus from a file or a folder of text files.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';

export const PAD_ID = 0;
export const EOS_ID = 1;
export const BYTE_OFFSET = 2;
export const BYTE_VOCAB_SIZE = 256 + BYTE_OFFSET;

/** Token ids of `input` (a string, encoded as UTF-8, or raw bytes). */
export function encodeBytes(input: string | Uint8Array): Int32Array {
  const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input;
  const ids = new Int32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) ids[i] = bytes[i]! + BYTE_OFFSET;
  return ids;
}

/** The bytes of `ids`: padding is skipped; with `stopAtEos` (default) decoding ends at the first EOS. */
export function idsToBytes(ids: ArrayLike<number>, stopAtEos = true): Uint8Array {
  const out = new Uint8Array(ids.length);
  let n = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= BYTE_VOCAB_SIZE) {
      throw new Error(`byte tokens: id ${id} at position ${i} is outside the vocabulary [0, ${BYTE_VOCAB_SIZE})`);
    }
    if (id === PAD_ID) continue;
    if (id === EOS_ID) {
      if (stopAtEos) break;
      continue;
    }
    out[n++] = id - BYTE_OFFSET;
  }
  return out.subarray(0, n);
}

/** Text of `ids` (UTF-8; an incomplete multi-byte sequence, e.g. cut off by sampling, becomes U+FFFD). */
export function decodeBytes(ids: ArrayLike<number>, stopAtEos = true): string {
  return new TextDecoder('utf-8').decode(idsToBytes(ids, stopAtEos));
}

export interface TextSource {
  readonly bytes: Uint8Array;
  /** Files read, relative to the folder (or the file itself), in order. */
  readonly files: readonly string[];
  /** Files skipped because they look binary. */
  readonly skipped: readonly string[];
}

/** A file "looks binary" if its first 8 KiB contain a NUL byte (the heuristic git and grep use). */
const looksBinary = (b: Uint8Array) => b.subarray(0, 8192).includes(0);

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // hidden files and folders (.git, editor swap files)
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile() || (e.isSymbolicLink() && (await stat(p)).isFile())) out.push(p);
  }
}

/**
 * Reads a corpus: a text file, or every text file under a folder (recursively, hidden entries
 * skipped, sorted by relative path so the order never depends on the file system), joined with a
 * newline between files. Errors name the path when it is missing or holds no text.
 */
export async function readTextSource(path: string): Promise<TextSource> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new Error(`data: '${path}' does not exist`);
  }
  if (info.isFile()) {
    const bytes = await readFile(path);
    if (bytes.length === 0) throw new Error(`data: file '${path}' is empty`);
    if (looksBinary(bytes)) throw new Error(`data: file '${path}' looks binary (it contains NUL bytes), expected text`);
    return { bytes: new Uint8Array(bytes), files: [path], skipped: [] };
  }
  if (!info.isDirectory()) throw new Error(`data: '${path}' is neither a file nor a folder`);
  const all: string[] = [];
  await walk(path, all);
  const rel = all.map((p) => relative(path, p)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: Uint8Array[] = [];
  const files: string[] = [];
  const skipped: string[] = [];
  for (const r of rel) {
    const b = await readFile(join(path, r));
    if (b.length === 0) continue;
    if (looksBinary(b)) {
      skipped.push(r);
      continue;
    }
    if (parts.length > 0 && parts.at(-1)!.at(-1) !== 0x0a) parts.push(Uint8Array.of(0x0a));
    parts.push(b);
    files.push(r);
  }
  if (files.length === 0) {
    throw new Error(`data: folder '${path}' has no non-empty text files${skipped.length > 0 ? ` (skipped ${skipped.length} binary file(s))` : ''}`);
  }
  const total = parts.reduce((s, p) => s + p.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, files, skipped };
}
