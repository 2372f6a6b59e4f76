/**
 * Held-out curves of a grid, one line per training arm (and seed), drawn with the `plot` command's
 * renderer: second-half accuracy for the duplication task, bits/char for text.
 */
import { join } from 'node:path';
import { renderSeries, writePlot, type SeriesPoint } from '../../cli/plot.ts';
import type { GridResult } from './grid.ts';

export const CURVES_FILE = 'curves.svg';

export function curveSeries(grid: Pick<GridResult, 'experiment' | 'seeds' | 'cells'>): SeriesPoint[] {
  const accuracy = grid.experiment.metric === 'accuracy';
  return grid.cells.flatMap((cell) => {
    const series = grid.seeds.length > 1 ? `${cell.arm.label} (seed ${cell.seed})` : cell.arm.label;
    return cell.curve.map((p) => ({ step: p.step, value: accuracy ? (p.accuracy ?? 0) : p.bpc, series }));
  });
}

/** Writes `<out>/curves.svg` and returns its path (undefined when no cell logged an evaluation). */
export async function writeCurves(grid: GridResult): Promise<string | undefined> {
  const values = curveSeries(grid);
  if (values.length === 0) return undefined;
  const accuracy = grid.experiment.metric === 'accuracy';
  const title = accuracy ? 'Duplication task: held-out second-half accuracy' : 'Brown corpus: held-out bits/char';
  const svg = await renderSeries(values, title, {
    points: values.length < 80,
    yTitle: accuracy ? 'second-half accuracy' : 'bits/char',
    ...(accuracy ? { yFormat: '%' } : {}),
    zeroBaseline: accuracy,
  });
  const path = join(grid.out, CURVES_FILE);
  await writePlot(svg, path);
  return path;
}
