/**
 * Our own reader and writer of the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [8-byte little-endian header length n][n bytes of UTF-8 JSON header][raw little-endian data]
 *
 * The header maps each tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative
 * to the start of the data section) plus an optional `"__metadata__"` map of strings. We pad the
 * header with spaces so the data section starts on an 8-byte boundary.
 *
 * Every field of a file is treated as hostile: the decoder checks lengths, JSON, dtypes, shapes and
 * that the tensors tile the data section exactly, and names the tensor and the file in each error.
 *
 * Supported dtypes: F32 and I32 (read and write), F64 (read and write; read as an f32 tensor whose
 * data stays a Float64Array, so no precision is lost before the caller decides).
 *
 * Bytes in, bytes out: this file is part of the browser bundle; reading a file from disk is
 * node/safetensors-file.ts.
 */
import type { HostTensor } from '../compiler/ir/host-tensor.ts';
import { formatShape } from '../compiler/ir/types.ts';

export type SafetensorsDType = 'F32' | 'F64' | 'I32';

/** Bytes per element of each supported dtype. */
const dtypeSize: Readonly<Record<SafetensorsDType, number>> = { F32: 4, F64: 8, I32: 4 };

/** Dtypes the format defines that we recognise but do not support, for a clearer error. */
const knownUnsupported = new Set(['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'U32', 'I64', 'U64']);

/** Largest header we accept: real headers are kilobytes; a huge one is corruption or an attack. */
export const maxHeaderBytes = 100 * 1024 * 1024;

export interface SafetensorsFile {
  /** Tensors in file order (by data offset). */
  readonly tensors: Map<string, HostTensor>;
  readonly metadata: Record<string, string>;
}

export interface EncodeOptions {
  /** Storage format of f32 tensors (default F32; F64 keeps float64 reference values exactly). */
  readonly float?: 'F32' | 'F64';
}

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
}

const littleEndianHost = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function validShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0);
}

/** Serialises tensors (and optional string metadata) to safetensors bytes. */
export function encodeSafetensors(
  tensors: Iterable<readonly [string, HostTensor]>,
  metadata: Readonly<Record<string, string>> = {},
  options: EncodeOptions = {},
): Uint8Array {
  const floatFormat = options.float ?? 'F32';
  // Null prototype, so a tensor named `__proto__` is an ordinary key rather than a prototype change.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  const metaEntries = Object.entries(metadata);
  for (const [k, v] of metaEntries) {
    if (typeof v !== 'string') throw new SafetensorsError(`safetensors metadata '${k}' must be a string, got ${typeof v}`);
  }
  if (metaEntries.length > 0) header.__metadata__ = { ...metadata };
  const parts: Array<{ name: string; dtype: SafetensorsDType; t: HostTensor }> = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '' || name === '__metadata__') throw new SafetensorsError(`safetensors: invalid tensor name '${name}'`);
    if (seen.has(name)) throw new SafetensorsError(`safetensors: duplicate tensor name '${name}'`);
    seen.add(name);
    if (!validShape(t.shape)) throw new SafetensorsError(`safetensors: tensor '${name}' has an invalid shape ${JSON.stringify(t.shape)}`);
    if (t.data.length !== product(t.shape)) {
      throw new SafetensorsError(`safetensors: tensor '${name}' has ${t.data.length} elements but shape ${formatShape(t.shape)}`);
    }
    const dtype: SafetensorsDType = t.dtype === 'i32' ? 'I32' : floatFormat;
    const bytes = t.data.length * dtypeSize[dtype];
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    parts.push({ name, dtype, t });
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  let headerBytes = enc.encode(json);
  // Pad with spaces (valid JSON whitespace) so the data section is 8-byte aligned.
  const pad = (8 - ((8 + headerBytes.length) % 8)) % 8;
  if (pad > 0) {
    json += ' '.repeat(pad);
    headerBytes = enc.encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const { name, dtype, t } of parts) {
    const n = t.data.length;
    if (dtype === 'F32') for (let i = 0; i < n; i++, at += 4) view.setFloat32(at, t.data[i]!, true);
    else if (dtype === 'F64') for (let i = 0; i < n; i++, at += 8) view.setFloat64(at, t.data[i]!, true);
    else {
      for (let i = 0; i < n; i++, at += 4) {
        const v = t.data[i]!;
        if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
          throw new SafetensorsError(`safetensors: i32 tensor '${name}' holds ${v}, not a 32-bit integer`);
        }
        view.setInt32(at, v, true);
      }
    }
  }
  return out;
}

