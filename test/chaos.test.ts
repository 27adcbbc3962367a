/**
 * The chaos run of `npm test` (src/chaos/chaos.ts; `npm run chaos` runs a longer one): the whole system with two
 * ingestors while every fault fires once, scheduled by market-event counts from a seed, then the audit. Nothing
 * is duplicated, every event lost is explained by a resync the system published, every tick is there once and
 * scored, and the books equal the exchange's.
 */
import { describe, expect, it } from 'vitest';
import { FAULT_NAMES, runChaos } from '../src/chaos/chaos.js';

describe('chaos run', () => {
  it('every fault once while the market streams at 3x: a clean audit', async () => {
    const report = await runChaos({
      seed: 14,
      products: ['BTC-USD', 'ETH-USD'],
      speed: 3,
      marketMs: 90_000,
      warmupEvents: 300,
      everyEvents: 150,
      log: (line) => console.log(line),
    });
    expect(report.faults.map((f) => f.name).sort()).toEqual([...FAULT_NAMES].sort());
    expect(report.audit.problems).toEqual([]);
    expect(report.lost).toBe(0);
    expect(report.duplicated).toBe(0);
    expect(report.unexplainedGaps).toBe(0);
    for (const p of report.audit.products) {
      expect(p.trades.stored, p.product).toBeGreaterThan(50);
      expect(p.book.checked, p.product).toBeGreaterThan(300);
    }
    console.log(JSON.stringify({ ...report, audit: undefined }, null, 1));
  }, 240_000);
});
