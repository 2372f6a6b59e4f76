/**
 * A schedule: a list of graph executions over named host buffers. Passes that split work across
 * several graphs (the reversible backward, chunked feed-forward) produce schedules; any
 * `GraphRunner` runs them, and `memory-accounting.ts` measures them from static shapes alone.
 *
 * Buffer naming conventions (used by the memory accounting to classify buffers):
 * `params.*` parameters, `grad.*` parameter gradients, `state:*` recorded layer state, `seed`
 * the step seed; everything else is an activation or cotangent.
 */
import type { Graph } from '../../compiler/ir/graph.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { NodeId } from '../../compiler/ir/types.ts';
import { formatShape } from '../../compiler/ir/types.ts';
import type { GraphRunner } from '../runner.ts';

export interface ScheduleStep {
  /** What the step does, e.g. `block 3 G vjp`. */
  readonly label: string;
  readonly graph: Graph;
  /** Graph input name -> buffer name. Every input the graph declares must be bound. */
  readonly reads: Readonly<Record<string, string>>;
  /** Buffer name -> node id of the value written. */
  readonly writes: Readonly<Record<string, NodeId>>;
}

export interface Schedule {
  readonly name: string;
  readonly steps: readonly ScheduleStep[];
  /** Buffers the caller provides. */
  readonly inputs: readonly string[];
  /** Buffers returned to the caller (kept to the end). */
  readonly outputs: readonly string[];
}

export type BufferKind = 'param' | 'grad' | 'state' | 'seed' | 'activation';

export function bufferKind(name: string): BufferKind {
  if (name.startsWith('params.')) return 'param';
  if (name.startsWith('grad.')) return 'grad';
  if (name.startsWith('state:')) return 'state';
  if (name === 'seed') return 'seed';
  return 'activation';
}

/** Index of the last step that reads each buffer. */
export function lastReads(schedule: Schedule): Map<string, number> {
  const last = new Map<string, number>();
  schedule.steps.forEach((s, i) => {
    for (const b of Object.values(s.reads)) last.set(b, i);
  });
  return last;
}

/** Checks that every read buffer is provided or written earlier, and every graph input is bound. */
export function validateSchedule(schedule: Schedule): void {
  const known = new Set(schedule.inputs);
  schedule.steps.forEach((s, i) => {
    for (const n of s.graph.inputNodes()) {
      if (!(n.name in s.reads)) throw new Error(`${schedule.name}: step ${i} (${s.label}) leaves graph input '${n.name}' unbound`);
    }
    for (const [input, buf] of Object.entries(s.reads)) {
      if (!known.has(buf)) throw new Error(`${schedule.name}: step ${i} (${s.label}) reads '${buf}' (as '${input}') before it exists`);
    }
    for (const b of Object.keys(s.writes)) known.add(b);
  });
  for (const o of schedule.outputs) if (!known.has(o)) throw new Error(`${schedule.name}: output '${o}' is never written`);
}

/**
 * Runs the steps in order on `runner`. Buffers are dropped after their last read unless they are
 * schedule outputs, so host memory follows the schedule's liveness.
 */
export async function runSchedule(
  schedule: Schedule,
  runner: GraphRunner,
  inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
): Promise<Map<string, HostTensor>> {
  const buffers = new Map<string, HostTensor>(inputs instanceof Map ? inputs : Object.entries(inputs));
  for (const name of schedule.inputs) {
    if (!buffers.has(name)) throw new Error(`${schedule.name}: missing input buffer '${name}'`);
  }
  const last = lastReads(schedule);
  const keep = new Set(schedule.outputs);
  for (const [i, step] of schedule.steps.entries()) {
    const feeds: Record<string, HostTensor> = {};
    for (const [input, buf] of Object.entries(step.reads)) {
      const v = buffers.get(buf);
      if (v === undefined) throw new Error(`${schedule.name}: step ${i} (${step.label}) reads missing buffer '${buf}'`);
      feeds[input] = v;
    }
    const names = Object.keys(step.writes);
    const values = await runner.run(step.graph, feeds, names.map((n) => step.writes[n]!));
    for (const [buf, last_] of last) if (last_ === i && !keep.has(buf)) buffers.delete(buf);
    names.forEach((n, k) => buffers.set(n, values[k]!));
  }
  const out = new Map<string, HostTensor>();
  for (const o of schedule.outputs) out.set(o, buffers.get(o)!);
  return out;
}

/** One line per step: `3  block 1 F vjp   x2.1 dx1.1 → x1.1 dx2.1 grad.1.0.w   (42 nodes)`. */
export function printSchedule(schedule: Schedule): string {
  const inputs = schedule.inputs.filter((b) => bufferKind(b) !== 'param');
  const nParams = schedule.inputs.length - inputs.length;
  const lines = [`schedule ${schedule.name}`, `  inputs  ${inputs.join(' ')}${nParams ? ` (${nParams} params)` : ''}`];
  schedule.steps.forEach((s, i) => {
    const bufs = [...new Set(Object.values(s.reads))];
    const nParams = bufs.filter((b) => bufferKind(b) === 'param').length;
    // Parameters are listed as a count: they are read by every step and would drown the line.
    const reads = [...bufs.filter((b) => bufferKind(b) !== 'param'), ...(nParams ? [`(${nParams} params)`] : [])].join(' ');
    const writes = Object.entries(s.writes)
      .map(([b, id]) => `${b}${formatShape(s.graph.node(id).shape)}`)
      .join(' ');
    lines.push(`  ${String(i).padStart(3)}  ${s.label}: ${reads} → ${writes}  (${s.graph.nodes.length} nodes)`);
  });
  lines.push(`  outputs ${schedule.outputs.join(' ')}`);
  return lines.join('\n');
}
