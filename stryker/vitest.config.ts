/**
 * Vitest settings for the first pass of a mutation run: the project's config with test files
 * sharing one worker and module registry (no per-file isolation: a fresh worker per file and run
 * costs more than the tests here). Stryker switches mutants at run time through a global, so cached
 * modules still see the active mutant (import-time "static" mutants are ignored, see the config).
 * A failing fast-check property stops at its first counterexample (fast-check.setup.ts).
 */
import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../vitest.config.ts';

export default mergeConfig(base, defineConfig({ test: { isolate: false, setupFiles: ['stryker/fast-check.setup.ts'] } }));
