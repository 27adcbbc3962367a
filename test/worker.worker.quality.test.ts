import { describe, expect, it } from 'vitest';
import { binarizeByProduct, fitThresholdsByProduct, toSpikeValues } from '../models/train/targets.js';
import { FEATURE_NAMES } from '../src/features/spec.js';
import {
  isSpike,
  isSpikeValue,
  VOL_SPIKE_LEVEL_FEATURE,
  VOL_SPIKE_LEVEL_FLOOR_BPS,
  volSpikeValue,
} from '../src/labels/volSpike.js';
import { fitInputDistribution } from '../src/model/inputs.js';
import { spikeJudgeOf } from '../src/model/metadata.js';
import type { LoadedModel } from '../src/model/types.js';
import { WORKER } from '../src/telemetry/catalog.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import { DriftMonitor } from '../src/worker/drift.js';
import { LiveQuality, QualityPublisher, qualityRecord } from '../src/worker/quality.js';

const VOL = 'vol_spike_60s';

describe('live quality', () => {
  it('joins labels to the prediction of their tick, per version, judging each with the τ stored with it', async () => {
    const q = new LiveQuality({ minLabels: 1 });
    // A pooled τ without a level (a model from before τ per product): judged on the forward volatility itself.
    for (let t = 1; t <= 5; t++) q.addPrediction(VOL, 'A', t, t / 10, 'v1', { tau: 0.3 });
    expect(q.addLabel(VOL, 'A', 2, 0.5)).toBe(true); // tick 1 is skipped: never labelled
    expect(q.addLabel(VOL, 'A', 3, 0.1)).toBe(true);
    expect(q.addLabel(VOL, 'A', 3, 0.1)).toBe(false); // already joined
    q.addPrediction(VOL, 'A', 6, 0.9, 'v2', { tau: 0.95 }); // a hot swap: v2's τ applies to v2's predictions only
    q.addPrediction(VOL, 'A', 7, 0.9, 'v2'); // no τ for the product: its label cannot be judged
    expect(q.addLabel(VOL, 'A', 6, 1)).toBe(true);
    expect(q.addLabel(VOL, 'A', 7, 0.9)).toBe(false);
    expect(q.unjudged(VOL, 'v2', 'A')).toBe(1);
    const [v1, v2] = q.stats();
    expect(v1).toMatchObject({ modelVersion: 'v1', n: 2, baseRate: 0.5, auc: 0, prAuc: 0.5 });
    expect(v1!.brier).toBeCloseTo(((0.2 - 1) ** 2 + 0.3 ** 2) / 2, 12);
    expect(v1!.ece).toBeCloseTo((0.8 + 0.3) / 2, 12);
    expect(v2).toMatchObject({ modelVersion: 'v2', n: 1, baseRate: 1 });
    expect(v2!.auc).toBeNaN();
    const telemetry = new Telemetry({ service: 'worker' });
    new QualityPublisher(10_000, telemetry).publish(1000, [v2!]);
    const [emf] = telemetry.flush();
    expect(JSON.parse(JSON.stringify(emf))).toEqual(emf); // no NaN left in the record
    expect(emf).not.toHaveProperty('LiveAUC');
    expect(emf).toMatchObject({ Target: VOL, ModelVersion: 'v2', LiveBaseRate: 1 });
    // The label count stays local (Prometheus): no widget or alarm graphs it.
    expect(emf).not.toHaveProperty('LiveLabels');
    expect(await telemetry.value(WORKER.liveLabels, { Target: VOL, ModelVersion: 'v2' })).toBe(1);
  });

  it('windows by event time, per product too, and shows no figure below the minimum count', () => {
    const q = new LiveQuality({ windowMs: 60_000, minLabels: 20, recomputeMs: 0 });
    const s = 1_000_000;
    // Product A: 40 ticks a second apart, perfect ranking; B: 10 ticks, inverted.
    for (let t = 0; t < 40; t++) q.addPrediction('qc', 'A', t * s, t % 2 ? 0.9 : 0.1, 'v1');
    for (let t = 0; t < 10; t++) q.addPrediction('qc', 'B', t * s, t % 2 ? 0.1 : 0.9, 'v1');
    for (let t = 0; t < 40; t++) q.addLabel('qc', 'A', t * s, t % 2);
    for (let t = 0; t < 10; t++) q.addLabel('qc', 'B', t * s, t % 2);
    const a = q.of('qc', 'v1', 'A');
    expect(a.product).toMatchObject({ n: 40, enough: true, auc: 1 });
    expect(a.all).toMatchObject({ n: 50, enough: true });
    const b = q.of('qc', 'v1', 'B').product!;
    expect(b).toMatchObject({ n: 10, enough: false });
    expect(b.auc).toBeNaN(); // 10 < 20 labels: not shown
    // 100 s later only the last 60 s of event time count.
    for (let t = 100; t < 125; t++) q.addPrediction('qc', 'A', t * s, 0.5, 'v1');
    for (let t = 100; t < 125; t++) q.addLabel('qc', 'A', t * s, t % 2);
    expect(q.of('qc', 'v1', 'A').product).toMatchObject({ n: 25, auc: 0.5 });
    const record = qualityRecord(q, 'B', new Map([['qc', 'v1']]))!;
    expect(record.qc).toMatchObject({
      modelVersion: 'v1',
      windowS: 60,
      minLabels: 20,
      product: { n: 10, auc: null },
    });
    expect(record.qc).not.toHaveProperty('unjudged');
  });

  it('leaves abstained predictions out of the figures and says how much of the window they were', () => {
    const q = new LiveQuality({ windowMs: 60_000, minLabels: 10, recomputeMs: 0 });
    const s = 1_000_000;
    // 40 ticks ranked perfectly, and 10 abstained ones (a resync in their window) ranked upside down.
    for (let t = 0; t < 50; t++) {
      const abstained = t >= 40;
      const p = (t % 2 ? 0.9 : 0.1) * (abstained ? -1 : 1) + (abstained ? 1 : 0);
      q.addPrediction('qc', 'A', t * s, p, 'v1', undefined, abstained);
      q.addLabel('qc', 'A', t * s, t % 2);
    }
    expect(q.of('qc', 'v1', 'A').all).toMatchObject({ n: 40, auc: 1, coverage: 0.8 });
    expect(qualityRecord(q, 'A', new Map([['qc', 'v1']]))!.qc).toMatchObject({
      n: 40,
      auc: 1,
      coverage: 0.8,
    });
  });

  it('judges a vol label relative to the trailing level stored with its prediction, not the level at maturity', () => {
    const q = new LiveQuality({ minLabels: 1 });
    // The same forward volatility, 2 bps: a spike after a calm 5 minutes (level 0.5), not after a busy one (4).
    q.addPrediction(VOL, 'A', 1, 0.9, 'v1', { tau: 1.5, levelBps: 0.5 });
    q.addPrediction(VOL, 'A', 2, 0.1, 'v1', { tau: 1.5, levelBps: 4 });
    q.addLabel(VOL, 'A', 1, 2);
    q.addLabel(VOL, 'A', 2, 2);
    expect(q.stats()[0]).toMatchObject({ n: 2, baseRate: 0.5, auc: 1 });
    // A frozen quote (level 0) is divided by the floor: a finite ratio, a spike for any move above τ × floor.
    expect(volSpikeValue(1, 0)).toBe(1 / VOL_SPIKE_LEVEL_FLOOR_BPS);
    expect(isSpike(1.4 * VOL_SPIKE_LEVEL_FLOOR_BPS, { tau: 1.5, levelBps: 0 })).toBe(false);
    expect(isSpike(1.6 * VOL_SPIKE_LEVEL_FLOOR_BPS, { tau: 1.5, levelBps: 0 })).toBe(true);
  });

  it("marks a product its model has no τ for: no other product's τ is borrowed, its labels are counted apart", () => {
    const model = { thresholds: { 'BTC-USD': 1.5 } };
    // The level as the lake stores the feature (float32), what training divided by.
    expect(spikeJudgeOf(model, 'BTC-USD', 0.8)).toEqual({ tau: 1.5, levelBps: Math.fround(0.8) });
    expect(spikeJudgeOf(model, 'SOL-USD', 0.8)).toBeUndefined();
    // A model from before τ per product: its pooled τ for every product, on the forward volatility itself.
    expect(spikeJudgeOf({ pooledThreshold: 2.2 }, 'SOL-USD', 0.8)).toEqual({ tau: 2.2 });
    const q = new LiveQuality({ minLabels: 1 });
    for (let t = 1; t <= 4; t++) {
      q.addPrediction(VOL, 'BTC-USD', t, t / 5, 'v1', spikeJudgeOf(model, 'BTC-USD', 1));
      q.addPrediction(VOL, 'SOL-USD', t, t / 5, 'v1', spikeJudgeOf(model, 'SOL-USD', 1));
    }
    for (let t = 1; t <= 4; t++) {
      expect(q.addLabel(VOL, 'BTC-USD', t, t)).toBe(true);
      expect(q.addLabel(VOL, 'SOL-USD', t, t)).toBe(false);
    }
    expect(q.of(VOL, 'v1', 'BTC-USD').all).toMatchObject({ n: 4, baseRate: 0.75 });
    expect(q.of(VOL, 'v1', 'SOL-USD').product).toBeUndefined();
    const versions = new Map([[VOL, 'v1']]);
    expect(qualityRecord(q, 'SOL-USD', versions)![VOL]).toMatchObject({ n: 4, unjudged: 4 });
    expect(qualityRecord(q, 'BTC-USD', versions)![VOL]).not.toHaveProperty('unjudged');
  });

  it('counts a spike value equal to τ as negative, strictly above as positive (the training rule)', () => {
    expect(isSpikeValue(0.807, 0.807)).toBe(false);
    expect(isSpikeValue(0.8070001, 0.807)).toBe(true);
    const q = new LiveQuality({ minLabels: 1 });
    const tau = 0.5;
    for (let t = 1; t <= 3; t++) q.addPrediction(VOL, 'A', t, 0.5, 'v1', { tau, levelBps: 1 });
    q.addLabel(VOL, 'A', 1, tau); // exactly τ × level: not a spike
    q.addLabel(VOL, 'A', 2, tau);
    q.addLabel(VOL, 'A', 3, tau + Number.EPSILON); // just above
    expect(q.stats()[0]).toMatchObject({ n: 3, baseRate: 1 / 3 });
  });

  it('agrees with training (toSpikeValues, then binarizeByProduct with τ per product) row for row', () => {
    const level = FEATURE_NAMES.indexOf(VOL_SPIKE_LEVEL_FEATURE);
    const row = (product: string, forward: number, levelBps: number) => {
      const x = new Array<number>(FEATURE_NAMES.length).fill(0);
      x[level] = levelBps;
      return { product, tsUs: 0, x, y: forward };
    };
    const rows = [0.3, 0.9, 1.4, 2, 2.6, 3.1, 4, 0.05, 0, 7].flatMap((forward, i) => [
      row('BTC-USD', forward, [0.5, 1, 2, 0, 0.04][i % 5]!),
      row('ETH-USD', forward * 3, [1, 2, 4, 0.01, 3][i % 5]!),
    ]);
    const spikeValues = toSpikeValues(rows);
    const thresholds = fitThresholdsByProduct(VOL, spikeValues)!;
    const trained = binarizeByProduct(spikeValues, thresholds).map((e) => e.y);
    const live = rows.map((r) =>
      isSpike(r.y, spikeJudgeOf({ thresholds }, r.product, r.x[level]!)!) ? 1 : 0,
    );
    expect(live).toEqual(trained);
    expect(trained).toContain(1);
    expect(trained).toContain(0);
  });
});

