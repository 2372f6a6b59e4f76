/** Picks the graph runner for a `--backend` choice and says which one runs. */
import { ReferenceRunner, type GraphRunner } from '../../runtime/runner.ts';
import { createRunner } from '../../runtime/compiled-runner.ts';
import type { BackendName } from '../../runtime/backend.ts';
import type { PipelineMemoryChoice } from '../pipeline-memory.ts';

/** `pipelineMemory`: see cli/pipeline-memory.ts. */
export async function openRunner(backend: string, pipelineMemory: PipelineMemoryChoice = 'auto'): Promise<GraphRunner> {
  if (backend === 'reference') return new ReferenceRunner();
  return createRunner({ backend: backend as BackendName, pipelineMemory });
}
