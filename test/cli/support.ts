/**
 * Helpers for tests that run the real CLI (`node bin/reformer.js …`) as child processes on a tiny
 * model with the reference backend (fastest for models this small: no kernel compilation).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tinyModelJson } from '../support/tiny-model.ts';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repoRoot, 'bin', 'reformer.js');

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running CLI process whose output is collected as it arrives. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly done: Promise<CliResult>;

  constructor(args: readonly string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    live.add(this);
    this.done = new Promise((res, rej) => {
      this.child.on('error', rej);
      this.child.on('close', (code, signal) => {
        live.delete(this);
        res({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  /** Resolves as soon as stdout matches `pattern` (rejects if the process ends first). */
  waitFor(pattern: RegExp): Promise<void> {
    return new Promise((res, rej) => {
      const check = () => {
        if (!pattern.test(this.stdout)) return false;
        this.child.stdout!.off('data', check);
        res();
        return true;
      };
      if (check()) return;
      this.child.stdout!.on('data', check);
      this.done.then(() => check() || rej(new Error(`process ended before printing ${pattern}; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`)), rej);
    });
  }

  /** Kills the process if it still runs (a failed test must not leave it behind). */
  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

const live = new Set<CliProcess>();
/** Kills every CLI process a test started and left running (call in afterAll). */
export function stopAll(): void {
  for (const p of live) p.stop();
  live.clear();
}

export const runCli = (args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> => new CliProcess(args, env).done;

/** A temp folder removed by the returned cleanup (call it in afterAll). */
export function tempFolder(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes a tiny local/LSH ReformerLM config (a step takes milliseconds; `model` overrides) and a small text file. */
export function tinySetup(dir: string, train: Record<string, unknown>, model: Record<string, unknown> = {}): { config: string; data: string } {
  const config = join(dir, `tiny-${createHash('sha1').update(JSON.stringify([train, model])).digest('hex').slice(0, 8)}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      model: tinyModelJson(model),
      train: { batchSize: 2, learningRate: 0.01, warmupSteps: 2, evalBatches: 1, ...train },
    }),
  );
  const data = join(dir, 'fox.txt');
  writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(40));
  return { config, data };
}

/** Run-log records without their timing fields (which differ between runs). */
export function logRecords(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, 'run-log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const { tokensPerSec: _t, seconds: _s, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });
}

/** SHA-256 of the latest checkpoint's weights and optimizer state, and its step. */
export function finalState(runDir: string): { step: string; model: string; optimizer: string } {
  const step = readFileSync(join(runDir, 'latest'), 'utf8').trim();
  const hash = (name: string) => createHash('sha256').update(readFileSync(join(runDir, step, name))).digest('hex');
  return { step, model: hash('model.safetensors'), optimizer: hash('optimizer.safetensors') };
}

/** Every file under `dir` (relative path → SHA-256), to show a directory was not touched. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p, `${rel}${name}/`);
      else out[`${rel}${name}`] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

/** The last line of stderr that starts with `reformer:` (and checks there is exactly one such line). */
export function errorLine(r: CliResult): string {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 1 || !lines[0]!.startsWith('reformer: ')) throw new Error(`expected one 'reformer: …' line on stderr, got:\n${r.stderr}`);
  return lines[0]!;
}