describe('feature drift', () => {
  const train = Array.from({ length: 1000 }, (_, i) => [i % 100, (i * 7) % 13]);
  const model = {
    version: 'v1',
    inputs: fitInputDistribution(['a', 'b'], train),
  } as unknown as LoadedModel;

  it('finds no drift in rows like the training rows, and flags the input that left the training range', () => {
    const monitor = new DriftMonitor({ minRows: 100, everyMs: 0 });
    for (let i = 0; i < 2000; i++) monitor.observe(model, 'A', i * 100_000, [(i * 37) % 100, (i * 7) % 13]);
    expect(monitor.figure(model, 'A')!.psiMax).toBeLessThan(0.05);
    expect(monitor.figure(model, 'A')!.flagged).toBe(false);
    for (let i = 0; i < 2000; i++) monitor.observe(model, 'B', i * 100_000, [150 + (i % 10), (i * 7) % 13]);
    expect(monitor.figure(model, 'B')).toMatchObject({ feature: 'a', flagged: true });
    expect(monitor.figure(model, 'B')!.psiMax).toBeGreaterThan(1);
    expect(monitor.figure(model, 'C')).toBeUndefined();
  });

  it('forgets rows older than the window (an hour of event time by default)', () => {
    const monitor = new DriftMonitor({ minRows: 100, everyMs: 0 });
    for (let i = 0; i < 1000; i++) monitor.observe(model, 'A', i * 100_000, [200, 0]);
    expect(monitor.figure(model, 'A')!.flagged).toBe(true);
    const later = 2 * 3_600_000_000;
    for (let i = 0; i < 1000; i++)
      monitor.observe(model, 'A', later + i * 100_000, [(i * 37) % 100, (i * 7) % 13]);
    expect(monitor.figure(model, 'A')!.flagged).toBe(false);
  });
});
