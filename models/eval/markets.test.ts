import { describe, expect, it } from 'vitest';
import { evaluateMarkets, formatPooled, MARKET_L2_GRID, type MarketRun, meetsGoal } from './markets.js';

// Two short markets and small trees: the real configuration's figures come from the quality bench.
const GBDT = { rounds: 20, maxDepth: 3, learningRate: 0.2, minChildWeight: 5, earlyStoppingRounds: 5 };

describe('evaluateMarkets: the walk-forward on several simulated markets, pooled', () => {
  it('runs each market, pools their test rows into one sample, and uses the quality grid of L2 penalties', async () => {
    const seen: MarketRun[] = [];
    const { runs, pooled } = await evaluateMarkets({
      seeds: [12, 13],
      hours: 0.75,
      targets: ['quote_change_500ms'],
      sets: ['ticker'],
      walkForward: { folds: 3, gbdt: GBDT, bootstrap: { resamples: 100 } },
      onRun: (run) => seen.push(run),
    });
    const list = runs.get('quote_change_500ms/ticker')!;
    expect(list.map((r) => r.seed)).toEqual([12, 13]);
    expect(seen).toEqual(list);
    // Different markets, not one market twice.
    expect(list[0]!.report.overall.chosen.logLoss.value).not.toBe(
      list[1]!.report.overall.chosen.logLoss.value,
    );
    for (const r of list)
      for (const f of r.report.folds) expect(MARKET_L2_GRID).toContain(f.chosen.logisticL2);

    expect(pooled).toHaveLength(1);
    const p = pooled[0]!;
    expect(p.seeds).toEqual([12, 13]);
    expect(p.testRows).toBe(list[0]!.report.test.rows + list[1]!.report.test.rows);
    const positives = list[0]!.report.test.positives + list[1]!.report.test.positives;
    expect(p.baseRate).toBeCloseTo(positives / p.testRows, 12);
    const { prAuc } = p.overall.chosen;
    expect(prAuc.lo).toBeLessThanOrEqual(prAuc.value);
    expect(prAuc.hi).toBeGreaterThanOrEqual(prAuc.value);
    // One sample of both markets is tighter than either market alone.
    for (const r of list) {
      const alone = r.report.overall.chosen.prAuc;
      expect(prAuc.hi - prAuc.lo).toBeLessThan(alone.hi - alone.lo);
    }
    for (const b of ['base_rate', 'persistence', 'logistic'] as const)
      expect(p.overall[p.bestBaseline].prAuc.value).toBeGreaterThanOrEqual(p.overall[b].prAuc.value);
    const line = formatPooled(pooled).split('\n').at(-1)!;
    expect(line).toMatch(/^12,13 +quote_change_500ms +ticker +\d+ /);
    expect(line.endsWith(meetsGoal(p) ? 'met' : 'not met')).toBe(true);
  }, 120_000);
});
