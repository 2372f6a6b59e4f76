/**
 * Row-wise templates over x [rows, cols] (row-major, flat): LayerNorm forward and
 * softmax / logsumexp, two kernels each.
 *
 * Kernel 1 (stats) has one thread per row (lanes = four rows, so its reads are gathers, but it
 * touches each element only two or three times); it returns `Array(2)`:
 *   LayerNorm: [mean, 1/sqrt(var + eps)]   (two passes over the row: mean, then centred
 *              variance — no E[x²]−E[x]² cancellation)
 *   softmax:   [max, Σ exp(x − max)]
 * Kernel 2 (apply) has one thread per element (lanes = four adjacent columns) and reads the
 * row's stats as uniform values. logsumexp needs kernel 1 only: max + log(sum).
 */
import type { GPU } from 'gpu.js';
import { expStatements } from '../../compiler/codegen/inline-exp.ts';
import { local, printExpr, printStatements, type Stmt } from '../../compiler/codegen/kernel-ir.ts';
import { buildKernel, float, int, type KernelSource } from './kernel-source.ts';

export interface RowsOptions {
  rows: number;
  cols: number;
}

function check(o: RowsOptions, what: string): void {
  for (const key of ['rows', 'cols'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new RangeError(`${what} template: ${key} must be a positive integer, got ${o[key]}`);
  }
  if (o.rows * o.cols >= 2 ** 31 - 4) throw new RangeError(`${what} template: ${o.rows}×${o.cols} exceeds the i32 index range`);
}

/**
 * Kernel text computing exp(v) into a fresh local `out` without Math.exp (on webasm a call into
 * JavaScript per lane): the compiler's own lowering (compiler/codegen/inline-exp.ts).
 */
function expText(v: string, out: string, indent: string): string {
  const body: Stmt[] = [];
  const result = expStatements(local(v), `${out}_`, body);
  return [...printStatements(body, 0), `let ${out} = ${printExpr(result)};`].join(`\n${indent}`);
}

/** LayerNorm stats kernel: (x) → [rows][2] = [mean, rstd]. */
export function layerNormStatsSource(o: RowsOptions & { eps: number }): KernelSource {
  check(o, 'layerNorm');
  const row = `this.thread.x * ${int(o.cols)}`;
  const source = `function(x) {
  let s = 0.0;
  for (let c = 0; c < ${int(o.cols)}; c++) {
    s += x[${row} + c];
  }
  const mean = s / ${float(o.cols)};
  let v = 0.0;
  for (let c = 0; c < ${int(o.cols)}; c++) {
    const d = x[${row} + c] - mean;
    v += d * d;
  }
  return [mean, 1.0 / Math.sqrt(v / ${float(o.cols)} + ${float(o.eps)})];
}`;
  return { source, output: [o.rows], components: 2, loopMaxIterations: o.cols };
}

/** LayerNorm apply kernel: (x, stats, gamma, beta) → y [rows][cols]. */
export function layerNormApplySource(o: RowsOptions): KernelSource {
  check(o, 'layerNorm');
  const source = `function(x, stats, gamma, beta) {
  const mean = stats[this.thread.y * 2];
  const rstd = stats[this.thread.y * 2 + 1];
  return (x[this.thread.y * ${int(o.cols)} + this.thread.x] - mean) * rstd * gamma[this.thread.x] + beta[this.thread.x];
}`;
  return { source, output: [o.cols, o.rows], components: 1, loopMaxIterations: 1 };
}

/** Softmax stats kernel: (x) → [rows][2] = [max, Σ exp(x − max)]. */
export function softmaxStatsSource(o: RowsOptions): KernelSource {
  check(o, 'softmax');
  const row = `this.thread.x * ${int(o.cols)}`;
  const source = `function(x) {
  let mx = x[${row}];
  for (let c = 1; c < ${int(o.cols)}; c++) {
    const v = x[${row} + c];
    mx = v > mx ? v : mx;
  }
  let s = 0.0;
  for (let c = 0; c < ${int(o.cols)}; c++) {
    const d = x[${row} + c] - mx;
    ${expText('d', 'e', '    ')}
    s += e;
  }
  return [mx, s];
}`;
  return { source, output: [o.rows], components: 2, loopMaxIterations: o.cols };
}

/** Softmax apply kernel: (x, stats) → y [rows][cols]. */
export function softmaxApplySource(o: RowsOptions): KernelSource {
  check(o, 'softmax');
  const source = `function(x, stats) {
  const mx = stats[this.thread.y * 2];
  const inv = 1.0 / stats[this.thread.y * 2 + 1];
  const d = x[this.thread.y * ${int(o.cols)} + this.thread.x] - mx;
  ${expText('d', 'e', '  ')}
  return e * inv;
}`;
  return { source, output: [o.cols, o.rows], components: 1, loopMaxIterations: 1 };
}

export interface RowKernels {
  destroy(): void;
  backend(): string | null;
}

function shapeCheck(name: string, got: number, want: number, o: RowsOptions): void {
  if (got !== want) throw new RangeError(`${name} has ${got} elements, expected ${want} for rows=${o.rows}, cols=${o.cols}`);
}

/**
 * LayerNorm over the last axis: y = (x − mean) / sqrt(var + eps) · gamma + beta.
 *
 * @example
 * const ln = createLayerNormKernel(new GPU({ mode: 'webasm' }), { rows: 3, cols: 5, eps: 1e-6 });
 * const y = await ln(x, gamma, beta); // x: 3×5, gamma/beta: 5
 */
export function createLayerNormKernel(
  gpu: GPU,
  o: RowsOptions & { eps: number },
): ((x: Float32Array, gamma: Float32Array, beta: Float32Array) => Promise<Float32Array>) & RowKernels {
  if (!(o.eps >= 0)) throw new RangeError(`layerNorm template: eps must be >= 0, got ${o.eps}`);
  const stats = buildKernel(gpu, layerNormStatsSource(o));
  const apply = buildKernel(gpu, layerNormApplySource(o));
  const run = async (x: Float32Array, gamma: Float32Array, beta: Float32Array) => {
    shapeCheck('layerNorm: x', x.length, o.rows * o.cols, o);
    shapeCheck('layerNorm: gamma', gamma.length, o.cols, o);
    shapeCheck('layerNorm: beta', beta.length, o.cols, o);
    return apply(x, await stats(x), gamma, beta);
  };
  return Object.assign(run, {
    destroy: () => (stats.destroy(), apply.destroy()),
    backend: () => apply.backend(),
  });
}

/** Softmax over the last axis. */
export function createSoftmaxKernel(gpu: GPU, o: RowsOptions): ((x: Float32Array) => Promise<Float32Array>) & RowKernels {
  const stats = buildKernel(gpu, softmaxStatsSource(o));
  const apply = buildKernel(gpu, softmaxApplySource(o));
  const run = async (x: Float32Array) => {
    shapeCheck('softmax: x', x.length, o.rows * o.cols, o);
    return apply(x, await stats(x));
  };
  return Object.assign(run, {
    destroy: () => (stats.destroy(), apply.destroy()),
    backend: () => apply.backend(),
  });
}

/** logsumexp over the last axis → [rows] (one kernel plus a per-row log on the host). */
export function createLogSumExpKernel(gpu: GPU, o: RowsOptions): ((x: Float32Array) => Promise<Float32Array>) & RowKernels {
  const stats = buildKernel(gpu, softmaxStatsSource(o));
  const run = async (x: Float32Array) => {
    shapeCheck('logsumexp: x', x.length, o.rows * o.cols, o);
    const st = await stats(x);
    const out = new Float32Array(o.rows);
    for (let r = 0; r < o.rows; r++) out[r] = st[2 * r] + Math.log(st[2 * r + 1]);
    return out;
  };
  return Object.assign(run, { destroy: () => stats.destroy(), backend: () => stats.backend() });
}
