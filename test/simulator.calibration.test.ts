/**
 * The simulated market against the targets of issue #10 (README, "The simulated market"): a seeded 2-hour
 * run, measured in simulated time only (no network) by the one statistics module, passes the table's 1 s and
 * 30-min rows, and its microstructure stays within 2x of the 25 s Advanced Trade capture (the
 * "Measured from the Advanced Trade capture" table in ../shared/data/coinbase/README.md, copied here so the
 * test runs without the capture). Ranges, not exact values. The 24-hour rows (hourly spread of volatility,
 * autocorrelation of 5-min realized vol over a day) are measured by `npm run bench -- --only sim`.
 */
import { describe, expect, it } from 'vitest';
import type { ProductReport, StatKey } from '../src/marketdata/stats.js';
import { productSpecs, SimExchange, seedEpochUs } from '../src/simulator/exchange.js';
import { measureSimulation } from '../src/simulator/measure.js';

type Range = readonly [min: number, max: number];
const around = (x: number, factor: number): Range => [x / factor, x * factor];

const SEED = 2;
const report = measureSimulation({
  products: productSpecs(['BTC-USD', 'ETH-USD']),
  seed: SEED,
  seconds: 7200,
});
const btc = report.products.find((p) => p.product === 'BTC-USD')!;
const eth = report.products.find((p) => p.product === 'ETH-USD')!;

function outside(p: ProductReport, ranges: Partial<Record<StatKey, Range>>): string[] {
  return Object.entries(ranges)
    .filter(([key, [lo, hi]]) => {
      const v = p.figures[key as StatKey];
      return !(v !== undefined && v >= lo && v <= hi);
    })
    .map(([key, r]) => `${p.product} ${key}=${p.figures[key as StatKey]} not in [${r}]`);
}

describe(`a seeded 2-hour run (seed ${SEED}) passes the 1 s and 30-min rows`, () => {
  it('BTC-USD: volatility, its tails and clustering, how often the mid moves, spreads', () => {
    const rows: Partial<Record<StatKey, Range>> = {
      ret1s_sd_bps: [0.3, 1.2],
      top1pct_var_share: [0.3, 0.8],
      kurtosis_1s: [10, 100],
      mid_changed_share: [0.2, 0.7],
      spread_median_ticks: [1, 1],
      spread_p90_ticks: [5, Number.POSITIVE_INFINITY],
      abs_ret_acf_lag1: [0.05, 0.5],
      fwd_rv_q90_over_q50_30min: [1.5, 2.5],
      quote_change_500ms_hourly_min: [0.1, 0.7],
      quote_change_500ms_hourly_max: [0.1, 0.7],
    };
    expect(outside(btc, rows), JSON.stringify(btc.figures)).toEqual([]);
    expect(btc.hours).toHaveLength(2);
  });

  it('order-flow imbalance explains much of the same second and a little of the next', () => {
    for (const p of [btc, eth])
      expect(outside(p, { ofi_r2_same_s: [0.2, 0.7], ofi_r2_next_s: [0.005, 0.05] })).toEqual([]);
  });

  it('BTC-USD and ETH-USD move together: correlation of 1 min returns 0.6-0.85', () => {
    const pair = report.pairs[0]!;
    expect(pair.minutes).toBeGreaterThanOrEqual(119);
    expect(pair.corr1m).toBeGreaterThan(0.6);
    expect(pair.corr1m).toBeLessThan(0.85);
  });

  it('ETH-USD: 1.2-2x the volatility of BTC-USD, wider spreads in ticks, the same rows otherwise', () => {
    const ratio = eth.figures.ret1s_sd_bps! / btc.figures.ret1s_sd_bps!;
    expect(ratio).toBeGreaterThan(1.2);
    expect(ratio).toBeLessThan(2);
    expect(eth.figures.spread_median_ticks).toBeGreaterThan(btc.figures.spread_median_ticks!);
    const rows: Partial<Record<StatKey, Range>> = {
      top1pct_var_share: [0.3, 0.8],
      kurtosis_1s: [10, 100],
      mid_changed_share: [0.2, 0.7],
      abs_ret_acf_lag1: [0.05, 0.5],
      fwd_rv_q90_over_q50_30min: [1.5, 2.5],
    };
    expect(outside(eth, rows), JSON.stringify(eth.figures)).toEqual([]);
  });

  it('microstructure within 2x of the 25 s capture (BTC-USD and ETH-USD columns)', () => {
    const capture = {
      'BTC-USD': {
        update_events_per_s: 16.2,
        level_changes_per_s: 78.5,
        removal_share: 0.27,
        distance_median_ticks: 11_201,
        distance_p90_ticks: 283_570,
        distance_p99_ticks: 813_545,
        trades_per_s: 1.9,
        trade_size_median: 0.00038,
        trade_size_p90: 0.0074,
        trade_size_p99: 0.044,
      },
      'ETH-USD': {
        update_events_per_s: 15.3,
        level_changes_per_s: 120.1,
        removal_share: 0.23,
        distance_median_ticks: 159,
        distance_p90_ticks: 2_880,
        distance_p99_ticks: 23_991,
        trades_per_s: 1.3,
        // Capture sizes at ETH 1,919 USD, scaled to the simulator's 3,000 (same notional).
        trade_size_median: (0.051 * 1919) / 3000,
        trade_size_p90: (1.19 * 1919) / 3000,
        trade_size_p99: (2.88 * 1919) / 3000,
      },
    } as const;
    for (const p of [btc, eth]) {
      const ranges = Object.fromEntries(
        Object.entries(capture[p.product as keyof typeof capture]).map(([k, v]) => [k, around(v, 2)]),
      );
      expect(outside(p, ranges)).toEqual([]);
    }
  });

  it('gives notes, not numbers, for the day rows that two hours cannot show', () => {
    expect(btc.missing.hourly_sd_max_over_min).toMatch(/too short/);
    expect(btc.missing.rv5m_acf_lag12).toMatch(/too short/);
  });
});

