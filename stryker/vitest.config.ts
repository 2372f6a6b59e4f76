/**
 * Vitest settings for mutation runs: the project's config, with test files sharing one module
 * registry (no per-file isolation) so each mutant's run skips re-importing the compiler. Mutants
 * are switched at run time by Stryker, so a cached module still sees the active one.
 */
import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../vitest.config.ts';

export default mergeConfig(base, defineConfig({ test: { isolate: false } }));
