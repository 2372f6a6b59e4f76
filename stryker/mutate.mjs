/**
 * `npm run mutate -- <group> [--budget MINUTES] [--incremental] [--mutate FILE,FILE] [--concurrency N] [--as NAME]`:
 * runs Stryker on one group (stryker/groups.mjs) and prints the wall time.
 *
 * `--as NAME` names the run's sandbox and reports (`reports/mutation/NAME.*`) instead of the
 * group, so narrowed runs of one group can run side by side without sharing files.
 *
 * `--incremental` reuses the results of the group's previous run for mutants whose code and
 * covering tests did not change. `--mutate` narrows the run to some of the group's files. The
 * budget stops a run (no report is written then).
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { groups } from './groups.mjs';

const args = process.argv.slice(2);
const usage = `usage: npm run mutate -- <${Object.keys(groups).join('|')}> [--budget MINUTES] [--incremental] [--mutate FILE,FILE] [--concurrency N] [--as NAME]`;
const group = args[0];
if (group === undefined || !(group in groups)) {
  console.error(group === undefined ? usage : `mutate: unknown group '${group}'; ${usage}`);
  process.exit(2);
}

/** Value of `--flag N` as a positive number, or undefined when absent. */
const numberFlag = (flag) => {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const value = Number(args[i + 1]);
  if (!(value > 0)) {
    console.error(`mutate: ${flag} needs a positive number, got '${args[i + 1] ?? ''}'`);
    process.exit(2);
  }
  return value;
};
const budgetMinutes = numberFlag('--budget');
const concurrency = numberFlag('--concurrency') ?? 1;
const incremental = args.includes('--incremental');
const only = args.includes('--mutate') ? ['--mutate', args[args.indexOf('--mutate') + 1] ?? ''] : [];
const reportName = args.includes('--as') ? args[args.indexOf('--as') + 1] ?? '' : group;
if (!/^[A-Za-z0-9_-]+$/.test(reportName)) {
  console.error(`mutate: --as needs a name of letters, digits, '-' or '_', got '${reportName}'`);
  process.exit(2);
}
const incrementalFile = `reports/mutation/${reportName}.incremental.json`;

// The package exports only its API; its CLI sits beside package.json.
const strykerBin = join(dirname(createRequire(import.meta.url).resolve('@stryker-mutator/core/package.json')), 'bin', 'stryker.js');
const started = Date.now();
let child;
let overBudget = false;

// Stryker and its test runners form one process group: stop them together.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child !== undefined && process.kill(-child.pid, signal));
const timer =
  budgetMinutes === undefined
    ? undefined
    : setTimeout(() => {
        overBudget = true;
        console.error(`mutate: ${group} ran past its budget of ${budgetMinutes} min; stopping it`);
        if (child !== undefined) process.kill(-child.pid, 'SIGTERM');
      }, budgetMinutes * 60_000);

/** One Stryker run (always writing the incremental file, which a later `--incremental` run reads); resolves to its exit code. */
function stryker(vitestConfig) {
  return new Promise((resolve) => {
    child = spawn(process.execPath, [strykerBin, 'run', 'stryker/stryker.config.mjs', '--incremental', ...only], {
      stdio: 'inherit',
      detached: true,
      env: { ...process.env, MUTATE_GROUP: group, MUTATE_REPORT: reportName, MUTATE_CONCURRENCY: String(concurrency), MUTATE_VITEST_CONFIG: vitestConfig },
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

if (!incremental) rmSync(incrementalFile, { force: true });
const code = await stryker('stryker/vitest.config.ts');
if (timer !== undefined) clearTimeout(timer);
const seconds = Math.round((Date.now() - started) / 1000);
console.log(`mutate ${reportName}: ${overBudget ? 'stopped after' : 'finished in'} ${seconds} s (concurrency ${concurrency})`);
process.exit(overBudget ? 124 : code);
