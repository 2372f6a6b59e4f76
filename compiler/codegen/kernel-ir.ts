/**
 * The kernel IR: what a generated kernel is before it is text. Expressions (literals, locals,
 * thread coordinates, buffer loads, arithmetic, Math calls, selects) and statements (bindings,
 * updates, loops, branches) as discriminated unions; `printKernel` renders a kernel as gpu.js
 * source, the one place where kernel text is made.
 *
 * The printer parenthesises by JavaScript precedence, so every tree prints as the value it
 * describes; `paren` adds parentheses the precedence does not need, where the writers keep them
 * for readability (a whole flat index, a select).
 */

export type BinaryOp = '+' | '-' | '*' | '/' | '%' | '|' | '<' | '<=' | '>' | '>=' | '===' | '!==' | '&&' | '||';
export type MathFn = 'floor' | 'trunc' | 'min' | 'max' | 'exp' | 'log' | 'sqrt' | 'tanh';

export type Expr =
  /** An integer literal: gpu.js types it Integer, and indices are built from these. */
  | { readonly kind: 'int'; readonly value: number }
  /** A float literal (always printed with a `.` or an exponent, so gpu.js types it Float). */
  | { readonly kind: 'float'; readonly value: number }
  /** A local, a loop counter or a scalar argument. */
  | { readonly kind: 'local'; readonly name: string }
  | { readonly kind: 'thread'; readonly axis: 'x' | 'y' | 'z' }
  | { readonly kind: 'load'; readonly buffer: string; readonly index: Expr }
  | { readonly kind: 'binary'; readonly op: BinaryOp; readonly a: Expr; readonly b: Expr }
  | { readonly kind: 'neg'; readonly x: Expr }
  | { readonly kind: 'call'; readonly fn: MathFn; readonly args: readonly Expr[] }
  | { readonly kind: 'select'; readonly cond: Expr; readonly then: Expr; readonly else: Expr }
  | { readonly kind: 'paren'; readonly x: Expr };

export type Stmt =
  | { readonly kind: 'let'; readonly name: string; readonly value: Expr }
  | { readonly kind: 'assign'; readonly name: string; readonly op: '=' | '+='; readonly value: Expr }
  /** `for (let v = from; v < to; v++)`, or `v += step` when a step is given. */
  | { readonly kind: 'for'; readonly v: string; readonly from: number; readonly to: number; readonly step?: number; readonly body: readonly Stmt[] }
  | { readonly kind: 'if'; readonly cond: Expr; readonly then: readonly Stmt[]; readonly else?: readonly Stmt[] }
  | { readonly kind: 'break' };

export interface Kernel {
  readonly params: readonly string[];
  readonly body: readonly Stmt[];
  readonly result: Expr;
}

export const int = (value: number): Expr => ({ kind: 'int', value });
export const float = (value: number): Expr => ({ kind: 'float', value });
export const local = (name: string): Expr => ({ kind: 'local', name });
export const thread = (axis: 'x' | 'y' | 'z'): Expr => ({ kind: 'thread', axis });
export const load = (buffer: string, index: Expr): Expr => ({ kind: 'load', buffer, index });
export const binary = (op: BinaryOp, a: Expr, b: Expr): Expr => ({ kind: 'binary', op, a, b });
export const add = (a: Expr, b: Expr): Expr => binary('+', a, b);
export const sub = (a: Expr, b: Expr): Expr => binary('-', a, b);
export const mul = (a: Expr, b: Expr): Expr => binary('*', a, b);
export const neg = (x: Expr): Expr => ({ kind: 'neg', x });
export const call = (fn: MathFn, ...args: Expr[]): Expr => ({ kind: 'call', fn, args });
export const select = (cond: Expr, then: Expr, otherwise: Expr): Expr => ({ kind: 'select', cond, then, else: otherwise });
export const paren = (x: Expr): Expr => ({ kind: 'paren', x });
/** `Σ terms` as one left-to-right sum, or 0. */
export const sum = (terms: readonly Expr[]): Expr => (terms.length === 0 ? int(0) : terms.reduce((a, b) => add(a, b)));
/** `(x | 0)`: truncation to i32, which gpu.js keeps in integer arithmetic. */
export const toI32 = (x: Expr): Expr => paren(binary('|', x, int(0)));

export const isInt = (e: Expr, value?: number): boolean =>
  (e.kind === 'int' && (value === undefined || e.value === value)) || (e.kind === 'paren' && isInt(e.x, value));
export const isZero = (e: Expr): boolean => isInt(e, 0);