describe('the visible book follows the efficient price through order flow', () => {
  it('the mid stays near the efficient price and never jumps far from where it is going', () => {
    const startUs = seedEpochUs(SEED);
    const exchange = new SimExchange(productSpecs(['BTC-USD']), SEED, startUs);
    const m = exchange.markets[0]!;
    let maxGapBps = 0;
    let over5 = 0;
    const mids: number[] = [];
    const effs: number[] = [];
    let worstExcessBps = 0;
    const seconds = 1800;
    const bps = (a: number, b: number) => Math.abs(Math.log(a / b)) * 1e4;
    for (let s = 1; s <= seconds; s++) {
      exchange.advanceTo(startUs + s * 1e6, () => {});
      const mid = (m.bestBid()!.priceTicks + m.bestAsk()!.priceTicks) / 2;
      const eff = m.efficientTicks;
      const gap = bps(mid, eff);
      maxGapBps = Math.max(maxGapBps, gap);
      if (gap > 5) over5++;
      mids.push(mid);
      effs.push(eff);
      const n = mids.length;
      if (n >= 3) {
        // The book may lag the efficient price by a second: a mid move beyond the efficient price's moves of
        // this and the previous second (plus 5 bps) would be a hole in the book, not the price.
        const explained = Math.max(
          bps(effs[n - 1]!, effs[n - 2]!),
          bps(effs[n - 2]!, effs[n - 3]!),
          bps(effs[n - 1]!, effs[n - 3]!),
        );
        worstExcessBps = Math.max(worstExcessBps, bps(mids[n - 1]!, mids[n - 2]!) - explained);
      }
    }
    expect(over5 / seconds).toBeLessThan(0.005);
    expect(worstExcessBps).toBeLessThan(5);
    expect(maxGapBps).toBeLessThan(50);
  });
});

describe('determinism', () => {
  it('the same seed measures the same, another seed differs', () => {
    const run = (seed: number) =>
      measureSimulation({
        products: productSpecs(['BTC-USD'], undefined, { levelsPerSide: 300 }),
        seed,
        seconds: 120,
      });
    expect(run(1)).toEqual(run(1));
    expect(run(2).products[0]!.figures).not.toEqual(run(1).products[0]!.figures);
  });

  it('a product simulated alone sees the same efficient price as in company (the common factor is shared)', () => {
    const startUs = seedEpochUs(9);
    const alone = new SimExchange(productSpecs(['ETH-USD']), 9, startUs);
    const both = new SimExchange(productSpecs(['BTC-USD', 'ETH-USD']), 9, startUs);
    alone.advanceTo(startUs + 300e6, () => {});
    both.advanceTo(startUs + 300e6, () => {});
    expect(alone.market('ETH-USD')!.efficientTicks).toBe(both.market('ETH-USD')!.efficientTicks);
  });
});
