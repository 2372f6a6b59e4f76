/**
 * Expression emitter: lowers one node's value at a flat element index to kernel IR (kernel-ir.ts),
 * inlining the node's fused operands recursively. Each (node, index) pair is computed once per
 * scope, so a value used twice in a kernel is a shared temporary, not recomputed. Statements and
 * temporaries: statements.ts; index arithmetic (and its exact i32 wide mode): index-arithmetic.ts;
 * dot products: matmul-emit.ts.
 *
 * Values are float32 in the kernel; i32 tensors are carried as floats, exact below 2^24 (checked
 * in compile.ts).
 */
import type { Graph } from '../ir/graph.ts';
import type { Node, NodeId } from '../ir/types.ts';
import { sizeOf } from '../ir/types.ts';
import { stridesOf } from '../ir/host-tensor.ts';
import type { KernelPlan } from '../fuse/plan.ts';
import { isMovableCut } from '../fuse/views.ts';
import { FLOAT32_EXACT_INT } from './kernel-spec.ts';
import { IndexWriter } from './index-arithmetic.ts';
import { binary, call, float, int, isZero, load, neg, paren, printExpr, select, sub, thread, type BinaryOp, type Expr } from './kernel-ir.ts';
import { matmulAt, packedProductAt, type PackedProductRead } from './matmul-emit.ts';

export class KernelWriter extends IndexWriter {
  constructor(
    readonly plan: KernelPlan,
    /** The group root: its own value is computed here, never read from a buffer. */
    readonly root: NodeId,
    /** Parameter name of each materialised buffer this kernel reads. */
    readonly params: ReadonlyMap<NodeId, string>,
    options: {
      /**
       * Set for a 2-D launch `[cols, rows]` over the root's row-major shape: `index` is the variable
       * holding the root's flat index. A matmul read at that index with the root's shape then takes
       * its row from `this.thread.y` (uniform across the four SIMD lanes on webasm, so A is read with
       * scalar loads instead of gathers) and its column from `this.thread.x`.
       */
      readonly grid?: { readonly index: Expr; readonly cols: number };
      /** Exact i32 index arithmetic (index-arithmetic.ts); needed beyond 2^24 elements. */
      readonly wide?: boolean;
      /** Wide mode: index values below this are held in float locals (tests lower it). */
      readonly exactBelow?: number;
      /** A matmul read from its packed product buffer (the epilogue kernel of a packed group). */
      readonly product?: PackedProductRead;
    } = {},
  ) {
    super(options);
    this.product = options.product;
    this.grid = options.grid;
    // 2-D launches put at least 4 cells on x, so thread.y stays below a quarter of the output
    if (sizeOf(plan.graph.node(root).shape) / 4 <= (options.exactBelow ?? FLOAT32_EXACT_INT)) this.markSmall(thread('y'));
  }

  readonly grid?: { readonly index: Expr; readonly cols: number };
  readonly product?: PackedProductRead;

  get graph(): Graph {
    return this.plan.graph;
  }

  /** The value of node `id` at flat index `idx` (a local or an integer literal). */
  value(id: NodeId, idx: Expr): Expr {
    const key = `v:${id}@${printExpr(idx)}`;
    const hit = this.memo.get(key);
    if (hit !== undefined) return hit;
    const n = this.graph.node(id);
    let out: Expr;
    if (this.product?.id === id) {
      out = this.bind(load(this.product.param, packedProductAt(this, n, idx)), 'v');
    } else if (id !== this.root && this.plan.buffers.has(id)) {
      const p = this.params.get(id);
      if (p === undefined) throw new Error(`codegen internal: buffer %${id} is not a parameter of this kernel`);
      out = this.bind(load(p, idx), 'v');
    } else {
      out = this.bind(this.expression(n, idx), 'v');
    }
    this.memo.set(key, out);
    return out;
  }

  /** The node's value read at the flat index of `terms` in its own row-major shape. */
  private at(id: NodeId, terms: readonly Expr[], strides: readonly number[] = stridesOf(this.graph.node(id).shape)): Expr {
    return this.value(id, this.index(this.flat(terms, strides)));
  }

