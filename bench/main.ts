/**
 * Benchmark dispatcher: `npm run bench -- <suite> [--json] [--quick]`.
 * Suites live in bench/suites.ts; `reformer bench <suite>` calls `runBench` too.
 */
import { pathToFileURL } from 'node:url';
import { loaders } from './suites.ts';

export async function runBench(argv: readonly string[]): Promise<unknown> {
  const [name, ...rest] = argv;
  const known = Object.keys(loaders).sort().join(', ');
  if (!name || name.startsWith('-')) throw new Error(`usage: npm run bench -- <suite> [--json] [--quick]; suites: ${known}`);
  const load = loaders[name];
  if (!load) throw new Error(`bench: unknown suite '${name}' (known: ${known})`);
  const flags = {
    json: rest.includes('--json'),
    quick: rest.includes('--quick'),
    rest: rest.filter((a) => a !== '--json' && a !== '--quick'),
  };
  const suite = await load();
  return suite.run(flags);
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
