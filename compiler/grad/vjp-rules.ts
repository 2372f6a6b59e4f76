/**
 * One vector-Jacobian product rule per primitive, in one table. A rule receives the node, the
 * cotangent of its output and handles on its operands and output, and returns one cotangent per
 * operand (null where no gradient flows). Rules emit ordinary primitives, so the backward pass is
 * itself IR and can be evaluated, printed, fused and compiled like any forward graph.
 */
import type { Tensor } from '../ir/graph.ts';
import * as P from '../ir/primitives.ts';
import type { Node, OpName } from '../ir/types.ts';
import { operands } from '../ir/types.ts';

export interface VjpContext {
  /** The node being differentiated. */
  readonly node: Node;
  /** Its output value. */
  readonly out: Tensor;
  /** Its operand values, in `operands()` order. */
  readonly args: readonly Tensor[];
  /** Cotangent of the output. */
  readonly g: Tensor;
}

type Rule = (c: VjpContext) => ReadonlyArray<Tensor | null>;

const scalar = (t: Tensor, v: number) => P.constant(t.graph, v);

/** Sum `g` down to `shape`, undoing a broadcast. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  let t = g;
  const lead = t.rank - shape.length;
  // Stryker disable next-line EqualityOperator: at d = rank the target is undefined, so `<=` adds a pass that does nothing
  for (let d = 0; d < t.rank; d++) {
    const target = d < lead ? 1 : shape[d - lead]!;
    if (target === 1 && t.shape[d] !== 1) t = P.reduce('sum', t, d);
  }
  return P.reshape(t, shape);
}

function inversePerm(perm: readonly number[]): number[] {
  // Stryker disable next-line ArrayDeclaration: every index is assigned below, so the preallocated length changes nothing
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

function swapLast(t: Tensor): Tensor {
  const perm = t.shape.map((_, i) => i);
  const r = t.rank;
  [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
  return P.transpose(t, perm);
}

const noGradient: Rule = (c) => c.args.map(() => null);

/** Values a VJP rule reads: operands by index, and the node's own output. */
export interface VjpReads {
  readonly operands: ReadonlySet<number>;
  readonly out: boolean;
}

const reads = (operandIndices: readonly number[], out = false): VjpReads => ({ operands: new Set(operandIndices), out });
const readsWhen = (...pairs: ReadonlyArray<readonly [boolean, number]>): VjpReads => reads(pairs.filter(([need]) => need).map(([, k]) => k));

/**
 * The values read by the parts of `node`'s VJP that matter, given which operands need a cotangent
 * (`needs`, in `operands()` order). Rules may also build parts for operands that need none; those
 * nodes are dead and read nothing at run time. Kept beside the rules it describes: the reverse walk
 * relies on it to differentiate a node before values it does not read exist (grad.ts).
 */
export function vjpValueReads(node: Node, needs: readonly boolean[]): VjpReads {
  // Stryker disable next-line BooleanLiteral: a default stands only for an operand the node lacks, and no case with fewer operands reads a or b
  const [a = false, b = false] = needs;
  switch (node.op) {
    case 'reshape':
    case 'broadcast':
    case 'transpose':
    case 'slice':
    case 'pad':
    case 'concat':
    case 'input':
    case 'const':
    case 'iota':
    case 'compare':
    case 'argmax':
    case 'argsort':
    case 'random':
    case 'stopGradient':
    case 'cast':
      return reads([]);
    case 'binary':
      if (node.fn === 'add' || node.fn === 'sub') return reads([]);
      if (node.fn === 'mul') return readsWhen([a, 1], [b, 0]);
      if (node.fn === 'div') return readsWhen([a || b, 1], [b, 0]);
      return reads([0, 1]);
    case 'matmul':
      return readsWhen([a, 1], [b, 0]);
    case 'where':
      return reads([0]);
    case 'reduce':
      return node.fn === 'sum' ? reads([]) : reads([0], true);
    case 'gather':
    case 'scatterAdd':
      return reads([1]);
    default:
      return reads(operands(node).map((_, k) => k), true);
  }
}

