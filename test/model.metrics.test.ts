import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  averagePrecision,
  baseRate,
  brierScore,
  logLoss,
  rankingMetrics,
  rocAuc,
} from '../src/model/metrics.js';

/** AUC by definition: P(score of a random positive > score of a random negative), ties count half. */
function pairwiseAuc(scores: number[], labels: number[]): number {
  let wins = 0;
  let pairs = 0;
  labels.forEach((li, i) => {
    if (li !== 1) return;
    labels.forEach((lj, j) => {
      if (lj !== 0) return;
      pairs++;
      wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

// Few distinct score values so ties are common.
const rows = fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.constantFrom(0, 1)), {
  minLength: 2,
  maxLength: 60,
});

describe('rocAuc', () => {
  it('equals the pairwise definition, ties averaged', () => {
    fc.assert(
      fc.property(rows, (r) => {
        const scores = r.map(([s]) => s / 7);
        const labels = r.map(([, l]) => l);
        if (labels.includes(0) && labels.includes(1)) {
          expect(rocAuc(scores, labels)).toBeCloseTo(pairwiseAuc(scores, labels), 12);
        } else {
          expect(rocAuc(scores, labels)).toBeNaN();
        }
      }),
    );
  });

  it('evaluates only the first n rows when asked (a ring buffer not yet full)', () => {
    fc.assert(
      fc.property(rows, fc.nat(), (r, cut) => {
        const n = 1 + (cut % r.length);
        const scores = Float64Array.from(r, ([s]) => s / 7);
        const labels = Uint8Array.from(r, ([, l]) => l);
        const head = r.slice(0, n);
        const expected = rocAuc(
          head.map(([s]) => s / 7),
          head.map(([, l]) => l),
        );
        if (Number.isNaN(expected)) expect(rocAuc(scores, labels, n)).toBeNaN();
        else expect(rocAuc(scores, labels, n)).toBe(expected);
      }),
    );
  });

  it('depends only on the order of the scores', () => {
    fc.assert(
      fc.property(rows, (r) => {
        const scores = r.map(([s]) => s);
        const labels = r.map(([, l]) => l);
        const squashed = scores.map((s) => 1 / (1 + Math.exp(-s)));
        expect(rocAuc(squashed, labels)).toBe(rocAuc(scores, labels));
      }),
    );
  });

  it('flipping the scores gives 1 - AUC', () => {
    const scores = [0.1, 0.4, 0.35, 0.8, 0.8, 0.2];
    const labels = [0, 0, 1, 1, 0, 1];
    expect(
      rocAuc(
        scores.map((s) => -s),
        labels,
      ),
    ).toBeCloseTo(1 - rocAuc(scores, labels), 12);
  });

  it('rejects mismatched lengths and non-binary labels with clear errors', () => {
    expect(() => rocAuc([0.1, 0.2], [1])).toThrow(/2 scores but 1 labels/);
    expect(() => rocAuc([0.1, 0.2], [1, 2])).toThrow(/label 1 must be 0 or 1/);
  });
});

describe('brierScore, logLoss, baseRate', () => {
  it('a perfect forecaster scores 0; a constant forecaster at the base rate has Brier = p(1-p)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(0, 1), { minLength: 1, maxLength: 50 }), (labels) => {
        expect(brierScore(labels, labels)).toBe(0);
        expect(logLoss(labels, labels)).toBeLessThan(1e-12);
        const p = baseRate(labels);
        expect(p).toBe(labels.filter((l) => l === 1).length / labels.length);
        expect(
          brierScore(
            labels.map(() => p),
            labels,
          ),
        ).toBeCloseTo(p * (1 - p), 12);
      }),
    );
  });

  it('logLoss of a coin flip is ln 2 and a confident miss stays finite', () => {
    expect(logLoss([0.5, 0.5, 0.5], [0, 1, 1])).toBeCloseTo(Math.LN2, 12);
    const miss = logLoss([0, 1], [1, 0]);
    expect(Number.isFinite(miss)).toBe(true);
    expect(miss).toBeGreaterThan(30);
  });
});

/** Average precision by its definition: for each distinct threshold, high to low, precision × recall gained. */
function referenceAp(scores: number[], labels: number[]): number {
  const positives = labels.filter((l) => l === 1).length;
  const thresholds = [...new Set(scores)].sort((a, b) => b - a);
  let ap = 0;
  let previousRecall = 0;
  for (const t of thresholds) {
    const chosen = scores.map((s, i) => [s, labels[i]!] as const).filter(([s]) => s >= t);
    const tp = chosen.filter(([, l]) => l === 1).length;
    const recall = tp / positives;
    ap += (recall - previousRecall) * (tp / chosen.length);
    previousRecall = recall;
  }
  return ap;
}

describe('averagePrecision (PR-AUC)', () => {
  it('equals the threshold-by-threshold definition, tied scores entering together', () => {
    fc.assert(
      fc.property(rows, (r) => {
        const scores = r.map(([s]) => s / 7);
        const labels = r.map(([, l]) => l);
        if (labels.includes(1)) {
          expect(averagePrecision(scores, labels)).toBeCloseTo(referenceAp(scores, labels), 12);
        } else {
          expect(averagePrecision(scores, labels)).toBeNaN();
        }
      }),
    );
  });

  it('is 1 for a perfect ranking and the base rate for a constant scorer', () => {
    expect(averagePrecision([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])).toBe(1);
    const labels = [0, 1, 0, 0, 1, 0, 0, 0];
    expect(
      averagePrecision(
        labels.map(() => 0.3),
        labels,
      ),
    ).toBe(baseRate(labels));
    // The worst ranking still scores above 0: the last threshold takes every positive.
    expect(averagePrecision([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])).toBeCloseTo(
      (1 / 2) * (1 / 3) + (1 / 2) * (2 / 4),
      12,
    );
  });

  it('depends only on the order of the scores', () => {
    fc.assert(
      fc.property(rows, (r) => {
        const scores = r.map(([s]) => s);
        const labels = r.map(([, l]) => l);
        const squashed = scores.map((s) => 1 / (1 + Math.exp(-s)));
        const a = averagePrecision(squashed, labels);
        const b = averagePrecision(scores, labels);
        if (Number.isNaN(b)) expect(a).toBeNaN();
        else expect(a).toBe(b);
      }),
    );
  });
});

describe('rankingMetrics', () => {
  it('gives what rocAuc and averagePrecision give, from one sort', () => {
    fc.assert(
      fc.property(rows, (r) => {
        const scores = r.map(([s]) => s / 7);
        const labels = r.map(([, l]) => l);
        const both = rankingMetrics(scores, labels);
        expect(Object.is(both.rocAuc, rocAuc(scores, labels))).toBe(true);
        expect(Object.is(both.averagePrecision, averagePrecision(scores, labels))).toBe(true);
        if (labels.includes(1)) expect(both.averagePrecision).toBeCloseTo(referenceAp(scores, labels), 12);
      }),
    );
  });
});
