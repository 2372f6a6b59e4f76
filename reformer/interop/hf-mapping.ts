/**
 * The one table that maps our ReformerLM parameters to HF transformers' ReformerModelWithLMHead
 * state dict, used by both import and export (docs/interop.md prints it). Our paths are
 * `flattenParams` paths of `buildModel` (Serial positions: 1 Embedding, 3 axial positions,
 * 5 ReversibleStack, 7 final LayerNorm, 8 decoder Dense); `{i}` is the layer index.
 *
 * Layouts: HF's nn.Linear stores `[out, in]`, our Dense and projections `[in, out]` ('transpose');
 * HF's axial weights carry broadcast axes, `[n1, 1, d1]` and `[1, n2, d2]`, ours are `[n1, d1]`
 * and `[n2, d2]` ('axial'). Every conversion moves float32 values without arithmetic, so a round
 * trip is bit-exact.
 */
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import { formatShape } from '../../compiler/ir/types.ts';
import type { AttentionKind, ModelConfig } from '../config.ts';
import { InteropError } from './hf-config.ts';

export type Layout = 'same' | 'transpose' | 'axial-rows' | 'axial-cols';

export interface MappingRow {
  /** Our parameter path; `{i}` is the layer index. */
  readonly ours: string;
  /** HF state-dict name(s); the first is canonical, later ones are tied copies of it. */
  readonly hf: readonly string[];
  readonly layout: Layout;
  /** Which layers the row applies to (per-layer rows only). */
  readonly kind?: AttentionKind | 'any';
}

const L = 'reformer.encoder.layers.{i}';

/** The mapping table. */
export const hfMapping: readonly MappingRow[] = [
  { ours: '1.table', hf: ['reformer.embeddings.word_embeddings.weight'], layout: 'same' },
  { ours: '3.e1', hf: ['reformer.embeddings.position_embeddings.weights.0'], layout: 'axial-rows' },
  { ours: '3.e2', hf: ['reformer.embeddings.position_embeddings.weights.1'], layout: 'axial-cols' },
  { ours: '5.{i}.0.0.scale', hf: [`${L}.attention.layer_norm.weight`], layout: 'same', kind: 'any' },
  { ours: '5.{i}.0.0.bias', hf: [`${L}.attention.layer_norm.bias`], layout: 'same', kind: 'any' },
  { ours: '5.{i}.0.1.wq', hf: [`${L}.attention.self_attention.query.weight`], layout: 'transpose', kind: 'local' },
  { ours: '5.{i}.0.1.wk', hf: [`${L}.attention.self_attention.key.weight`], layout: 'transpose', kind: 'local' },
  { ours: '5.{i}.0.1.wv', hf: [`${L}.attention.self_attention.value.weight`], layout: 'transpose', kind: 'local' },
  { ours: '5.{i}.0.1.wqk', hf: [`${L}.attention.self_attention.query_key.weight`], layout: 'transpose', kind: 'lsh' },
  { ours: '5.{i}.0.1.wv', hf: [`${L}.attention.self_attention.value.weight`], layout: 'transpose', kind: 'lsh' },
  { ours: '5.{i}.0.1.wo', hf: [`${L}.attention.output.dense.weight`], layout: 'transpose', kind: 'any' },
  { ours: '5.{i}.1.0.scale', hf: [`${L}.feed_forward.layer_norm.weight`], layout: 'same', kind: 'any' },
  { ours: '5.{i}.1.0.bias', hf: [`${L}.feed_forward.layer_norm.bias`], layout: 'same', kind: 'any' },
  { ours: '5.{i}.1.1.0.w', hf: [`${L}.feed_forward.dense.dense.weight`], layout: 'transpose', kind: 'any' },
  { ours: '5.{i}.1.1.0.b', hf: [`${L}.feed_forward.dense.dense.bias`], layout: 'same', kind: 'any' },
  { ours: '5.{i}.1.1.3.w', hf: [`${L}.feed_forward.output.dense.weight`], layout: 'transpose', kind: 'any' },
  { ours: '5.{i}.1.1.3.b', hf: [`${L}.feed_forward.output.dense.bias`], layout: 'same', kind: 'any' },
  { ours: '7.scale', hf: ['reformer.encoder.layer_norm.weight'], layout: 'same' },
  { ours: '7.bias', hf: ['reformer.encoder.layer_norm.bias'], layout: 'same' },
  // HF ties lm_head.decoder.bias to lm_head.bias (one parameter, two state-dict names).
  { ours: '8.b', hf: ['lm_head.bias', 'lm_head.decoder.bias'], layout: 'same' },
  { ours: '8.w', hf: ['lm_head.decoder.weight'], layout: 'transpose' },
];

