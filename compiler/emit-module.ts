/**
 * Writes a compiled graph as a self-contained TypeScript module: one exported const per kernel (its
 * gpu.js source text, with a doc comment naming the plan group and the nodes fused into it), an
 * exported `plan` (kernel order, launch shapes, host buffers with their values or how to draw
 * them, outputs) and a `run(gpu, feeds)` that executes the plan kernel by kernel. Constant
 * buffers carry their values; random buffers carry their distribution, salt and seed, and are
 * drawn by a copy of the counter-based generator of compiler/ir/random.ts emitted into the
 * module, so the module imports nothing (the caller passes a gpu.js `GPU`). Built with ts-morph so
 * the output is formatted and guaranteed to parse.
 */
import { Project, VariableDeclarationKind, type SourceFile } from 'ts-morph';
import type { CompiledGraph } from './codegen/compile.ts';
import type { KernelSource } from './codegen/kernels.ts';
import { formatShape } from './ir/types.ts';

export interface EmitModuleOptions {
  /** First line of the module's header comment, e.g. which model and graph it came from. */
  readonly title?: string;
}

/** A TypeScript identifier for a kernel name (`k5_argsort.rank` → `k5_argsort_rank`). */
export function kernelIdentifier(name: string): string {
  const id = name.replace(/[^A-Za-z0-9_$]/g, '_');
  return /^[A-Za-z_$]/.test(id) ? id : `_${id}`;
}

/** The source as a template literal: backslashes, backticks and `${` escaped. */
function templateLiteral(text: string): string {
  return '`' + text.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${') + '`';
}

/** Doc comment lines for one kernel: its group and every node it fuses, with op and type. */
function kernelDoc(compiled: CompiledGraph, k: KernelSource): string {
  const g = compiled.plan.graph;
  const group = compiled.plan.groups.find((x) => x.name === k.group);
  const describe = (id: number): string => {
    const n = g.node(id);
    const detail = 'fn' in n ? ` ${n.fn}` : '';
    return `%${id} ${n.op}${detail}:${n.dtype}${formatShape(n.shape)}${n.scope ? ` (${n.scope})` : ''}`;
  };
  const lines = [`Kernel \`${k.name}\` of group \`${k.group}\`: writes ${k.output} (${k.size} elements, launch [${k.dims.join(', ')}]).`];
  lines.push(`Reads: ${k.params.length > 0 ? k.params.join(', ') : 'nothing'}.`);
  if (k.scalars !== undefined) lines.push(`Scalar arguments after the buffers: ${k.scalars.join(', ')} (where its slices and pads cut their axes).`);
  if (group !== undefined) {
    lines.push(`Root: ${describe(group.root)}`);
    if (group.fused.length > 0) {
      lines.push('Fused nodes:');
      for (const id of group.fused) lines.push(`- ${describe(id)}`);
    }
  }
  return lines.join('\n');
}

/**
 * One host buffer as plain data: a graph input (by name), a constant (its values, exactly as the
 * const node holds them; the runner uploads them as float32) or a random draw (distribution,
 * salt, and the seed's input name or constant value).
 */
function hostBufferData(compiled: CompiledGraph, id: number, source: string): Record<string, unknown> {
  const n = compiled.plan.graph.node(id);
  const data: Record<string, unknown> = { key: `%${id}`, source, dtype: n.dtype, shape: n.shape };
  if (n.op === 'input') data.input = n.name;
  else if (n.op === 'const') data.values = n.values;
  else if (n.op === 'random') {
    const s = compiled.plan.graph.node(n.seed);
    data.dist = n.dist;
    data.salt = n.salt;
    // compile() rejects random nodes whose seed is neither an input nor a constant
    data.seed = s.op === 'input' ? { input: s.name } : s.op === 'const' ? { value: s.values[0] } : {};
  }
  return data;
}

/** The `plan` object literal: plain data, one line per kernel and per host buffer. */
function planObject(compiled: CompiledGraph): string {
  // kernel entries reference the source constants by identifier, not as strings
  const kernelLines = compiled.kernels.map((k) => {
    const data = { name: k.name, group: k.group, params: k.params, scalars: k.scalars ?? [], output: k.output, size: k.size, dims: k.dims, loopMax: k.loopMax };
    return `    { ${JSON.stringify(data).slice(1, -1)}, "source": ${kernelIdentifier(k.name)} }`;
  });
  const hostLines = [...compiled.plan.buffers]
    .filter(([, source]) => source !== 'kernel')
    .map(([id, source]) => `    ${JSON.stringify(hostBufferData(compiled, id, source))}`);
  const outputs = compiled.plan.wanted.map((id) => {
    const n = compiled.plan.graph.node(id);
    return { key: `%${id}`, dtype: n.dtype, shape: n.shape };
  });
  const outputLines = outputs.map((o) => `    ${JSON.stringify(o)}`);
  return `{\n  "kernels": [\n${kernelLines.join(',\n')}\n  ],\n  "hostBuffers": [\n${hostLines.join(',\n')}\n  ],\n  "outputs": [\n${outputLines.join(',\n')}\n  ]\n}`;
}

