/**
 * Public entry of the runtime: runners for the reference evaluator and the compiled gpu.js path.
 *
 * @example
 * const runner = await createRunner({ backend: 'auto' });
 * const [y] = await runner.run(graph, { x: hostTensor([2, 3], [1, 2, 3, 4, 5, 6]) });
 * console.log(runner.description, runner.stats);   // gpu.js webasm (fused-threaded) …
 */
export { ReferenceRunner, type Feeds, type GraphRunner } from './runner.ts';
export { CompiledRunner, createRunner, type CompiledRunnerOptions, type ExecutorKind, type RunnerStats } from './compiled-runner.ts';
export { BackendUnavailableError, openBackend, probeBackend, type Backend, type BackendName, type ConcreteBackend } from './backend.ts';
export { planMemory, type MemoryPlan } from './memory-plan.ts';
export { compile, CompileError, type CompiledGraph } from '../compiler/codegen/compile.ts';
export { planKernels, printPlan, type KernelPlan, type KernelGroup } from '../compiler/fuse/plan.ts';
