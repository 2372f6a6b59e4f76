/**
 * Vitest settings for the first pass of a mutation run: the project's config with test files
 * sharing one worker and module registry (no per-file isolation: a fresh worker per file and run
 * costs more than the tests here). Stryker switches mutants through a global that module-level
 * code reads only once, at import, so mutants in import-time code ("static" mutants) cannot be
 * judged here: stryker/mutate.mjs re-tests them in a second, isolated pass.
 */
import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../vitest.config.ts';

export default mergeConfig(base, defineConfig({ test: { isolate: false } }));
