import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FEATURE_NAMES, MODEL_FEATURES } from '../../src/features/spec.js';
import { rocAuc } from '../../src/model/metrics.js';
import { Rng } from '../../src/simulator/rng.js';
import { FOCUS_INPUTS, focusOf, trainFocusedRegression } from './focused.js';
import { logisticMargin, predictLogistic, trainLogisticRegression } from './logreg.js';

describe('the focused regression', () => {
  it('takes the volatility and activity inputs of each set, and none for a target without a list', () => {
    const l2 = focusOf('vol_spike_60s', MODEL_FEATURES.l2)!.map((j) => MODEL_FEATURES.l2[j]!);
    expect(l2).toContain('rv_30s_bps');
    expect(l2).toContain('log_book_update_rate_ratio_5s_300s');
    expect(l2).not.toContain('spread_bps');
    expect(l2).not.toContain('imbalance_l1');
    const ticker = focusOf('vol_spike_60s', MODEL_FEATURES.ticker)!.map((j) => MODEL_FEATURES.ticker[j]!);
    expect(ticker).toEqual(l2.filter((n) => MODEL_FEATURES.ticker.includes(n)));
    expect(ticker).not.toContain('log_book_update_rate_ratio_5s_300s');
    expect(focusOf('quote_change_500ms', MODEL_FEATURES.l2)).toBeUndefined();
    // Every name the list can match is a feature the row has (a renamed feature would silently drop out).
    expect(FEATURE_NAMES.filter((n) => FOCUS_INPUTS.vol_spike_60s!.test(n)).length).toBe(l2.length);
  });

  it('a label driven by a product of rates: on a log scale it ranks better than the regression on raw inputs', () => {
    // y depends on ln(a) + ln(b): a linear model of a and b cannot add them; one of ln a and ln b can.
    const rng = new Rng(3);
    const rows = (n: number) =>
      Array.from({ length: n }, () => {
        const a = Math.exp(rng.normal() * 1.2);
        const b = Math.exp(rng.normal() * 1.2);
        const noise = rng.uniform() * 2 - 1; // an input the focus leaves out
        const p = 1 / (1 + Math.exp(-(Math.log(a) + Math.log(b) - 1.5)));
        return { x: [a, b, noise], y: rng.uniform() < p ? 1 : 0 };
      });
    const train = rows(4000);
    const test = rows(4000);
    const X = train.map((r) => r.x);
    const y = train.map((r) => r.y);
    const focused = trainFocusedRegression(X, y, [0, 1], { l2: 1e-3 });
    const plain = trainLogisticRegression(X, y, { l2: 1e-3 });
    const auc = (m: typeof plain) =>
      rocAuc(
        test.map((r) => predictLogistic(m, r.x)),
        test.map((r) => r.y),
      );
    expect(auc(focused)).toBeGreaterThan(auc(plain) + 0.02);
    expect(focused.weights[2]).toBe(0); // outside the focus
    expect(focused.logFloor![0]).toBeGreaterThan(0);
    expect(focused.logFloor![2]).toBe(0);
  });

  it('its margin is the regression of the log-scaled focus columns (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.double({ min: 0, max: 50, noNaN: true }),
            fc.double({ min: -5, max: 5, noNaN: true }),
            fc.integer({ min: 0, max: 1 }),
          ),
          { minLength: 20, maxLength: 60 },
        ),
        (data) => {
          fc.pre(new Set(data.map((d) => d[2])).size === 2);
          const X = data.map(([a, b]) => [a, b, 7]);
          const y = data.map((d) => d[2]);
          const m = trainFocusedRegression(X, y, [0, 1], { l2: 0.1 });
          // Column 0 is nonnegative: log scale; column 1 has negatives: as it is; column 2 is outside.
          expect(m.logFloor![0]).toBeGreaterThan(0);
          expect(m.logFloor![1]).toBe(0);
          const direct = trainLogisticRegression(
            X.map(([a, b]) => [Math.log(a! + m.logFloor![0]!), b!]),
            y,
            { l2: 0.1 },
          );
          for (const x of X) {
            const z = logisticMargin(direct, [Math.log(x[0]! + m.logFloor![0]!), x[1]!]);
            expect(logisticMargin(m, x)).toBeCloseTo(z, 9);
          }
        },
      ),
      { numRuns: 30 },
    );
  });
});
