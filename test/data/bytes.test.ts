import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BYTE_VOCAB_SIZE, decodeBytes, encodeBytes, EOS_ID, idsToBytes, PAD_ID } from '../../reformer/data/bytes.ts';
import { readTextSource } from '../../node/text-source.ts';

describe('byte tokens', () => {
  it('pad = 0, EOS = 1, byte b = b + 2, vocabulary 258', () => {
    expect(BYTE_VOCAB_SIZE).toBe(258);
    expect(Array.from(encodeBytes('A\u00e9'))).toEqual([0x41 + 2, 0xc3 + 2, 0xa9 + 2]);
    expect(Array.from(encodeBytes(Uint8Array.of(0, 255)))).toEqual([2, 257]);
  });

  it('decode(encode(text)) = text for any string of valid code points', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
      expect(decodeBytes(encodeBytes(s))).toBe(s);
    }), { numRuns: 200 });
  });

  it('raw bytes round-trip exactly, ids stay in the vocabulary', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        const ids = encodeBytes(b);
        expect(ids.every((i) => i >= 2 && i < BYTE_VOCAB_SIZE)).toBe(true);
        expect(idsToBytes(ids)).toEqual(b);
      }),
      { numRuns: 200 },
    );
  });

  it('decoding skips padding and stops at EOS (unless told not to)', () => {
    const ids = [PAD_ID, ...encodeBytes('ab'), PAD_ID, EOS_ID, ...encodeBytes('c')];
    expect(decodeBytes(ids)).toBe('ab');
    expect(decodeBytes(ids, false)).toBe('abc');
    expect(decodeBytes([0xe2 + 2])).toBe('\ufffd'); // a cut-off multi-byte sequence
    expect(() => decodeBytes([258])).toThrow(/id 258 at position 0 is outside the vocabulary \[0, 258\)/);
  });
});

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'text-'));
  dirs.push(dir);
  return dir;
}

describe('reading a text source', () => {
  it('reads a file, or a folder recursively in sorted order, skipping hidden and binary files', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'b'));
    await mkdir(join(dir, '.git'));
    await writeFile(join(dir, 'b', 'z.txt'), 'zz\n');
    await writeFile(join(dir, 'a.txt'), 'aa');
    await writeFile(join(dir, 'c.md'), 'cc\n');
    await writeFile(join(dir, '.git', 'HEAD'), 'hidden');
    await writeFile(join(dir, 'img.bin'), Uint8Array.of(1, 0, 2));
    await writeFile(join(dir, 'empty.txt'), '');
    await symlink(join(dir, 'a.txt'), join(dir, 'link.txt'));
    const src = await readTextSource(dir);
    expect(src.files).toEqual(['a.txt', join('b', 'z.txt'), 'c.md', 'link.txt']);
    expect(src.skipped).toEqual(['img.bin']);
    expect(new TextDecoder().decode(src.bytes)).toBe('aa\nzz\ncc\naa');
    expect(new TextDecoder().decode((await readTextSource(join(dir, 'c.md'))).bytes)).toBe('cc\n');
  });

  it('clear errors for missing, empty, binary and text-less sources', async () => {
    const dir = await tempDir();
    await expect(readTextSource(join(dir, 'nope'))).rejects.toThrow(/'.*nope' does not exist/);
    await expect(readTextSource(dir)).rejects.toThrow(/has no non-empty text files/);
    await writeFile(join(dir, 'e.txt'), '');
    await expect(readTextSource(join(dir, 'e.txt'))).rejects.toThrow(/file '.*e\.txt' is empty/);
    await writeFile(join(dir, 'x.bin'), Uint8Array.of(0, 1));
    await expect(readTextSource(join(dir, 'x.bin'))).rejects.toThrow(/looks binary/);
    await expect(readTextSource(dir)).rejects.toThrow(/no non-empty text files \(skipped 1 binary file\(s\)\)/);
  });
});
