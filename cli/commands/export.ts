/** `reformer export --checkpoint DIR --format hf --out DIR2`: a checkpoint as an HF transformers ReformerModelWithLMHead directory. */
import { exportHfCheckpoint } from '../../reformer/interop/hf-convert.ts';

export interface ExportCommandOptions {
  readonly checkpoint: string;
  readonly format: string;
  readonly out: string;
}

export const exportFormats = ['hf'] as const;

export async function exportCommand(opts: ExportCommandOptions): Promise<void> {
  if (!(exportFormats as readonly string[]).includes(opts.format)) throw new Error(`--format '${opts.format}' is not supported; allowed: ${exportFormats.join(', ')}`);
  const r = await exportHfCheckpoint(opts.checkpoint, opts.out);
  console.log(`exported step ${r.step} of ${opts.checkpoint} to ${opts.out}: config.json + model.safetensors (${r.tensors} tensors, HF names and layouts)`);
  console.log(`load it in Python: ReformerModelWithLMHead.from_pretrained('${opts.out}')`);
}