/**
 * HF buffers that some transformers versions save in the state dict (the attention mask
 * constants): accepted on import when they hold exactly these values, never written.
 */
export const hfMaskBuffers: Readonly<Record<string, number>> = {
  self_mask_value_float16: -1e3,
  self_mask_value_float32: -1e5,
  mask_value_float16: -1e4,
  mask_value_float32: -1e9,
};

/** One concrete row: our path, HF names, layout. */
export interface BoundRow {
  readonly ours: string;
  readonly hf: readonly string[];
  readonly layout: Layout;
}

/** The table instantiated for a config: every parameter of the model, in HF's state-dict order. */
export function boundRows(cfg: ModelConfig): BoundRow[] {
  const kinds = Array.from({ length: cfg.nLayers }, (_, i) => cfg.attention[i % cfg.attention.length]!);
  const out: BoundRow[] = [];
  const bind = (r: MappingRow, i: number) => ({ ours: r.ours.replace('{i}', String(i)), hf: r.hf.map((n) => n.replace('{i}', String(i))), layout: r.layout });
  const global = hfMapping.filter((r) => r.kind === undefined);
  out.push(...global.filter((r) => r.ours.startsWith('1.') || r.ours.startsWith('3.')).map((r) => bind(r, 0)));
  kinds.forEach((k, i) => {
    for (const r of hfMapping) if (r.kind === 'any' || r.kind === k) out.push(bind(r, i));
  });
  out.push(...global.filter((r) => !r.ours.startsWith('1.') && !r.ours.startsWith('3.')).map((r) => bind(r, 0)));
  return out;
}

/** Copies keep the storage type: float32 parameters stay float32, float64 reference values (gradients) stay float64. */
function transpose2(t: HostTensor): HostTensor {
  const [r, c] = t.shape as [number, number];
  const data = t.data.slice();
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data[j * r + i] = t.data[i * c + j]!;
  return { shape: [c, r], dtype: 'f32', data };
}

const f32 = (t: HostTensor, shape: readonly number[]): HostTensor => ({ shape: [...shape], dtype: 'f32', data: t.data.slice() });

/** Our tensor → HF layout. */
function toHf(t: HostTensor, layout: Layout): HostTensor {
  switch (layout) {
    case 'same':
      return f32(t, t.shape);
    case 'transpose':
      return transpose2(t);
    case 'axial-rows':
      return f32(t, [t.shape[0]!, 1, t.shape[1]!]);
    case 'axial-cols':
      return f32(t, [1, t.shape[0]!, t.shape[1]!]);
  }
}

/** The HF shape that `ours` (our shape) must have in HF's layout. */
function hfShapeOf(ours: readonly number[], layout: Layout): number[] {
  switch (layout) {
    case 'same':
      return [...ours];
    case 'transpose':
      return [ours[1]!, ours[0]!];
    case 'axial-rows':
      return [ours[0]!, 1, ours[1]!];
    case 'axial-cols':
      return [1, ours[0]!, ours[1]!];
  }
}

/** HF tensor → our layout (shape already checked). */
function fromHf(t: HostTensor, layout: Layout, ourShape: readonly number[]): HostTensor {
  return layout === 'transpose' ? transpose2(t) : f32(t, ourShape);
}

