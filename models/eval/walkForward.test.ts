import { beforeAll, describe, expect, it } from 'vitest';
import { rocAuc } from '../../src/model/metrics.js';
import { Rng } from '../../src/simulator/rng.js';
import { buildDatasets, type Datasets } from '../baseline.js';
import { DatasetError, labelsOf, modelRows, toMatrix } from '../train/dataset.js';
import { predictGbdt, trainGbdt } from '../train/gbdt.js';
import { binarizeByProduct, fitThresholdsByProduct } from '../train/targets.js';
import { renderReport } from './runRecord.js';
import {
  concatPredictions,
  embargoUs,
  formatWalkForward,
  LEARNER_LETTER,
  MODELS,
  summarizePredictions,
  type TestPredictions,
  walkForward,
} from './walkForward.js';

// 45 simulated minutes (~9 s to build), small trees: the figures of the real configuration come from the bench.
const GBDT = { rounds: 30, maxDepth: 4, learningRate: 0.2, minChildWeight: 5, earlyStoppingRounds: 5 };
let data: Datasets;
beforeAll(() => {
  data = buildDatasets({ seed: 11, minutes: 45 });
});

describe('walkForward on the simulated market', () => {
  it('tests every fold on later rows only, pools them, and gives each model intervals overall and per product', async () => {
    const { report, predictions } = await walkForward(data.quoteChange, {
      target: 'quote_change_500ms',
      set: 'l2',
      folds: 4,
      l2Grid: [0.01, 1],
      gbdt: GBDT,
      bootstrap: { resamples: 100 },
    });
    expect(report.folds).toHaveLength(4);
    expect(report.embargoUs).toBe(embargoUs('quote_change_500ms', 500));
    expect(report.embargoUs).toBeGreaterThanOrEqual(300e6 + 0.5e6);
    expect(report.test.rows).toBe(report.folds.reduce((n, f) => n + f.rows.test, 0));
    expect(predictions.y).toHaveLength(report.test.rows);
    for (const f of report.folds) {
      expect(f.rows.train).toBeGreaterThan(0);
      expect(f.embargoed).toBeGreaterThan(0);
      // every test row of the fold is past the embargo after the newest row the fold learnt from
      const first = predictions.tsUs[predictions.fold.indexOf(f.index)]!;
      expect(first).toBe(f.testWindow.fromUs);
    }
    expect(Object.keys(report.perProduct).sort()).toEqual([...new Set(predictions.product)].sort());
    for (const m of MODELS) {
      const { logLoss, prAuc } = report.overall[m];
      expect(prAuc.lo).toBeLessThanOrEqual(prAuc.value);
      expect(prAuc.hi).toBeGreaterThanOrEqual(prAuc.value);
      expect(logLoss.value).toBeGreaterThan(0);
    }
    // The gain is oriented "positive = chosen better": for log loss, the baseline's minus the chosen model's.
    const { base_rate, chosen } = report.overall;
    expect(report.gain.base_rate.value).toBeCloseTo(base_rate.logLoss.value - chosen.logLoss.value, 12);
    expect(report.gain.base_rate.lo).toBeLessThanOrEqual(report.gain.base_rate.value);
    expect(report.gain.base_rate.hi).toBeGreaterThanOrEqual(report.gain.base_rate.value);
    expect(report.importance[0]!.gain).toBeGreaterThan(0);
    // The chosen model is, fold by fold, the learner that did better on the validation part.
    for (const f of report.folds) {
      const { logistic, gbdt } = f.chosen.validation;
      expect(f.chosen.learner).toBe(gbdt < logistic ? 'gbdt' : 'logistic'); // log loss: lower is better
      expect(f.metrics.chosen).toEqual(f.metrics[f.chosen.learner]);
    }
    // The run report shows it: every model's metrics with intervals, the folds, the trees' importances.
    const html = renderReport({
      target: 'quote_change_500ms',
      version: 'wf-1',
      status: 'rejected',
      recordedAt: '2026-12-05T00:00:00.000Z',
      gitSha: null,
      featureSpecHash: null,
      parameters: {
        training: {
          target: 'quote_change_500ms',
          set: 'l2',
          candidateVersion: 'wf-1',
          trainFraction: 0.7,
          l2: 1e-3,
          minRows: 100,
          algorithm: 'gbdt',
          keepSuspect: false,
        },
      },
      walkForward: report,
    });
    for (const m of MODELS) expect(html).toContain(`<tr><td>${m}</td>`);
    expect(html).toContain(`<td>${report.importance[0]!.feature}</td>`);
    expect(html.match(/<tr><td>\d<\/td>/g)).toHaveLength(4); // one row per fold
    const table = formatWalkForward([{ ...report, seed: 11 }]).split('\n');
    expect(table[0]).toMatch(/^seed\s+target\s+set\s+folds\s+chosen PR-AUC\s+learners/);
    const learners = report.folds.map((f) => LEARNER_LETTER[f.chosen.learner]).join('');
    expect(table[1]).toMatch(
      new RegExp(
        `^11\\s+quote_change_500ms\\s+l2\\s+4/4\\s+0\\.\\d{4} \\[0\\.\\d{4}, 0\\.\\d{4}\\]\\s+${learners}\\s`,
      ),
    );
  });

  it('a random split of overlapping vol windows scores higher than the walk-forward on the same rows', async () => {
    const target = 'vol_spike_60s';
    const { report } = await walkForward(data.volSpike, {
      target,
      set: 'l2',
      folds: 3,
      gbdt: GBDT,
      bootstrap: { resamples: 50 },
    });
    const walkForwardAuc = report.overall.gbdt.rocAuc.value;
    // The leak: shuffled rows, 60 s label windows overlapping between neighbours 100 ms apart on both sides.
    const rows = modelRows(data.volSpike, 'l2');
    const labelled = binarizeByProduct(rows, fitThresholdsByProduct(target, rows));
    const rng = new Rng(3);
    const shuffled = labelled
      .map((e) => ({ e, k: rng.uniform() }))
      .sort((a, b) => a.k - b.k)
      .map((r) => r.e);
    const cut = Math.floor(shuffled.length * 0.8);
    const train = shuffled.slice(0, Math.floor(cut * 0.8));
    const validation = shuffled.slice(Math.floor(cut * 0.8), cut);
    const test = shuffled.slice(cut);
    const { model } = await trainGbdt(toMatrix(train), labelsOf(train), GBDT, {
      x: toMatrix(validation),
      y: labelsOf(validation),
    });
    const randomAuc = rocAuc(
      test.map((e) => predictGbdt(model, e.x)),
      test.map((e) => e.y),
    );
    expect(randomAuc).toBeGreaterThan(walkForwardAuc + 0.05);
  });

  it('says clearly when a fold has one class or the rows are not of the spec', async () => {
    const flat = data.quoteChange.map((e) => ({ ...e, y: 0 }));
    await expect(walkForward(flat, { target: 'quote_change_500ms', set: 'l2', folds: 2 })).rejects.toThrow(
      /no fold could be evaluated: fold 1 training rows: all \d+ labels are 0; need both classes; fold 2 training/,
    );
    // No positive in the first half hour: the folds that learn only from it are skipped and say so.
    const t0 = data.quoteChange[0]!.tsUs;
    const calmStart = data.quoteChange.map((e) => (e.tsUs - t0 < 20 * 60e6 ? { ...e, y: 0 } : e));
    const { report } = await walkForward(calmStart, {
      target: 'quote_change_500ms',
      set: 'l2',
      folds: 3,
      l2Grid: [1],
      gbdt: GBDT,
      bootstrap: { resamples: 20 },
    });
    expect(report.skipped[0]).toMatch(/^fold 1 (training|validation) rows: all \d+ labels are 0/);
    expect(report.folds.map((f) => f.index)).toEqual([3]);
    const narrow = data.quoteChange.map((e) => ({ ...e, x: e.x.slice(1) }));
    await expect(walkForward(narrow, { target: 'quote_change_500ms', set: 'l2' })).rejects.toThrow(
      DatasetError,
    );
  });
});

