/**
 * `reformer train` on a real terminal (a pseudo-terminal from util-linux `script`): the progress bar
 * hides the cursor, and Ctrl-C (the terminal's own ^C, not a signal sent by hand) saves a checkpoint
 * and shows the cursor again.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempFolder, tinySetup } from './support.ts';

const hasScript = spawnSync('script', ['--version']).status === 0;
const tmp = tempFolder('reformer-cli-tty-');
afterAll(tmp.cleanup);
const bin = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'reformer.js');

describe.skipIf(!hasScript)('reformer train on a terminal', () => {
  it('Ctrl-C saves a checkpoint, restores the cursor and says how to resume', async () => {
    const { config, data } = tinySetup(tmp.dir, { steps: 100000, checkpointEvery: 100000, evalEvery: 100000 });
    const out = join(tmp.dir, 'run');
    const transcript = join(tmp.dir, 'typescript');
    const command = [process.execPath, bin, 'train', '--config', config, '--data', data, '--backend', 'reference', '--out', out].join(' ');
    const child = spawn('script', ['-qfec', command, transcript], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    const text = () => {
      try {
        return readFileSync(transcript, 'latin1');
      } catch {
        return '';
      }
    };
    try {
      // Wait until the bar has drawn a few steps (its tokens/s and ETA need a step time).
      while (!/step \d\d+\/100000/.test(text())) {
        if (child.exitCode !== null) throw new Error(`train ended early:\n${text()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.stdin.write('\u0003');
      expect(await exited).toBe(130);
    } finally {
      child.kill('SIGKILL');
    }
    const t = text();
    const hidden = t.indexOf('\u001b[?25l');
    const shown = t.lastIndexOf('\u001b[?25h');
    expect(hidden).toBeGreaterThan(-1);
    expect(shown).toBeGreaterThan(t.lastIndexOf('\u001b[?25l'));
    const stopped = /SIGINT: stopped after step (\d+); checkpoint saved in/.exec(t);
    expect(stopped, t.slice(-2000)).not.toBeNull();
    expect(t.indexOf(stopped![0])).toBeGreaterThan(shown);
    expect(t).toContain('SIGINT: stopping after this step and saving a checkpoint');
    expect(t).toContain(`resume with: npx reformer train --out ${out} --resume`);
    expect(readFileSync(join(out, 'latest'), 'utf8').trim()).toBe(`step-${stopped![1]}`);
    // The bar's ETA is our moving-average figure, formatted as 12s / 3m05s / 1h02m.
    const etas = [...t.matchAll(/ETA (\S+?)\u001b/g)].map((m) => m[1]!);
    expect(etas.length).toBeGreaterThan(0);
    for (const eta of etas) expect(eta).toMatch(/^(\?|\d+s|\d+m[0-5]\ds|\d+h[0-5]\dm)$/);
  });
});
