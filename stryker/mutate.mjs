/**
 * `npm run mutate -- <group> [--budget MINUTES] [--concurrency N] [--incremental]`: runs Stryker on
 * one group (stryker/groups.mjs) and prints the wall time. `--incremental` re-tests only mutants
 * whose code or covering tests changed since the group's last run. The budget stops a run that would hog the machine;
 * a stopped run writes no report.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { groups } from './groups.mjs';

const args = process.argv.slice(2);
const usage = `usage: npm run mutate -- <${Object.keys(groups).join('|')}> [--budget MINUTES] [--concurrency N] [--incremental]`;
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
const incremental = args.includes('--incremental');
const concurrency = numberFlag('--concurrency') ?? 1;

// The package exports only its API; its CLI sits beside package.json.
const strykerBin = join(dirname(createRequire(import.meta.url).resolve('@stryker-mutator/core/package.json')), 'bin', 'stryker.js');
const started = Date.now();
const child = spawn(process.execPath, [strykerBin, 'run', 'stryker/stryker.config.mjs', ...(incremental ? ['--incremental'] : [])], {
  stdio: 'inherit',
  detached: true,
  env: { ...process.env, MUTATE_GROUP: group, MUTATE_CONCURRENCY: String(concurrency) },
});

// Stryker and its test runners form one process group: stop them together.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.kill(-child.pid, signal));

let overBudget = false;
const timer =
  budgetMinutes === undefined
    ? undefined
    : setTimeout(() => {
        overBudget = true;
        console.error(`mutate: ${group} ran past its budget of ${budgetMinutes} min; stopping it`);
        process.kill(-child.pid, 'SIGTERM');
      }, budgetMinutes * 60_000);

child.on('exit', (code, signal) => {
  if (timer !== undefined) clearTimeout(timer);
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(`mutate ${group}: ${overBudget ? 'stopped after' : 'finished in'} ${seconds} s (concurrency ${concurrency})`);
  process.exit(overBudget ? 124 : (code ?? (signal ? 1 : 0)));
});
