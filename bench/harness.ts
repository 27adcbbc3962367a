/**
 * The benchmark harness: groups produce named figures; results merge into bench/results.json
 * (an array of { name, value, unit, context }) so a run replaces only the keys it measured.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

export interface BenchResult {
  /** Stable dotted key, e.g. "startup.first_prediction_s". */
  name: string;
  value: number;
  unit: string;
  context: Record<string, unknown>;
}

export interface BenchGroup {
  name: string;
  description: string;
  run(): Promise<BenchResult[]>;
}

/** Products for runs of many (the cost model's 10, the soak's 20): listed Coinbase pairs, the first two calibrated. */
export const BENCH_PRODUCTS: readonly string[] = [
  'BTC-USD',
  'ETH-USD',
  'SOL-USD',
  'XRP-USD',
  'DOGE-USD',
  'ADA-USD',
  'AVAX-USD',
  'LINK-USD',
  'LTC-USD',
  'DOT-USD',
  'BCH-USD',
  'UNI-USD',
  'ATOM-USD',
  'XLM-USD',
  'ETC-USD',
  'FIL-USD',
  'AAVE-USD',
  'NEAR-USD',
  'ALGO-USD',
  'SHIB-USD',
];

export function machineContext(): Record<string, unknown> {
  return {
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    measuredAt: new Date().toISOString(),
  };
}

export function mergeResults(existing: BenchResult[], fresh: BenchResult[]): BenchResult[] {
  const byName = new Map(existing.map((r) => [r.name, r]));
  for (const r of fresh) byName.set(r.name, r);
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function readResults(path: string): BenchResult[] {
  if (!existsSync(path)) return [];
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (!Array.isArray(parsed)) throw new Error(`${path} is not an array of results`);
  return parsed as BenchResult[];
}

export function writeResults(path: string, results: BenchResult[]): void {
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
}

export function formatTable(results: BenchResult[]): string {
  const rows = results.map((r) => [r.name, formatValue(r.value), r.unit]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length), 4));
  return rows
    .map((row) =>
      row.map((cell, i) => (i === 1 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  '),
    )
    .join('\n');
}

function formatValue(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4);
}

/** Quantile of a sample (linear interpolation); the sample is sorted in place. */
export function quantile(sample: number[] | Float64Array, q: number): number {
  if (sample.length === 0) return Number.NaN;
  sample.sort((a, b) => a - b);
  const pos = (sample.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sample[lo]! + (sample[hi]! - sample[lo]!) * (pos - lo);
}
