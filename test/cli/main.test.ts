/**
 * The CLI in-process (fast): every error is one `reformer: …` line, --help shows the defaults,
 * bad values are refused before any work, and plot writes next to the run log.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.ts';
import { formatDuration, StepTimes } from '../../cli/progress.ts';
import { escapeControlChars } from '../../reformer/generate.ts';
import { logRecords, tinySetup } from './support.ts';

const dir = mkdtempSync(join(tmpdir(), 'reformer-cli-main-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** Runs main() and returns its exit code with what it printed. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void (stdout += `${a.join(' ')}\n`));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (stderr += `${a.join(' ')}\n`));
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  const code = await main(args);
  vi.restoreAllMocks();
  return { code, stdout, stderr };
}

function oneErrorLine(r: { code: number; stderr: string }): string {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]!.startsWith('reformer: ')).toBe(true);
  expect(lines[0]).not.toMatch(/\berror:/);
  return lines[0]!;
}

describe('reformer CLI errors and help', () => {
  it("option errors from commander are one 'reformer:' line", async () => {
    expect(oneErrorLine(await run(['train', '--steps', 'x']))).toMatch(/--steps must be an integer, got 'x'/);
    expect(oneErrorLine(await run(['train', '--bogus']))).toMatch(/unknown option '--bogus'/);
    expect(oneErrorLine(await run(['eval']))).toMatch(/required option '--checkpoint <dir>' not specified/);
    expect(oneErrorLine(await run(['train', '--backend', 'tpu']))).toMatch(/unknown backend 'tpu'/);
    expect(oneErrorLine(await run(['train', '--pipeline-memory', 'some']))).toMatch(/unknown pipeline memory mode 'some'; allowed: auto, retained, per-run/);
    expect(oneErrorLine(await run(['nonsense']))).toMatch(/unknown command 'nonsense'/);
  });

  it('seeds beyond 32 bits are refused instead of aliasing', async () => {
    expect(oneErrorLine(await run(['train', '--seed', '4294967296']))).toMatch(/--seed must be an integer from 0 to 4294967295/);
    expect(oneErrorLine(await run(['train', '--seed', '-1']))).toMatch(/--seed must be an integer from 0 to 4294967295/);
    expect(oneErrorLine(await run(['generate', '--checkpoint', dir, '--seed', '4294967296']))).toMatch(/--seed must be an integer/);
  });

  it('--pipeline-memory changes where pipelines live, not what training computes, and the runner is told', async () => {
    const { config, data } = tinySetup(dir, { steps: 2, evalEvery: 2, checkpointEvery: 2 });
    const logs = [];
    for (const mode of ['retained', 'per-run'] as const) {
      const out = join(dir, `pipelines-${mode}`);
      const r = await run(['train', '--config', config, '--data', data, '--out', out, '--backend', 'webasm', '--pipeline-memory', mode, '--no-progress']);
      expect(r.code, r.stderr).toBe(0);
      // the runner's description, printed at the start, names the mode
      expect(r.stdout).toContain(`[pipelines ${mode}]`);
      logs.push(logRecords(out));
    }
    expect(logs[1]).toEqual(logs[0]);
  }, 240_000);

  it('eval --batches 0 is an error, not 0.000 bits/char', async () => {
    expect(oneErrorLine(await run(['eval', '--checkpoint', dir, '--batches', '0']))).toMatch(/--batches must be at least 1, got 0/);
  });

  it('eval refuses an attention the run cannot be evaluated with, and evaluates one it can', async () => {
    const { config, data } = tinySetup(dir, { steps: 1, evalEvery: 1, checkpointEvery: 1 }, { attention: ['full'], dropout: 0 });
    const plain = join(dir, 'full-run');
    expect((await run(['train', '--config', config, '--data', data, '--out', plain, '--backend', 'cpu'])).code).toBe(0);
    expect(oneErrorLine(await run(['eval', '--checkpoint', plain, '--n-hashes', '2', '--backend', 'cpu']))).toMatch(
      /--n-hashes: LSH evaluation needs LSH layers or full attention with shared QK; this model has full attention without shared QK/,
    );
    expect(oneErrorLine(await run(['eval', '--checkpoint', plain, '--n-hashes', '2', '--full-attention']))).toMatch(/--full-attention and --n-hashes exclude each other/);
    const shared = tinySetup(dir, { steps: 1, evalEvery: 1, checkpointEvery: 1 }, { attention: ['full'], sharedQK: true, dropout: 0 });
    const sharedRun = join(dir, 'shared-run');
    expect((await run(['train', '--config', shared.config, '--data', shared.data, '--out', sharedRun, '--backend', 'cpu'])).code).toBe(0);
    const asLsh = await run(['eval', '--checkpoint', sharedRun, '--n-hashes', '2', '--backend', 'cpu']);
    expect(asLsh.code, asLsh.stderr).toBe(0);
    expect(asLsh.stdout).toMatch(/LSH evaluated with 2 hash round\(s\)/);
    const mixed = tinySetup(dir, { steps: 1, evalEvery: 1, checkpointEvery: 1 }, { dropout: 0 });
    const mixedRun = join(dir, 'mixed-run');
    expect((await run(['train', '--config', mixed.config, '--data', mixed.data, '--out', mixedRun, '--backend', 'cpu'])).code).toBe(0);
    expect(oneErrorLine(await run(['eval', '--checkpoint', mixedRun, '--full-attention', '--backend', 'cpu']))).toMatch(
      /--full-attention: full-attention evaluation needs all-LSH or all-full layers; this model has local\/lsh attention/,
    );
  }, 240_000);

  it('train --help shows the defaults of --steps, --eval-every, --checkpoint-every and --no-reversible', async () => {
    const r = await run(['train', '--help']);
    expect(r.code).toBe(0);
    const help = r.stdout.replace(/\s+/g, ' ');
    expect(help).toMatch(/--steps <n> training steps \(default: the config's train\.steps, 300 built in\)/);
    expect(help).toMatch(/--eval-every <n> .*\(default: the config's train\.evalEvery, 100 built in\)/);
    expect(help).toMatch(/--checkpoint-every <n> .*\(default: the config's train\.checkpointEvery, 100 built in\)/);
    expect(help).toMatch(/--no-reversible plain backprop instead of the reversible\/chunked memory schedules, for comparison/);
    expect(help).toContain('--force');
  });
});

describe('reformer plot', () => {
  const log = [
    { type: 'train', step: 1, loss: 5, bpc: 7.2 },
    { type: 'train', step: 2, loss: 4, bpc: 5.8 },
    { type: 'eval', step: 2, loss: 4.1, bpc: 5.9 },
  ]
    .map((r) => JSON.stringify(r))
    .join('\n');

  it('writes plot.svg next to the run log by default (never into the working folder) and tolerates a torn last line', async () => {
    const runDir = join(dir, 'run');
    mkdirSync(runDir);
    writeFileSync(join(runDir, 'run-log.jsonl'), `${log}\n{"type":"train","st`);
    const r = await run(['plot', runDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`wrote ${join(runDir, 'plot.svg')}`);
    expect(existsSync(join(process.cwd(), 'plot.svg'))).toBe(false);
    expect(readdirSync(runDir).sort()).toEqual(['plot.svg', 'run-log.jsonl']);
  });

  it('--out into a missing folder names the folder, not a temp file', async () => {
    const runDir = join(dir, 'run2');
    mkdirSync(runDir);
    writeFileSync(join(runDir, 'run-log.jsonl'), `${log}\n`);
    const line = oneErrorLine(await run(['plot', runDir, '--out', join(dir, 'missing', 'curves.svg')]));
    expect(line).toMatch(/cannot write the plot to '.*curves\.svg': folder '.*missing' does not exist/);
    expect(line).not.toMatch(/plot-tmp|\.tmp-/);
  });
});

describe('progress figures and terminal safety', () => {
  it('durations round before splitting, so they never read 1m60s', () => {
    expect(formatDuration(119.6)).toBe('2m00s');
    expect(formatDuration(59.6)).toBe('1m00s');
    expect(formatDuration(65)).toBe('1m05s');
    expect(formatDuration(7199.9)).toBe('2h00m');
    expect(formatDuration(3661)).toBe('1h01m');
    expect(formatDuration(Number.NaN)).toBe('?');
  });

  it('step times are a moving average over the last steps', () => {
    const t = new StepTimes(3);
    expect(t.secondsPerStep).toBeUndefined();
    for (const s of [10, 1, 1, 1]) t.add(s);
    expect(t.secondsPerStep).toBe(1);
  });

  it('control bytes are escaped, text and newlines kept', () => {
    expect(escapeControlChars('a\u0000b\u001b[2Jc\nd\te\u009bf\u007f')).toBe('a\\x00b\\x1b[2Jc\nd\te\\x9bf\\x7f');
    expect(escapeControlChars('héllo ✓')).toBe('héllo ✓');
  });
});
