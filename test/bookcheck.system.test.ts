/**
 * The book check end to end (#17): the simulator's REST book, the real ingestor fetching it into the stream, the
 * real worker judging it, the verdict channel back to the ingestor — each its own process on the local emulators
 * (src/chaos/bookCheckRun.ts). Two minutes of market at 10x real time.
 */
import { describe, expect, it } from 'vitest';
import { runBookCheck } from '../src/chaos/bookCheckRun.js';

const RUN = { products: ['BTC-USD', 'ETH-USD'], speed: 10, marketMs: 120_000, checkS: 1 } as const;

describe('the book checked against the exchange, whole system', () => {
  it('matches at every check of a clean market', async () => {
    const r = await runBookCheck({ ...RUN, seed: 11 });
    // About one check per product per 10 s of market; none may mismatch. A REST answer slower than
    // BOOK_CHECK_TIMEOUT_MS on a loaded machine is the only excuse for an unavailable one, and a rare one.
    expect(r.checks.match).toBeGreaterThanOrEqual(10);
    expect(r.checks.mismatch).toBe(0);
    for (const why of Object.keys(r.unavailableReasons)) expect(why).toMatch(/no answer within/);
    expect(r.checks.unavailable).toBeLessThanOrEqual(r.checks.match / 10);
    expect(r.resyncs).toEqual({});
  }, 180_000);

  it('finds every lost update still wrong at a check, resyncs only its product, and never cries wolf', async () => {
    const r = await runBookCheck({ ...RUN, seed: 12, lostEveryMs: 3000 });
    expect(r.faults.length).toBeGreaterThanOrEqual(30);
    expect(
      r.falseMismatches,
      JSON.stringify({ false: r.falseChecks, faults: r.faults.filter((f) => f.fate !== 'uncovered') }),
    ).toBe(0);
    // Each fault was judged one way or another; those still wrong where a check compared them were all found.
    expect(r.wrongAtACheck + r.healed + r.repaired).toBeGreaterThan(0);
    expect(r.detected).toBe(r.wrongAtACheck);
    // Each mismatch made the ingestor resync that product alone: a product whose checks all matched was never
    // resynced for it, one that mismatched was (once per verdict at most).
    for (const p of RUN.products) {
      const mismatches = r.mismatchesByProduct[p] ?? 0;
      const resyncs = r.resyncs[p]?.['book check mismatch'] ?? 0;
      expect(resyncs, p).toBeLessThanOrEqual(mismatches);
      if (mismatches === 0) expect(resyncs, p).toBe(0);
      else expect(resyncs, p).toBeGreaterThanOrEqual(1);
    }
    // Each mismatch marked the predictions since the book was last known right as suspect, in the lake: the span
    // of every detected fault covers its moment.
    expect(r.suspectMarks.length).toBe(r.checks.mismatch);
    // Each runs up to its verdict, where abstaining takes over: the product's first prediction after the verdict
    // abstains (until the resync, and for the model's window after it), the last one before it did not abstain for
    // that mismatch (it is the suspect mark's). No tick in between is left unmarked.
    expect(r.aroundVerdicts.length).toBe(r.checks.mismatch);
    for (const v of r.aroundVerdicts) {
      expect(v.after?.abstain, JSON.stringify(v)).toMatch(/differed from the exchange's|resync/);
      // (Unless an earlier mismatch of the product, not yet repaired, still holds it.)
      const earlier = r.aroundVerdicts.some(
        (w) => w.product === v.product && w.judgedUs < v.judgedUs && w.judgedUs > v.judgedUs - 30e6,
      );
      if (!earlier)
        expect(v.before?.abstain ?? '', JSON.stringify(v)).not.toMatch(/differed from the exchange's/);
    }
    const verdicts = r.judged.filter((c) => c.result === 'mismatch');
    expect(r.suspectMarks.map((m) => `${m.product}@${m.toUs}`).sort()).toEqual(
      verdicts.map((c) => `${c.product}@${c.judgedUs}`).sort(),
    );
    for (const f of r.faults.filter((x) => x.fate === 'detected')) {
      const covering = r.suspectMarks.filter(
        (m) => m.product === f.fault.product && m.fromUs <= f.fault.timeUs && f.fault.timeUs < m.toUs,
      );
      expect(covering.length, JSON.stringify(f.fault)).toBeGreaterThanOrEqual(1);
    }
  }, 180_000);
});
