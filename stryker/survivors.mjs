/**
 * `node stryker/survivors.mjs <group or --as name>`: the score of a group's last run (reports/mutation/<name>.json)
 * per file, and each surviving or uncovered mutant on one line (file:line mutator → replacement).
 * Static (import-time) mutants are left out of the score whatever their status: the vitest runner
 * here does not activate them (see stryker/stryker.config.mjs); they are counted apart.
 */
import { readFileSync } from 'node:fs';

const group = process.argv[2];
if (group === undefined) {
  console.error('usage: node stryker/survivors.mjs <group>');
  process.exit(2);
}
const path = `reports/mutation/${group}.json`;
let report;
try {
  report = JSON.parse(readFileSync(path, 'utf8'));
} catch (e) {
  console.error(`survivors: cannot read ${path} (run npm run mutate -- ${group} first): ${e.message}`);
  process.exit(1);
}

const detected = new Set(['Killed', 'Timeout']);
const counted = new Set(['Killed', 'Timeout', 'Survived', 'NoCoverage']);
let all = 0; // counted mutants
let caught = 0;
let ignored = 0;
let statics = 0;
for (const [file, { mutants: all_ }] of Object.entries(report.files)) {
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
