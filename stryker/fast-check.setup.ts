/**
 * Mutation runs only: a failing property ends at its first counterexample instead of shrinking it.
 * A mutant is killed by the failure itself; shrinking would re-run the property (compiling kernels
 * each time) for a smaller example nobody reads.
 */
import fc from 'fast-check';

fc.configureGlobal({ ...fc.readConfigureGlobal(), endOnFailure: true });
