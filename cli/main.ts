/**
 * The `reformer` command line. Each command loads its implementation lazily so `reformer --help`
 * starts fast. Errors are one line, say what to do, and exit non-zero.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { defaultRunConfig, MAX_SEED } from '../reformer/config.ts';
import { PIPELINE_MEMORY_CHOICES } from './pipeline-memory.ts';

function int(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got '${value}'`);
    return n;
  };
}
function seed(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > MAX_SEED) throw new InvalidArgumentError(`--seed must be an integer from 0 to ${MAX_SEED}, got '${value}'`);
  return n;
}
function num(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got '${value}'`);
    return n;
  };
}

const backends = ['auto', 'webgpu', 'headlessgl', 'webasm', 'cpu', 'reference'];
function backend(value: string): string {
  if (!backends.includes(value)) throw new InvalidArgumentError(`unknown backend '${value}'; allowed: ${backends.join(', ')}`);
  return value;
}

function pipelineMemory(value: string): string {
  if (!(PIPELINE_MEMORY_CHOICES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`unknown pipeline memory mode '${value}'; allowed: ${PIPELINE_MEMORY_CHOICES.join(', ')}`);
  }
  return value;
}

/** Options the user typed (not defaults): `train --resume` checks only these against the run. */
function explicitOptions(cmd: Command): Set<string> {
  return new Set(cmd.options.map((o) => o.attributeName()).filter((key) => cmd.getOptionValueSource(key) === 'cli'));
}

/** What a command asks the process to exit with (a command that returns normally exits 0). */
export interface CommandOutcome {
  exitCode: number;
}

