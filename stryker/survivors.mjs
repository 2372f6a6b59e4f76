/**
 * `node stryker/survivors.mjs <name> [<name> ...]`: the score of a mutation run
 * (reports/mutation/<name>.json: a group's name, or a run's `--as NAME`) per file, and each
 * surviving or uncovered mutant on one line (file:line mutator → replacement). Given several runs
 * (narrowed runs of one group, side by side), each file is taken from the last run named that
 * mutated it, and the total is over all of them.
 * Static (import-time) mutants are left out of the score whatever their status: the vitest runner
 * here does not activate them (see stryker/stryker.config.mjs); they are counted apart.
 */
import { readFileSync } from 'node:fs';

const names = process.argv.slice(2);
if (names.length === 0) {
  console.error('usage: node stryker/survivors.mjs <group or --as name> [<name> ...]');
  process.exit(2);
}
/** file → its mutants, from the last run named that mutated it */
const files = new Map();
for (const name of names) {
  const path = `reports/mutation/${name}.json`;
  let report;
  try {
    report = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    console.error(`survivors: cannot read ${path} (run npm run mutate -- <group> [--as ${name}] first): ${e.message}`);
    process.exit(1);
  }
  for (const [file, { mutants }] of Object.entries(report.files)) files.set(file, mutants);
}
const group = names.join(' + ');

const detected = new Set(['Killed', 'Timeout']);
const counted = new Set(['Killed', 'Timeout', 'Survived', 'NoCoverage']);
let all = 0; // counted mutants
let caught = 0;
let ignored = 0;
let statics = 0;
for (const [file, all_] of files) {
  const mutants = all_.filter((m) => !m.static);
  const nStatic = all_.length - mutants.length;
  statics += nStatic;
  const n = mutants.filter((m) => counted.has(m.status)).length;
  const k = mutants.filter((m) => detected.has(m.status)).length;
  const ign = mutants.filter((m) => m.status === 'Ignored').length;
  all += n;
  caught += k;
  ignored += ign;
  console.log(`${file}: ${k}/${n} detected (${((100 * k) / Math.max(n, 1)).toFixed(1)}%), ${ign} marked equivalent, ${nStatic} static`);
  for (const m of mutants.filter((m) => m.status === 'Survived' || m.status === 'NoCoverage')) {
    const text = (m.replacement ?? '').replace(/\s+/g, ' ').slice(0, 100);
    console.log(`  ${m.status === 'NoCoverage' ? 'uncovered' : 'survived'} ${file}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} → ${text}`);
  }
}
console.log(`${group}: ${caught}/${all} detected, score ${((100 * caught) / Math.max(all, 1)).toFixed(2)}% (not counted: ${ignored} marked equivalent, ${statics} static)`);
