import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { FeatureSpec } from '../../src/features/types.js';
import { logLoss, rocAuc } from '../../src/model/metrics.js';
import { exportTreeOnnx } from '../export/onnx.js';
import { GbdtError, gbdtMargin, type Matrix, predictGbdt, trainGbdt, trainGbdtOnLogistic } from './gbdt.js';
import { predictLogistic, trainLogisticRegression } from './logreg.js';

/** Seeded rows: y depends on x0 (threshold), x1² (non-linear), x0·x2 (interaction) and whether x3 is missing. */
function data(rows: number, seed: number): { x: Matrix; y: Uint8Array } {
  const F = 5;
  let s = seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const values = new Float32Array(rows * F);
  const y = new Uint8Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < F; f++) values[r * F + f] = rnd() * 2 - 1;
    if (r % 7 === 0) values[r * F + 3] = Number.NaN;
    const x = (f: number) => values[r * F + f]!;
    const z =
      3 * (x(0) > 0.2 ? 1 : -1) - 4 * x(1) * x(1) + 1 + 3 * x(0) * x(2) + (Number.isNaN(x(3)) ? 2 : 0);
    y[r] = rnd() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { x: { rows, features: F, values }, y };
}

const rowOf = (x: Matrix, r: number) => x.values.subarray(r * x.features, (r + 1) * x.features);
const specOf = (width: number): FeatureSpec => ({
  version: 3,
  tickMs: 100,
  features: Array.from({ length: width }, (_, i) => ({ name: `f${i}`, type: 'float32', description: '' })),
});

