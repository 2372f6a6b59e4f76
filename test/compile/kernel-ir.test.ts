/**
 * The kernel IR printer: every expression tree prints as JavaScript that evaluates to the tree's
 * value (precedence and associativity decide the parentheses), float literals always type as
 * Float in gpu.js, and statements print as the kernel dialect (else-if chains, breaks, loops).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  add,
  binary,
  call,
  float,
  floatLiteral,
  int,
  local,
  mul,
  neg,
  paren,
  printExpr,
  printKernel,
  select,
  sub,
  type BinaryOp,
  type Expr,
} from '../../compiler/codegen/kernel-ir.ts';

const OPS: readonly BinaryOp[] = ['+', '-', '*', '/', '%', '|', '<', '<=', '>', '>=', '===', '!==', '&&', '||'];

/** The tree's value by JavaScript's own operators, applied node by node. */
function valueOf(e: Expr, env: Readonly<Record<string, number>>): unknown {
  const v = (x: Expr) => valueOf(x, env) as number;
  switch (e.kind) {
    case 'int':
    case 'float':
      return e.value;
    case 'local':
      return env[e.name];
    case 'neg':
      return -v(e.x);
    case 'paren':
      return valueOf(e.x, env);
    case 'select':
      return valueOf(e.cond, env) ? valueOf(e.then, env) : valueOf(e.else, env);
    case 'call':
      return (Math[e.fn] as (...a: number[]) => number)(...e.args.map(v));
    case 'binary': {
      const [a, b] = [v(e.a), v(e.b)];
      const ops: Record<BinaryOp, (x: number, y: number) => unknown> = {
        '+': (x, y) => x + y,
        '-': (x, y) => x - y,
        '*': (x, y) => x * y,
        '/': (x, y) => x / y,
        '%': (x, y) => x % y,
        '|': (x, y) => x | y,
        '<': (x, y) => x < y,
        '<=': (x, y) => x <= y,
        '>': (x, y) => x > y,
        '>=': (x, y) => x >= y,
        '===': (x, y) => x === y,
        '!==': (x, y) => x !== y,
        '&&': (x, y) => x && y,
        '||': (x, y) => x || y,
      };
      return ops[e.op](a, b);
    }
    default:
      throw new Error(`no value for ${e.kind}`);
  }
}

const leaf: fc.Arbitrary<Expr> = fc.oneof(
  fc.integer({ min: 0, max: 9 }).map(int),
  fc.constantFrom(0.5, -2, 3).map(float),
  fc.constantFrom('a', 'b', 'c').map(local),
);
const tree: fc.Arbitrary<Expr> = fc.letrec<{ e: Expr }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.tuple(fc.constantFrom(...OPS), tie('e'), tie('e')).map(([op, a, b]) => binary(op, a, b)),
    tie('e').map(neg),
    tie('e').map(paren),
    fc.tuple(tie('e'), tie('e'), tie('e')).map(([c, a, b]) => select(c, a, b)),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => call('max', a, b)),
  ),
})).e;

describe('kernel IR printer', () => {
  it('prints every expression as JavaScript with the value of the tree', () => {
    const env = { a: 2, b: -3, c: 7 };
    fc.assert(
      fc.property(tree, (e) => {
        const printed = printExpr(e);
        const got: unknown = new Function('a', 'b', 'c', `return ${printed};`)(env.a, env.b, env.c);
        expect(Object.is(got, valueOf(e, env)), `${printed}`).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('parenthesises only where precedence or associativity needs it', () => {
    const [a, b, c] = [local('a'), local('b'), local('c')];
    expect(printExpr(mul(add(a, b), c))).toBe('(a + b) * c');
    expect(printExpr(add(add(a, b), c))).toBe('a + b + c');
    expect(printExpr(sub(a, sub(b, c)))).toBe('a - (b - c)');
    expect(printExpr(add(mul(a, b), mul(b, c)))).toBe('a * b + b * c');
    expect(printExpr(neg(add(a, b)))).toBe('-(a + b)');
    expect(printExpr(add(select(a, b, c), a))).toBe('(a ? b : c) + a');
    expect(printExpr(paren(select(binary('<', a, int(4)), b, c)))).toBe('(a < 4 ? b : c)');
    expect(printExpr(binary('/', paren(add(a, b)), int(2)))).toBe('(a + b) / 2');
  });

  it('writes float literals that gpu.js types as Float, negatives parenthesised', () => {
    expect([1, 0, 0.5, -2, -0, 1e21, 1e-9, Infinity, -Infinity].map(floatLiteral)).toEqual([
      '1.0',
      '0.0',
      '0.5',
      '(-2.0)',
      '(-0.0)',
      '1e+21',
      '1e-9',
      '1e39',
      '(-1e39)',
    ]);
    expect(() => floatLiteral(NaN)).toThrow(/NaN constants are not supported/);
  });

  it('prints statements in the kernel dialect: loops, else-if chains, breaks, scalars after buffers', () => {
    const text = printKernel({
      params: ['b0', 'o0'],
      body: [
        { kind: 'let', name: 'acc', value: float(0) },
        {
          kind: 'for',
          v: 'p',
          from: 0,
          to: 8,
          step: 4,
          body: [
            { kind: 'if', cond: binary('>=', local('p'), local('o0')), then: [{ kind: 'break' }] },
            { kind: 'assign', name: 'acc', op: '+=', value: local('p') },
          ],
        },
        {
          kind: 'if',
          cond: binary('<', local('acc'), int(1)),
          then: [{ kind: 'assign', name: 'acc', op: '=', value: int(1) }],
          else: [
            {
              kind: 'if',
              cond: binary('>', local('acc'), int(9)),
              then: [{ kind: 'assign', name: 'acc', op: '=', value: int(9) }],
              else: [{ kind: 'for', v: 'q', from: 1, to: 3, body: [] }],
            },
          ],
        },
      ],
      result: local('acc'),
    });
    expect(text).toBe(
      [
        'function (b0, o0) {',
        '  let acc = 0.0;',
        '  for (let p = 0; p < 8; p += 4) {',
        '    if (p >= o0) {',
        '      break;',
        '    }',
        '    acc += p;',
        '  }',
        '  if (acc < 1) {',
        '    acc = 1;',
        '  } else if (acc > 9) {',
        '    acc = 9;',
        '  } else {',
        '    for (let q = 1; q < 3; q++) {',
        '    }',
        '  }',
        '  return acc;',
        '}',
      ].join('\n'),
    );
  });
});
