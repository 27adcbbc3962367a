import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FEATURE_SPEC } from '../src/features/spec.js';
import { METADATA_KEYS } from '../src/model/contract.js';
import { loadModel } from '../src/model/runtime.js';
import { type ModelMetrics, TARGETS } from '../src/model/types.js';
import {
  BASELINE_DIR,
  buildDataset,
  buildDatasets,
  DEFAULT_OPTIONS,
  nearestRankQuantile,
  splitByTime,
  trainBaseline,
  withOnnxMetadata,
} from './baseline.js';
import { exportLogisticOnnx, readOnnxMetadata } from './export/onnx.js';

type Metrics = ModelMetrics & { reference: { brier: number; logLoss: number }; threshold?: number };

for (const target of TARGETS) {
  const dir = join(BASELINE_DIR, target);
  const shipped = existsSync(join(dir, 'feature_spec.json'));
  if (!shipped)
    console.warn(`skipping shipped-baseline checks: ${dir} has no baseline yet (run npm run baseline)`);

  describe.skipIf(!shipped)(`shipped baseline model ${target}`, () => {
    const read = (file: string) => readFileSync(join(dir, file));
    const metrics = () => JSON.parse(read('metrics.json').toString('utf8')) as Metrics;

    it("feature_spec.json equals the code's FEATURE_SPEC (rerun npm run baseline after changing features)", () => {
      expect(JSON.parse(read('feature_spec.json').toString('utf8'))).toEqual(FEATURE_SPEC);
    });

    it('model.onnx carries the same feature names and loads under the model contract', async () => {
      const bytes = new Uint8Array(read('model.onnx'));
      const meta = readOnnxMetadata(bytes);
      expect(JSON.parse(meta[METADATA_KEYS.featureNames]!)).toEqual(FEATURE_SPEC.features.map((f) => f.name));
      expect(meta[METADATA_KEYS.featureSpecVersion]).toBe(String(FEATURE_SPEC.version));
      expect(meta[METADATA_KEYS.target]).toBe(target);
      expect(meta[METADATA_KEYS.version]).toBe(metrics().version);
      const model = await loadModel(bytes, FEATURE_SPEC, { target, version: metrics().version });
      const p = await model.predict(new Float32Array(FEATURE_SPEC.features.length), 1);
      expect(p[0]).toBeGreaterThan(0);
      expect(p[0]).toBeLessThan(1);
      await model.release();
    });

    it('metrics.json describes a model that beats always predicting the base rate', () => {
      const m = metrics();
      expect(m.target).toBe(target);
      expect(m.rows.train).toBeGreaterThan(m.rows.test);
      expect(m.auc).toBeGreaterThan(0.5);
      expect(m.brier).toBeLessThan(m.reference.brier);
      expect(m.logLoss).toBeLessThan(m.reference.logLoss);
    });

    if (target === 'vol_spike_60s') {
      it('stores τ in metrics.json and in the ONNX metadata, the same number', () => {
        const m = metrics();
        expect(m.threshold).toBeGreaterThan(0);
        const meta = readOnnxMetadata(new Uint8Array(read('model.onnx')));
        expect(Number(meta[METADATA_KEYS.threshold])).toBe(m.threshold);
        // τ is the 90th percentile of the training part: about 10% of training rows are spikes.
        expect(m.trainBaseRate).toBeGreaterThan(0.05);
        expect(m.trainBaseRate).toBeLessThanOrEqual(0.1);
      });
    }
  });
}

describe.skipIf(!TARGETS.every((t) => existsSync(join(BASELINE_DIR, t, 'model.onnx'))))(
  'the shipped baselines are what `npm run baseline` produces',
  () => {
    it('retraining from the default seed gives the committed metrics and model bytes', () => {
      const datasets = buildDatasets(DEFAULT_OPTIONS);
      for (const target of TARGETS) {
        const { metrics, onnx } = trainBaseline(DEFAULT_OPTIONS, target, datasets);
        const dir = join(BASELINE_DIR, target);
        const shipped = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')) as Metrics;
        expect(metrics, `${target}: rerun npm run baseline and commit models/baseline`).toEqual(shipped);
        expect(Buffer.from(onnx).equals(readFileSync(join(dir, 'model.onnx')))).toBe(true);
      }
    }, 120_000);
  },
);

describe('buildDatasets', () => {
  const a = buildDatasets({ seed: 7, minutes: 2 });

  it('is reproducible from its seed and yields time-ordered examples of spec width for both targets', () => {
    expect(buildDatasets({ seed: 7, minutes: 2 })).toEqual(a);
    expect(buildDataset({ seed: 7, minutes: 2 })).toEqual(a.quoteChange);
    expect(a.quoteChange.length).toBeGreaterThan(1000);
    expect(a.volSpike.length).toBeGreaterThan(500); // ticks of the first minute: their horizon has passed
    for (const list of [a.quoteChange, a.volSpike]) {
      for (let i = 1; i < list.length; i++) expect(list[i]!.tsUs).toBeGreaterThanOrEqual(list[i - 1]!.tsUs);
      for (const e of list) expect(e.x).toHaveLength(FEATURE_SPEC.features.length);
    }
    for (const e of a.quoteChange) expect([0, 1]).toContain(e.y);
    // Continuous, non-negative forward volatility, not all equal.
    expect(a.volSpike.every((e) => e.y >= 0 && Number.isFinite(e.y))).toBe(true);
    expect(new Set(a.volSpike.map((e) => e.y)).size).toBeGreaterThan(10);
    expect(buildDatasets({ seed: 8, minutes: 2 }).quoteChange).not.toEqual(a.quoteChange);
  });

  it('splits by time and purges training rows whose label horizon reaches the test part', () => {
    const horizonUs = 10e6; // the 2 min sample has ~60 s of vol labels: a 10 s horizon leaves rows to check
    const { train, test } = splitByTime(a.volSpike, 0.7, horizonUs);
    expect(train.length).toBeGreaterThan(0);
    expect(test.length).toBeGreaterThan(0);
    expect(train.at(-1)!.tsUs + horizonUs).toBeLessThan(test[0]!.tsUs);
    expect(train.length + test.length).toBeLessThan(a.volSpike.length);
  });
});

describe('baseline helpers', () => {
  it('nearestRankQuantile returns a sample value with the right share at or below it', () => {
    const v = Array.from({ length: 20 }, (_, i) => 20 - i);
    expect(nearestRankQuantile(v, 0.9)).toBe(18);
    expect(v.filter((x) => x > nearestRankQuantile(v, 0.9)).length).toBe(2);
  });

  it('withOnnxMetadata appends a key that reads back next to the exported ones', () => {
    const F = FEATURE_SPEC.features.length;
    const model = { weights: Array(F).fill(0.1), bias: 0, mean: Array(F).fill(0), std: Array(F).fill(1) };
    const bytes = withOnnxMetadata(exportLogisticOnnx(model, FEATURE_SPEC, { target: 'vol_spike_60s' }), {
      [METADATA_KEYS.threshold]: '1.25',
    });
    const meta = readOnnxMetadata(bytes);
    expect(meta[METADATA_KEYS.threshold]).toBe('1.25');
    expect(meta[METADATA_KEYS.target]).toBe('vol_spike_60s');
  });
});
