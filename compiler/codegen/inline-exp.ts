/**
 * A kernel-IR transformation for webasm: every `Math.exp(x)` becomes arithmetic the kernel does
 * itself. gpu.js's webasm backend compiles Math.exp to a call into JavaScript, once per SIMD lane,
 * which made the exponentials of softmax and its gradients a large share of attention's time
 * (docs/benchmarks.md); the same value in f32x4 arithmetic is a few dozen vector operations.
 *
 * exp(x) = 2^n · 2^f with n = x·log2 e rounded and f = (x − n·ln 2)·log2 e ∈ [−½, ½]: the
 * reduction subtracts n·ln 2 in two parts (the first exact in float32 for |n| < 2^9), 2^f is its
 * Taylor polynomial of degree 6 (truncation error below 1.2e-7 relative on [−½, ½]), and 2^n is
 * built from its binary digits with selects (a kernel cannot write a float's exponent bits). x is
 * clamped to [−87.3, 88], where 2^n stays a normal float32: below, the result is about 1.2e-38
 * instead of a subnormal or 0; above, exp(88) ≈ 1.7e38 instead of up to 3.4e38 or Infinity. NaN
 * stays NaN.
 */
import { binary, call, float, local, select, sub, type Expr, type Kernel, type Stmt } from './kernel-ir.ts';

const LOG2E = 1.4426950408889634;
/** ln 2 = LN2_HI + LN2_LO, LN2_HI with 9 trailing zero bits (exact products with n up to 2^9). */
const LN2_HI = 0.693145751953125;
const LN2_LO = 1.428606765330187e-6;
/** (ln 2)^i / i!: 2^f's Taylor coefficients, lowest order first. */
const POW2_FRACTION = [1, 0.6931471805599453, 0.2402265069591007, 0.05550410866482158, 0.009618129107628477, 0.0013333558146428443, 0.00015403530393381609];
const X_MIN = -87.33654;
const X_MAX = 88;

/**
 * The statements computing exp(x), appended to `out` (locals named `<tag>…`), and the local that
 * holds the result.
 */
export function expStatements(x: Expr, tag: string, out: Stmt[]): Expr {
  const name = (s: string) => `${tag}${s}`;
  const put = (s: string, value: Expr): Expr => {
    out.push({ kind: 'let', name: name(s), value });
    return local(name(s));
  };
  const set = (s: string, value: Expr) => out.push({ kind: 'assign', name: name(s), op: '=', value });
  // Stryker disable next-line StringLiteral: a local's suffix need only differ from its siblings', which an empty one still does
  const xc = put('x', call('min', call('max', x, float(X_MIN)), float(X_MAX)));
  // Stryker disable next-line StringLiteral: as above
  const n = put('n', call('floor', binary('+', binary('*', xc, float(LOG2E)), float(0.5))));
  // Stryker disable next-line StringLiteral: as above
  const f = put('f', binary('*', sub(sub(xc, binary('*', n, float(LN2_HI))), binary('*', n, float(LN2_LO))), float(LOG2E)));
  const p = put(
    // Stryker disable next-line StringLiteral: as above
    'p',
    POW2_FRACTION.slice(0, -1).reduceRight<Expr>((acc, c) => binary('+', float(c), binary('*', f, acc)), float(POW2_FRACTION[POW2_FRACTION.length - 1]!)),
  );
  const negative = binary('<', n, float(0));
  const a = put('a', select(negative, sub(float(0), n), n));
  const s = put('s', float(1));
  for (const bit of [64, 32, 16, 8, 4, 2, 1]) {
    const has = binary('>=', a, float(bit));
    set('s', select(has, binary('*', s, float(2 ** bit)), s));
    set('a', select(has, sub(a, float(bit)), a));
  }
  // Stryker disable next-line StringLiteral: as above
  return put('e', select(negative, binary('/', p, s), binary('*', p, s)));
}

/** The kernel with every exp call replaced by inline arithmetic (locals named `xp<i>_…`). */
export function inlineExp(k: Kernel): Kernel {
  let count = 0;
  const expand = (x: Expr, out: Stmt[]): Expr => expStatements(x, `xp${count++}_`, out);
  const expr = (e: Expr, out: Stmt[]): Expr => {
    switch (e.kind) {
      case 'load':
        return { ...e, index: expr(e.index, out) };
      case 'binary':
        return { ...e, a: expr(e.a, out), b: expr(e.b, out) };
      case 'neg':
      case 'paren':
        return { ...e, x: expr(e.x, out) };
      case 'select':
        return { ...e, cond: expr(e.cond, out), then: expr(e.then, out), else: expr(e.else, out) };
      case 'call': {
        const args = e.args.map((x) => expr(x, out));
        return e.fn === 'exp' ? expand(args[0]!, out) : { ...e, args };
      }
      default:
        return e;
    }
  };
  const stmts = (list: readonly Stmt[]): Stmt[] => {
    // Stryker disable next-line ArrayDeclaration: printKernel skips an entry that is not a statement
    const out: Stmt[] = [];
    for (const st of list) {
      switch (st.kind) {
        case 'let':
        case 'assign':
          out.push({ ...st, value: expr(st.value, out) });
          break;
        case 'for':
          out.push({ ...st, body: stmts(st.body) });
          break;
        case 'if': {
          const cond = expr(st.cond, out);
          out.push({ ...st, cond, then: stmts(st.then), ...(st.else === undefined ? {} : { else: stmts(st.else) }) });
          break;
        }
        case 'break':
          out.push(st);
          break;
      }
    }
    return out;
  };
  const body = stmts(k.body);
  const result = expr(k.result, body);
  return { params: k.params, body, result };
}