describe('concatPredictions: several markets as one sample', () => {
  const market = (startUs: number, n: number, seed: number): TestPredictions => {
    const rng = new Rng(seed);
    const y = Uint8Array.from({ length: n }, () => (rng.uniform() < 0.3 ? 1 : 0));
    return {
      tsUs: Float64Array.from({ length: n }, (_, i) => startUs + i * 100_000),
      product: Array.from({ length: n }, (_, i) => (i % 2 ? 'ETH-USD' : 'BTC-USD')),
      fold: Uint8Array.from({ length: n }, (_, i) => 1 + Math.floor((i * 3) / n)),
      y,
      p: Object.fromEntries(
        MODELS.map((m) => [m, Float64Array.from(y, (v) => (m === 'chosen' ? 0.2 + 0.5 * v : 0.3))]),
      ) as TestPredictions['p'],
      trainRate: new Float64Array(n).fill(0.3),
    };
  };

  it('keeps every row and score, and puts each market after the previous one with the gap between', () => {
    // Two markets over the SAME hours (seeds share no rows but may share times).
    const a = market(1_000e6, 600, 1);
    const b = market(1_000e6, 400, 2);
    const gapUs = 120e6;
    const pooled = concatPredictions([a, b], gapUs);
    expect(pooled.y).toEqual(Uint8Array.from([...a.y, ...b.y]));
    expect(pooled.p.gbdt).toEqual(Float64Array.from([...a.p.gbdt, ...b.p.gbdt]));
    expect(pooled.product).toEqual([...a.product, ...b.product]);
    expect(pooled.fold).toEqual(Uint8Array.from([...a.fold, ...b.fold]));
    for (let i = 1; i < pooled.tsUs.length; i++) expect(pooled.tsUs[i]!).toBeGreaterThan(pooled.tsUs[i - 1]!);
    // b starts one gap after a's last row, so no 60 s block holds rows of both markets.
    expect(pooled.tsUs[600]! - pooled.tsUs[599]!).toBe(gapUs);
    expect(pooled.tsUs[601]! - pooled.tsUs[600]!).toBe(100_000);
    // The pooled figures are those of the concatenated rows: a perfect ranker's PR-AUC is 1 on both.
    const summary = summarizePredictions(pooled, 'prAuc', { blockUs: 60e6, resamples: 50 });
    expect(summary.overall.chosen.prAuc.value).toBeCloseTo(1, 12);
    expect(summary.gain.base_rate.lo).toBeGreaterThan(0);
  });
});
