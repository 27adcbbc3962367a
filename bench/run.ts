/**
 * `npm run bench` runs every benchmark group; `npm run bench -- --only <group>[,<group>]` runs some.
 * Prints a table and merges the figures into bench/results.json.
 *
 * Each group runs in a fresh process when several are asked for: a group's heap (cached captures, simulated
 * streams) otherwise slows the next one's allocation-heavy loops (measured: ingest.frames_per_s 20k alone,
 * 11k after the book and features groups in one process).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { apiGroup } from './api.js';
import { bookGroup } from './book.js';
import { chaosGroup } from './chaos.js';
import { costGroup } from './cost.js';
import { featuresGroup } from './features.js';
import { type BenchGroup, formatTable, mergeResults, readResults, writeResults } from './harness.js';
import { ingestGroup } from './ingest.js';
import { pushGroup } from './push.js';
import { simGroup } from './sim.js';
import { soakGroup } from './soak.js';
import { startupGroup } from './startup.js';
import { qualityGroup, trainGroup } from './train.js';
import { verifyGroup } from './verify.js';
import { workerGroup } from './worker.js';

const GROUPS: BenchGroup[] = [
  bookGroup,
  featuresGroup,
  ingestGroup,
  simGroup,
  startupGroup,
  workerGroup,
  apiGroup,
  pushGroup,
  costGroup,
  trainGroup,
  qualityGroup,
  verifyGroup,
];
/** Long runs with scripts of their own (`npm run chaos`, `npm run soak`), left out of a plain `npm run bench`. */
const SEPARATE: BenchGroup[] = [chaosGroup, soakGroup];

function parseOnly(argv: string[]): Set<string> | undefined {
  const i = argv.indexOf('--only');
  if (i === -1) return undefined;
  const value = argv[i + 1];
  if (!value) throw new Error('--only needs a group name, e.g. --only startup');
  return new Set(value.split(','));
}

async function main(): Promise<void> {
  const only = parseOnly(process.argv.slice(2));
  const all = [...GROUPS, ...SEPARATE];
  const known = new Set(all.map((g) => g.name));
  for (const name of only ?? []) {
    if (!known.has(name)) throw new Error(`unknown bench group "${name}"; groups: ${[...known].join(', ')}`);
  }
  const selected = only ? all.filter((g) => only.has(g.name)) : GROUPS;
  if (selected.length > 1) {
    for (const group of selected) {
      const child = spawnSync(
        process.execPath,
        [...process.execArgv, process.argv[1]!, '--only', group.name],
        {
          stdio: 'inherit',
        },
      );
      if (child.status !== 0) throw new Error(`bench group ${group.name} failed (exit ${child.status})`);
    }
    return;
  }
  const resultsPath = fileURLToPath(new URL('./results.json', import.meta.url));
  const fresh = [];
  for (const group of selected) {
    console.log(`\n## ${group.name}: ${group.description}`);
    const results = await group.run();
    console.log(formatTable(results));
    fresh.push(...results);
  }
  writeResults(resultsPath, mergeResults(readResults(resultsPath), fresh));
  console.log(`\nwrote ${fresh.length} figures to bench/results.json`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
