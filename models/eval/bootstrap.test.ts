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
import {
  bootstrapMetrics,
  METRICS,
  type MetricValues,
  pairedDifferences,
  ScoredRows,
  timeBlocks,
} from './bootstrap.js';

/** Rows with both classes; scores from a few distinct values so ties occur. */
const rowsArb = fc
  .array(fc.record({ p: fc.integer({ min: 0, max: 20 }), y: fc.integer({ min: 0, max: 1 }) }), {
    minLength: 2,
    maxLength: 80,
  })
  .filter((rows) => rows.some((r) => r.y === 1) && rows.some((r) => r.y === 0))
  .map((rows) => ({ p: Float64Array.from(rows, (r) => r.p / 20), y: Uint8Array.from(rows, (r) => r.y) }));

/**
 * The metrics under per-row weights straight from their definitions, O(rows²) where that is plainest: average
 * precision as each positive's precision among the rows scoring at least as high (ties enter together), ROC-AUC
 * as the share of (positive, negative) pairs ordered right with ties counting one half, ECE over 10 equal bins.
 */
function referenceMetrics(
  p: Float64Array,
  y: Uint8Array,
  w: ArrayLike<number>,
  reference: number,
  decision: number,
): MetricValues {
  let pos = 0;
  let neg = 0;
  let brier = 0;
  let refBrier = 0;
  let loss = 0;
  let tp = 0;
  let tn = 0;
  const binW = new Array<number>(10).fill(0);
  const binGap = new Array<number>(10).fill(0);
  for (let i = 0; i < p.length; i++) {
    const wi = w[i]!;
    if (y[i] === 1) pos += wi;
    else neg += wi;
    brier += wi * (p[i]! - y[i]!) ** 2;
    refBrier += wi * (reference - y[i]!) ** 2;
    const q = Math.min(1 - 1e-15, Math.max(1e-15, p[i]!));
    loss -= wi * (y[i] === 1 ? Math.log(q) : Math.log(1 - q));
    const said = p[i]! >= decision ? 1 : 0;
    if (said === 1 && y[i] === 1) tp += wi;
    if (said === 0 && y[i] === 0) tn += wi;
    const bin = Math.min(9, Math.floor(p[i]! * 10));
    binW[bin]! += wi;
    binGap[bin]! += wi * (p[i]! - y[i]!);
  }
  let ap = 0;
  let pairs = 0;
  for (let i = 0; i < p.length; i++) {
    if (y[i] !== 1 || w[i] === 0) continue;
    let above = 0;
    let posAbove = 0;
    for (let j = 0; j < p.length; j++) {
      if (p[j]! >= p[i]!) {
        above += w[j]!;
        posAbove += w[j]! * y[j]!;
      }
      if (y[j] === 0) pairs += w[i]! * w[j]! * (p[i]! > p[j]! ? 1 : p[i] === p[j] ? 0.5 : 0);
    }
    ap += (w[i]! * posAbove) / above;
  }
  const total = pos + neg;
  const both = pos > 0 && neg > 0;
  return {
    prAuc: pos > 0 ? ap / pos : Number.NaN,
    rocAuc: both ? pairs / (pos * neg) : Number.NaN,
    brier: brier / total,
    brierSkill: refBrier > 0 ? 1 - brier / refBrier : Number.NaN,
    logLoss: loss / total,
    balancedAccuracy: both ? (tp / pos + tn / neg) / 2 : Number.NaN,
    calibrationError: binW.reduce((s, bw, b) => s + (bw > 0 ? Math.abs(binGap[b]!) : 0), 0) / total,
  };
}

/** Equal to 1e-9 relative (NaN and infinities: the same). */
function expectClose(actual: MetricValues, expected: MetricValues) {
  for (const m of METRICS) {
    const [a, e] = [actual[m], expected[m]];
    if (Number.isNaN(e)) expect(a, m).toBeNaN();
    else if (!Number.isFinite(e)) expect(a, m).toBe(e);
    else expect(Math.abs(a - e), m).toBeLessThanOrEqual(1e-9 * Math.max(Math.abs(a), Math.abs(e)) + 1e-12);
  }
}

/** Rows on a grid of scores (ties, 0 and 1 included), their blocks, and a draw count per block. */
const resampleArb = fc.integer({ min: 1, max: 8 }).chain((blocks) =>
  fc.record({
    rows: fc.array(
      fc.record({
        p: fc.integer({ min: 0, max: 20 }),
        y: fc.integer({ min: 0, max: 1 }),
        block: fc.integer({ min: 0, max: blocks - 1 }),
      }),
      { minLength: 1, maxLength: 60 },
    ),
    drawn: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: blocks, maxLength: blocks }),
    reference: fc.double({ min: 0, max: 1, noNaN: true }),
    decision: fc.integer({ min: 0, max: 20 }).map((d) => d / 20),
  }),
);

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

  it('per block weights equal the per-row definitions (to 1e-9), PR-AUC, ROC-AUC, balanced accuracy exactly', () => {
    fc.assert(
      fc.property(resampleArb, ({ rows, drawn, reference, decision }) => {
        const p = Float64Array.from(rows, (r) => r.p / 20);
        const y = Uint8Array.from(rows, (r) => r.y);
        const block = Uint32Array.from(rows, (r) => r.block);
        const w = Float64Array.from(rows, (r) => drawn[r.block]!);
        const scored = new ScoredRows(p, y, reference, decision);
        const fast = scored.byBlock(block)(Float64Array.from(drawn));
        expectClose(fast, referenceMetrics(p, y, w, reference, decision));
        const perRow = scored.metrics(w);
        expectClose(perRow, referenceMetrics(p, y, w, reference, decision));
        for (const m of ['prAuc', 'rocAuc', 'balancedAccuracy'] as const) expect(fast[m]).toBe(perRow[m]);
      }),
    );
  });

  it('any row weights (not only counts) and unit weights equal the per-row definitions', () => {
    fc.assert(
      fc.property(
        resampleArb,
        fc.array(
          fc.integer({ min: 0, max: 5000 }).map((v) => v / 1000),
          { minLength: 60, maxLength: 60 },
        ),
        ({ rows, reference, decision }, weights) => {
          const p = Float64Array.from(rows, (r) => r.p / 20);
          const y = Uint8Array.from(rows, (r) => r.y);
          const w = Float64Array.from(rows, (_, i) => weights[i]!);
          const scored = new ScoredRows(p, y, reference, decision);
          expectClose(scored.metrics(w), referenceMetrics(p, y, w, reference, decision));
          expectClose(
            scored.metrics(),
            referenceMetrics(p, y, new Float64Array(p.length).fill(1), reference, decision),
          );
        },
      ),
    );
  });

  it('rejects a probability outside [0, 1] and mismatched lengths', () => {
    expect(() => new ScoredRows(Float64Array.of(1.5), Uint8Array.of(1), 0.5, 0.5)).toThrow(/not in \[0, 1\]/);
    expect(() => new ScoredRows(Float64Array.of(0.5), Uint8Array.of(1, 0), 0.5, 0.5)).toThrow(/labels/);
    expect(() =>
      new ScoredRows(Float64Array.of(0.5), Uint8Array.of(1), 0.5, 0.5).byBlock(Uint32Array.of(0, 0)),
    ).toThrow(/blocks for 1 rows/);
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
