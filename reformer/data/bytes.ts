/**
 * Byte-level tokenisation (the paper's enwik8 setting, vocabulary 258):
 *
 *   id 0 = padding, id 1 = end of sequence, id b + 2 = byte b (0..255)
 *
 * Text is encoded as UTF-8 bytes, so any input round-trips exactly; decoding drops padding and stops
 * at the first EOS. Reading a corpus from files is node/text-source.ts (Node only; this file is part
 * of the browser bundle).
 */
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
