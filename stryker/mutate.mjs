/**
 * `npm run mutate -- <group> [--budget MINUTES] [--incremental] [--mutate FILE,FILE] [--concurrency N]`:
 * runs Stryker on one group (stryker/groups.mjs) and prints the wall time.
 *
 * Two passes: the first shares one module registry across test files (fast, stryker/vitest.config.ts);
 * mutants in import-time code ("static": a module-level constant or table) are not activated by it,
 * so the second pass re-tests just those with vitest's usual per-file isolation, reusing every
 * other result through Stryker's incremental file. `--incremental` also reuses the results of the
 * group's previous run for mutants whose code and covering tests did not change. `--mutate` narrows
 * the run to some of the group's files. The budget stops a run (no report is written then).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { groups } from './groups.mjs';

const args = process.argv.slice(2);
const usage = `usage: npm run mutate -- <${Object.keys(groups).join('|')}> [--budget MINUTES] [--incremental] [--mutate FILE,FILE] [--concurrency N]`;
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
const incrementalFile = `reports/mutation/${group}.incremental.json`;

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

/** One Stryker run (always incremental, so the file carries results between passes); resolves to its exit code. */
function stryker(vitestConfig) {
  return new Promise((resolve) => {
    child = spawn(process.execPath, [strykerBin, 'run', 'stryker/stryker.config.mjs', '--incremental', ...only], {
      stdio: 'inherit',
      detached: true,
      env: { ...process.env, MUTATE_GROUP: group, MUTATE_CONCURRENCY: String(concurrency), MUTATE_VITEST_CONFIG: vitestConfig },
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/** Drops the static mutants' results from the incremental file, so the next pass tests them again; returns how many. */
function forgetStaticMutants() {
  const report = JSON.parse(readFileSync(incrementalFile, 'utf8'));
  let n = 0;
  for (const file of Object.values(report.files)) {
    const kept = file.mutants.filter((m) => !m.static);
    n += file.mutants.length - kept.length;
    file.mutants = kept;
  }
  writeFileSync(incrementalFile, JSON.stringify(report));
  return n;
}

if (!incremental) rmSync(incrementalFile, { force: true });
let code = await stryker('stryker/vitest.config.ts');
if (code === 0 && !overBudget && existsSync(incrementalFile)) {
  const n = forgetStaticMutants();
  console.log(`mutate ${group}: re-testing ${n} static mutant(s) with per-file isolation`);
  if (n > 0) code = await stryker('vitest.config.ts');
}
if (timer !== undefined) clearTimeout(timer);
const seconds = Math.round((Date.now() - started) / 1000);
console.log(`mutate ${group}: ${overBudget ? 'stopped after' : 'finished in'} ${seconds} s (concurrency ${concurrency})`);
process.exit(overBudget ? 124 : code);
