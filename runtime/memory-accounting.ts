/**
 * Memory accounting from static shapes and liveness: bytes of buffers, never process RSS. Two
 * numbers matter for training memory:
 * - retained activation bytes: what the forward pass leaves alive for the backward pass;
 * - peak bytes: the most activation/cotangent/state bytes alive at any point of a step.
 * Parameters and parameter gradients are reported apart: they are the same for every schedule of
 * the same network and would hide how activation memory scales.
 *
 * Every element counts 4 bytes (f32 and i32 on the device), whatever the host evaluator uses.
 */
import { liveNodes, type Graph } from '../compiler/ir/graph.ts';
import type { Node, NodeId, Shape } from '../compiler/ir/types.ts';
import { operands, sizeOf } from '../compiler/ir/types.ts';
import { bufferKind, lastReads, type Schedule } from './schedule/schedule.ts';

export const BYTES_PER_ELEMENT = 4;
export const bytesOf = (shape: Shape) => sizeOf(shape) * BYTES_PER_ELEMENT;

export interface StepMemory {
  readonly label: string;
  /** Activation bytes held in buffers while the step runs (its inputs included). */
  readonly heldBytes: number;
  /** Peak bytes of values computed inside the step's graph. */
  readonly internalPeakBytes: number;
  readonly peakBytes: number;
}

export interface MemoryReport {
  /** Bytes kept from the forward pass for the backward pass (activations, states, seed). */
  readonly retainedActivationBytes: number;
  /** Peak bytes of live activations, cotangents and states over all steps. */
  readonly peakBytes: number;
  readonly paramBytes: number;
  readonly paramGradBytes: number;
  readonly steps: readonly StepMemory[];
}

/**
 * Peak bytes of the values computed while evaluating `wanted` in node order, freeing each value
 * after its last consumer (as the reference evaluator does). Inputs are buffers owned by the
 * caller and not counted; nodes for which `exclude` is true are not counted either.
 */
export function graphPeakBytes(graph: Graph, wanted: readonly NodeId[] = graph.outputs, exclude: (n: Node) => boolean = () => false): number {
  const live = liveNodes(graph, wanted);
  const lastUse = new Map<NodeId, number>();
  for (const n of graph.nodes) if (live.has(n.id)) for (const o of operands(n)) lastUse.set(o, n.id);
  const keep = new Set(wanted);
  const counted = (n: Node) => n.op !== 'input' && !exclude(n);
  let current = 0;
  let peak = 0;
  for (const n of graph.nodes) {
    if (!live.has(n.id)) continue;
    if (counted(n)) current += bytesOf(n.shape);
    peak = Math.max(peak, current);
    for (const o of new Set(operands(n))) {
      const on = graph.node(o);
      if (lastUse.get(o) === n.id && !keep.has(o) && counted(on)) current -= bytesOf(on.shape);
    }
  }
  return peak;
}

const isActivationBuffer = (name: string) => {
  const k = bufferKind(name);
  return k === 'activation' || k === 'state' || k === 'seed';
};

/**
 * Accounts a schedule. `boundary` is the index of the first backward step: buffers written before
 * it, or among `forwardInputs`, that are read at or after it are the retained activations (none
 * when the schedule is backward only). `shapes` gives the shapes of the schedule's input buffers.
 */
