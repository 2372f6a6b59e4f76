// @ts-check
/**
 * One Stryker config for every group; `npm run mutate -- <group>` (stryker/mutate.mjs) sets
 * MUTATE_GROUP. Concurrency 1: mutation runs share the machine with everything else.
 */
import { groups } from './groups.mjs';

const name = process.env.MUTATE_GROUP ?? '';
const group = groups[/** @type {keyof typeof groups} */ (name)];
if (group === undefined) throw new Error(`stryker: unknown group '${name}' (groups: ${Object.keys(groups).join(', ')})`);
/** Where this run's sandbox and reports go: the group's name, or `--as NAME` (stryker/mutate.mjs). */
const report = process.env.MUTATE_REPORT ?? name;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: process.env.MUTATE_VITEST_CONFIG ?? 'stryker/vitest.config.ts', related: false },
  coverageAnalysis: 'perTest',
  mutate: group.mutate,
  testFiles: group.testFiles,
  concurrency: Number(process.env.MUTATE_CONCURRENCY ?? 1),
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${report}.html` },
  jsonReporter: { fileName: `reports/mutation/${report}.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true },
  tempDirName: `.stryker-tmp/${report}`,
  ignorePatterns: ['dist', 'runs', 'scratch', 'reports', '.stryker-tmp', 'test/fixtures/hf'],
  cleanTempDir: 'always',
  // `--incremental` reuses this file's results for mutants whose code and tests did not change.
  incrementalFile: `reports/mutation/${report}.incremental.json`,
  thresholds: { high: 90, low: 85, break: null },
  timeoutMS: 10_000,
  // Mutants in import-time code (module-level constants and tables) are never activated by the
  // vitest runner here, isolated or not: they always "survive". They are reported as Ignored and
  // listed in docs/testing.md instead of being counted as gaps.
  ignoreStatic: true,
};
