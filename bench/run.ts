/**
 * `npm run bench` runs every benchmark group; `npm run bench -- --only <group>[,<group>]` runs some.
 * Prints a table and merges the figures into bench/results.json.
 */
import { fileURLToPath } from 'node:url';
import { apiGroup } from './api.js';
import { bookGroup } from './book.js';
import { costGroup } from './cost.js';
import { featuresGroup } from './features.js';
import { type BenchGroup, formatTable, mergeResults, readResults, writeResults } from './harness.js';
import { ingestGroup } from './ingest.js';
import { simGroup } from './sim.js';
import { startupGroup } from './startup.js';
import { workerGroup } from './worker.js';

const GROUPS: BenchGroup[] = [
  bookGroup,
  featuresGroup,
  ingestGroup,
  simGroup,
  startupGroup,
  workerGroup,
  apiGroup,
  costGroup,
];

function parseOnly(argv: string[]): Set<string> | undefined {
  const i = argv.indexOf('--only');
  if (i === -1) return undefined;
  const value = argv[i + 1];
  if (!value) throw new Error('--only needs a group name, e.g. --only startup');
  return new Set(value.split(','));
}

async function main(): Promise<void> {
  const only = parseOnly(process.argv.slice(2));
  const known = new Set(GROUPS.map((g) => g.name));
  for (const name of only ?? []) {
    if (!known.has(name)) throw new Error(`unknown bench group "${name}"; groups: ${[...known].join(', ')}`);
  }
  const resultsPath = fileURLToPath(new URL('./results.json', import.meta.url));
  const fresh = [];
  for (const group of GROUPS) {
    if (only && !only.has(group.name)) continue;
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
