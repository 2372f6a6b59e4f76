/**
 * `vjpValueReads` describes which values each VJP rule reads (grad.ts relies on it to differentiate
 * a node before values it does not read are replayed). For every primitive and every choice of
 * operands that need a cotangent, the rule's parts for those operands must reach no operand or
 * output value the description leaves out.
 */
import { describe, expect, it } from 'vitest';
import { vjpRules, vjpValueReads } from '../../compiler/grad/vjp-rules.ts';
import { Graph, type Tensor } from '../../compiler/ir/graph.ts';
import * as P from '../../compiler/ir/primitives.ts';
import { operands, type Node, type NodeId } from '../../compiler/ir/types.ts';

function sampleNodes(): { g: Graph; nodes: Node[] } {
  const g = new Graph();
  const x = g.input('x', [2, 3]);
  const y = g.input('y', [2, 3]);
  const start = g.nodes.length;
  const idx = P.argsort(P.iota(g, [2, 3], 1), 1);
  P.unary('exp', x);
  P.unary('neg', x);
  for (const fn of ['add', 'sub', 'mul', 'div', 'max', 'min'] as const) P.binary(fn, x, y);
  P.where(P.compare('gt', x, y), x, y);
  P.matmul(x, P.transpose(y, [1, 0]));
  P.reduce('sum', x, 1);
  P.reduce('max', x, 1);
  P.broadcastTo(P.reshape(x, [1, 2, 3]), [4, 2, 3]);
  P.slice(x, [0, 1], [2, 2]);
  P.pad(x, [1, 0], [0, 2]);
  P.concat([x, y], 1);
  P.gather(x, idx, 1);
  P.scatterAdd(x, idx, 1, 4);
  P.stopGradient(x);
  return { g, nodes: g.nodes.slice(start) };
}

/** Every node the tensors depend on. */
function ancestors(g: Graph, roots: readonly Tensor[]): Set<NodeId> {
  const seen = new Set<NodeId>();
  const stack = roots.map((t) => t.id);
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...operands(g.node(id)));
  }
  return seen;
}

describe('vjpValueReads', () => {
  it('declares every value the needed parts of each VJP rule read', () => {
    const { g, nodes } = sampleNodes();
    let stand = 0;
    let checked = 0;
    const standIn = (shape: readonly number[], dtype: 'f32' | 'i32') => g.input(`stand-in:${stand++}`, shape, dtype);
    for (const node of nodes) {
      const into = operands(node);
      for (let mask = 0; mask < 1 << into.length; mask++) {
        const needs = into.map((_, k) => (mask & (1 << k)) !== 0);
        const args = into.map((o) => standIn(g.node(o).shape, g.node(o).dtype));
        const out = standIn(node.shape, node.dtype);
        const ct = standIn(node.shape, 'f32');
        const parts = vjpRules[node.op]({ node, out, args, g: ct });
        const needed = parts.filter((p, k): p is Tensor => p !== null && needs[k]!);
        const reached = ancestors(g, needed);
        const declared = vjpValueReads(node, needs);
        const label = `${node.op}${'fn' in node ? ` ${node.fn}` : ''} needs [${needs.join(',')}]`;
        args.forEach((a, k) => {
          if (reached.has(a.id)) expect(declared.operands.has(k), `${label}: reads operand ${k}`).toBe(true);
        });
        if (reached.has(out.id)) expect(declared.out, `${label}: reads its output`).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('lets the linear primitives, and mul by a value that needs no cotangent, read nothing that flows', () => {
    const { nodes } = sampleNodes();
    const find = (op: string, fn?: string) => nodes.find((n) => n.op === op && (fn === undefined || ('fn' in n && n.fn === fn)))!;
    expect([...vjpValueReads(find('concat'), [true, true]).operands]).toEqual([]);
    expect([...vjpValueReads(find('binary', 'add'), [true, true]).operands]).toEqual([]);
    // dropout: x * mask, the mask needing no cotangent: only the mask is read
    expect([...vjpValueReads(find('binary', 'mul'), [true, false]).operands]).toEqual([1]);
    expect([...vjpValueReads(find('binary', 'div'), [true, false]).operands]).toEqual([1]);
    expect([...vjpValueReads(find('where'), [false, true, true]).operands]).toEqual([0]);
    expect(vjpValueReads(find('unary', 'exp'), [true]).out).toBe(true);
  });
});