describe('trainGbdt', () => {
  const train = data(6000, 1);
  const valid = data(2000, 2);
  const test = data(3000, 3);
  const opts = { rounds: 60, maxDepth: 4, learningRate: 0.2, earlyStoppingRounds: 10 };

  it('learns thresholds, curvature, interactions and missingness that a linear model cannot', async () => {
    const { model, treesBuilt, bestRound } = await trainGbdt(train.x, train.y, opts, valid);
    const y = Array.from(test.y);
    const p = Array.from({ length: test.x.rows }, (_, r) => predictGbdt(model, rowOf(test.x, r)));
    const X = Array.from({ length: train.x.rows }, (_, r) =>
      Array.from(rowOf(train.x, r), (v) => (Number.isNaN(v) ? 0 : v)),
    );
    const lr = trainLogisticRegression(X, Array.from(train.y));
    const pl = Array.from({ length: test.x.rows }, (_, r) =>
      predictLogistic(
        lr,
        Array.from(rowOf(test.x, r), (v) => (Number.isNaN(v) ? 0 : v)),
      ),
    );
    expect(rocAuc(p, y)).toBeGreaterThan(rocAuc(pl, y) + 0.05);
    expect(logLoss(p, y)).toBeLessThan(logLoss(pl, y));
    expect(model.trees).toHaveLength(bestRound);
    expect(treesBuilt).toBeGreaterThanOrEqual(bestRound);
    // Every split sits at an exact float32 training value; missing values were routed both ways somewhere.
    for (const t of model.trees) for (const v of t.threshold) expect(Math.fround(v)).toBe(v);
  });

  it('is deterministic and does not depend on the number of threads', async () => {
    // 5 features over 1, 2 and 3 threads: code words full, partly used and holding one feature.
    const a = await trainGbdt(train.x, train.y, { ...opts, rounds: 15, threads: 1 }, valid);
    for (const threads of [2, 3]) {
      const b = await trainGbdt(train.x, train.y, { ...opts, rounds: 15, threads }, valid);
      expect(b.model).toEqual(a.model);
      expect(b.validationLoss).toEqual(a.validationLoss);
    }
  });

  it('with many features (code words read in pairs, alone and part-filled) the threads give one model', async () => {
    // 5 informative + 17 noise features: one thread reads 22 features as 2 pairs of words, a full word and a
    // half-full one; two threads 11 each (a pair and a 3-feature word); three threads 7 or 8 each.
    const wide = (x: Matrix): Matrix => {
      const F = 22;
      const values = new Float32Array(x.rows * F);
      for (let r = 0; r < x.rows; r++) {
        for (let f = 0; f < F; f++) {
          values[r * F + f] = f < x.features ? x.values[r * x.features + f]! : Math.sin(r * (f + 1) * 0.7311);
        }
      }
      return { rows: x.rows, features: F, values };
    };
    const x = wide(train.x);
    const v = { x: wide(valid.x), y: valid.y };
    const a = await trainGbdt(x, train.y, { ...opts, rounds: 8, threads: 1 }, v);
    for (const threads of [2, 3]) {
      const b = await trainGbdt(x, train.y, { ...opts, rounds: 8, threads }, v);
      expect(b.model).toEqual(a.model);
      expect(b.validationLoss).toEqual(a.validationLoss);
    }
    // The informative features carry the splits.
    expect(a.gain.slice(0, 3).reduce((p, q) => p + q, 0)).toBeGreaterThan(
      a.gain.slice(5).reduce((p, q) => p + q, 0),
    );
  });

  it('a tree that cannot split is one leaf: the model stays at the base rate', async () => {
    const r = await trainGbdt(train.x, train.y, { rounds: 3, minSplitGain: 1e12 }, valid);
    expect(r.treesBuilt).toBe(3);
    for (const t of r.model.trees) expect(Array.from(t.feature)).toEqual([-1]);
    const rate = train.y.reduce((a, b) => a + b, 0) / train.y.length;
    expect(predictGbdt(r.model, rowOf(test.x, 0))).toBeCloseTo(rate, 6);
    // Every round saw the same margins on every row: the validation loss stays flat.
    expect(Math.max(...r.validationLoss) - Math.min(...r.validationLoss)).toBeLessThan(1e-6);
  });

  it('stops early when the validation loss stops improving, keeping the best round', async () => {
    // Labels of the validation part are noise: the first trees help nothing, more trees only overfit.
    const noise = { x: valid.x, y: Uint8Array.from(valid.y, (_, i) => ((i * 7919) % 3 === 0 ? 1 : 0)) };
    const r = await trainGbdt(train.x, train.y, { ...opts, rounds: 100, earlyStoppingRounds: 5 }, noise);
    expect(r.treesBuilt).toBeLessThan(100);
    expect(r.treesBuilt - r.bestRound).toBe(5);
    const best = Math.min(...r.validationLoss);
    expect(r.validationLoss[r.bestRound - 1]).toBe(best);
  });

  it('respects depth, min child weight, and reports gain per feature', async () => {
    const r = await trainGbdt(train.x, train.y, { rounds: 5, maxDepth: 2, minChildWeight: 200 });
    for (const t of r.model.trees) {
      const depth = (node: number): number =>
        t.feature[node]! < 0 ? 0 : 1 + Math.max(depth(t.left[node]!), depth(t.right[node]!));
      expect(depth(0)).toBeLessThanOrEqual(2);
    }
    expect(r.gain[4]).toBeLessThan(r.gain[0]!); // x4 is noise
    expect(r.splits.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('refuses one-class labels, mismatched shapes, non-0/1 labels and more than 255 bins', async () => {
    const ones = new Uint8Array(train.x.rows).fill(1);
    await expect(trainGbdt(train.x, ones)).rejects.toThrow(/all 6000 labels are 1; need both classes/);
    await expect(trainGbdt(train.x, train.y.subarray(1))).rejects.toThrow(GbdtError);
    const bad = Uint8Array.from(train.y);
    bad[3] = 2;
    await expect(trainGbdt(train.x, bad)).rejects.toThrow(/label 3 must be 0 or 1/);
    await expect(trainGbdt(train.x, train.y, { maxBins: 256 })).rejects.toThrow(
      /maxBins must be an integer in \[2, 255\]/,
    );
  });
});

/** data() without missing values (a regression cannot take NaN; the project's rows are complete). */
function complete(rows: number, seed: number) {
  const d = data(rows, seed);
  d.x.values.forEach((v, i) => {
    if (Number.isNaN(v)) d.x.values[i] = 0;
  });
  return d;
}
const regressionOn = (d: { x: Matrix; y: Uint8Array }, l2 = 1e-3) =>
  trainLogisticRegression(
    Array.from({ length: d.x.rows }, (_, r) => Array.from(rowOf(d.x, r))),
    Array.from(d.y),
    { l2 },
  );

describe('trainGbdtOnLogistic', () => {
  const train = complete(6000, 21);
  const valid = complete(2000, 22);
  const test = complete(3000, 23);
  const y = Array.from(test.y);
  const opts = { rounds: 80, maxDepth: 3, learningRate: 0.1, earlyStoppingRounds: 10 };

  it("starts from the regression's margin and adds what it misses: better than the regression alone", async () => {
    const lr = regressionOn(train);
    const { model } = await trainGbdtOnLogistic(lr, train.x, train.y, opts, valid);
    expect(model.linear).toBe(lr);
    const pl = y.map((_, r) => predictLogistic(lr, Array.from(rowOf(test.x, r))));
    const p = y.map((_, r) => predictGbdt(model, rowOf(test.x, r)));
    expect(logLoss(p, y)).toBeLessThan(logLoss(pl, y) - 0.02);
    expect(rocAuc(p, y)).toBeGreaterThan(rocAuc(pl, y));
    // The margin is the regression's log-odds plus the trees' sum.
    const x = rowOf(test.x, 0);
    const trees = gbdtMargin({ features: model.features, trees: model.trees }, x);
    const z = predictLogistic(lr, Array.from(x));
    expect(gbdtMargin(model, x)).toBeCloseTo(Math.log(z / (1 - z)) + trees, 9);
  });

  it('where the regression is already right, the early-stopped trees stay close to it', async () => {
    // y from a linear score only: nothing is left for the trees but noise.
    const linear = (rows: number, seed: number) => {
      const d = complete(rows, seed);
      let s = seed * 7 + 1;
      for (let r = 0; r < rows; r++) {
        const z = 2 * d.x.values[r * 5]! - 1.5 * d.x.values[r * 5 + 1]! + 0.5;
        s = (s * 1103515245 + 12345) % 2147483648;
        d.y[r] = s / 2147483648 < 1 / (1 + Math.exp(-z)) ? 1 : 0;
      }
      return d;
    };
    const [tr, va, te] = [linear(6000, 31), linear(2000, 32), linear(3000, 33)];
    const lr = regressionOn(tr);
    const stacked = await trainGbdtOnLogistic(lr, tr.x, tr.y, opts, va);
    const alone = await trainGbdt(tr.x, tr.y, opts, va);
    const yt = Array.from(te.y);
    const loss = (f: (x: Float32Array) => number) =>
      logLoss(
        yt.map((_, r) => f(rowOf(te.x, r))),
        yt,
      );
    const lrLoss = loss((x) => predictLogistic(lr, Array.from(x)));
    expect(loss((x) => predictGbdt(stacked.model, x))).toBeLessThan(lrLoss + 0.005);
    // Trees alone rebuild a straight line from steps, and lose more.
    expect(loss((x) => predictGbdt(alone.model, x))).toBeGreaterThan(
      loss((x) => predictGbdt(stacked.model, x)),
    );
  });
});

describe('exportTreeOnnx', () => {
  it('trees on a regression: onnxruntime (regression + TreeEnsemble, Add, Sigmoid) gives the TypeScript probabilities to 1e-6', async () => {
    const train = complete(4000, 41);
    const { model } = await trainGbdtOnLogistic(regressionOn(train), train.x, train.y, {
      rounds: 20,
      maxDepth: 4,
    });
    const test = complete(500, 42);
    const session = await ort.InferenceSession.create(exportTreeOnnx(model, specOf(5)));
    try {
      const out = await session.run({ features: new ort.Tensor('float32', test.x.values, [test.x.rows, 5]) });
      expect(out.probability?.dims).toEqual([test.x.rows, 1]);
      let worst = 0;
      for (let r = 0; r < test.x.rows; r++)
        worst = Math.max(
          worst,
          Math.abs((out.probability!.data[r] as number) - predictGbdt(model, rowOf(test.x, r))),
        );
      expect(worst).toBeLessThan(1e-6);
    } finally {
      await session.release();
    }
  });

  it('onnxruntime (TreeEnsemble + Sigmoid) gives the TypeScript model probabilities to 1e-6, NaN included', async () => {
    const train = data(4000, 11);
    const { model } = await trainGbdt(train.x, train.y, { rounds: 30, maxDepth: 5 });
    const test = data(500, 12);
    const session = await ort.InferenceSession.create(exportTreeOnnx(model, specOf(5)));
    try {
      const out = await session.run({ features: new ort.Tensor('float32', test.x.values, [test.x.rows, 5]) });
      expect(out.probability?.dims).toEqual([test.x.rows, 1]);
      for (let r = 0; r < test.x.rows; r++) {
        expect(
          Math.abs((out.probability!.data[r] as number) - predictGbdt(model, rowOf(test.x, r))),
        ).toBeLessThan(1e-6);
      }
    } finally {
      await session.release();
    }
  });

  it('exports a tree that never split (one leaf) and refuses a spec of the wrong width', async () => {
    const leaf = {
      feature: Int32Array.of(-1),
      threshold: Float32Array.of(0),
      left: Int32Array.of(-1),
      right: Int32Array.of(-1),
      missingLeft: Uint8Array.of(0),
      value: Float32Array.of(0.5),
    };
    const model = { features: 2, trees: [leaf] };
    const session = await ort.InferenceSession.create(exportTreeOnnx(model, specOf(2)));
    const out = await session.run({ features: new ort.Tensor('float32', Float32Array.of(1, 2), [1, 2]) });
    expect(out.probability!.data[0]).toBeCloseTo(1 / (1 + Math.exp(-0.5)), 6);
    expect(gbdtMargin(model, [1, 2])).toBe(0.5);
    await session.release();
    expect(() => exportTreeOnnx(model, specOf(3))).toThrow(/3 features but the model takes 2/);
  });
});
