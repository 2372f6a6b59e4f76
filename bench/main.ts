/**
 * Benchmark dispatcher: `npm run bench -- <suite> [--json] [--quick]`.
 * Suites live in bench/suites.ts; `reformer bench <suite>` calls `runBench` too.
 */
import { pathToFileURL } from 'node:url';
import { loaders } from './suites.ts';
import { compareToBaseline, runBaseline, takeBaseline } from './support/baseline.ts';

export async function runBench(argv: readonly string[]): Promise<unknown> {
  const [name, ...rest] = argv;
  const known = Object.keys(loaders).sort().join(', ');
  if (!name || name.startsWith('-')) throw new Error(`usage: npm run bench -- <suite> [--json] [--quick] [--peer torch] [--baseline <git-ref>]; suites: ${known}`);
  const load = loaders[name];
  if (!load) throw new Error(`bench: unknown suite '${name}' (known: ${known})`);
  const suiteArgs = [...rest];
  const baseline = takeBaseline(suiteArgs);
  const flags = {
    json: suiteArgs.includes('--json'),
    quick: suiteArgs.includes('--quick'),
    rest: suiteArgs.filter((a) => a !== '--json' && a !== '--quick'),
  };
  const suite = await load();
  const summary = await suite.run(flags);
  if (baseline === undefined) return summary;
  // the same suite on another commit, after ours (see bench/support/baseline.ts)
  // the peer does not depend on the tree, so the baseline runs without it
  const peerAt = suiteArgs.indexOf('--peer');
  const baseArgs = suiteArgs.filter((a, i) => a !== '--json' && (peerAt < 0 || (i !== peerAt && i !== peerAt + 1)));
  const base = await runBaseline(baseline, name, baseArgs);
  const metrics = (summary as { metrics?: Record<string, number> }).metrics ?? {};
  if (flags.json) console.log(JSON.stringify({ baseline: base, metrics }, null, 2));
  else console.log(compareToBaseline(metrics, base));
  return { ...(summary as object), baseline: base };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runBench(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    },
  );
}
