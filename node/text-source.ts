/**
 * Reads a training corpus from a text file or a folder of text files (Node only; the byte
 * tokenisation itself is reformer/data/bytes.ts, which the browser bundle shares).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';

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
