/**
 * Result tables of a grid in the layout of the paper's Table 2: one row per training arm, one
 * column per evaluation attention, per seed and as the mean over seeds, with the paper's numbers
 * beside ours where it has them.
 */
import type { CellResult, GridResult } from './grid.ts';
import type { Experiment } from './experiments.ts';

/** null: not applicable (or not measured: a missing cell). */
export type Cells = readonly (readonly (number | null)[])[];

export interface ResultTables {
  readonly experiment: Experiment['name'];
  readonly metric: Experiment['metric'];
  readonly rows: readonly { readonly id: string; readonly label: string }[];
  readonly columns: readonly { readonly id: string; readonly label: string }[];
  readonly perSeed: readonly { readonly seed: number; readonly values: Cells }[];
  /** Mean over the seeds that have the cell. */
  readonly mean: Cells;
  /** Training steps, parameter count and summed step time of each row (seed mean). */
  readonly rowInfo: readonly {
    readonly steps: number | null;
    readonly params: number | null;
    readonly trainSeconds: number | null;
    /** Median seconds per step of the invocations that trained (wall under the load of the day; CPU). */
    readonly stepWallSeconds: number | null;
    readonly stepCpuSeconds: number | null;
  }[];
  readonly paper?: { readonly values: Cells; readonly source: string };
}

const metricOf = (metric: Experiment['metric'], e: { accuracy: number; bpc: number }) => (metric === 'accuracy' ? e.accuracy : e.bpc);

function mean(values: readonly (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length === 0 ? null : present.reduce((a, b) => a + b, 0) / present.length;
}

export function buildTables(grid: Pick<GridResult, 'experiment' | 'seeds' | 'cells'>): ResultTables {
  const e = grid.experiment;
  const cellAt = (seed: number, armId: string): CellResult | undefined => grid.cells.find((c) => c.seed === seed && c.arm.id === armId);
  const perSeed = grid.seeds.map((seed) => ({
    seed,
    values: e.trainArms.map((arm) =>
      e.evalArms.map((col) => {
        const v = cellAt(seed, arm.id)?.evals[col.id];
        return v === undefined || v === null ? null : metricOf(e.metric, v);
      }),
    ),
  }));
  const meanCells = e.trainArms.map((_, r) => e.evalArms.map((_, c) => mean(perSeed.map((s) => s.values[r]![c]!))));
  const rowInfo = e.trainArms.map((arm) => {
    const cells = grid.seeds.map((s) => cellAt(s, arm.id)).filter((c): c is CellResult => c !== undefined);
    return {
      steps: mean(cells.map((c) => c.step)),
      params: cells[0]?.params ?? null,
      trainSeconds: mean(cells.map((c) => c.trainSeconds)),
      stepWallSeconds: mean(cells.map((c) => c.stepTime?.wallSeconds ?? null)),
      stepCpuSeconds: mean(cells.map((c) => c.stepTime?.cpuSeconds ?? null)),
    };
  });
  return {
    experiment: e.name,
    metric: e.metric,
    rows: e.trainArms.map(({ id, label }) => ({ id, label })),
    columns: e.evalArms.map(({ id, label }) => ({ id, label })),
    perSeed,
    mean: meanCells,
    rowInfo,
    ...(e.paper ? { paper: e.paper } : {}),
  };
}

export function formatValue(metric: Experiment['metric'], v: number | null): string {
  if (v === null) return '—';
  return metric === 'accuracy' ? `${(100 * v).toFixed(1)}%` : v.toFixed(3);
}

function markdownTable(t: ResultTables, values: Cells, paper?: Cells): string {
  const corner = t.metric === 'accuracy' ? 'train \\ eval' : 'model \\ eval';
  const header = `| ${corner} | ${t.columns.map((c) => c.label).join(' | ')} |`;
  const rule = `|---|${t.columns.map(() => '---|').join('')}`;
  const lines = t.rows.map((row, r) => {
    const cells = t.columns.map((_, c) => {
      const ours = formatValue(t.metric, values[r]![c]!);
      const theirs = paper?.[r]?.[c];
      return theirs === undefined || theirs === null ? ours : `${ours} (${formatValue(t.metric, theirs)})`;
    });
    return `| ${row.label} | ${cells.join(' | ')} |`;
  });
  return [header, rule, ...lines].join('\n');
}

/** The tables as Markdown: the mean with the paper's numbers in parentheses, then each seed. */
export function renderTables(t: ResultTables): string {
  const what = t.metric === 'accuracy' ? 'second-half accuracy' : 'held-out bits/char (lower is better)';
  const parts = [
    `Mean over ${t.perSeed.length} seed(s), ${what}${t.paper ? '; in parentheses the paper\'s number' : ''}:`,
    '',
    markdownTable(t, t.mean, t.paper?.values),
  ];
  if (t.paper) parts.push('', `Paper: ${t.paper.source}.`);
  const seconds = (v: number | null, digits: number) => (v === null ? '—' : v.toFixed(digits));
  parts.push(
    '',
    '| row | steps | parameters | training time (s, summed step times) | s/step wall (median) | s/step CPU (median) |',
    '|---|---|---|---|---|---|',
  );
  t.rows.forEach((row, r) => {
    const info = t.rowInfo[r]!;
    const cells = [info.steps ?? '—', info.params?.toLocaleString('en') ?? '—', seconds(info.trainSeconds, 0), seconds(info.stepWallSeconds, 2), seconds(info.stepCpuSeconds, 2)];
    parts.push(`| ${row.label} | ${cells.join(' | ')} |`);
  });
  if (t.perSeed.length > 1) {
    for (const s of t.perSeed) parts.push('', `Seed ${s.seed}:`, '', markdownTable(t, s.values));
  }
  return `${parts.join('\n')}\n`;
}
