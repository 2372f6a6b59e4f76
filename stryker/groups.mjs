/**
 * Mutation-testing groups: each group mutates a few source files and runs only the test folders
 * meant to catch bugs in them, so a score says how well those tests pin those files down.
 */
export const groups = {
  grad: {
    mutate: ['compiler/grad/grad.ts', 'compiler/grad/vjp-rules.ts'],
    testFiles: ['test/grad/**/*.test.ts', 'test/primitives/**/*.test.ts'],
  },
  attention: {
    mutate: ['reformer/attention/lsh.ts', 'reformer/attention/hashing.ts'],
    testFiles: ['test/attention/**/*.test.ts'],
  },
  // The memory schedules: regions in the IR, honoured by grad, reported by saved.ts, checked by verify.
  reversible: {
    mutate: ['compiler/grad/grad.ts', 'compiler/grad/saved.ts', 'dsl/reversible.ts', 'dsl/chunked.ts', 'reformer/verify.ts'],
    testFiles: ['test/reversible/**/*.test.ts', 'test/chunked/**/*.test.ts', 'test/grad/**/*.test.ts'],
  },
  fuse: {
    mutate: ['compiler/fuse/*.ts'],
    testFiles: ['test/compile/plan.test.ts', 'test/compile/fuse-*.test.ts', 'test/compile/views.test.ts', 'test/compile/foundation.test.ts', 'test/compile/layers.test.ts'],
  },
  codegen: {
    mutate: ['compiler/codegen/*.ts'],
    testFiles: ['test/compile/**/*.test.ts', 'test/templates/**/*.test.ts'],
  },
  optim: {
    mutate: ['runtime/optim/*.ts'],
    testFiles: ['test/runtime/optim*.test.ts'],
  },
  checkpoint: {
    mutate: ['runtime/checkpoint.ts'],
    testFiles: ['test/runtime/checkpoint*.test.ts', 'test/runtime/safetensors.test.ts'],
  },
};
