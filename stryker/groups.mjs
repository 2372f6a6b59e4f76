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
    // Plan-level tests and the host-run kernels (no gpu.js): the compiled-path files compile
    // kernels for seconds per test, which a mutant's covering run would repeat for hours.
    testFiles: ['test/compile/plan.test.ts', 'test/compile/fuse-*.test.ts', 'test/compile/codegen-*.test.ts'],
  },
  codegen: {
    mutate: ['compiler/codegen/*.ts'],
    // The kernel IR printer and the host-run kernels (sources executed as JavaScript), for speed as above.
    testFiles: ['test/compile/kernel-ir.test.ts', 'test/compile/codegen-*.test.ts', 'test/compile/plan.test.ts', 'test/compile/fuse-*.test.ts'],
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
