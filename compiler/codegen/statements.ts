/**
 * The statement layer of a kernel: its body as kernel IR (kernel-ir.ts), named temporaries
 * (`bind`, memoised per scope, so a value used twice in a kernel is computed once), scoped blocks
 * and loops, the scalar arguments after the buffers, and the function text they make.
 */
import { local, type Expr, type Kernel, type Stmt } from './kernel-ir.ts';

export class StatementWriter {
  // Stryker disable next-line ArrayDeclaration: printKernel skips an entry that is not a statement
  private readonly body: Stmt[] = [];
  /** The statement list being written: the body, or the inside of the innermost open block. */
  private current: Stmt[] = this.body;
  protected memo = new Map<string, Expr>();
  private counter = 0;
  /** The largest constant loop bound written, for gpu.js's loopMaxIterations. */
  loopMax = 0;
  /** Values of the scalar arguments the source reads (`o0`, `o1`, …, after the buffers), in order. */
  readonly scalars: number[] = [];
  private readonly scalarNames = new Map<string, string>();

  fresh(prefix: string): string {
    return `${prefix}${this.counter++}`;
  }

  stmt(s: Stmt): void {
    this.current.push(s);
  }

  /** `let name = value;` for a fresh name, which it returns. */
  declare(prefix: string, value: Expr): string {
    const name = this.fresh(prefix);
    this.stmt({ kind: 'let', name, value });
    return name;
  }

  /**
   * Binds `expr` to a new local (memoised under `key` when given) and returns it; a local or a
   * literal is returned as it is.
   */
  bind(expr: Expr, prefix = 't', key?: string): Expr {
    // Stryker disable next-line ConditionalExpression: nothing is memoised under an undefined key (see the set below)
    if (key !== undefined) {
      const hit = this.memo.get(key);
      if (hit !== undefined) return hit;
    }
    const atom = expr.kind === 'local' || expr.kind === 'int' || expr.kind === 'float' || (expr.kind === 'paren' && (expr.x.kind === 'int' || expr.x.kind === 'float'));
    const out = atom ? expr : local(this.declare(prefix, expr));
    // Stryker disable next-line ConditionalExpression: an entry under an undefined key is never looked up (see the get above)
    if (key !== undefined) this.memo.set(key, out);
    return out;
  }

  /** The statements `body` writes, in a scope of their own: temporaries made inside stay inside. */
  private scoped(body: () => void): Stmt[] {
    const outer = { current: this.current, memo: this.memo };
    // Stryker disable next-line ArrayDeclaration: printKernel skips an entry that is not a statement
    const inner: Stmt[] = [];
    this.current = inner;
    this.memo = new Map(this.memo);
    body();
    this.current = outer.current;
    this.memo = outer.memo;
    return inner;
  }

  /** `for (let v = from; v < to; v++) { body }`; temporaries made inside stay inside. */
  loop(v: string, from: number, to: number, body: () => void): void {
    this.loopMax = Math.max(this.loopMax, to);
    this.stmt({ kind: 'for', v, from, to, body: this.scoped(body) });
  }

  /** `for (let v = from; v < to; v += step) { body }`, scoped like `loop`. */
  loopBy(v: string, from: number, to: number, step: number, body: () => void): void {
    this.loopMax = Math.max(this.loopMax, to);
    this.stmt({ kind: 'for', v, from, to, step, body: this.scoped(body) });
  }

  /** `if (cond) { then } else { otherwise }`, each branch scoped like `loop`. */
  ifBlock(cond: Expr, then: () => void, otherwise?: () => void): void {
    const thenBody = this.scoped(then);
    this.stmt(otherwise === undefined ? { kind: 'if', cond, then: thenBody } : { kind: 'if', cond, then: thenBody, else: this.scoped(otherwise) });
  }

  /** The scalar argument named by `key`, added with `value` on first use; returns it and whether it is new. */
  protected scalar(key: string, value: number): { arg: Expr; added: boolean } {
    const known = this.scalarNames.get(key);
    // Stryker disable next-line BooleanLiteral: only IndexWriter.cut reads added, to mark a cut small, which no index path asks
    if (known !== undefined) return { arg: local(known), added: false };
    const name = `o${this.scalars.length}`;
    this.scalars.push(value);
    this.scalarNames.set(key, name);
    // Stryker disable next-line BooleanLiteral: only IndexWriter.cut reads added, to mark a cut small, which no index path asks
    return { arg: local(name), added: true };
  }

  /** The kernel function text: `function (b0, b3, o0) { ...; return v; }`, buffers then scalars. */
  finish(paramNames: readonly string[], result: Expr): Kernel {
    return { params: [...paramNames, ...this.scalars.map((_, i) => `o${i}`)], body: this.body, result };
  }
}
