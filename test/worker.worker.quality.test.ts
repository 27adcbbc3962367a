import { describe, expect, it } from 'vitest';
import { binarize } from '../models/train/targets.js';
import { WORKER } from '../src/telemetry/catalog.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import { isSpike, LiveQuality, QualityPublisher } from '../src/worker/quality.js';

describe('live quality', () => {
  it('joins labels to the prediction of their tick, per version, binarizing continuous labels with τ', async () => {
    const q = new LiveQuality(3);
    for (let t = 1; t <= 5; t++) q.addPrediction('vol', 'A', t, t / 10, 'v1');
    expect(q.addLabel('vol', 'A', 2, 0.5, 0.3)).toBe(true); // tick 1 is skipped: never labelled
    expect(q.addLabel('vol', 'A', 3, 0.1, 0.3)).toBe(true);
    expect(q.addLabel('vol', 'A', 3, 0.1, 0.3)).toBe(false); // already joined
    expect(q.addLabel('vol', 'A', 5, 0.9)).toBe(false); // continuous without τ: not scored
    q.addPrediction('vol', 'A', 6, 0.9, 'v2');
    expect(q.addLabel('vol', 'A', 6, 1, 0.3)).toBe(true);
    const [v1, v2] = q.stats();
    expect(v1).toMatchObject({ modelVersion: 'v1', n: 2, baseRate: 0.5, auc: 0, prAuc: 0.5 });
    expect(v1!.brier).toBeCloseTo(((0.2 - 1) ** 2 + 0.3 ** 2) / 2, 12);
    expect(v2).toMatchObject({ modelVersion: 'v2', n: 1, baseRate: 1 });
    expect(v2!.auc).toBeNaN();
    const telemetry = new Telemetry({ service: 'worker' });
    new QualityPublisher(10_000, telemetry).publish(1000, [v2!]);
    const [emf] = telemetry.flush();
    expect(JSON.parse(JSON.stringify(emf))).toEqual(emf); // no NaN left in the record
    expect(emf).not.toHaveProperty('LiveAUC');
    expect(emf).toMatchObject({ Target: 'vol', ModelVersion: 'v2', LiveBaseRate: 1 });
    // The label count stays local (Prometheus): no widget or alarm graphs it.
    expect(emf).not.toHaveProperty('LiveLabels');
    expect(await telemetry.value(WORKER.liveLabels, { Target: 'vol', ModelVersion: 'v2' })).toBe(1);
  });

  it('counts a label equal to τ as negative, strictly above as positive (the training rule)', () => {
    expect(isSpike(0.807, 0.807)).toBe(false);
    expect(isSpike(0.8070001, 0.807)).toBe(true);
    const q = new LiveQuality(10);
    const tau = 0.5;
    for (let t = 1; t <= 3; t++) q.addPrediction('vol', 'A', t, 0.5, 'v1');
    q.addLabel('vol', 'A', 1, tau, tau); // exactly τ: not a spike
    q.addLabel('vol', 'A', 2, tau, tau);
    q.addLabel('vol', 'A', 3, tau + Number.EPSILON, tau); // just above τ
    expect(q.stats()[0]).toMatchObject({ n: 3, baseRate: 1 / 3 });
  });

  it('agrees with the training rule (models/train/targets.ts binarize) around τ', () => {
    const tau = 0.807;
    const values = [0, tau - 1e-9, tau, tau + Number.EPSILON, tau + 1e-9, 5];
    const trained = binarize(
      values.map((y) => ({ y })),
      tau,
    ).map((e) => e.y);
    expect(values.map((v) => (isSpike(v, tau) ? 1 : 0))).toEqual(trained);
  });
});