export const vjpRules: Record<OpName, Rule> = {
  input: () => [],
  const: () => [],
  iota: () => [],
  compare: noGradient,
  argmax: noGradient,
  argsort: noGradient,
  random: noGradient,
  stopGradient: noGradient,
  cast: noGradient,

  unary: ({ node, out, args: [x], g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'unary') throw new Error('unreachable');
    switch (node.fn) {
      case 'neg':
        return [P.unary('neg', g)];
      case 'exp':
        return [P.binary('mul', g, out)];
      case 'log':
        return [P.binary('div', g, x!)];
      case 'sqrt':
        // d sqrt(x) = 1 / (2 sqrt(x))
        return [P.binary('div', P.binary('mul', g, scalar(g, 0.5)), out)];
      case 'rsqrt':
        // d x^-1/2 = -1/2 x^-3/2 = -1/2 · y / x
        return [P.binary('mul', P.binary('mul', g, scalar(g, -0.5)), P.binary('div', out, x!))];
      case 'tanh':
        return [P.binary('mul', g, P.binary('sub', scalar(g, 1), P.binary('mul', out, out)))];
    }
  },

  binary: ({ node, args: [a, b], g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'binary') throw new Error('unreachable');
    switch (node.fn) {
      case 'add':
        return [g, g];
      case 'sub':
        return [g, P.unary('neg', g)];
      case 'mul':
        return [P.binary('mul', g, b!), P.binary('mul', g, a!)];
      case 'div': {
        const ga = P.binary('div', g, b!);
        return [ga, P.unary('neg', P.binary('mul', ga, P.binary('div', a!, b!)))];
      }
      case 'max':
      case 'min': {
        // Ties send the whole cotangent to `a`, so the two parts always sum to g.
        const pickA = P.compare(node.fn === 'max' ? 'ge' : 'le', a!, b!);
        const zero = scalar(g, 0);
        return [P.where(pickA, g, zero), P.where(pickA, zero, g)];
      }
      // Stryker disable next-line all: mod is i32-only and i32 values carry no gradient, so this case never runs
      case 'mod':
        // Stryker disable next-line all: see above
        return [null, null];
    }
  },

  where: ({ args: [cond, , ], g }) => {
    const zero = scalar(g, 0);
    return [null, P.where(cond!, g, zero), P.where(cond!, zero, g)];
  },

  matmul: ({ args: [a, b], g }) => [P.matmul(g, swapLast(b!)), P.matmul(swapLast(a!), g)],

  reduce: ({ node, out, args: [x], g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'reduce') throw new Error('unreachable');
    const gb = P.broadcastTo(g, x!.shape);
    if (node.fn === 'sum') return [gb];
    // Max: split the cotangent evenly among the elements that attain the maximum.
    const hit = P.cast(P.compare('eq', x!, P.broadcastTo(out, x!.shape)), 'f32');
    const count = P.reduce('sum', hit, node.axis);
    return [P.binary('mul', gb, P.binary('div', hit, P.broadcastTo(count, x!.shape)))];
  },

  broadcast: ({ args: [x], g }) => [sumToShape(g, x!.shape)],
  reshape: ({ args: [x], g }) => [P.reshape(g, x!.shape)],
  transpose: ({ node, g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'transpose') throw new Error('unreachable');
    return [P.transpose(g, inversePerm(node.perm))];
  },
  slice: ({ node, args: [x], g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'slice') throw new Error('unreachable');
    const after = x!.shape.map((d, i) => d - node.begin[i]! - node.shape[i]!);
    return [P.pad(g, node.begin, after)];
  },
  pad: ({ node, args: [x], g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'pad') throw new Error('unreachable');
    return [P.slice(g, node.before, x!.shape)];
  },
  concat: ({ node, args, g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'concat') throw new Error('unreachable');
    let offset = 0;
    return args.map((x) => {
      const begin = x.shape.map((_, i) => (i === node.axis ? offset : 0));
      offset += x.shape[node.axis]!;
      return P.slice(g, begin, x.shape);
    });
  },
  gather: ({ node, args: [x, index], g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'gather') throw new Error('unreachable');
    return [P.scatterAdd(g, index!, node.axis, x!.shape[node.axis]!), null];
  },
  scatterAdd: ({ node, args: [, index], g }) => {
    // Stryker disable next-line ConditionalExpression,StringLiteral: a type guard for TypeScript; rules are looked up by op, so it never throws
    if (node.op !== 'scatterAdd') throw new Error('unreachable');
    return [P.gather(g, index!, node.axis), null];
  },
};
