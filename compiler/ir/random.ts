/**
 * The definition of the `random` primitive: a counter-based generator, so a value depends only on
 * (seed, salt, element index). Forward and backward passes, every backend and the reference
 * evaluator therefore draw identical numbers without carrying generator state around.
 */

/** A 32-bit avalanche mix (murmur3's finaliser). */
export function mix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform 32-bit hash of (seed, salt, counter); counters are below 2^31. */
export function hash3(seed: number, salt: number, counter: number): number {
  return mix32(mix32(mix32(seed ^ 0x9e3779b9) ^ salt) ^ Math.imul(counter | 0, 0x27d4eb2f));
}

/** Uniform in [0, 1) with 24 bits of resolution (exactly representable in float32). */
export function uniformAt(seed: number, salt: number, index: number): number {
  return (hash3(seed, salt, index) >>> 8) / 16777216;
}

/** Standard normal by Box–Muller from two uniforms at counters 2i and 2i+1. */
export function normalAt(seed: number, salt: number, index: number): number {
  const u1 = ((hash3(seed, salt, 2 * index) >>> 8) + 0.5) / 16777216;
  const u2 = (hash3(seed, salt, 2 * index + 1) >>> 8) / 16777216;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** A stable 31-bit salt from a string (e.g. a layer path), so each layer draws its own stream. */
export function saltOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return mix32(h) & 0x7fffffff;
}