export function scheduleMemory(
  schedule: Schedule,
  shapes: ReadonlyMap<string, Shape>,
  boundary = 0,
  forwardInputs: readonly string[] = [],
): MemoryReport {
  const fromForward = new Set(forwardInputs);
  const shapeOf = new Map(shapes);
  const last = lastReads(schedule);
  const keep = new Set(schedule.outputs);
  const held = new Set(schedule.inputs);
  const writtenAt = new Map<string, number>();
  for (const name of schedule.inputs) {
    if (!shapeOf.has(name)) throw new Error(`${schedule.name}: no shape given for input buffer '${name}'`);
    writtenAt.set(name, -1);
  }
  const sumOf = (names: Iterable<string>, pred: (n: string) => boolean) => {
    let s = 0;
    for (const n of names) if (pred(n)) s += bytesOf(shapeOf.get(n)!);
    return s;
  };
  const paramBytes = sumOf(schedule.inputs, (n) => bufferKind(n) === 'param');
  let paramGradBytes = 0;
  let retained = 0;
  const retainedNames = new Set<string>();
  const steps: StepMemory[] = [];
  schedule.steps.forEach((s, i) => {
    if (i >= boundary) {
      for (const b of Object.values(s.reads)) {
        const w = writtenAt.get(b);
        const kept = w !== undefined && (w >= 0 ? w < boundary : fromForward.has(b));
        if (kept && isActivationBuffer(b) && !retainedNames.has(b)) {
          retainedNames.add(b);
          retained += bytesOf(shapeOf.get(b)!);
        }
      }
    }
    const gradNodes = new Set(Object.entries(s.writes).filter(([b]) => bufferKind(b) === 'grad').map(([, id]) => id));
    const internal = graphPeakBytes(s.graph, Object.values(s.writes), (n) => gradNodes.has(n.id));
    const heldBytes = sumOf(held, isActivationBuffer);
    steps.push({ label: s.label, heldBytes, internalPeakBytes: internal, peakBytes: heldBytes + internal });
    for (const [b, l] of last) if (l === i && !keep.has(b)) held.delete(b);
    for (const [b, id] of Object.entries(s.writes)) {
      shapeOf.set(b, s.graph.node(id).shape);
      writtenAt.set(b, i);
      held.add(b);
      // A buffer nobody reads later and nobody asked for is dropped at once.
      if (!keep.has(b) && (last.get(b) ?? -1) <= i) held.delete(b);
    }
  });
  for (const o of schedule.outputs) if (bufferKind(o) === 'grad') paramGradBytes += bytesOf(shapeOf.get(o)!);
  return {
    retainedActivationBytes: retained,
    peakBytes: Math.max(0, ...steps.map((s) => s.peakBytes)),
    paramBytes,
    paramGradBytes,
    steps,
  };
}

/**
 * Accounts ordinary backprop: one graph holding the forward pass (nodes below `forwardCount`)
 * and its VJP. Retained activations are the forward values (data inputs included, parameters
 * excluded) that some backward node reads; the peak runs the whole graph in node order, with the
 * data and cotangent inputs held throughout.
 */
export function backpropMemory(graph: Graph, forwardCount: number, wanted: readonly NodeId[], paramGrads: readonly NodeId[]): MemoryReport {
  const live = liveNodes(graph, wanted);
  const isActivation = (n: Node) => !(n.op === 'input' && (n.role === 'param' || n.role === 'seed'));
  const retainedIds = new Set<NodeId>();
  for (const n of graph.nodes) {
    if (n.id < forwardCount || !live.has(n.id)) continue;
    for (const o of operands(n)) if (o < forwardCount && isActivation(graph.node(o))) retainedIds.add(o);
  }
  let retained = 0;
  for (const id of retainedIds) retained += bytesOf(graph.node(id).shape);
  const inputs = graph.inputNodes().filter((n) => live.has(n.id));
  const heldBytes = inputs.filter((n) => n.role === 'data' || n.role === 'cotangent' || n.role === 'state').reduce((s, n) => s + bytesOf(n.shape), 0);
  const gradSet = new Set(paramGrads);
  const internal = graphPeakBytes(graph, wanted, (n) => gradSet.has(n.id));
  return {
    retainedActivationBytes: retained,
    peakBytes: heldBytes + internal,
    paramBytes: inputs.filter((n) => n.role === 'param').reduce((s, n) => s + bytesOf(n.shape), 0),
    paramGradBytes: paramGrads.reduce((s, id) => s + bytesOf(graph.node(id).shape), 0),
    steps: [{ label: 'forward+backward', heldBytes, internalPeakBytes: internal, peakBytes: heldBytes + internal }],
  };
}

/**
 * Runs `a` then `b` as one schedule: `b`'s inputs that `a` writes come from `a`. Buffers that `b`
 * writes under a name `a` already uses (e.g. a reconstructed input) are renamed with a `'`, so
 * `a`'s buffer is not mistaken for one that lives until `b` reads the new value.
 */
export function concatSchedules(name: string, a: Schedule, b: Schedule): Schedule {
  const taken = new Set([...a.inputs, ...a.steps.flatMap((s) => Object.keys(s.writes))]);
  const alias = new Map<string, string>();
  const rename = (n: string) => alias.get(n) ?? n;
  const steps = b.steps.map((s) => {
    const reads = Object.fromEntries(Object.entries(s.reads).map(([k, v]) => [k, rename(v)]));
    const writes: Record<string, number> = {};
    for (const [buf, id] of Object.entries(s.writes)) {
      if (taken.has(buf) && !alias.has(buf)) alias.set(buf, `${buf}'`);
      writes[rename(buf)] = id;
    }
    return { ...s, reads, writes };
  });
  const fromA = new Set(a.steps.flatMap((s) => Object.keys(s.writes)));
  const inputs = [...new Set([...a.inputs, ...b.inputs.filter((n) => !fromA.has(n))])];
  return { name, steps: [...a.steps, ...steps], inputs, outputs: b.outputs.map(rename) };
}
