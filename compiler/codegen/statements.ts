/**
 * The statement layer of a kernel: its body, named temporaries (`bind`, memoised per scope, so a
 * value used twice in a kernel is computed once), scoped blocks and loops, the scalar arguments
 * after the buffers, and the function text they make.
 */

export class StatementWriter {
  private readonly lines: string[] = [];
  protected memo = new Map<string, string>();
  private counter = 0;
  private depth = 1;
  /** The largest constant loop bound written, for gpu.js's loopMaxIterations. */
  loopMax = 0;
  /** Values of the scalar arguments the source reads (`o0`, `o1`, …, after the buffers), in order. */
  readonly scalars: number[] = [];
  private readonly scalarNames = new Map<string, string>();

  fresh(prefix: string): string {
    return `${prefix}${this.counter++}`;
  }

  stmt(line: string): void {
    this.lines.push('  '.repeat(this.depth) + line);
  }

  /** Binds `expr` to a new variable (memoised under `key` when given) and returns its name. */
  bind(expr: string, prefix = 't', key?: string): string {
    if (key !== undefined) {
      const hit = this.memo.get(key);
      if (hit !== undefined) return hit;
    }
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(expr) || /^\(?-?[0-9.e]+\)?$/.test(expr)) {
      if (key !== undefined) this.memo.set(key, expr);
      return expr;
    }
    const name = this.fresh(prefix);
    this.stmt(`let ${name} = ${expr};`);
    if (key !== undefined) this.memo.set(key, name);
    return name;
  }

  /** `head { body }`; temporaries made inside stay inside. */
  private block(head: string, body: () => void): void {
    this.stmt(`${head} {`);
    const saved = new Map(this.memo);
    this.depth++;
    body();
    this.depth--;
    this.memo = saved;
    this.stmt('}');
  }

  /** `for (let v = from; v < to; v++) { body }`; temporaries made inside stay inside. */
  loop(v: string, from: number, to: number, body: () => void): void {
    this.loopMax = Math.max(this.loopMax, to);
    this.block(`for (let ${v} = ${from}; ${v} < ${to}; ${v}++)`, body);
  }

  /** `if (cond) { body }`; temporaries made inside stay inside. */
  ifBlock(cond: string, body: () => void): void {
    this.block(`if (${cond})`, body);
  }

  /** `for (let v = from; v < to; v += step) { body }`, scoped like `loop`. */
  loopBy(v: string, from: number, to: number, step: number, body: () => void): void {
    this.loopMax = Math.max(this.loopMax, to);
    this.block(`for (let ${v} = ${from}; ${v} < ${to}; ${v} += ${step})`, body);
  }

  /** The scalar argument named by `key`, added with `value` on first use; returns its name and whether it is new. */
  protected scalar(key: string, value: number): { name: string; added: boolean } {
    const known = this.scalarNames.get(key);
    if (known !== undefined) return { name: known, added: false };
    const name = `o${this.scalars.length}`;
    this.scalars.push(value);
    this.scalarNames.set(key, name);
    return { name, added: true };
  }

  /** The kernel function text: `function (b0, b3, o0) { ...; return v; }`, buffers then scalars. */
  finish(paramNames: readonly string[], result: string): string {
    const names = [...paramNames, ...this.scalars.map((_, i) => `o${i}`)];
    return [`function (${names.join(', ')}) {`, ...this.lines, `  return ${result};`, '}'].join('\n');
  }
}
