import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { predictLogistic, sigmoid, TrainingDataError, trainLogisticRegression } from './logreg.js';

/** Park-Miller generator: tests need reproducible pseudo-random data, never Math.random. */
function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647;
  };
}

function synthetic(n: number, seed: number) {
  const rand = seeded(seed);
  const X = Array.from({ length: n }, () => [rand() * 10, rand() - 0.5, 3]);
  // True model in raw units: logit = 0.8 * (x0 - 5) - 2 * x1
  const y = X.map((x) => (rand() < sigmoid(0.8 * (x[0]! - 5) - 2 * x[1]!) ? 1 : 0));
  return { X, y };
}

describe('trainLogisticRegression', () => {
  it('recovers the generating coefficients on a large sample', () => {
    const { X, y } = synthetic(20_000, 7);
    const m = trainLogisticRegression(X, y, { l2: 0 });
    // Raw-unit coefficient = standardized weight / std.
    expect(m.weights[0]! / m.std[0]!).toBeCloseTo(0.8, 1);
    expect(m.weights[1]! / m.std[1]!).toBeCloseTo(-2, 0);
    // The constant column gets std 1 and no weight.
    expect(m.std[2]).toBe(1);
    expect(m.weights[2]).toBe(0);
  });

  it('reaches the optimum: the regularized gradient vanishes', () => {
    const { X, y } = synthetic(500, 3);
    const l2 = 0.01;
    const m = trainLogisticRegression(X, y, { l2 });
    const grad = m.weights.map((w, j) => {
      let g = 0;
      X.forEach((x, i) => {
        g += ((predictLogistic(m, x) - y[i]!) * (x[j]! - m.mean[j]!)) / m.std[j]!;
      });
      return g / X.length + l2 * w;
    });
    for (const g of grad) expect(Math.abs(g)).toBeLessThan(1e-8);
  });

  it('is deterministic and unaffected by rescaling a feature', () => {
    const { X, y } = synthetic(300, 11);
    const a = trainLogisticRegression(X, y);
    expect(trainLogisticRegression(X, y)).toEqual(a);
    const scaled = X.map((x) => [x[0]! * 1000, x[1]!, x[2]!]);
    const b = trainLogisticRegression(scaled, y);
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 10, noNaN: true }),
        fc.double({ min: -1, max: 1, noNaN: true }),
        (u, v) => {
          expect(predictLogistic(b, [u * 1000, v, 3])).toBeCloseTo(predictLogistic(a, [u, v, 3]), 9);
        },
      ),
    );
  });

  it('stays finite when all labels agree or the classes are separable', () => {
    const X = [[0], [1], [2], [3]];
    const ones = trainLogisticRegression(X, [1, 1, 1, 1]);
    expect(predictLogistic(ones, [1])).toBeGreaterThan(0.99);
    const separable = trainLogisticRegression(X, [0, 0, 1, 1], { l2: 0.01 });
    expect(Number.isFinite(separable.weights[0])).toBe(true);
    expect(predictLogistic(separable, [3])).toBeGreaterThan(predictLogistic(separable, [0]));
  });

  it('rejects bad training data with a TrainingDataError', () => {
    expect(() => trainLogisticRegression([], [])).toThrow(TrainingDataError);
    expect(() => trainLogisticRegression([[1], [2]], [0])).toThrow(/2 rows but y has 1/);
    expect(() => trainLogisticRegression([[1], [2, 3]], [0, 1])).toThrow(/row 1 has 2 features/);
    expect(() => trainLogisticRegression([[1], [Number.NaN]], [0, 1])).toThrow(/not finite/);
    expect(() => trainLogisticRegression([[1], [2]], [0, 0.5])).toThrow(/must be 0 or 1/);
  });

  it('predictLogistic checks the feature count', () => {
    const m = trainLogisticRegression([[0], [1]], [0, 1]);
    expect(() => predictLogistic(m, [1, 2])).toThrow(/expected 1 features, got 2/);
  });
});
