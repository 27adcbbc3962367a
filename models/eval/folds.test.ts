import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FoldError, walkForwardFolds } from './folds.js';

/** Sorted tick times, several products per tick sometimes, with gaps. */
const timesArb = fc
  .array(fc.integer({ min: 1, max: 3_000_000 }), { minLength: 200, maxLength: 600 })
  .map((steps) => {
    const out: number[] = [];
    let t = 1_700_000_000_000_000;
    for (const s of steps) {
      t += s < 500_000 ? 0 : s; // a step under 0.5 s: another product at the same tick
      out.push(t);
    }
    return out;
  });

describe('walkForwardFolds', () => {
  it('keeps train < validation < embargo < test in time, purged by the horizon, expanding', () => {
    fc.assert(
      fc.property(timesArb, fc.integer({ min: 2, max: 6 }), (ts, folds) => {
        const span = ts.at(-1)! - ts[0]!;
        const o = { folds, horizonUs: span / 200, embargoUs: span / 40, validationFraction: 0.2 };
        let made: ReturnType<typeof walkForwardFolds>;
        try {
          made = walkForwardFolds(ts, o);
        } catch (err) {
          fc.pre(!(err instanceof FoldError)); // too few rows in some part: said clearly, not a property failure
          throw err;
        }
        expect(made).toHaveLength(folds);
        let lastTestEnd = -1;
        for (const f of made) {
          expect(f.train[0]).toBe(0); // expanding
          const lastTrain = ts[f.train[1] - 1]!;
          const firstValidation = ts[f.validation[0]]!;
          const lastValidation = ts[f.validation[1] - 1]!;
          const firstTest = ts[f.test[0]]!;
          expect(lastTrain + o.horizonUs).toBeLessThan(firstValidation);
          expect(firstTest - lastValidation).toBeGreaterThan(o.embargoUs);
          expect(f.purged).toBe(f.validation[0] - f.train[1]);
          expect(f.embargoed).toBe(f.test[0] - f.validation[1]);
          // test stretches follow each other without overlap
          expect(f.test[0]).toBeGreaterThanOrEqual(lastTestEnd);
          lastTestEnd = f.test[1];
        }
        expect(lastTestEnd).toBe(ts.length); // the newest rows are tested
      }),
    );
  });

  it('refuses an embargo shorter than the horizon, unsorted rows and data too short for the folds', () => {
    const ts = Array.from({ length: 100 }, (_, i) => i * 1e6);
    const o = { folds: 3, horizonUs: 2e6, embargoUs: 5e6, validationFraction: 0.2 };
    expect(() => walkForwardFolds(ts, { ...o, embargoUs: 1e6 })).toThrow(/at least the label horizon/);
    expect(() => walkForwardFolds([...ts].reverse(), o)).toThrow(/not in time order/);
    expect(() => walkForwardFolds(ts, { ...o, embargoUs: 30e6 })).toThrow(/too short for 3 folds/);
    expect(walkForwardFolds(ts, o)).toHaveLength(3);
  });
});
