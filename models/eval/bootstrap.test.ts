import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  averagePrecision,
  balancedAccuracy,
  brierScore,
  brierSkill,
  calibrationError,
  logLoss,
  rocAuc,
} from '../../src/model/metrics.js';
import { Rng } from '../../src/simulator/rng.js';
import { bootstrapMetrics, pairedDifferences, ScoredRows, timeBlocks } from './bootstrap.js';

/** Rows with both classes; scores from a few distinct values so ties occur. */
const rowsArb = fc
  .array(fc.record({ p: fc.integer({ min: 0, max: 20 }), y: fc.integer({ min: 0, max: 1 }) }), {
    minLength: 2,
    maxLength: 80,
  })
  .filter((rows) => rows.some((r) => r.y === 1) && rows.some((r) => r.y === 0))
  .map((rows) => ({ p: Float64Array.from(rows, (r) => r.p / 20), y: Uint8Array.from(rows, (r) => r.y) }));

describe('ScoredRows', () => {
  it("at unit weights equals src/model/metrics.ts's definitions, ties included", () => {
    fc.assert(
      fc.property(rowsArb, fc.double({ min: 0.01, max: 0.99, noNaN: true }), ({ p, y }, ref) => {
        const m = new ScoredRows(p, y, ref, ref).metrics();
        expect(m.prAuc).toBeCloseTo(averagePrecision(p, y), 12);
        expect(m.rocAuc).toBeCloseTo(rocAuc(p, y), 12);
        expect(m.brier).toBeCloseTo(brierScore(p, y), 12);
        expect(m.brierSkill).toBeCloseTo(brierSkill(p, y, ref), 12);
        expect(m.logLoss).toBeCloseTo(logLoss(p, y), 12);
        expect(m.balancedAccuracy).toBeCloseTo(balancedAccuracy(p, y, ref), 12);
        expect(m.calibrationError).toBeCloseTo(calibrationError(p, y), 12);
      }),
    );
  });

  it('an integer weight is the row repeated that many times', () => {
    fc.assert(
      fc.property(
        rowsArb,
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 80, maxLength: 80 }),
        ({ p, y }, w) => {
          const weights = Float64Array.from(p, (_, i) => w[i]!);
          const keep: number[] = [];
          p.forEach((_, i) => {
            for (let k = 0; k < weights[i]!; k++) keep.push(i);
          });
          const py = keep.map((i) => y[i]!);
          fc.pre(py.includes(0) && py.includes(1));
          const weighted = new ScoredRows(p, y, 0.3, 0.5).metrics(weights);
          const repeated = new ScoredRows(
            Float64Array.from(keep, (i) => p[i]!),
            Uint8Array.from(py),
            0.3,
            0.5,
          ).metrics();
          for (const [k, v] of Object.entries(weighted))
            expect(v).toBeCloseTo(repeated[k as keyof typeof repeated], 12);
        },
      ),
    );
  });

  it('rejects a probability outside [0, 1] and mismatched lengths', () => {
    expect(() => new ScoredRows(Float64Array.of(1.5), Uint8Array.of(1), 0.5, 0.5)).toThrow(/not in \[0, 1\]/);
    expect(() => new ScoredRows(Float64Array.of(0.5), Uint8Array.of(1, 0), 0.5, 0.5)).toThrow(/labels/);
  });
});

/** A slowly drifting signal (label persistence ~ 50 rows), one row per second, and two scorers of it. */
function autocorrelated(n: number, seed: number) {
  const rng = new Rng(seed);
  const tsUs = Float64Array.from({ length: n }, (_, i) => i * 1e6);
  const y = new Uint8Array(n);
  const good = new Float64Array(n);
  const weak = new Float64Array(n);
  let state = 0;
  for (let i = 0; i < n; i++) {
    if (i % 50 === 0) state = rng.uniform() < 0.3 ? 1 : 0;
    y[i] = rng.uniform() < (state ? 0.8 : 0.1) ? 1 : 0;
    good[i] = state ? 0.6 + 0.2 * rng.uniform() : 0.1 + 0.2 * rng.uniform();
    weak[i] = 0.3 + 0.1 * rng.uniform() + (state ? 0.05 : 0);
  }
  return { tsUs, y, good, weak };
}

describe('block bootstrap', () => {
  const d = autocorrelated(3000, 5);
  const good = new ScoredRows(d.good, d.y, 0.3, 0.3);
  const weak = new ScoredRows(d.weak, d.y, 0.3, 0.3);

  it('groups rows into time blocks, renumbered from 0', () => {
    expect(Array.from(timeBlocks([5e6, 6e6, 70e6, 200e6], 60e6).block)).toEqual([0, 0, 1, 2]);
    expect(() => timeBlocks([1], 0)).toThrow(RangeError);
  });

  it('is reproducible from its seed and brackets the point estimate', () => {
    const a = bootstrapMetrics([good], d.tsUs, { blockUs: 50e6, resamples: 200, seed: 3 });
    const b = bootstrapMetrics([good], d.tsUs, { blockUs: 50e6, resamples: 200, seed: 3 });
    expect(a).toEqual(b);
    const pr = a[0]!.prAuc;
    expect(pr.lo).toBeLessThanOrEqual(pr.value);
    expect(pr.hi).toBeGreaterThanOrEqual(pr.value);
  });

  it('widens the interval when rows within a block are dependent (1 s blocks understate the noise)', () => {
    const width = (blockUs: number) => {
      const i = bootstrapMetrics([good], d.tsUs, { blockUs, resamples: 300 })[0]!.rocAuc;
      return i.hi - i.lo;
    };
    expect(width(50e6)).toBeGreaterThan(1.5 * width(1e6));
  });

  it('pairs the resamples: a model against itself differs by exactly 0, a better one has a gain above 0', () => {
    const self = pairedDifferences(good, good, d.tsUs, { blockUs: 50e6, resamples: 200 });
    expect(self.prAuc).toEqual({ value: 0, lo: 0, hi: 0 });
    const gain = pairedDifferences(good, weak, d.tsUs, { blockUs: 50e6, resamples: 200 });
    expect(gain.prAuc.lo).toBeGreaterThan(0);
    expect(gain.logLoss.hi).toBeLessThan(0);
  });
});
