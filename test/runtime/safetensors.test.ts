import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { decodeSafetensors, encodeSafetensors, maxHeaderBytes, SafetensorsError } from '../../runtime/safetensors.ts';
import { readSafetensors } from '../../node/safetensors-file.ts';

/** Builds a file from a raw header object and data bytes, bypassing the encoder's checks. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const text = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

const tensorArb: fc.Arbitrary<HostTensor> = fc
  .tuple(fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }), fc.boolean())
  .chain(([shape, isInt]): fc.Arbitrary<HostTensor> => {
    const n = shape.reduce((a, b) => a * b, 1);
    return isInt
      ? fc.array(fc.integer({ min: -2147483648, max: 2147483647 }), { minLength: n, maxLength: n }).map((v) => ({ shape, dtype: 'i32' as const, data: Int32Array.from(v) }))
      : fc.array(fc.float({ noNaN: false }), { minLength: n, maxLength: n }).map((v) => ({ shape, dtype: 'f32' as const, data: Float32Array.from(v) }));
  });

const filesArb = fc.tuple(
  fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== '__metadata__'), tensorArb), { selector: ([k]) => k, maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);

function sameBits(a: HostTensor, b: HostTensor): void {
  expect(b.shape).toEqual(a.shape);
  expect(b.dtype).toBe(a.dtype);
  expect(b.data.constructor).toBe(a.data.constructor);
  // Byte-level equality so NaN payloads and -0 count.
  expect(new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength)).toEqual(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength));
}

describe('safetensors round trip', () => {
  it('decode(encode(x)) = x for random tensors, names and metadata', () => {
    fc.assert(
      fc.property(filesArb, ([entries, meta]) => {
        const bytes = encodeSafetensors(entries, meta);
        const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        expect((8 + headerLen) % 8).toBe(0);
        const back = decodeSafetensors(bytes);
        expect([...back.tensors.keys()].sort()).toEqual(entries.map(([k]) => k).sort());
        for (const [k, t] of entries) sameBits(t, back.tensors.get(k)!);
        expect(back.metadata).toEqual(meta);
      }),
      { numRuns: 150 },
    );
  });

  it('names and metadata keys such as __proto__ and constructor are ordinary keys', () => {
    const t: HostTensor = { shape: [1], dtype: 'f32', data: Float32Array.from([3]) };
    const meta = JSON.parse('{"__proto__": "p", "constructor": "c"}') as Record<string, string>;
    const back = decodeSafetensors(encodeSafetensors([['__proto__', t], ['constructor', t]], meta));
    expect([...back.tensors.keys()].sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.entries(back.metadata).sort()).toEqual([['__proto__', 'p'], ['constructor', 'c']]);
  });

  it('F64 keeps float64 values exactly and reads back as f32-typed Float64Array', () => {
    const t: HostTensor = { shape: [3], dtype: 'f32', data: Float64Array.from([Math.PI, -1e-300, 1 / 3]) };
    const back = decodeSafetensors(encodeSafetensors([['x', t]], {}, { float: 'F64' })).tensors.get('x')!;
    expect(back.dtype).toBe('f32');
    expect(back.data).toBeInstanceOf(Float64Array);
    expect(Array.from(back.data)).toEqual([Math.PI, -1e-300, 1 / 3]);
  });

  it('F32 rounds float64 data to float32', () => {
    const t: HostTensor = { shape: [1], dtype: 'f32', data: Float64Array.from([1 / 3]) };
    const back = decodeSafetensors(encodeSafetensors([['x', t]])).tensors.get('x')!;
    expect(back.data[0]).toBe(Math.fround(1 / 3));
  });

  it('writes the layout other readers expect (hand-checked bytes)', () => {
    const bytes = encodeSafetensors([['a', { shape: [2], dtype: 'i32', data: Int32Array.from([1, -2]) }]]);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header).toEqual({ a: { dtype: 'I32', shape: [2], data_offsets: [0, 8] } });
    expect(Array.from(bytes.subarray(8 + n))).toEqual([1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
  });

  it('reads a file from disk and names the path in errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'st-'));
    const path = join(dir, 'x.safetensors');
    await writeFile(path, encodeSafetensors([['w', { shape: [1, 2], dtype: 'f32', data: Float32Array.from([1, 2]) }]]));
    expect(Array.from((await readSafetensors(path)).tensors.get('w')!.data)).toEqual([1, 2]);
    await writeFile(path, new Uint8Array(3));
    await expect(readSafetensors(path)).rejects.toThrow(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: file is 3 bytes`));
    await expect(readSafetensors(join(dir, 'missing'))).rejects.toThrow(/cannot read safetensors file/);
    await rm(dir, { recursive: true, force: true });
  });

  it('the encoder rejects bad input', () => {
    expect(() => encodeSafetensors([['x', { shape: [2], dtype: 'f32', data: new Float32Array(3) }]])).toThrow(/3 elements but shape \[2\]/);
    expect(() => encodeSafetensors([['__metadata__', { shape: [], dtype: 'f32', data: new Float32Array(1) }]])).toThrow(/invalid tensor name/);
    const t: HostTensor = { shape: [], dtype: 'f32', data: new Float32Array(1) };
    expect(() => encodeSafetensors([['x', t], ['x', t]])).toThrow(/duplicate tensor name 'x'/);
    expect(() => encodeSafetensors([['i', { shape: [1], dtype: 'i32', data: Float64Array.from([1.5]) }]])).toThrow(/i32 tensor 'i' holds 1.5/);
  });
});

describe('safetensors hostile input', () => {
  const good = encodeSafetensors([
    ['a', { shape: [2, 3], dtype: 'f32', data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
    ['b', { shape: [4], dtype: 'i32', data: Int32Array.from([7, 8, 9, 10]) }],
  ]);
  const f32 = (n: number) => new Uint8Array(4 * n);
  const bad = (bytes: Uint8Array, pattern: RegExp) => expect(() => decodeSafetensors(bytes)).toThrow(pattern);

  it('every truncation is a SafetensorsError, never a crash or a silent partial read', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: good.length - 1 }), (cut) => {
        expect(() => decodeSafetensors(good.subarray(0, cut))).toThrow(SafetensorsError);
      }),
      { numRuns: 200 },
    );
  });

  it('flipped header bytes give a SafetensorsError or a file that is still consistent', () => {
    const n = Number(new DataView(good.buffer).getBigUint64(0, true));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 + n - 1 }), fc.integer({ min: 1, max: 255 }), (pos, mask) => {
        const copy = good.slice();
        copy[pos]! ^= mask;
        try {
          const f = decodeSafetensors(copy);
          // A flip may survive (e.g. inside a name or in padding); the result must still be self-consistent.
          for (const t of f.tensors.values()) expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
        } catch (e) {
          expect(e).toBeInstanceOf(SafetensorsError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('short file, absurd or overlong header length', () => {
    bad(new Uint8Array(5), /5 bytes, shorter than the 8-byte header length/);
    const huge = good.slice();
    new DataView(huge.buffer).setBigUint64(0, BigInt(maxHeaderBytes + 1), true);
    bad(huge, /larger than the 104857600-byte limit/);
    const long = good.slice();
    new DataView(long.buffer).setBigUint64(0, BigInt(good.length), true);
    bad(long, /runs past the end/);
  });

  it('invalid JSON, invalid UTF-8 and non-object headers', () => {
    bad(rawFile(null, undefined, '{"a": '), /not valid JSON/);
    const utf = rawFile(null, undefined, '{}  ');
    utf[9] = 0xff;
    bad(utf, /not valid UTF-8/);
    bad(rawFile([1, 2]), /must be a JSON object, got an array/);
    bad(rawFile(null), /must be a JSON object, got null/);
    bad(rawFile(7), /must be a JSON object, got number/);
    bad(rawFile({ x: 3 }), /tensor 'x': entry must be an object/);
  });

  it('dtype checks', () => {
    bad(rawFile({ x: { dtype: 'F17', shape: [1], data_offsets: [0, 4] } }, f32(1)), /tensor 'x': unknown dtype "F17"/);
    bad(rawFile({ x: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, f32(1)), /tensor 'x': dtype BF16 is not supported/);
    bad(rawFile({ x: { dtype: 4, shape: [1], data_offsets: [0, 4] } }, f32(1)), /dtype must be a string/);
  });

  it('shape checks', () => {
    for (const shape of [[-1], [1.5], ['2'], 3, null, [2 ** 60]]) {
      bad(rawFile({ x: { dtype: 'F32', shape, data_offsets: [0, 4] } }, f32(1)), /tensor 'x': shape must be an array of non-negative integers/);
    }
  });

  it('offset checks: malformed, reversed, overlapping, gaps, past the end, trailing bytes', () => {
    bad(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, f32(1)), /data_offsets must be \[begin, end\]/);
    bad(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32(1)), /end before they begin/);
    bad(rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, f32(1)), /4 data bytes, but shape \[2\] of F32 needs 8/);
    bad(
      rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)),
      /tensor 'y': data_offsets \[4, 12\] overlap/,
    );
    bad(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2)), /leave a gap after byte 0/);
    bad(rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1)), /run past the 4-byte data section/);
    bad(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), /data section is 8 bytes but the tensors cover 4/);
  });

  it('duplicate names, which JSON.parse would silently collapse', () => {
    const text = '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    bad(rawFile(null, f32(1), text), /tensor name 'x' appears twice/);
    // Same key nested deeper or inside strings is not a duplicate.
    const ok = '{"__metadata__":{"x":"\\"x\\""},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    expect(decodeSafetensors(rawFile(null, f32(1), ok)).metadata).toEqual({ x: '"x"' });
  });

  it('metadata must map strings to strings', () => {
    bad(rawFile({ __metadata__: { a: 1 } }), /__metadata__ entry 'a' must be a string/);
    bad(rawFile({ __metadata__: [] }), /__metadata__ must be an object of strings/);
  });

  it('zero-size tensors and an empty file are valid', () => {
    const f = decodeSafetensors(rawFile({ e: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] } }));
    expect(f.tensors.get('e')!.shape).toEqual([0, 3]);
    expect(decodeSafetensors(rawFile({})).tensors.size).toBe(0);
  });
});
