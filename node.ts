/**
 * Node entry of reformer-ts (`reformer-ts/node`): everything in the core entry (index.ts) plus the
 * parts that need Node's file system — checkpoint directories, run directories, safetensors
 * files, corpus loaders. The CLI imports this entry; a browser bundle imports index.ts only.
 */
export * from './index.ts';
export { saveCheckpoint, loadCheckpoint, listCheckpoints, latestCheckpoint, CheckpointError } from './runtime/checkpoint.ts';
export { readSafetensors } from './node/safetensors-file.ts';
export { readTextSource, type TextSource } from './node/text-source.ts';
export { RunDirectory, loadRun, type LoadedRun } from './reformer/train/run-dir.ts';
export { openDataSource } from './reformer/train/data-source.ts';
export { brownCorpusText, brownDocuments, type BrownOptions } from './reformer/data/brown.ts';
export { importHfCheckpoint, exportHfCheckpoint, type ImportOptions, type ImportResult, type ExportResult } from './reformer/interop/hf-convert.ts';
export { fromHfConfig, toHfConfig, InteropError } from './reformer/interop/hf-config.ts';
export { hfMapping, toHfTensors, fromHfTensors, type MappingRow } from './reformer/interop/hf-mapping.ts';
