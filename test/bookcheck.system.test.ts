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
    // Each mismatch marked the predictions since the book was last known right as suspect, in the lake, up to its
    // verdict; from the verdict on they abstain, and once the book is rebuilt that span is marked too (a
    // '<check>/repair' mark): together the marks cover every tick made on the wrong book, and training leaves them
    // out.
    const verdictMarks = r.suspectMarks.filter((m) => !m.checkId.endsWith('/repair'));
    const repairMarks = r.suspectMarks.filter((m) => m.checkId.endsWith('/repair'));
    const verdicts = r.judged.filter((c) => c.result === 'mismatch');
    expect(verdictMarks.map((m) => `${m.product}@${m.toUs}`).sort()).toEqual(
      verdicts.map((c) => `${c.product}@${c.judgedUs}`).sort(),
    );
    expect(repairMarks.length).toBeGreaterThanOrEqual(1);
    const marked = (product: string, tsUs: number, marks: typeof r.suspectMarks) =>
      marks.some((m) => m.product === product && m.fromUs <= tsUs && tsUs < m.toUs);
    expect(r.aroundVerdicts.length).toBe(r.checks.mismatch);
    for (const v of r.aroundVerdicts) {
      const why = JSON.stringify(v);
      // The last prediction before the verdict is the suspect mark's; unless an earlier mismatch of the product,
      // not yet repaired, still held it, it did not abstain.
      if (v.before) expect(marked(v.product, v.before.tsUs, verdictMarks), why).toBe(true);
      const earlier = verdicts.some(
        (w) => w.product === v.product && w.judgedUs < v.judgedUs && w.judgedUs > v.judgedUs - 30e6,
      );
      if (!earlier) expect(v.before?.abstain ?? '', why).not.toMatch(/differed from the exchange's/);
      // The first one from the verdict on abstains, and is in a repair mark once the mismatch ended (the book
      // rebuilt) within the run ('after' is absent only at the run's very end, when the lake's last open window
      // was never written).
      if (v.after) {
        expect(v.after.abstain, why).toMatch(/differed from the exchange's|resync/);
        if (v.ended && /differed from the exchange's/.test(v.after.abstain))
          expect(marked(v.product, v.after.tsUs, repairMarks), why).toBe(true);
      }
    }
    for (const f of r.faults.filter((x) => x.fate === 'detected')) {
      const covering = r.suspectMarks.filter(
        (m) => m.product === f.fault.product && m.fromUs <= f.fault.timeUs && f.fault.timeUs < m.toUs,
      );
      expect(covering.length, JSON.stringify(f.fault)).toBeGreaterThanOrEqual(1);
    }
  }, 180_000);
});
