export * as ops from './ops.ts';
export * from './layer.ts';
export * from './combinators.ts';
export * from './layers/dense.ts';
export * from './layers/layer-norm.ts';
export * from './layers/activations.ts';
export * from './layers/embedding.ts';
export * from './layers/lm.ts';
export * from './layers/glu.ts';
