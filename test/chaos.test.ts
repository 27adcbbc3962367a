/**
 * The chaos run of `npm test` (src/chaos/chaos.ts; `npm run chaos` runs a longer one): the whole system with two
 * ingestors while every fault fires once, scheduled by market-event counts from a seed, then the audit.
 *
 * What this asserts holds in every run so far: every fault fired, the system came back in step, nothing is
 * duplicated or invented in the lake, no tick, label or prediction is written twice. What it does NOT assert yet, because the chaos run found it false in some runs (see README "Proving
 * it under faults", open defects): that nothing the stream accepted is missing from the lake, that every gap is
 * explained by a resync, that no tick is missing and every book equals the exchange's. The test prints the audit,
 * so a run shows where those stand.
 *
 * The second run leaves the feed alone and fires the faults of the stores and the worker — Kinesis, DynamoDB and
 * S3 restarting, PutRecords throttled, the worker killed with SIGKILL — and asserts the whole audit clean: every
 * store failure is waited out (src/aws/retry.ts) and a killed worker resumes from its checkpoint. Runs with the
 * feed faults alone still find what the README lists (line arbitration after a dropped or killed ingestor).
 */
import { describe, expect, it } from 'vitest';
import { formatAudit } from '../src/audit/audit.js';
import { FAULT_NAMES, runChaos } from '../src/chaos/chaos.js';

/** The market both runs stream: two products at 3x, faults from the 300th market event, one every 130. */
const MARKET = {
  seed: 14,
  products: ['BTC-USD', 'ETH-USD'],
  speed: 3,
  warmupEvents: 300,
  everyEvents: 130,
} as const;

describe('chaos run', () => {
  it('every fault once while the market streams at 3x: nothing duplicated, nothing invented, no tick twice', async () => {
    const report = await runChaos({ ...MARKET, marketMs: 75_000 });
    console.log(formatAudit(report.audit));
    expect(report.faults.map((f) => f.name).sort()).toEqual([...FAULT_NAMES].sort());
    expect(report.recoveryS).toBeDefined();
    expect(report.duplicated).toBe(0);
    for (const p of report.audit.products) {
      expect(p.trades.stored, p.product).toBeGreaterThan(50);
      expect(p.book.checked, p.product).toBeGreaterThan(300);
      expect([p.trades.invented, p.levelChanges.invented], p.product).toEqual([0, 0]);
      expect([p.ticks.repeated, p.labels.repeated, p.predictions.repeated], p.product).toEqual([0, 0, 0]);
    }
  }, 240_000);

  it('the stores restarting, PutRecords throttled and the worker killed: a clean audit', async () => {
    const faults = [
      'kill -9 worker',
      'restart kinesis',
      'restart dynamodb',
      'restart s3',
      'throttle PutRecords',
    ] as const;
    const report = await runChaos({ ...MARKET, marketMs: 60_000, faults });
    console.log(formatAudit(report.audit));
    expect(report.faults.map((f) => f.name).sort()).toEqual([...faults].sort());
    expect(report.audit.problems).toEqual([]);
    for (const p of report.audit.products) {
      expect(p.levelChanges.stored, p.product).toBeGreaterThan(1000);
      expect(p.book.checked, p.product).toBeGreaterThan(200);
    }
  }, 240_000);
});
