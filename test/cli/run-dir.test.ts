/**
 * One run per directory, through the real CLI: a second training into a used --out is refused and
 * the first run stays intact; --force moves it aside; two trainings at once never mix; SIGINT saves a
 * checkpoint from which --resume continues exactly.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliProcess, errorLine, finalState, logRecords, runCli, snapshot, stopAll, tempFolder, tinySetup } from './support.ts';

const tmp = tempFolder('reformer-cli-rundir-');
afterAll(() => {
  stopAll();
  tmp.cleanup();
});
const { config, data } = tinySetup(tmp.dir, { steps: 6, checkpointEvery: 2, evalEvery: 3 });
const trainArgs = (out: string, cfg = config) => ['train', '--config', cfg, '--data', data, '--backend', 'reference', '--out', out];

describe('run directories (child processes)', () => {
  it('training twice into one --out is refused and leaves the first run intact; --force moves it aside (and --no-reversible is recorded)', async () => {
    const out = join(tmp.dir, 'twice');
    expect((await runCli(trainArgs(out))).code).toBe(0);
    const first = snapshot(out);
    const again = await runCli([...trainArgs(out), '--seed', '1']);
    expect(again.code).toBe(1);
    expect(errorLine(again)).toMatch(/--out '.*twice' already holds a run; continue it with --resume, choose another --out, or start over with --force/);
    expect(snapshot(out)).toEqual(first);

    const forced = await runCli([...trainArgs(out), '--seed', '1', '--force', '--no-reversible']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('(plain backprop)');
    const aside = readdirSync(tmp.dir).filter((n) => n.startsWith('twice.previous-'));
    expect(aside).toHaveLength(1);
    expect(forced.stdout).toContain(aside[0]);
    expect(snapshot(join(tmp.dir, aside[0]!))).toEqual(first);
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))).toMatchObject({ seed: 1, config: { train: { reversible: false } } });
    expect(logRecords(out).filter((r) => r.type === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('two trainings started at once on one --out: one is refused, the log holds one run', async () => {
    const out = join(tmp.dir, 'together');
    const [a, b] = await Promise.all([runCli(trainArgs(out)), runCli(trainArgs(out))]);
    const codes = [a!.code, b!.code].sort();
    expect(codes).toEqual([0, 1]);
    const loser = a!.code === 1 ? a! : b!;
    // Refused by the lock, or (if the winner already finished) because the directory holds a run.
    expect(errorLine(loser)).toMatch(/is in use by another training \(pid \d+ on .*\)|already holds a run/);
    const records = logRecords(out);
    expect(records.filter((r) => r.type === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(records.filter((r) => r.type === 'eval').map((r) => r.step)).toEqual([3, 6]);
    expect(existsSync(join(out, 'run.lock'))).toBe(false);
  });

  it('a second training on a directory in use is refused by the lock (with resume too), readers are not blocked, SIGTERM saves', async () => {
    // Long enough never to finish here: it is stopped with SIGTERM once the checks are done.
    const endless = tinySetup(tmp.dir, { steps: 100000, checkpointEvery: 5, evalEvery: 100000 }).config;
    const out = join(tmp.dir, 'staggered');
    const first = new CliProcess(trainArgs(out, endless));
    await first.waitFor(/step 1\/100000/);
    const [second, resumed] = await Promise.all([runCli([...trainArgs(out, endless), '--force']), runCli(['train', '--out', out, '--resume'])]);
    for (const r of [second, resumed]) {
      expect(r.code).toBe(1);
      expect(errorLine(r)).toMatch(new RegExp(`is in use by another training \\(pid ${first.child.pid} on `));
    }
    const plot = await runCli(['plot', out, '--out', join(tmp.dir, 'while-training.svg')]);
    expect(plot.code, plot.stderr).toBe(0);
    const evaluated = await runCli(['eval', '--checkpoint', out, '--backend', 'reference', '--batches', '1']);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    first.child.kill('SIGTERM');
    const done = await first.done;
    expect(done.code, done.stderr).toBe(143);
    const stoppedAt = Number(/SIGTERM: stopped after step (\d+); checkpoint saved/.exec(done.stdout)?.[1]);
    expect(readFileSync(join(out, 'latest'), 'utf8').trim()).toBe(`step-${stoppedAt}`);
    const steps = logRecords(out).map((r) => r.step);
    expect(steps).toEqual(Array.from({ length: steps.length }, (_, i) => i + 1));
  });

  it('SIGINT mid-run saves a checkpoint and prints how to resume; --resume then matches the uninterrupted run exactly', async () => {
    const cfg = tinySetup(tmp.dir, { steps: 40, checkpointEvery: 16, evalEvery: 10 }).config;
    const whole = join(tmp.dir, 'whole');
    const interrupted = join(tmp.dir, 'interrupted');
    const proc = new CliProcess(trainArgs(interrupted, cfg));
    const [reference] = await Promise.all([
      runCli(trainArgs(whole, cfg)),
      (async () => {
        await proc.waitFor(/step 1\/40/);
        proc.child.kill('SIGINT');
      })(),
    ]);
    expect(reference!.code).toBe(0);
    const r = await proc.done;
    expect(r.code, r.stdout + r.stderr).toBe(130);
    const stopped = /SIGINT: stopped after step (\d+); checkpoint saved in/.exec(r.stdout);
    expect(stopped, r.stdout).not.toBeNull();
    const step = Number(stopped![1]);
    expect(step).toBeLessThan(40);
    expect(r.stdout).toContain(`resume with: npx reformer train --out ${interrupted} --resume`);
    expect(readFileSync(join(interrupted, 'latest'), 'utf8').trim()).toBe(`step-${step}`);
    expect(existsSync(join(interrupted, 'run.lock'))).toBe(false);

    const resumed = await runCli(['train', '--out', interrupted, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`resuming from the checkpoint at step ${step}`);
    expect(logRecords(interrupted)).toEqual(logRecords(whole));
    expect(finalState(interrupted)).toEqual(finalState(whole));
  });

  it('a second SIGINT exits at once without saving and releases the lock', { retry: 2 }, async () => {
    // Signals are acted on between steps (a step is synchronous work on the reference backend). Two
    // signals sent 20 ms apart land in the same step unless the first comes in the step's last
    // 20 ms: then the stop finishes before the second arrives. Steps of this model take about
    // 0.3–0.7 s here, so that timing miss has a chance of a few percent, hence the retries; a real
    // regression fails every attempt.
    const model = { seqLen: 128, dModel: 64, dFF: 128, dHead: 32, nHashes: 2, chunkLen: 16, ffChunkLen: 32, axialShape: [16, 8], axialDims: [32, 32] };
    const cfg = tinySetup(tmp.dir, { steps: 1000, checkpointEvery: 1000, evalEvery: 1000 }, model).config;
    const out = join(tmp.dir, `twice-interrupted-${Date.now()}`);
    const proc = new CliProcess(trainArgs(out, cfg));
    await proc.waitFor(/step 1\/1000/);
    proc.child.kill('SIGINT');
    await new Promise((res) => setTimeout(res, 20));
    proc.child.kill('SIGINT');
    const r = await proc.done;
    expect(r.code).toBe(130);
    expect(r.stdout).toContain('SIGINT: stopping after this step');
    expect(errorLine(r)).toMatch(/SIGINT again: exiting without saving \(checkpoints already in .* are intact\)/);
    expect(r.stdout).not.toContain('checkpoint saved');
    expect(existsSync(join(out, 'latest'))).toBe(false);
    expect(existsSync(join(out, 'run.lock'))).toBe(false);
  });

  it('--out naming a file, or a folder that holds no run, is one clear error before any work', async () => {
    const file = join(tmp.dir, 'a-file');
    writeFileSync(file, 'not a run');
    const r = await runCli(trainArgs(file));
    expect(r.code).toBe(1);
    expect(errorLine(r)).toMatch(/--out '.*a-file' exists and is not a directory/);
    expect(readFileSync(file, 'utf8')).toBe('not a run');

    // A folder of other files is never a run to move aside, even with --force.
    const folder = join(tmp.dir, 'notes');
    mkdirSync(folder);
    writeFileSync(join(folder, 'todo.txt'), 'keep me');
    const forced = await runCli([...trainArgs(folder), '--force']);
    expect(errorLine(forced)).toMatch(/--out '.*notes' is not empty and holds no run \(todo\.txt\); choose another --out/);
    expect(readdirSync(folder)).toEqual(['todo.txt']);
    expect(readFileSync(join(folder, 'todo.txt'), 'utf8')).toBe('keep me');
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('notes.'))).toEqual([]);
  });
});