  private expression(n: Node, idx: Expr): Expr {
    const g = this.graph;
    switch (n.op) {
      case 'input':
      case 'random':
      case 'reduce':
      case 'argmax':
      case 'argsort':
      case 'scatterAdd':
        throw new Error(`codegen internal: %${n.id} (${n.op}) must be materialised`);
      case 'const':
        if (n.values.length !== 1) throw new Error(`codegen internal: const %${n.id} with many values must be a buffer`);
        return float(n.values[0]!);
      case 'iota':
        return this.coords(idx, n.shape)[n.axis]!;
      case 'unary': {
        const x = this.value(n.x, idx);
        switch (n.fn) {
          case 'neg':
            return neg(x);
          case 'rsqrt':
            return binary('/', float(1), call('sqrt', x));
          default:
            return call(n.fn, x);
        }
      }
      case 'binary': {
        const a = this.value(n.a, idx);
        const b = this.value(n.b, idx);
        switch (n.fn) {
          case 'add':
            return binary('+', a, b);
          case 'sub':
            return binary('-', a, b);
          case 'mul':
            return binary('*', a, b);
          case 'div':
            return n.dtype === 'i32' ? call('floor', binary('/', a, b)) : binary('/', a, b);
          case 'max':
          case 'min':
            return call(n.fn, a, b);
          case 'mod':
            return sub(a, binary('*', b, call('floor', binary('/', a, b))));
        }
        break;
      }
      case 'compare': {
        const a = this.value(n.a, idx);
        const b = this.value(n.b, idx);
        const op: BinaryOp = { lt: '<' as const, le: '<=' as const, gt: '>' as const, ge: '>=' as const, eq: '===' as const, ne: '!==' as const }[n.fn];
        return paren(select(binary(op, a, b), float(1), float(0)));
      }
      case 'where': {
        const c = this.value(n.cond, idx);
        const a = this.value(n.a, idx);
        const b = this.value(n.b, idx);
        return paren(select(binary('!==', c, float(0)), a, b));
      }
      case 'cast':
        return n.dtype === 'i32' ? call('trunc', this.value(n.x, idx)) : this.value(n.x, idx);
      case 'stopGradient':
      case 'reshape':
        return this.value(n.x, idx);
      case 'broadcast': {
        const x = g.node(n.x);
        const c = this.coords(idx, n.shape);
        const off = n.shape.length - x.shape.length;
        return this.at(n.x, x.shape.map((d, i) => (d === 1 ? int(0) : c[i + off]!)));
      }
      case 'transpose': {
        const xs = stridesOf(g.node(n.x).shape);
        return this.at(n.x, this.coords(idx, n.shape), n.perm.map((p) => xs[p]!));
      }
      case 'slice': {
        const x = g.node(n.x);
        const c = this.coords(idx, n.shape).map((t, d) => {
          if (x.shape[d] === n.shape[d]) return t;
          const begin = isMovableCut(x.shape[d]!) ? this.cut(n.id, d, n.begin[d]!) : int(n.begin[d]!);
          return isZero(begin) ? t : paren(binary('+', t, begin));
        });
        return this.at(n.x, c);
      }
      case 'pad': {
        const x = g.node(n.x);
        const c = this.coords(idx, n.shape);
        const inner = c.map((t, d) => {
          if (x.shape[d] === n.shape[d]) return t;
          const before = isMovableCut(n.shape[d]!) ? this.cut(n.id, d, n.before[d]!) : int(n.before[d]!);
          return isZero(before) ? t : this.bind(sub(t, before), 'c');
        });
        const checks = inner.flatMap((t, d) => (x.shape[d] === n.shape[d] ? [] : [binary('>=', t, int(0)), binary('<', t, int(x.shape[d]!))]));
        // a pad node always widens some axis (primitives.ts), so there is a check
        const ok = this.bind(checks.reduce((a, b) => binary('&&', a, b)), 'ok');
        // Out-of-range positions read element 0 (always valid) and select 0 afterwards.
        const src = this.index(paren(select(ok, this.flat(inner, stridesOf(x.shape)), int(0))));
        return paren(select(ok, this.value(n.x, src), float(0)));
      }
      case 'concat': {
        const c = this.coords(idx, n.shape);
        const pos = c[n.axis]!;
        let base = 0;
        const pieces: Array<[number, Expr]> = [];
        for (const id of n.xs) {
          const len = g.node(id).shape[n.axis]!;
          if (len > 0) {
            const clamped = this.int(this.bind(call('min', call('max', sub(pos, int(base)), int(0)), int(len - 1)), 'c'));
            pieces.push([base + len, this.at(id, c.map((t, d) => (d === n.axis ? clamped : t)))]);
          }
          base += len;
        }
        let e = pieces[pieces.length - 1]![1];
        for (let i = pieces.length - 2; i >= 0; i--) e = paren(select(binary('<', pos, int(pieces[i]![0])), pieces[i]![1], e));
        return e;
      }
      case 'gather': {
        const c = this.coords(idx, n.shape);
        const len = g.node(n.x).shape[n.axis]!;
        // Clamped so a bad index cannot read outside the buffer; the reference throws instead.
        const j = this.int(this.bind(call('min', call('max', this.value(n.index, idx), int(0)), int(len - 1)), 'j'));
        return this.at(n.x, c.map((t, d) => (d === n.axis ? j : t)));
      }
      case 'matmul':
        return matmulAt(this, n, idx);
    }
    // Stryker disable next-line StringLiteral: unreachable, every op returns from the switch above
    throw new Error(`codegen internal: unhandled op in %${(n as Node).id}`);
  }
}

/** KernelWriter index options from a group's index mode: 0 (float indices) or wide below a limit. */
export function indexing(mode: number): { wide: boolean; exactBelow?: number } {
  return mode === 0 ? { wide: false } : { wide: true, exactBelow: mode };
}
