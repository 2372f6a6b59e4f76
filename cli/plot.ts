/**
 * `reformer plot`: loss and bits-per-character curves from a JSONL run log, as SVG or PNG.
 * Vega-Lite does the layout headless (no canvas needed); resvg rasterises to PNG.
 */
import { statSync } from 'node:fs';
import { readFile, writeFile, rename, rm } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';

export interface RunLogRecord {
  readonly type: 'train' | 'eval';
  readonly step: number;
  readonly loss: number;
  readonly bpc?: number;
  readonly accuracy?: number;
}

export async function readRunLog(path: string): Promise<RunLogRecord[]> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new Error(`cannot read run log '${path}': ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  const records: RunLogRecord[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      // The last line may be torn (a training killed mid-append, or appending right now): skip it.
      if (i === lines.length - 1) return;
      throw new Error(`run log '${path}' line ${i + 1} is not JSON`);
    }
    const rec = r as Partial<RunLogRecord>;
    if ((rec.type === 'train' || rec.type === 'eval') && typeof rec.step === 'number' && typeof rec.loss === 'number') {
      records.push(rec as RunLogRecord);
    }
  });
  if (records.length === 0) throw new Error(`run log '${path}' has no train or eval records`);
  return records;
}

export async function renderPlot(records: readonly RunLogRecord[], title: string): Promise<string> {
  const values = records.flatMap((r) => [
    { step: r.step, value: r.loss, series: `${r.type} loss (nats)` },
    ...(r.bpc !== undefined ? [{ step: r.step, value: r.bpc, series: `${r.type} bits/char` }] : []),
    ...(r.accuracy !== undefined ? [{ step: r.step, value: r.accuracy, series: `${r.type} accuracy` }] : []),
  ]);
  return renderSeries(values, title, { points: records.length < 60 });
}

export interface SeriesPoint {
  readonly step: number;
  readonly value: number;
  readonly series: string;
}

/** Line plot of named series over steps as SVG (also used by `npm run repro` for several runs in one plot). */
export async function renderSeries(values: readonly SeriesPoint[], title: string, options: { points?: boolean; yTitle?: string; yFormat?: string; zeroBaseline?: boolean } = {}): Promise<string> {
  const spec: vl.TopLevelSpec = {
    title,
    width: 640,
    height: 360,
    data: { values: values.map((v) => ({ ...v })) },
    mark: { type: 'line', point: options.points ?? false },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: {
        field: 'value',
        type: 'quantitative',
        title: options.yTitle ?? null,
        scale: { zero: options.zeroBaseline ?? true },
        ...(options.yFormat !== undefined ? { axis: { format: options.yFormat } } : {}),
      },
      color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 400 } },
    },
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** Writes the plot of `logPath` to `outPath` (.svg or .png), atomically. */
export async function plotRunLog(logPath: string, outPath: string): Promise<void> {
  const ext = extname(outPath).toLowerCase();
  if (ext !== '.svg' && ext !== '.png') throw new Error(`plot output must end in .svg or .png, got '${outPath}'`);
  await writePlot(await renderPlot(await readRunLog(logPath), logPath), outPath);
}

/** Writes an SVG plot to `outPath` (.svg, or .png rasterised with resvg), atomically. */
export async function writePlot(svg: string, outPath: string): Promise<void> {
  const ext = extname(outPath).toLowerCase();
  if (ext !== '.svg' && ext !== '.png') throw new Error(`plot output must end in .svg or .png, got '${outPath}'`);
  let bytes: Uint8Array | string = svg;
  if (ext === '.png') {
    const { Resvg } = await import('@resvg/resvg-js');
    bytes = new Resvg(svg, { background: 'white', font: { loadSystemFonts: true } }).render().asPng();
  }
  const folder = dirname(outPath);
  if (!isDirectory(folder)) throw new Error(`cannot write the plot to '${outPath}': folder '${folder}' does not exist`);
  const tmp = join(folder, `.${Math.random().toString(36).slice(2)}.plot-tmp`);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, outPath);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new Error(`cannot write the plot to '${outPath}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** `reformer plot LOG_OR_RUN_DIR [--out FILE]`: by default writes plot.svg next to the run log. */
export async function plotCommand(log: string, out: string | undefined): Promise<void> {
  const logPath = isDirectory(log) ? join(log, 'run-log.jsonl') : log;
  const outPath = out ?? join(dirname(logPath), 'plot.svg');
  await plotRunLog(logPath, outPath);
  console.log(`wrote ${outPath}`);
}
