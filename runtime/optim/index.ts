export * from './state.ts';
export * from './adam.ts';
export * from './adafactor.ts';
export * from './schedule.ts';
export * from './clip.ts';
