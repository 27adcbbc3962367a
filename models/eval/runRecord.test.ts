import { describe, expect, it } from 'vitest';
import { averagePrecision, rocAuc } from '../../src/model/metrics.js';
import { Rng } from '../../src/simulator/rng.js';
import { curvesOf, formatRuns, type RunRecord, renderReport } from './runRecord.js';

function scored(n: number) {
  const rng = new Rng(9);
  const y = Array.from({ length: n }, () => (rng.uniform() < 0.3 ? 1 : 0));
  const p = y.map((v) => Math.round((0.3 * v + 0.7 * rng.uniform()) * 50) / 50); // ties
  return { p, y };
}

describe('curvesOf', () => {
  it('with a point per threshold, the ROC area is the ROC-AUC and the PR steps give average precision', () => {
    const { p, y } = scored(400);
    const { roc, pr, reliability } = curvesOf(p, y, 400);
    expect(roc[0]).toEqual([0, 0]);
    expect(roc.at(-1)).toEqual([1, 1]);
    let area = 0;
    for (let i = 1; i < roc.length; i++)
      area += ((roc[i]![0] - roc[i - 1]![0]) * (roc[i]![1] + roc[i - 1]![1])) / 2;
    expect(area).toBeCloseTo(rocAuc(p, y), 12);
    let ap = 0;
    for (let i = 0; i < pr.length; i++) ap += (pr[i]![0] - (pr[i - 1]?.[0] ?? 0)) * pr[i]![1];
    expect(ap).toBeCloseTo(averagePrecision(p, y), 12);
    expect(reliability.reduce((n, b) => n + b.n, 0)).toBe(400);
  });

  it('keeps about `points` points on many rows, recall never decreasing', () => {
    const { p, y } = scored(20_000);
    const { roc, pr } = curvesOf(p, y, 100);
    expect(roc.length).toBeLessThan(110);
    for (let i = 1; i < pr.length; i++) expect(pr[i]![0]).toBeGreaterThanOrEqual(pr[i - 1]![0]);
  });
});

describe('run report and listing', () => {
  const failed: RunRecord = {
    target: 'vol_spike_60s',
    version: 'v<9>',
    status: 'failed',
    recordedAt: '2026-12-05T10:00:00.000Z',
    gitSha: null,
    featureSpecHash: null,
    parameters: {
      training: {
        target: 'vol_spike_60s',
        set: 'l2',
        candidateVersion: 'v<9>',
        trainFraction: 0.7,
        l2: 0.3,
        minRows: 100,
        algorithm: 'logistic',
        keepSuspect: false,
      },
    },
    error: { step: 'train', name: 'DatasetError', message: 'all 10 labels are 0 & <none> positive' },
  };

  it('a failed run says where and why, escaped', () => {
    const html = renderReport(failed);
    expect(html).toContain('failed in train');
    expect(html).toContain('all 10 labels are 0 &amp; &lt;none&gt; positive');
    expect(html).not.toContain('<none>');
    expect(formatRuns([failed])).toMatch(/vol_spike_60s\s+v<9>\s+failed\s+train: all 10 labels are 0/);
    expect(formatRuns([])).toBe('no run records yet');
  });
});
