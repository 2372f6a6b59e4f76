/** Timing and reporting helpers shared by benchmark suites. */
import os from 'node:os';

/** Reference fp32 peak of the CI machine (2 AVX2 cores × 2 FMA ports × 8 lanes × 2 flops × ~3 GHz). */
export const PEAK_GFLOPS = 190;

export interface Timing {
  medianMs: number;
  minMs: number;
  runs: number;
}

/** Median wall time of `runs` awaited calls after `warmup` untimed ones. */
export async function timeIt(fn: () => Promise<unknown>, runs: number, warmup = 1): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return summarise(ts, runs);
}

function summarise(ts: number[], runs: number): Timing {
  ts.sort((a, b) => a - b);
  const mid = ts.length >> 1;
  const medianMs = ts.length % 2 ? ts[mid]! : (ts[mid - 1]! + ts[mid]!) / 2;
  return { medianMs, minMs: ts[0]!, runs };
}

/** Plain-text table with right-aligned numeric columns. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    date: new Date().toISOString(),
    peakGflops: PEAK_GFLOPS,
  };
}