/**
 * The module's runtime: types, the counter-based generator (a copy of compiler/ir/random.ts, which
 * the emitted-module test checks bit for bit) and `run`, which does what the compiled runner does
 * kernel by kernel: upload feeds, constants and random draws as float32, launch each kernel with
 * the runner's settings, flatten 2-D and 4-component results, round i32 outputs.
 */
const RUNTIME = `
/** The part of a gpu.js \`GPU\` the module uses: pass \`new GPU({ mode: 'cpu' })\` (or webasm, …). */
export interface GpuLike {
  createKernel(source: string, settings: Record<string, unknown>): unknown;
}

/** A fed tensor: its shape and its values (i32 inputs as integers). */
export interface FeedTensor {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

/** Integers beyond ±2^24 are not exact in float32, the carrier of every buffer. */
const FLOAT32_EXACT_INT = 2 ** 24;

function mix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hash3(seed: number, salt: number, counter: number): number {
  return mix32(mix32(mix32(seed ^ 0x9e3779b9) ^ salt) ^ Math.imul(counter | 0, 0x27d4eb2f));
}

/** Element \`index\` of the random stream (seed, salt): uniform in [0, 1) or standard normal (Box–Muller). */
export function randomAt(dist: 'uniform' | 'normal', seed: number, salt: number, index: number): number {
  if (dist === 'uniform') return (hash3(seed, salt, index) >>> 8) / 16777216;
  const u1 = ((hash3(seed, salt, 2 * index) >>> 8) + 0.5) / 16777216;
  const u2 = (hash3(seed, salt, 2 * index + 1) >>> 8) / 16777216;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function flatten(result: unknown, expected: number): Float32Array {
  if (result instanceof Float32Array && result.length === expected) return result;
  const out = new Float32Array(expected);
  let p = 0;
  const walk = (v: unknown): void => {
    if (typeof v === 'number') out[p++] = v;
    else if (ArrayBuffer.isView(v)) {
      out.set(v as Float32Array, p);
      p += (v as Float32Array).length;
    } else if (Array.isArray(v)) for (const e of v) walk(e);
    else throw new TypeError('unexpected kernel result element ' + String(v));
  };
  walk(result);
  if (p !== expected) throw new RangeError('a kernel returned ' + p + ' floats, expected ' + expected);
  return out;
}

type Kernel = (...args: Float32Array[]) => unknown;
const built = new WeakMap<GpuLike, Kernel[]>();

interface HostBufferData {
  readonly key: string;
  readonly source: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly input?: string;
  readonly values?: readonly number[];
  readonly dist?: 'uniform' | 'normal';
  readonly salt?: number;
  readonly seed?: { readonly input?: string; readonly value?: number };
}

/** The plan seen through its plain-data type. */
const planData: {
  readonly kernels: readonly { readonly params: readonly string[]; readonly scalars: readonly number[]; readonly output: string; readonly size: number; readonly dims: readonly number[]; readonly loopMax: number; readonly source: string }[];
  readonly hostBuffers: readonly HostBufferData[];
  readonly outputs: readonly { readonly key: string; readonly dtype: string; readonly shape: readonly number[] }[];
} = plan;

function hostBuffer(buffer: HostBufferData, feeds: Readonly<Record<string, FeedTensor>>): Float32Array {
  if (buffer.source === 'constant') return Float32Array.from(buffer.values!);
  if (buffer.source === 'random') {
    const seed = buffer.seed!.input !== undefined ? feeds[buffer.seed!.input]?.data[0] : buffer.seed!.value;
    if (seed === undefined) throw new Error('random ' + buffer.key + ": no value fed for its seed input '" + buffer.seed!.input + "'");
    const values = new Float32Array(sizeOf(buffer.shape));
    for (let i = 0; i < values.length; i++) values[i] = randomAt(buffer.dist!, seed, buffer.salt!, i);
    return values;
  }
  const name = buffer.input!;
  const t = feeds[name];
  if (t === undefined) throw new Error("no value fed for input '" + name + "'");
  if (t.shape.length !== buffer.shape.length || t.shape.some((d, i) => d !== buffer.shape[i])) {
    throw new Error("input '" + name + "' expects shape [" + buffer.shape.join(',') + '], got [' + t.shape.join(',') + ']');
  }
  if (t.data.length !== sizeOf(buffer.shape)) throw new Error("input '" + name + "' has " + t.data.length + ' values, expected ' + sizeOf(buffer.shape));
  if (buffer.dtype === 'i32') {
    for (let i = 0; i < t.data.length; i++) {
      if (Math.abs(t.data[i]!) > FLOAT32_EXACT_INT) throw new RangeError("input '" + name + "': i32 value " + t.data[i] + ' is beyond ±2^24');
    }
  }
  return Float32Array.from(t.data);
}

/**
 * Runs the plan on \`gpu\` with the graph inputs \`feeds\` (by input name, e.g. \`params.0.w\`,
 * \`tokens\`, \`seed\`); returns the wanted outputs in \`plan.outputs\` order (i32 ones as
 * Int32Array). Kernels are built once per \`gpu\`; every intermediate buffer stays alive until the
 * run ends (the compiler's runner frees them by a memory plan).
 */
export async function run(gpu: GpuLike, feeds: Readonly<Record<string, FeedTensor>>): Promise<Array<Float32Array | Int32Array>> {
  let kernels = built.get(gpu);
  if (kernels === undefined) {
    kernels = planData.kernels.map(
      (k) => gpu.createKernel(k.source, { output: [...k.dims], asyncMode: true, loopMaxIterations: Math.max(1000, k.loopMax + 1), tactic: 'precision' }) as Kernel,
    );
    built.set(gpu, kernels);
  }
  const buffers = new Map<string, Float32Array>();
  for (const b of planData.hostBuffers) buffers.set(b.key, hostBuffer(b, feeds));
  for (let i = 0; i < planData.kernels.length; i++) {
    const k = planData.kernels[i]!;
    const args = [...k.params.map((p) => buffers.get(p)!), ...k.scalars];
    buffers.set(k.output, flatten(await kernels[i]!(...args), k.size));
  }
  return planData.outputs.map((o) => {
    const size = sizeOf(o.shape);
    const values = size === 0 ? new Float32Array(0) : buffers.get(o.key);
    if (values === undefined) throw new Error('output ' + o.key + ' was not computed');
    return o.dtype === 'i32' ? Int32Array.from(values, (v) => Math.round(v)) : Float32Array.from(values);
  });
}
`;

