/**
 * Public API of reformer-ts: the core (DSL, IR, grad, compiler, runtime, optimisers, Reformer
 * layers, training loop, safetensors as bytes). It imports no Node built-in, so it bundles for a
 * browser page; files, checkpoint directories, run directories and corpus loaders are in the
 * Node entry, node.ts (`reformer-ts/node`).
 */
export * from './dsl/index.ts';
export { Graph, Tensor, ShapeError, OptionError, printGraph } from './compiler/ir/graph.ts';
export type { DType, Shape, Node, Op } from './compiler/ir/types.ts';
export { evaluate } from './compiler/reference/evaluate.ts';
export { hostTensor, type HostTensor } from './compiler/ir/host-tensor.ts';
export { grad, vjp, type VjpGraph } from './compiler/grad/grad.ts';
export { ReferenceRunner, type GraphRunner, type Feeds } from './runtime/runner.ts';
export { createRunner, CompiledRunner, type RunnerStats, type CompiledRunnerOptions } from './runtime/compiled-runner.ts';
export { openBackend, probeBackend, backendPreference, BackendUnavailableError, type BackendName, type ConcreteBackend } from './runtime/backend.ts';
export { Reversible, ReversibleStack } from './dsl/reversible.ts';
export { Chunked } from './dsl/chunked.ts';
export { verifyReversible, type VerifyReversibleOptions, type VerifyReversibleResult } from './reformer/verify.ts';
export { savedForBackward, reversibleLeaks } from './compiler/grad/saved.ts';
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
export { encodeSafetensors, decodeSafetensors, SafetensorsError, type SafetensorsFile } from './runtime/safetensors.ts';
export { encodeBytes, decodeBytes, idsToBytes, BYTE_VOCAB_SIZE, PAD_ID, EOS_ID } from './reformer/data/bytes.ts';
