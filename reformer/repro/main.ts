/**
 * `npm run repro -- <duplication|text> [--json] [--out DIR] [--seeds N] [--steps N] [--quick]
 * [--variant NAME] [--backend NAME]`: runs (or resumes) an experiment grid, then writes `results.json`, `table.md`
 * and `curves.svg` into the output folder and prints the table (or the JSON with --json).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { writeFileAtomic } from '../../runtime/checkpoint.ts';
import { openRunner } from '../../cli/commands/runner.ts';
import { armConfig, experimentByName, experimentNames, quickScale, type TrainArm } from './experiments.ts';
import { runGrid, type GridResult } from './grid.ts';
import { buildTables, renderTables, type ResultTables } from './table.ts';
import { writeCurves } from './curves.ts';

const backends = ['auto', 'webgpu', 'headlessgl', 'webasm', 'cpu', 'reference'];

function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer, got '${value}'`);
    return n;
  };
}

export interface ReproOptions {
  readonly experiment: string;
  readonly out?: string;
  readonly seeds: number;
  readonly steps?: number;
  readonly quick: boolean;
  /** Read configs/<arm>-<variant>.json instead of configs/<arm>.json (another scale of the grid). */
  readonly variant?: string;
  readonly json: boolean;
  readonly backend: string;
}

/** results.json: everything the tables and docs are made from. */
export function resultsJson(grid: GridResult, tables: ResultTables): object {
  return {
    experiment: grid.experiment.name,
    out: grid.out,
    seeds: grid.seeds,
    backend: grid.backend,
    wallSeconds: grid.wallSeconds,
    stopped: grid.stopped,
    tables,
    cells: grid.cells.map(({ seed, arm, dir, training, evaluated, step, params, trainSeconds, stepTime, evals, curve }) => ({
      seed,
      arm: arm.id,
      dir,
      training,
      evaluated,
      step,
      params,
      trainSeconds,
      stepTime,
      evals,
      curve,
    })),
  };
}

export async function runRepro(opts: ReproOptions): Promise<number> {
  const experiment = experimentByName(opts.experiment);
  if (!backends.includes(opts.backend)) throw new Error(`repro: unknown --backend '${opts.backend}'; allowed: ${backends.join(', ')}`);
  const variant = opts.variant;
  const folder = [experiment.name, ...(variant !== undefined ? [variant] : []), ...(opts.quick ? ['quick'] : [])].join('-');
  const out = opts.out ?? join('runs', 'repro', folder);
  for (const arm of experiment.trainArms) armConfig(arm, variant); // every config readable before anything runs
  mkdirSync(out, { recursive: true });
  const runner = await openRunner(opts.backend);
  const log = (line: string) => (opts.json ? process.stderr : process.stdout).write(`${line}\n`);
  log(`repro ${experiment.name}: ${experiment.trainArms.length} training arm(s) x ${opts.seeds} seed(s), ${experiment.evalArms.length} evaluation(s) each, on ${runner.description}, in ${out}`);
  let stop = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop) process.exit(signal === 'SIGINT' ? 130 : 143);
    stop = true;
    log(`${signal}: stopping after this step (checkpoint saved); run the same command again to resume`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let grid: GridResult;
  try {
    grid = await runGrid({
      experiment,
      out,
      seeds: Array.from({ length: opts.seeds }, (_, i) => i),
      runner,
      backend: opts.backend,
      ...(opts.steps !== undefined ? { steps: opts.steps } : {}),
      ...(opts.quick ? { scale: quickScale } : {}),
      ...(variant !== undefined ? { configOf: (arm: TrainArm) => armConfig(arm, variant) } : {}),
      log,
      shouldStop: () => stop,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const tables = buildTables(grid);
  const markdown = `${experiment.title}${opts.quick ? ' — QUICK machinery check, toy scale: not a result' : ''}\n\n${renderTables(tables)}`;
  await writeFileAtomic(join(out, 'results.json'), `${JSON.stringify(resultsJson(grid, tables), null, 2)}\n`);
  await writeFileAtomic(join(out, 'table.md'), markdown);
  const curves = await writeCurves(grid);
  if (opts.json) process.stdout.write(`${JSON.stringify(resultsJson(grid, tables), null, 2)}\n`);
  else {
    process.stdout.write(`\n${markdown}\n`);
    log(`wall time ${grid.wallSeconds.toFixed(0)} s; wrote ${join(out, 'results.json')}, ${join(out, 'table.md')}${curves ? `, ${curves}` : ''}`);
  }
  return grid.stopped ? 130 : 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('repro')
    .description("reproduce the paper's experiments at the scale of one machine")
    .argument('<experiment>', experimentNames.join(' | '))
    .option('--out <dir>', 'grid folder (default runs/repro/<experiment>[-<variant>][-quick])')
    .option('--seeds <n>', 'seeds 0..n-1', positiveInt('--seeds'), 1)
    .option('--steps <n>', "training steps of every cell (default: each config's train.steps)", positiveInt('--steps'))
    .option('--variant <name>', 'another scale of the grid: configs/<arm>-<name>.json (default configs/<arm>.json)')
    .option('--quick', 'toy scale (a few steps of a tiny model): checks the machinery, measures nothing', false)
    .option('--json', 'print the results as JSON (progress goes to stderr)', false)
    .option('--backend <name>', `execution backend: ${backends.join(' | ')}`, 'auto')
    .configureOutput({ outputError: () => {} })
    .exitOverride();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    const opts = program.opts<Omit<ReproOptions, 'experiment'>>();
    return await runRepro({ ...opts, experiment: program.args[0]! });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help') return 0;
      console.error(`repro: ${e.message.replace(/^error:\s*/i, '')}`);
      return 1;
    }
    const message = e instanceof Error ? e.message : String(e);
    console.error(message.startsWith('repro:') ? message : `repro: ${message}`);
    return 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
