/** Public API of reformer-ts. */
export * from './dsl/index.ts';
export { Graph, Tensor, ShapeError, OptionError, printGraph } from './compiler/ir/graph.ts';
export type { DType, Shape, Node, Op } from './compiler/ir/types.ts';
export { evaluate, hostTensor, type HostTensor } from './compiler/reference/evaluate.ts';
export { grad, vjp, type VjpGraph } from './compiler/grad/grad.ts';
export { ReferenceRunner, type GraphRunner, type Feeds } from './runtime/runner.ts';