function build(compiled: CompiledGraph, options: EmitModuleOptions): SourceFile {
  const project = new Project({ useInMemoryFileSystem: true });
  const file = project.createSourceFile('kernels.ts', '', { overwrite: true });
  const counts = new Map<string, number>();
  for (const grp of compiled.plan.groups) counts.set(grp.kind, (counts.get(grp.kind) ?? 0) + 1);
  const summary = [...counts].map(([kind, n]) => `${n} ${kind}`).join(', ');
  file.addStatements(
    [
      '/**',
      ` * ${options.title ?? 'Compiled kernels'}`,
      ' *',
      ` * Generated by compiler/emit-module.ts: ${compiled.kernels.length} gpu.js kernels (${summary} groups).`,
      ' * Self-contained: it imports nothing. `run(new GPU({ mode }), feeds)` uploads the feeds, the',
      ' * constant buffers (their values are in `plan.hostBuffers`) and the random buffers (drawn from',
      ' * their seed and salt with the generator below), then runs `plan.kernels` in order, each with',
      ' * `output: dims`, reading its `params` buffers as flat float32 arrays. Left out: the memory',
      ' * plan (every intermediate stays alive until the run ends) and the fused pipeline (kernels run',
      ' * one by one). Do not edit by hand.',
      ' */',
    ].join('\n'),
  );
  for (const k of compiled.kernels) {
    file.addVariableStatement({
      isExported: true,
      declarationKind: VariableDeclarationKind.Const,
      docs: [kernelDoc(compiled, k)],
      declarations: [{ name: kernelIdentifier(k.name), initializer: templateLiteral(k.source) }],
    });
  }
  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['Execution plan: kernels in order (source = the const above), host-uploaded buffers (inputs by name, constants with their values, random draws with distribution, salt and seed), wanted outputs.'],
    declarations: [{ name: 'plan', initializer: `${planObject(compiled)} as const` }],
  });
  file.addStatements(RUNTIME);
  return file;
}

/** The module text for `compiled`. */
export function emitKernelModule(compiled: CompiledGraph, options: EmitModuleOptions = {}): string {
  // a native product is our own WebAssembly module, not gpu.js source the module could run
  const native = compiled.kernels.find((k) => k.native !== undefined);
  if (native !== undefined) {
    throw new Error(`emitKernelModule: kernel ${native.name} is a native WebAssembly matmul product; compile with matmul 'dot' (the default) to emit a module`);
  }
  const text = build(compiled, options).getFullText();
  return text.endsWith('\n') ? text : text + '\n';
}
