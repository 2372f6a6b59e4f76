/**
 * `reformer train --resume` through the real CLI: runs killed with SIGKILL at chosen points (before
 * the first checkpoint, at every stage of a checkpoint save, halfway through a log line) and at a
 * random moment, each resumed with no flag but --out, end with the same run log and bit-identical
 * weights as an uninterrupted run; the manifest is the truth for everything else.
 */
import { existsSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliProcess, errorLine, finalState, logRecords, runCli, snapshot, stopAll, tempFolder, tinySetup } from './support.ts';

const tmp = tempFolder('reformer-cli-resume-');
afterAll(() => {
  stopAll();
  tmp.cleanup();
});
const train = { steps: 10, checkpointEvery: 3, evalEvery: 4 };
const { config, data } = tinySetup(tmp.dir, train);
// Flags that differ from every default, so a resume that forgot one of them would show.
const fresh = (out: string, dataFile = data) => ['train', '--config', config, '--data', dataFile, '--seed', '7', '--backend', 'reference', '--out', out];
const resume = (out: string) => ['train', '--out', out, '--resume'];
const reference = join(tmp.dir, 'reference');

beforeAll(async () => {
  const r = await runCli(fresh(reference));
  expect(r.code, r.stderr).toBe(0);
});

describe('reformer train --resume (child processes)', () => {
  it('the uninterrupted run logs every step once, evaluations at 4, 8 and 10', () => {
    const records = logRecords(reference);
    expect(records.filter((r) => r.type === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(records.filter((r) => r.type === 'eval').map((r) => r.step)).toEqual([4, 8, 10]);
    const manifest = JSON.parse(readFileSync(join(reference, 'run.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ seed: 7, backend: { requested: 'reference' }, data: { kind: 'path', path: data }, config: { train: { steps: 10, reversible: true } } });
    expect(typeof (manifest.data as { sha256: string }).sha256).toBe('string');
  });

  it('killed (SIGKILL) before the first checkpoint, mid-save, mid-log-append and at a random moment, then resumed with only --out: same log and weights as the uninterrupted run', async () => {
    const out = join(tmp.dir, 'killed');
    const killedAt = async (args: string[], point: string) => {
      const r = await runCli(args, { REFORMER_CRASH_AT: point });
      expect(r.signal, `${point}: ${r.stdout}${r.stderr}`).toBe('SIGKILL');
      expect(existsSync(join(out, 'run.lock')), 'a killed process leaves its lock').toBe(true);
      return r;
    };
    // Halfway through step 2's log line: no checkpoint yet, a torn last line.
    await killedAt(fresh(out), 'log-append:2');
    expect(readFileSync(join(out, 'run-log.jsonl'), 'utf8').endsWith('\n')).toBe(false);

    // Mid-save of the first checkpoint (files written, not yet committed): still no checkpoint.
    let r = await killedAt(resume(out), 'files-written:3');
    expect(r.stdout).toContain('reclaimed a stale lock');
    expect(r.stdout).toContain('no checkpoint in');
    expect(r.stdout).toContain('starting the run over from step 1');

    // Step 6's directory committed but `latest` not yet written: the run before never saved step 3.
    r = await killedAt(resume(out), 'dir-committed:6');
    expect(r.stdout).toContain('starting the run over from step 1');
    // `latest` still names step 3; resuming from it drops the logged steps 4-6 and eval 4.
    r = await killedAt(resume(out), 'pointer-written:6');
    expect(r.stdout).toContain('resuming from the checkpoint at step 3');
    expect(r.stdout).toContain('dropped 4 record(s) after step 3');
    r = await killedAt(resume(out), 'log-append:8');
    expect(r.stdout).toContain('resuming from the checkpoint at step 6');

    // A kill -9 from outside at a random moment after training has started.
    const delay = Math.floor(Math.random() * 300);
    const victim = new CliProcess(resume(out));
    await victim.waitFor(/resuming from the checkpoint at step 6/);
    await new Promise((res) => setTimeout(res, delay));
    victim.child.kill('SIGKILL');
    await victim.done;

    r = await runCli(resume(out));
    expect(r.code, `after a kill at +${delay} ms: ${r.stdout}${r.stderr}`).toBe(0);
    expect(logRecords(out), `kill at +${delay} ms`).toEqual(logRecords(reference));
    expect(finalState(out)).toEqual(finalState(reference));
    expect(existsSync(join(out, 'run.lock'))).toBe(false);
  });

  it('--resume on a finished run says so, exits 0 and appends nothing', async () => {
    const before = snapshot(reference);
    const r = await runCli(resume(reference));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('is finished: its last checkpoint is step 10 of 10');
    expect(snapshot(reference)).toEqual(before);
  });

  it('--resume refuses flags that contradict the manifest, naming the field, and touches nothing', async () => {
    const before = snapshot(reference);
    const other = join(tmp.dir, 'other.txt');
    writeFileSync(other, 'a different text, long enough for two windows of sixteen bytes. '.repeat(4));
    const bigger = join(tmp.dir, 'bigger.json');
    writeFileSync(bigger, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), model: { ...JSON.parse(readFileSync(config, 'utf8')).model, dFF: 64 } }));
    const cases: [string[], RegExp][] = [
      [['--seed', '8'], /--seed gives seed 8 but the run .* has 7/],
      [['--backend', 'cpu'], /--backend gives backend 'cpu' but the run .* has 'reference'/],
      [['--data', other], /--data contradicts the run .*other\.txt.*fox\.txt/],
      [['--config', bigger], /--config '.*bigger\.json' gives model\.dFF 64 but the run .* has 32/],
      [['--no-reversible', '--steps', '12'], /--no-reversible gives train\.reversible false but the run .* has true/],
      [['--eval-every', '5'], /--eval-every gives train\.evalEvery 5 but the run .* has 4/],
      [['--force'], /--resume continues the run in --out and --force replaces it/],
    ];
    // Refusals only read, so they may run side by side.
    const results = await Promise.all(cases.map(([flags]) => runCli([...resume(reference), ...flags])));
    results.forEach((r, i) => {
      expect(r.code, cases[i]![0].join(' ')).toBe(1);
      expect(errorLine(r)).toMatch(cases[i]![1]);
    });
    // Repeating the run's own settings is not a contradiction (here: finished, nothing to do).
    const same = await runCli([...fresh(reference), '--resume']);
    expect(same.code, same.stderr).toBe(0);
    expect(snapshot(reference)).toEqual(before);
  });

  it('--resume on a missing directory is an error', async () => {
    const r = await runCli(resume(join(tmp.dir, 'no-such-run')));
    expect(r.code).toBe(1);
    expect(errorLine(r)).toMatch(/run directory '.*no-such-run' does not exist/);
    expect(existsSync(join(tmp.dir, 'no-such-run'))).toBe(false);
  });

  it('--resume --steps extends a run; a changed data file is refused by its hash', async () => {
    const dataCopy = join(tmp.dir, 'fox-copy.txt');
    writeFileSync(dataCopy, readFileSync(data));
    const out = join(tmp.dir, 'extended');
    expect((await runCli([...fresh(out, dataCopy), '--steps', '4'])).code).toBe(0);
    const r = await runCli([...resume(out), '--steps', '6']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('run length changed from 4 to 6 steps');
    expect(logRecords(out).filter((x) => x.type === 'train').map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 6]);
    // Steps 1-6 of a 6-step run equal the first six of the 10-step run (the schedule ignores the length).
    expect(logRecords(out).filter((x) => x.type === 'train')).toEqual(logRecords(reference).filter((x) => x.type === 'train').slice(0, 6));
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).config.train.steps).toBe(6);

    appendFileSync(dataCopy, 'one more sentence.');
    const before = snapshot(out);
    const changed = await runCli([...resume(out), '--steps', '8']);
    expect(changed.code).toBe(1);
    expect(errorLine(changed)).toMatch(/the data '.*fox-copy\.txt' changed since the run started \(SHA-256/);
    expect(snapshot(out)).toEqual(before);
  });

  it('eval defaults to the held-out split of the run’s own data; generate escapes control bytes and notes a cut prompt', async () => {
    const ev = await runCli(['eval', '--checkpoint', reference, '--backend', 'reference', '--batches', '1']);
    expect(ev.code, ev.stderr).toBe(0);
    expect(ev.stdout).toContain('fox.txt');
    expect(ev.stdout).not.toContain('Brown');

    const gen = await runCli(['generate', '--checkpoint', reference, '--backend', 'reference', '--length', '2', '--prompt', `\u001b[2J${'x'.repeat(20)}`]);
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stdout.startsWith(`\\x1b[2J${'x'.repeat(20)}`)).toBe(true);
    expect(gen.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(gen.stderr).toContain('the prompt is 24 bytes; the model sees only the last 8');
  });
});
