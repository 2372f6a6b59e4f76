/**
 * `--pipeline-memory`: what the compiled runner does with its gpu.js pipelines between runs.
 * 'auto' keeps them while a graph's pipelines fit in 2 GiB and builds them per run above that;
 * 'retained' always keeps them (fastest, most memory); 'per-run' builds each just before it runs
 * (least memory, slower). It changes memory and speed, never values, so runs do not record it.
 * No imports: the CLI reads it before loading any command.
 */
export const PIPELINE_MEMORY_CHOICES = ['auto', 'retained', 'per-run'] as const;
export type PipelineMemoryChoice = (typeof PIPELINE_MEMORY_CHOICES)[number];
