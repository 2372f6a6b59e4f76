/**
 * Model modules for `reformer verify` and `reformer compile` (cli/load-model.ts): the contract's
 * checks each give one line naming the file and what is missing; the shipped examples load,
 * verify (reference and a compiled backend) and compile (forward and train graphs).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { compileCommand } from '../../cli/commands/compile.ts';
import { verifyCommand } from '../../cli/commands/verify.ts';
import { checkModelModule, isModelModulePath, loadModelModule } from '../../cli/load-model.ts';
import { Fn } from '../../dsl/combinators.ts';
import { Dense } from '../../dsl/layers/dense.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'reformer-module-'));
  dirs.push(dir);
  return dir;
}

/** A module with no imports: a hand-written identity layer (so it loads from any folder). */
const IDENTITY = `
export const model = { name: 'Identity', nIn: 1, nOut: 1, init: () => ({}), apply: (_p, xs) => xs };
export const inputs = [{ shape: [2, 3] }];
`;

describe('the model-module contract', () => {
  const ok = { model: Dense(3), inputs: [{ shape: [2, 4] }] };
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no model', { inputs: ok.inputs }, /^model module 'm\.ts': missing export 'model' \(a Layer/],
    ['model not a layer', { model: { name: 'x' }, inputs: ok.inputs }, /export 'model' is not a Layer \(needs name, nIn, nOut, init and apply\)/],
    ['no inputs', { model: ok.model }, /missing export 'inputs' .*; Dense takes 1$/],
    ['inputs not a list', { model: ok.model, inputs: { shape: [2, 4] } }, /export 'inputs' must be a list of InputSpec, got object/],
    ['too many inputs', { model: ok.model, inputs: [{ shape: [2, 4] }, { shape: [2, 4] }] }, /export 'inputs' lists 2 input\(s\), but Dense takes 1/],
    ['bad shape', { model: ok.model, inputs: [{ shape: [2, -4] }] }, /export 'inputs\[0\]' has shape \[2,-4\]; expected a list of positive integers/],
    ['bad dtype', { model: ok.model, inputs: [{ shape: [2, 4], dtype: 'f16' }] }, /export 'inputs\[0\]' has dtype "f16"; expected 'f32' or 'i32'/],
    ['bad seed', { ...ok, seed: 1.5 }, /export 'seed' must be an integer, got 1.5/],
    ['bad intHigh', { ...ok, intHigh: 0 }, /export 'intHigh' must be a positive integer, got 0/],
    ['bad loss', { ...ok, loss: 3 }, /export 'loss' is not a Layer/],
    ['bad params', { ...ok, params: 7 }, /export 'params' must be a parameter tree, got number/],
  ];
  for (const [what, exports, message] of cases) {
    it(`${what}: one line naming the file and what is missing`, () => {
      let error: Error | undefined;
      try {
        checkModelModule('m.ts', exports);
      } catch (e) {
        error = e as Error;
      }
      expect(error?.name).toBe('ModelModuleError');
      expect(error?.message).toMatch(message);
      expect(error?.message).not.toContain('\n');
    });
  }

  it('fills defaults: params from model.init(seed), intHigh 2, no loss', () => {
    const m = checkModelModule('m.ts', ok);
    expect(m.seed).toBe(0);
    expect(m.intHigh).toBe(2);
    expect(m.loss).toBeUndefined();
    expect(Object.keys(m.params as object).sort()).toEqual(['b', 'w']);
    const seeded = checkModelModule('m.ts', { ...ok, seed: 3, loss: Fn('L', (y) => y!) });
    expect(seeded.loss?.name).toBe('L');
  });

  it('tells module paths from other model arguments', () => {
    expect(['a.ts', './x/y.mts', 'm.js', 'm.mjs'].every(isModelModulePath)).toBe(true);
    expect(['default', 'runs/default', 'config.json'].some(isModelModulePath)).toBe(false);
  });

  it('loading: a missing file, a module that fails to load, and a good one outside the project', async () => {
    const dir = scratch();
    await expect(loadModelModule(join(dir, 'none.ts'))).rejects.toThrow(/model module '.*none\.ts' does not exist/);
    writeFileSync(join(dir, 'broken.ts'), "import './nowhere.ts';\nexport const model = 1;\n");
    await expect(loadModelModule(join(dir, 'broken.ts'))).rejects.toThrow(/model module '.*broken\.ts' failed to load: /);
    writeFileSync(join(dir, 'empty.ts'), 'export const other = 1;\n');
    await expect(loadModelModule(join(dir, 'empty.ts'))).rejects.toThrow(/missing export 'model'/);
    writeFileSync(join(dir, 'identity.ts'), IDENTITY);
    const m = await loadModelModule(join(dir, 'identity.ts'));
    expect(m.model.name).toBe('Identity');
    expect(m.inputs).toEqual([{ shape: [2, 3] }]);
  });
});

