/** Attention layers (LSH, full, local), their cores and host-array functions. */
export { LSHSelfAttention, FullAttention, LocalAttention } from './layers.ts';
export type { LSHSelfAttentionOptions, FullAttentionOptions, LocalAttentionOptions } from './layers.ts';
export { lshAttention, fullAttention, buildLshGraph, defaultRunner } from './api.ts';
export type { LshAttentionOptions, LshAttentionResult, FullAttentionFnOptions, AttentionShape, LshGraph } from './api.ts';
export { hashBuckets, drawRotations, rotationShape } from './hashing.ts';
export { lshAttend, sortByBuckets, type LshSort, type LshExtras } from './lsh.ts';
export { fullAttend, localAttend, type FullAttendOptions, type LocalAttendOptions } from './full.ts';
export { resolveLsh, checkLshOptions, type LshOptions, type ResolvedLsh } from './options.ts';