/** A float literal the gpu.js parser types as Float (always has a `.` or an exponent). */
export function floatLiteral(v: number): string {
  if (Number.isNaN(v)) throw new Error('codegen: NaN constants are not supported in kernels');
  // Beyond float32 range: rounds to ±Infinity in the kernel, as the constant would in float32.
  // Stryker disable next-line EqualityOperator: v is ±Infinity here, so v >= 0 is v > 0
  if (!Number.isFinite(v)) return v > 0 ? '1e39' : '(-1e39)';
  let s = String(Math.abs(v));
  if (Number.isInteger(Math.abs(v)) && !s.includes('e')) s += '.0';
  return v < 0 || Object.is(v, -0) ? `(-${s})` : s;
}

const PRECEDENCE: Record<BinaryOp, number> = {
  '||': 3,
  '&&': 4,
  '|': 5,
  '===': 8,
  '!==': 8,
  '<': 9,
  '<=': 9,
  '>': 9,
  '>=': 9,
  '+': 11,
  '-': 11,
  '*': 12,
  '/': 12,
  '%': 12,
};
const SELECT = 2;
const UNARY = 14;
const ATOM = 17;

function precedence(e: Expr): number {
  switch (e.kind) {
    case 'binary':
      return PRECEDENCE[e.op];
    case 'select':
      return SELECT;
    case 'neg':
      return UNARY;
    case 'int':
      return e.value < 0 ? UNARY : ATOM;
    default:
      return ATOM;
  }
}

/** `e`, parenthesised when its precedence is below `min`. */
function operand(e: Expr, min: number): string {
  const text = printExpr(e);
  return precedence(e) < min ? `(${text})` : text;
}

export function printExpr(e: Expr): string {
  switch (e.kind) {
    case 'int':
      return String(e.value);
    case 'float':
      return floatLiteral(e.value);
    case 'local':
      return e.name;
    case 'thread':
      return `this.thread.${e.axis}`;
    case 'load':
      return `${e.buffer}[${printExpr(e.index)}]`;
    case 'binary': {
      const p = PRECEDENCE[e.op];
      // left-associative: a right operand of the same precedence needs parentheses
      return `${operand(e.a, p)} ${e.op} ${operand(e.b, p + 1)}`;
    }
    case 'neg':
      // a negated negation is parenthesised: `--x` would be a decrement
      return `-${operand(e.x, UNARY + 1)}`;
    case 'call':
      return `Math.${e.fn}(${e.args.map(printExpr).join(', ')})`;
    case 'select':
      return `${operand(e.cond, SELECT + 1)} ? ${operand(e.then, SELECT)} : ${operand(e.else, SELECT)}`;
    case 'paren':
      return `(${printExpr(e.x)})`;
  }
}

function printStmts(stmts: readonly Stmt[], depth: number, out: string[]): void {
  const pad = '  '.repeat(depth);
  for (const s of stmts) {
    switch (s.kind) {
      case 'let':
        out.push(`${pad}let ${s.name} = ${printExpr(s.value)};`);
        break;
      case 'assign':
        out.push(`${pad}${s.name} ${s.op} ${printExpr(s.value)};`);
        break;
      case 'for': {
        const step = s.step === undefined ? `${s.v}++` : `${s.v} += ${s.step}`;
        out.push(`${pad}for (let ${s.v} = ${s.from}; ${s.v} < ${s.to}; ${step}) {`);
        printStmts(s.body, depth + 1, out);
        out.push(`${pad}}`);
        break;
      }
      case 'if': {
        out.push(`${pad}if (${printExpr(s.cond)}) {`);
        let branch: Stmt & { kind: 'if' } = s;
        for (;;) {
          printStmts(branch.then, depth + 1, out);
          const next: readonly Stmt[] | undefined = branch.else;
          if (next === undefined) break;
          const only: Stmt | undefined = next.length === 1 ? next[0] : undefined;
          if (only?.kind === 'if') {
            out.push(`${pad}} else if (${printExpr(only.cond)}) {`);
            branch = only;
          } else {
            out.push(`${pad}} else {`);
            printStmts(next, depth + 1, out);
            break;
          }
        }
        out.push(`${pad}}`);
        break;
      }
      case 'break':
        out.push(`${pad}break;`);
        break;
    }
  }
}

/** Statements as kernel text, one per line, indented by `depth` levels (for hand-written templates). */
export function printStatements(stmts: readonly Stmt[], depth: number): string[] {
  const lines: string[] = [];
  printStmts(stmts, depth, lines);
  return lines;
}

/** The gpu.js kernel source: `function (b0, b1, o0) { ...; return v; }`. */
export function printKernel(k: Kernel): string {
  const lines: string[] = [];
  printStmts(k.body, 1, lines);
  return [`function (${k.params.join(', ')}) {`, ...lines, `  return ${printExpr(k.result)};`, '}'].join('\n');
}
