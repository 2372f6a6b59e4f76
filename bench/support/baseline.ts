/**
 * `--baseline <git-ref>`: measures the same suite on another commit in the same run, so speedups
 * are ratios against a fresh measurement, not against figures from another day. The ref is
 * checked out with `git worktree add` into a temporary folder outside the repository, the
 * current bench/ folder is copied over its own (the same harness measures the old library code),
 * node_modules is a symlink to ours (no install), and the suite runs there in a child process with
 * `--json`. Each suite's summary carries `metrics` (name → value); names ending in `/s` are
 * throughputs (higher is better), others times (lower is better).
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable } from './measure.ts';

export interface BaselineRun {
  readonly ref: string;
  readonly commit: string;
  readonly metrics: Record<string, number>;
}

/** Removes `--baseline <ref>` from the arguments; returns the ref when present. */
export function takeBaseline(rest: string[]): string | undefined {
  const i = rest.indexOf('--baseline');
  if (i < 0) return undefined;
  const ref = rest[i + 1];
  if (ref === undefined || ref.startsWith('--')) throw new Error('bench: --baseline needs a git ref (a commit, branch or tag)');
  rest.splice(i, 2);
  return ref;
}

function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Runs `suite` with `args` on commit `ref`; resolves to its summary's metrics. */
export async function runBaseline(ref: string, suite: string, args: readonly string[]): Promise<BaselineRun> {
  const benchDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  const root = git(benchDir, ['rev-parse', '--show-toplevel']);
  let commit: string;
  try {
    commit = git(root, ['rev-parse', '--verify', `${ref}^{commit}`]);
  } catch {
    throw new Error(`bench: --baseline '${ref}' is not a commit in this repository`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'reformer-baseline-'));
  try {
    git(root, ['worktree', 'add', '--detach', dir, commit]);
    symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    cpSync(benchDir, path.join(dir, 'bench'), { recursive: true, force: true });
    process.stderr.write(`baseline: ${ref} (${commit.slice(0, 10)}) in ${dir}\n`);
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/main.ts', suite, '--json', ...args], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`bench: the baseline run of '${suite}' at ${ref} exited with ${code}`))));
    });
    // the summary is the last top-level JSON object on stdout
    const start = stdout.lastIndexOf('\n{\n');
    const summary = JSON.parse(start >= 0 ? stdout.slice(start + 1) : stdout) as { metrics?: Record<string, number> };
    return { ref, commit, metrics: summary.metrics ?? {} };
  } finally {
    try {
      git(root, ['worktree', 'remove', '--force', dir]);
    } catch {
      rmSync(dir, { recursive: true, force: true });
      git(root, ['worktree', 'prune']);
    }
  }
}

/** Table of the metrics both runs measured: ours, the baseline's, and the speedup (> 1: we are faster). */
export function compareToBaseline(ours: Record<string, number>, base: BaselineRun): string {
  const rows = Object.keys(ours)
    .filter((k) => base.metrics[k] !== undefined)
    .map((k) => {
      const a = ours[k]!;
      const b = base.metrics[k]!;
      const speedup = k.endsWith('/s') ? a / b : b / a;
      return [k, a.toPrecision(4), b.toPrecision(4), speedup.toFixed(2)];
    });
  const missing = Object.keys(ours).filter((k) => base.metrics[k] === undefined);
  return [
    `against ${base.ref} (${base.commit.slice(0, 10)}), measured in the same run:`,
    formatTable(['metric', 'this tree', 'baseline', 'speedup'], rows),
    ...(missing.length > 0 ? [`not measured by the baseline: ${missing.join('; ')}`] : []),
  ].join('\n');
}
