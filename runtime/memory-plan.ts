/**
 * Static memory plan for a compiled graph: each kernel-written buffer gets a slot, slots are
 * reused once every reader of their previous buffer has run (liveness over the kernel order),
 * best fit by size. Host buffers (inputs, constants, host-drawn random) are counted separately:
 * they are uploaded per run and live for the whole run.
 *
 * The kernel-by-kernel executor follows this plan when it drops buffers (`freeAfter`); the fused
 * gpu.js pipeline keeps its own buffers, laid out by the same liveness rule.
 */
import type { CompiledGraph } from '../compiler/codegen/compile.ts';
import type { BufferKey } from '../compiler/codegen/kernels.ts';

export const BYTES_PER_ELEMENT = 4;

export interface MemoryPlan {
  /** Slot size in elements. */
  readonly slots: readonly number[];
  /** The slot of every kernel-written buffer. */
  readonly slotOf: ReadonlyMap<BufferKey, number>;
  /** Buffers whose last reader is kernel i (wanted outputs are never freed). */
  readonly freeAfter: ReadonlyArray<readonly BufferKey[]>;
  /** Bytes of all slots. */
  readonly slotBytes: number;
  /** Bytes of host buffers uploaded per run. */
  readonly hostBytes: number;
  /** Largest number of bytes alive at once (host buffers included). */
  readonly peakBytes: number;
}

export function planMemory(compiled: CompiledGraph): MemoryPlan {
  const { kernels, buffers, plan } = compiled;
  const wanted = new Set(plan.wanted.map((id) => `%${id}`));
  const lastUse = new Map<BufferKey, number>();
  kernels.forEach((k, i) => {
    for (const p of k.params) lastUse.set(p, i);
  });
  const produced = new Set(kernels.map((k) => k.output));
  let hostBytes = 0;
  for (const b of buffers.values()) if (!produced.has(b.key)) hostBytes += b.size * BYTES_PER_ELEMENT;

  const slots: number[] = [];
  const free: number[] = [];
  const slotOf = new Map<BufferKey, number>();
  const freeAfter: BufferKey[][] = kernels.map(() => []);
  let live = hostBytes;
  let peak = live;
  kernels.forEach((k, i) => {
    const size = k.size;
    // Best fit among free slots; otherwise a new slot.
    let pick = -1;
    for (const s of free) if (slots[s]! >= size && (pick < 0 || slots[s]! < slots[pick]!)) pick = s;
    if (pick < 0) {
      pick = slots.length;
      slots.push(size);
    } else {
      free.splice(free.indexOf(pick), 1);
    }
    slotOf.set(k.output, pick);
    live += size * BYTES_PER_ELEMENT;
    peak = Math.max(peak, live);
    const dying = [...k.params, k.output].filter((b, j, all) => all.indexOf(b) === j && (lastUse.get(b) ?? -1) <= i && !wanted.has(b));
    for (const b of dying) {
      const s = slotOf.get(b);
      if (s === undefined) continue; // host buffers live for the whole run
      freeAfter[i]!.push(b);
      free.push(s);
      live -= buffers.get(b)!.size * BYTES_PER_ELEMENT;
    }
  });
  return {
    slots,
    slotOf,
    freeAfter,
    slotBytes: slots.reduce((a, s) => a + s * BYTES_PER_ELEMENT, 0),
    hostBytes,
    peakBytes: peak,
  };
}
