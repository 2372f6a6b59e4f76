import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateRunConfig } from '../../reformer/config.ts';
import { parseLogLines, RunDirectory } from '../../reformer/train/run-dir.ts';
import { RunLock, RunLockedError, RUN_LOCK } from '../../reformer/train/run-lock.ts';
import { firstDifference } from '../../reformer/train/run-manifest.ts';

const root = mkdtempSync(join(tmpdir(), 'reformer-rundir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => {
  const d = join(root, `d${n++}`);
  rmSync(d, { recursive: true, force: true });
  return mkdtempSync(`${d}-`);
};
const lockFile = (pid: number, host = hostname()) => `${JSON.stringify({ pid, host, startedAt: '2020-01-01T00:00:00Z', token: 'old' })}\n`;

describe('run lock', () => {
  it('a second acquisition while held is refused naming the holder; release frees it', () => {
    const dir = freshDir();
    const lock = RunLock.acquire(dir);
    expect(() => RunLock.acquire(dir)).toThrow(new RegExp(`in use by another training \\(pid ${process.pid} on `));
    lock.assertHeld();
    lock.release();
    expect(existsSync(join(dir, RUN_LOCK))).toBe(false);
    RunLock.acquire(dir).release();
  });

  it('a stale lock of a dead process is reclaimed', () => {
    const dir = freshDir();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(dir, RUN_LOCK), lockFile(dead));
    const lock = RunLock.acquire(dir);
    expect(lock.reclaimed?.pid).toBe(dead);
    expect(JSON.parse(readFileSync(join(dir, RUN_LOCK), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it("another host's lock is refused (its process cannot be checked from here)", () => {
    const dir = freshDir();
    writeFileSync(join(dir, RUN_LOCK), lockFile(1, 'elsewhere.example'));
    expect(() => RunLock.acquire(dir)).toThrow(RunLockedError);
    expect(() => RunLock.acquire(dir)).toThrow(/locked by pid 1 on elsewhere\.example, .*another host.*delete/);
  });

  it('a lock taken over by another process makes every write of the old holder fail', () => {
    const dir = freshDir();
    const lock = RunLock.acquire(dir);
    writeFileSync(join(dir, RUN_LOCK), lockFile(process.pid));
    const run = new RunDirectory(dir, { lock });
    expect(() => run.appendLog({ type: 'train', step: 1, loss: 1, bpc: 1 })).toThrow(/lost the run lock/);
    lock.release();
    expect(existsSync(join(dir, RUN_LOCK)), 'release leaves a lock that is not ours').toBe(true);
  });
});

describe('run log', () => {
  const line = (step: number) => JSON.stringify({ type: 'train', step, loss: 1, bpc: 1 });

  it('only an unterminated last line counts as torn', () => {
    expect(parseLogLines(`${line(1)}\n${line(2)}\n`, 'log')).toEqual({ records: [{ step: 1, line: line(1) }, { step: 2, line: line(2) }], torn: false });
    expect(parseLogLines(`${line(1)}\n{"type":"tr`, 'log')).toEqual({ records: [{ step: 1, line: line(1) }], torn: true });
    expect(parseLogLines('', 'log')).toEqual({ records: [], torn: false });
    expect(() => parseLogLines(`${line(1)}\n{"type":"tr\n${line(2)}\n`, 'run-log.jsonl')).toThrow(/run log 'run-log.jsonl' line 2 is not a log record/);
  });

  it('truncateLog keeps records up to the step, drops the torn line, and rewrites nothing when there is nothing to drop', async () => {
    const dir = freshDir();
    const run = new RunDirectory(dir);
    writeFileSync(run.logPath, `${line(1)}\n${line(2)}\n${line(3)}\n{"ty`);
    expect(await run.truncateLog(2)).toBe(2);
    expect(readFileSync(run.logPath, 'utf8')).toBe(`${line(1)}\n${line(2)}\n`);
    expect(await run.truncateLog(2)).toBe(0);
  });
});

describe('run config', () => {
  it('accepts the documented optional key nBuckets and validates train.reversible', () => {
    expect(validateRunConfig({ model: { nBuckets: 8 } }).model.nBuckets).toBe(8);
    expect(() => validateRunConfig({ model: { nBuckets: 7 } })).toThrow(/model.nBuckets' must be even/);
    expect(validateRunConfig({}).train.reversible).toBe(true);
    expect(validateRunConfig({ train: { reversible: false } }).train.reversible).toBe(false);
    expect(() => validateRunConfig({ train: { reversible: 'no' } })).toThrow(/train.reversible' must be true or false/);
    expect(() => validateRunConfig({ model: { nBucket: 8 } })).toThrow(/'model.nBucket' is unknown; allowed: .*nBuckets/);
  });

  it('firstDifference names the first differing field by its dotted path', () => {
    const a = validateRunConfig({});
    const b = validateRunConfig({ model: { attention: ['local', 'full'] } });
    expect(firstDifference(a, a)).toBeUndefined();
    expect(firstDifference(a, b)).toEqual({ field: 'model.attention[1]', left: 'lsh', right: 'full' });
  });
});
