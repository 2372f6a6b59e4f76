/** Public API of reformer-ts. */
export * from './dsl/index.ts';
export { Graph, Tensor, ShapeError, OptionError, printGraph } from './compiler/ir/graph.ts';
export type { DType, Shape, Node, Op } from './compiler/ir/types.ts';
export { evaluate } from './compiler/reference/evaluate.ts';
export { hostTensor, type HostTensor } from './compiler/ir/host-tensor.ts';
export { grad, vjp, type VjpGraph } from './compiler/grad/grad.ts';
export { ReferenceRunner, type GraphRunner, type Feeds } from './runtime/runner.ts';
export { createRunner, CompiledRunner, type RunnerStats, type CompiledRunnerOptions } from './runtime/compiled-runner.ts';
export { openBackend, BackendUnavailableError, type BackendName } from './runtime/backend.ts';
export { Reversible, ReversibleStack } from './dsl/reversible.ts';
export { Chunked } from './dsl/chunked.ts';
export { compileReversibleStack } from './compiler/reversible/compile.ts';
export { verifyReversible, type VerifyReversibleOptions, type VerifyReversibleResult } from './reformer/verify.ts';
export {
  LSHSelfAttention,
  FullAttention,
  LocalAttention,
  lshAttention,
  fullAttention,
  type LshAttentionOptions,
  type LshAttentionResult,
} from './reformer/attention/index.ts';
export { AxialPositionalEmbedding } from './reformer/layers/axial-positional.ts';
export { buildModel } from './reformer/model.ts';
export { defaultRunConfig, validateRunConfig, type RunConfig, type ModelConfig, type TrainConfig } from './reformer/config.ts';
export { train, evaluateModel, type TrainOptions, type TrainRecord } from './reformer/train/trainer.ts';
export { generate } from './reformer/generate.ts';
export { Adam, Adafactor } from './runtime/optim/index.ts';
export { saveCheckpoint, loadCheckpoint } from './runtime/checkpoint.ts';
export { readSafetensors, encodeSafetensors, decodeSafetensors } from './runtime/safetensors.ts';
