export * from './bytes.ts';
export * from './split.ts';
export * from './duplication.ts';
export * from './brown.ts';
