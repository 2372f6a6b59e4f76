/**
 * Registry of benchmark suites run by `npm run bench -- <suite>`. A suite module registers itself
 * here; add a line to `loaders` below to make a new suite (e.g. memory, attention) reachable.
 */
export interface SuiteFlags {
  json: boolean;
  quick: boolean;
  /** Extra arguments the dispatcher did not consume. */
  rest: string[];
}

export interface Suite {
  name: string;
  description: string;
  /** Runs the suite, printing a table (or JSON when flags.json); returns the JSON-able result. */
  run(flags: SuiteFlags): Promise<unknown>;
}

/** Suites are loaded lazily so one suite's heavy imports (TF.js) never slow another down. */
export const loaders: Record<string, () => Promise<Suite>> = {
  kernels: async () => (await import('./kernels.ts')).kernelsSuite,
  memory: async () => (await import('./memory.ts')).memorySuite,
  attention: async () => (await import('./attention.ts')).attentionSuite,
  train: async () => (await import('./train.ts')).trainSuite,
  generate: async () => (await import('./generate.ts')).generateSuite,
  browser: async () => (await import('./browser.ts')).browserSuite,
};

/** Adds a suite at runtime (for suites defined outside this file). */
export function registerSuite(name: string, load: () => Promise<Suite>): void {
  if (loaders[name]) throw new Error(`bench: suite '${name}' is already registered`);
  loaders[name] = load;
}
