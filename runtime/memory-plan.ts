/**
 * Static memory plan for a compiled graph: each kernel-written buffer gets a slot, slots are
 * reused once every reader of their previous buffer has run (liveness over the kernel order),
 * best fit by size. Host buffers are counted apart from the slots: inputs and constants are
 * uploaded per run and live for the whole run; host-drawn random buffers (dropout masks, LSH
 * rotations) are drawn just before their first reader and dropped after their last, so a replayed
 * mask lives only as long as its replay.
 *
 * The kernel-by-kernel executor follows this plan when it draws and drops buffers (`drawBefore`,
 * `freeAfter`); the fused gpu.js pipeline keeps its own buffers, laid out by the same liveness rule.
 */
import type { CompiledGraph } from '../compiler/codegen/compile.ts';
import type { BufferKey } from '../compiler/codegen/kernels.ts';

export const BYTES_PER_ELEMENT = 4;

export interface MemoryPlan {
  /** Slot size in elements. */
  readonly slots: readonly number[];
  /** The slot of every kernel-written buffer. */
  readonly slotOf: ReadonlyMap<BufferKey, number>;
  /** Buffers whose last reader is kernel i: slots and random draws (wanted outputs are never freed). */
  readonly freeAfter: ReadonlyArray<readonly BufferKey[]>;
  /**
   * Random buffers whose first reader is kernel i, to draw just before it; one entry more than
   * there are kernels: the draws no kernel reads (wanted outputs only), drawn after the last kernel.
   */
  readonly drawBefore: ReadonlyArray<readonly BufferKey[]>;
  /** Bytes of all slots. */
  readonly slotBytes: number;
  /** Bytes of the host buffers that live for the whole run (inputs, constants). */
  readonly hostBytes: number;
  /** Bytes of all host-drawn random buffers (each alive from its first reader to its last). */
  readonly randomBytes: number;
  /** Largest number of bytes alive at once (host buffers included). */
  readonly peakBytes: number;
  /** The kernel whose output first brought the plan to `peakBytes` (kernels.length: the unread draws after the last; -1: host buffers alone). */
  readonly peakKernel: number;
}

export function planMemory(compiled: CompiledGraph): MemoryPlan {
  const { kernels, buffers, plan } = compiled;
  const bytes = (b: BufferKey) => buffers.get(b)!.size * BYTES_PER_ELEMENT;
  const wanted = new Set(plan.wanted.map((id) => `%${id}`));
  const lastUse = new Map<BufferKey, number>();
  kernels.forEach((k, i) => {
    for (const p of k.params) lastUse.set(p, i);
  });
  const produced = new Set(kernels.map((k) => k.output));
  const random = new Set([...plan.buffers].filter(([, source]) => source === 'random').map(([id]) => `%${id}`));
  let hostBytes = 0;
  let randomBytes = 0;
  for (const b of buffers.keys()) {
    if (random.has(b)) randomBytes += bytes(b);
    else if (!produced.has(b)) hostBytes += bytes(b);
  }

  const firstUse = new Map<BufferKey, number>();
  kernels.forEach((k, i) => {
    for (const p of k.params) if (!firstUse.has(p)) firstUse.set(p, i);
  });
  const drawBefore: BufferKey[][] = [...kernels, undefined].map(() => []);
  for (const b of random) drawBefore[firstUse.get(b) ?? kernels.length]!.push(b);

  const slots: number[] = [];
  const free: number[] = [];
  const slotOf = new Map<BufferKey, number>();
  const freeAfter: BufferKey[][] = kernels.map(() => []);
  let live = hostBytes;
  let peak = live;
  let peakKernel = -1;
  const reach = (i: number) => {
    if (live <= peak) return;
    peak = live;
    peakKernel = i;
  };
  kernels.forEach((k, i) => {
    for (const b of drawBefore[i]!) live += bytes(b);
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
    reach(i);
    const dying = [...k.params, k.output].filter((b, j, all) => all.indexOf(b) === j && (lastUse.get(b) ?? -1) <= i && !wanted.has(b));
    for (const b of dying) {
      const s = slotOf.get(b);
      if (s !== undefined) free.push(s);
      else if (!random.has(b)) continue; // inputs and constants live for the whole run
      freeAfter[i]!.push(b);
      live -= bytes(b);
    }
  });
  for (const b of drawBefore[kernels.length]!) live += bytes(b);
  reach(kernels.length);
  return {
    slots,
    slotOf,
    freeAfter,
    drawBefore,
    slotBytes: slots.reduce((a, s) => a + s * BYTES_PER_ELEMENT, 0),
    hostBytes,
    randomBytes,
    peakBytes: peak,
    peakKernel,
  };
}