describe('the CLI on model modules', () => {
  it('verify passes the shipped examples on the reference and on a compiled backend', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      for (const [example, backend] of [['examples/reversible-mlp.ts', 'reference'], ['examples/reversible-mlp.ts', 'cpu'], ['examples/tiny-reformer.ts', 'webasm']] as const) {
        expect(await verifyCommand(example, { runs: 2, batch: 1, backend, seed: 1 }), `${example} on ${backend}`).toBe(true);
      }
      expect(log.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/model module 'examples\/tiny-reformer\.ts' \(Serial\) at inputs i32\[2,32\]/);
    } finally {
      log.mockRestore();
    }
  });

  it("verify of a module without a reversible stack says so", async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'identity.ts'), IDENTITY);
    await expect(verifyCommand(join(dir, 'identity.ts'), { runs: 1, batch: 1, backend: 'reference' })).rejects.toThrow(/Identity holds no Reversible block to verify/);
  });

  it('compile writes the forward and train graphs of a module; errors name the missing piece', async () => {
    const dir = scratch();
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await compileCommand({ model: 'examples/reversible-mlp.ts', emit: join(dir, 'fwd') });
      const forward = readFileSync(join(dir, 'fwd', 'kernels.ts'), 'utf8');
      expect(forward).toContain("Serial forward graph of model module 'examples/reversible-mlp.ts' (inputs f32[4,16])");
      await compileCommand({ model: 'examples/reversible-mlp.ts', emit: join(dir, 'train'), graph: 'train' });
      const train = readFileSync(join(dir, 'train', 'kernels.ts'), 'utf8');
      expect(train).toContain('train-step graph');
      expect((train.match(/"key": ?"%\d+"/g) ?? []).length).toBeGreaterThan((forward.match(/"key": ?"%\d+"/g) ?? []).length);
      writeFileSync(join(dir, 'identity.ts'), IDENTITY);
      await expect(compileCommand({ model: join(dir, 'identity.ts'), emit: dir, graph: 'train' })).rejects.toThrow(/--graph train: model module '.*identity\.ts' has no export 'loss'/);
      await expect(compileCommand({ model: join(dir, 'identity.ts'), emit: dir, graph: 'logits' })).rejects.toThrow(/--graph must be 'forward' or 'train' for a model module, got 'logits'/);
      await expect(compileCommand({ model: join(dir, 'missing.ts'), emit: dir })).rejects.toThrow(/model module '.*missing\.ts' does not exist/);
    } finally {
      log.mockRestore();
    }
  });

  it('the installed CLI (under tsx) loads a module as ESM, or says how to make it one', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'identity.ts'), IDENTITY);
    writeFileSync(join(dir, 'identity.mts'), IDENTITY);
    const cli = (file: string) =>
      promisify(execFile)(process.execPath, [resolve('bin/reformer.js'), 'verify', file], { cwd: dir }).then(
        () => '',
        (e: { stderr: string }) => e.stderr.trim(),
      );
    expect(await cli('identity.ts')).toBe(
      `reformer: model module 'identity.ts' was not loaded as an ES module: give its folder a package.json with "type": "module", or name it .mts`,
    );
    expect(await cli('identity.mts')).toMatch(/Identity holds no Reversible block to verify$/);
  });
});