/**
 * Names of the top-level keys of a JSON object text, in order, including duplicates (which
 * `JSON.parse` silently collapses). Assumes the text already parsed as a JSON object.
 */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
  }
  return keys;
}

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Parses safetensors bytes; `source` (e.g. a file path) is named in every error. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length (truncated or not a safetensors file)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(maxHeaderBytes)) fail(`header length ${n64} is larger than the ${maxHeaderBytes}-byte limit (corrupt or not a safetensors file)`);
  const n = Number(n64);
  if (8 + n > bytes.length) fail(`header length ${n} runs past the end of the ${bytes.length}-byte file (truncated?)`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(`header must be a JSON object, got ${header === null ? 'null' : Array.isArray(header) ? 'an array' : typeof header}`);
  const keys = topLevelKeys(text);
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  if (dup !== undefined) fail(`tensor name '${dup}' appears twice in the header`);

  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`__metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__ entry '${k}' must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`tensor '${name}': entry must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string') fail(`tensor '${name}': dtype must be a string, got ${JSON.stringify(dtype)}`);
    if (!(dtype as string in dtypeSize)) {
      fail(
        knownUnsupported.has(dtype as string)
          ? `tensor '${name}': dtype ${dtype} is not supported (supported: F32, F64, I32)`
          : `tensor '${name}': unknown dtype ${JSON.stringify(dtype)} (supported: F32, F64, I32)`,
      );
    }
    if (!validShape(shape)) fail(`tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    const s = shape as number[];
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor '${name}': data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`);
    const dt = dtype as SafetensorsDType;
    const count = product(s);
    if (!Number.isSafeInteger(count * dtypeSize[dt]) || end - begin !== count * dtypeSize[dt]) {
      fail(`tensor '${name}': ${end - begin} data bytes, but shape ${formatShape(s)} of ${dt} needs ${count * dtypeSize[dt]}`);
    }
    entries.push({ name, dtype: dt, shape: s, begin, end });
  }

  // The tensors must tile the data section exactly: no gaps, no overlaps, nothing left over.
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of entries) {
    if (e.begin < expected) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (which ends at ${expected})`);
    if (e.begin > expected) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] leave a gap after byte ${expected}`);
    if (e.end > dataLength) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] run past the ${dataLength}-byte data section (truncated?)`);
    expected = e.end;
  }
  if (expected !== dataLength) fail(`data section is ${dataLength} bytes but the tensors cover ${expected} (trailing bytes or a bad header)`);

  const tensors = new Map<string, HostTensor>();
  for (const e of entries) tensors.set(e.name, readTensor(bytes, dataStart + e.begin, e));
  return { tensors, metadata };
}

function readTensor(bytes: Uint8Array, at: number, e: Entry): HostTensor {
  const count = product(e.shape);
  const size = dtypeSize[e.dtype];
  // Copying into a fresh buffer both aligns the data and detaches it from the file buffer. (Not
  // `bytes.slice`: on a Node Buffer that is a view into a shared pool.)
  const copy = new Uint8Array(count * size);
  copy.set(bytes.subarray(at, at + count * size));
  let data: Float32Array | Float64Array | Int32Array;
  if (littleEndianHost) {
    data = e.dtype === 'F32' ? new Float32Array(copy.buffer) : e.dtype === 'F64' ? new Float64Array(copy.buffer) : new Int32Array(copy.buffer);
  } else {
    const v = new DataView(copy.buffer);
    data = e.dtype === 'F32' ? new Float32Array(count) : e.dtype === 'F64' ? new Float64Array(count) : new Int32Array(count);
    for (let i = 0; i < count; i++) {
      data[i] = e.dtype === 'F32' ? v.getFloat32(i * 4, true) : e.dtype === 'F64' ? v.getFloat64(i * 8, true) : v.getInt32(i * 4, true);
    }
  }
  return { shape: e.shape, dtype: e.dtype === 'I32' ? 'i32' : 'f32', data };
}
