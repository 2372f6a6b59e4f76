/** `reformer import HF_DIR --out RUN_DIR`: an HF transformers Reformer checkpoint as a new run directory. */
import { importHfCheckpoint } from '../../reformer/interop/hf-convert.ts';

export interface ImportCommandOptions {
  readonly out: string;
  readonly data?: string;
  readonly seed: number;
  readonly backend: string;
}

export async function importCommand(hfDir: string, opts: ImportCommandOptions): Promise<void> {
  const r = await importHfCheckpoint(hfDir, opts.out, { seed: opts.seed, backend: opts.backend, ...(opts.data !== undefined ? { data: opts.data } : {}) });
  const m = r.config.model;
  console.log(`imported ${r.tensors} tensors from ${hfDir}`);
  console.log(`model: L=${m.seqLen} d=${m.dModel} dFF=${m.dFF} heads=${m.nHeads}x${m.dHead} layers=${m.nLayers} attention=${m.attention.join('/')} hashes=${m.nHashes} vocab=${m.vocabSize}`);
  console.log(`run directory: ${opts.out} (checkpoint ${r.checkpointDir})`);
  if (r.data === undefined) {
    console.log(`no run manifest: no built-in data fits vocabulary ${m.vocabSize}; pass --data to record one (eval and train --resume need it)`);
  } else {
    console.log(`try: npx reformer eval --checkpoint ${opts.out}    or    npx reformer train --out ${opts.out} --resume`);
  }
}