/**
 * Our parameters → HF state dict in HF's `state_dict()` order: canonical names in table order,
 * then the tied copies (where `lm_head.decoder.bias` comes in HF's order).
 */
export function toHfTensors(cfg: ModelConfig, params: ReadonlyMap<string, HostTensor>): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const rows = boundRows(cfg);
  const known = new Set(rows.map((r) => r.ours));
  for (const name of params.keys()) {
    if (!known.has(name)) throw new InteropError(`parameter '${name}' has no HF counterpart in the mapping table (is the checkpoint from this model layout?)`);
  }
  for (const r of rows) {
    const t = params.get(r.ours);
    if (t === undefined) throw new InteropError(`checkpoint lacks parameter '${r.ours}' (HF '${r.hf[0]}')`);
    if (t.dtype !== 'f32') throw new InteropError(`parameter '${r.ours}' is ${t.dtype}; HF export writes float32`);
    out.set(r.hf[0]!, toHf(t, r.layout));
  }
  for (const r of rows) for (const tied of r.hf.slice(1)) out.set(tied, out.get(r.hf[0]!)!);
  return out;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const bitsEqual = (a: HostTensor, b: HostTensor) => a.data.length === b.data.length && Float32Array.from(a.data).every((v, i) => Object.is(v, Math.fround(b.data[i]!)));

/**
 * HF state dict → our parameters, checked against `expected` (our model's freshly initialised
 * parameters: names and shapes). Refuses missing, extra, misshapen or non-float32 tensors, and tied
 * copies that differ.
 */
export function fromHfTensors(
  cfg: ModelConfig,
  tensors: ReadonlyMap<string, HostTensor>,
  expected: ReadonlyMap<string, HostTensor>,
  source: string,
): Map<string, HostTensor> {
  const fail = (msg: string): never => {
    throw new InteropError(`${source}: ${msg}`);
  };
  const rows = boundRows(cfg);
  const used = new Set<string>();
  const out = new Map<string, HostTensor>();
  for (const r of rows) {
    const want = expected.get(r.ours);
    if (want === undefined) fail(`the mapping names our parameter '${r.ours}', which this model does not have (mapping and model layout disagree)`);
    const present = r.hf.filter((n) => tensors.has(n));
    if (present.length === 0) fail(`tensor '${r.hf.join("' / '")}' is missing (expected shape ${formatShape(hfShapeOf(want!.shape, r.layout))})`);
    const first = tensors.get(present[0]!)!;
    for (const n of present) {
      const t = tensors.get(n)!;
      used.add(n);
      if (t.dtype !== 'f32' || t.data instanceof Float64Array) fail(`tensor '${n}' must be float32 (F32), got ${t.data instanceof Float64Array ? 'F64' : t.dtype}`);
      const hfShape = hfShapeOf(want!.shape, r.layout);
      if (!sameShape(t.shape, hfShape)) fail(`tensor '${n}' has shape ${formatShape(t.shape)}, but config.json implies ${formatShape(hfShape)}`);
      if (n !== present[0] && !bitsEqual(t, first)) fail(`tensors '${present[0]}' and '${n}' are tied in HF but hold different values`);
    }
    out.set(r.ours, fromHf(first, r.layout, want!.shape));
  }
  for (const name of expected.keys()) if (!out.has(name)) fail(`our parameter '${name}' has no row in the mapping table`);
  for (const [name, t] of tensors) {
    if (used.has(name)) continue;
    const buffer = Object.keys(hfMaskBuffers).find((b) => name.endsWith(`.${b}`));
    if (buffer !== undefined) {
      if (t.data.length !== 1 || t.data[0] !== Math.fround(hfMaskBuffers[buffer]!)) fail(`buffer '${name}' holds ${String(t.data[0])}, but our attention uses ${hfMaskBuffers[buffer]}`);
      continue;
    }
    fail(`tensor '${name}' ${formatShape(t.shape)} is not part of a ReformerModelWithLMHead with this config.json`);
  }
  return out;
}