export function buildProgram(outcome: CommandOutcome = { exitCode: 0 }): Command {
  const program = new Command('reformer')
    .description('Train, evaluate and sample Reformer language models; inspect compiled kernels.')
    // Errors are printed by main() as one `reformer: …` line; commander only throws them.
    .configureOutput({ outputError: () => {} })
    .exitOverride();
  const t = defaultRunConfig.train;

  program
    .command('train')
    .description('train a model; with no options, a small ReformerLM on the bundled Brown corpus')
    .option('--config <file>', 'model/training config JSON (default: built-in small config)')
    .option('--data <path>', "text file or folder, 'brown' (default) or 'duplication'")
    .option('--steps <n>', `training steps (default: the config's train.steps, ${t.steps} built in); with --resume, a new length for the run`, int('--steps'))
    .option('--out <dir>', 'run directory (one run each): manifest, checkpoints, run log', 'runs/default')
    .option('--seed <n>', 'random seed', seed, 0)
    .option('--backend <name>', `execution backend: ${backends.join(' | ')}`, backend, 'auto')
    .option(
      '--pipeline-memory <mode>',
      `gpu.js pipelines between steps: ${PIPELINE_MEMORY_CHOICES.join(' | ')} (auto: kept while they fit in 2 GiB; per-run: less memory, slower; values are the same)`,
      pipelineMemory,
      'auto',
    )
    .option('--resume', 'continue the run in --out exactly as its manifest records it', false)
    .option('--force', 'start a new run in a non-empty --out, moving the old run aside', false)
    .option('--eval-every <n>', `evaluate every n steps (default: the config's train.evalEvery, ${t.evalEvery} built in)`, int('--eval-every'))
    .option('--checkpoint-every <n>', `checkpoint every n steps (default: the config's train.checkpointEvery, ${t.checkpointEvery} built in)`, int('--checkpoint-every'))
    .option('--no-reversible', 'plain backprop instead of the reversible/chunked memory schedules, for comparison (default: the config\'s train.reversible, true built in)')
    .option('--no-progress', 'plain log lines instead of a progress bar')
    .action(async (opts, cmd: Command) => {
      const { trainCommand } = await import('./commands/train.ts');
      outcome.exitCode = await trainCommand({ ...opts, explicit: explicitOptions(cmd) });
    });

  program
    .command('eval')
    .description('bits per character (text) or second-half accuracy (duplication task) of a checkpoint')
    .requiredOption('--checkpoint <dir>', 'run directory or checkpoint directory')
    .option('--data <path>', "data to evaluate on (default: the held-out split of the run's training data)")
    .option('--n-hashes <n>', 'evaluate LSH layers with this many hash rounds', int('--n-hashes'))
    .option('--full-attention', 'evaluate LSH layers as full attention', false)
    .option('--batches <n>', 'number of evaluation batches', int('--batches'), 8)
    .option('--backend <name>', `execution backend: ${backends.join(' | ')}`, backend, 'auto')
    .action(async (opts) => {
      const { evalCommand } = await import('./commands/eval.ts');
      await evalCommand(opts);
    });

  program
    .command('generate')
    .description('sample text from a checkpoint')
    .requiredOption('--checkpoint <dir>', 'run directory or checkpoint directory')
    .option('--prompt <text>', 'text to continue', '')
    .option('--length <n>', 'bytes to generate', int('--length'), 200)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', num('--temperature'), 0.8)
    .option('--top-k <k>', 'sample among the k most likely bytes (0 = all)', int('--top-k'), 0)
    .option('--seed <n>', 'random seed', seed, 0)
    .option('--backend <name>', `execution backend: ${backends.join(' | ')}`, backend, 'auto')
    .action(async (opts) => {
      const { generateCommand } = await import('./commands/generate.ts');
      await generateCommand(opts);
    });

  program
    .command('import')
    .description('an HF transformers ReformerModelWithLMHead directory (config.json + model.safetensors) as a new run directory')
    .argument('<hf-dir>', 'HF model directory (pytorch_model.bin pickles are refused: convert to safetensors)')
    .requiredOption('--out <dir>', 'new run directory (must not exist or be empty)')
    .option('--data <path>', "data the run evaluates/trains on (default: 'brown' for vocabulary 258, 'duplication' for 128)")
    .option('--seed <n>', 'random seed of the run', seed, 0)
    .option('--backend <name>', `backend the run records for train --resume: ${backends.join(' | ')}`, backend, 'auto')
    .action(async (hfDir: string, opts) => {
      const { importCommand } = await import('./commands/import.ts');
      await importCommand(hfDir, opts);
    });

  program
    .command('export')
    .description('a checkpoint as another framework\'s format: --format hf writes HF transformers config.json + model.safetensors')
    .requiredOption('--checkpoint <dir>', 'run directory or checkpoint directory')
    .requiredOption('--format <name>', "output format: 'hf'")
    .requiredOption('--out <dir>', 'new output directory (must not exist or be empty)')
    .action(async (opts) => {
      const { exportCommand } = await import('./commands/export.ts');
      await exportCommand(opts);
    });

  program
    .command('plot')
    .description('plot loss and bits-per-character curves of a run log')
    .argument('<log>', 'run log (run-log.jsonl) or run directory')
    .option('--out <file>', 'output .svg or .png (default: plot.svg next to the run log)')
    .action(async (log: string, opts: { out?: string }) => {
      const { plotCommand } = await import('./plot.ts');
      await plotCommand(log, opts.out);
    });

  program
    .command('bench')
    .description('run a benchmark suite of a source checkout: kernels, memory, attention, train, generate, browser')
    .argument('<suite>', 'suite name')
    .allowUnknownOption(true)
    .argument('[args...]', 'suite options, e.g. --json --quick')
    .action(async (suite: string, args: string[]) => {
      const { runBench } = await import('../bench/main.ts');
      await runBench([suite, ...args]);
    });

  program
    .command('verify')
    .description("check a model's reversible stack with fast-check: inverse and reconstructing backward")
    .argument('<model>', "'default', a run directory, a config JSON file, or a model module (.ts: exports model, inputs; see docs/cli.md)")
    .option('--runs <n>', 'random cases', int('--runs'), 5)
    .option('--seed <n>', 'fast-check seed', int('--seed'))
    .option('--batch <n>', 'batch size of the random inputs', int('--batch'), 1)
    .option('--backend <name>', `execution backend: ${backends.join(' | ')}`, backend, 'reference')
    .action(async (model: string, opts) => {
      const { verifyCommand } = await import('./commands/verify.ts');
      if (!(await verifyCommand(model, opts))) throw new Error('verification failed (see the counterexample above)');
    });

  program
    .command('compile')
    .description('compile a model graph to gpu.js kernels and write them as a readable TypeScript module')
    .argument('<model>', "'default', a run config JSON file, or a model module (.ts: exports model, inputs; see docs/cli.md)")
    .option('--emit <dir>', 'directory for kernels.ts (required unless --kernel)')
    .option('--graph <which>', "stock models: 'train' (loss and gradients, default) or 'logits'; model modules: 'forward' (default) or 'train'")
    .option('--kernel <name>', "print one kernel's source")
    .action(async (model: string, opts: { emit?: string; graph?: 'train' | 'logits' | 'forward'; kernel?: string }) => {
      const { compileCommand } = await import('./commands/compile.ts');
      await compileCommand({ model, ...opts });
    });

  return program;
}

/** Commander's message as one line without its own `error:` prefix. */
function oneLine(message: string): string {
  return message
    .replace(/^error:\s*/i, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ');
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const outcome: CommandOutcome = { exitCode: 0 };
  const program = buildProgram(outcome);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return outcome.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version output are not errors; everything else is one line.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return e.exitCode;
      console.error(`reformer: ${oneLine(e.message)} (see --help)`);
      return e.exitCode === 0 ? 1 : e.exitCode;
    }
    const message = e instanceof Error ? e.message : String(e);
    console.error(`reformer: ${message}`);
    if (process.env.REFORMER_DEBUG && e instanceof Error) console.error(e.stack);
    return 1;
  }
}
