/** Reads a safetensors file from disk (Node only; the format itself is runtime/safetensors.ts). */
import { readFile } from 'node:fs/promises';
import { decodeSafetensors, SafetensorsError, type SafetensorsFile } from '../runtime/safetensors.ts';

/** Reads and decodes a safetensors file; errors name the path. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new SafetensorsError(`${path}: cannot read safetensors file: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}
