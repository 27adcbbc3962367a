import { describe, expect, it } from 'vitest';
import { FEATURE_NAMES, FEATURE_SPEC, featureSpec, MODEL_FEATURES } from '../../src/features/spec.js';
import type { FeatureRow, LabelRow } from '../../src/features/types.js';
import {
  assertBothClasses,
  checkSpecs,
  completeRows,
  DatasetError,
  type Example,
  joinLabels,
  modelRows,
  selectWindow,
  splitByTime,
} from './dataset.js';
import { binarizeByProduct, fitThresholdsByProduct, labelHorizonUs, toSpikeValues } from './targets.js';

const TARGET = 'quote_change_500ms';

const row = (product: string, tsUs: number, ...values: number[]): FeatureRow => ({
  product,
  tsUs,
  seq: tsUs,
  bestBid: '1',
  bestAsk: '2',
  mid: 1.5,
  spread: 1,
  values: Float64Array.from(values),
});
const label = (product: string, tsUs: number, value: number, target = TARGET) =>
  ({ product, tsUs, value, target }) as LabelRow;

/** `ticks` ticks 100 ms apart, each with one row per product, labels alternating 0/1. */
function examples(ticks: number, products = ['A', 'B']): Example[] {
  return Array.from({ length: ticks }, (_, t) =>
    products.map((product, p) => ({ product, tsUs: 1_000_000 + t * 100_000, x: [t, p], y: (t + p) % 2 })),
  ).flat();
}

describe('joinLabels', () => {
  it('pairs each label with the feature row of its (product, tick), in time order', () => {
    const joined = joinLabels(
      [row('B', 200, 3), row('A', 200, 2), row('A', 100, 1), row('B', 300, 9)],
      [label('A', 200, 1), label('B', 200, 0), label('A', 100, 0), label('A', 300, 1)],
      TARGET,
    );
    expect(joined).toEqual([
      { product: 'A', tsUs: 100, x: [1], y: 0 },
      { product: 'A', tsUs: 200, x: [2], y: 1 },
      { product: 'B', tsUs: 200, x: [3], y: 0 },
    ]);
  });

  it('ignores other targets and counts a repeated row or label once', () => {
    const joined = joinLabels(
      [row('A', 100, 1), row('A', 100, 1)],
      [label('A', 100, 1), label('A', 100, 1), label('A', 100, 0, 'other_target')],
      TARGET,
    );
    expect(joined).toEqual([{ product: 'A', tsUs: 100, x: [1], y: 1 }]);
  });

  it('rejects conflicting duplicates and non-binary labels', () => {
    expect(() => joinLabels([row('A', 100, 1)], [label('A', 100, 1), label('A', 100, 0)], TARGET)).toThrow(
      /two different quote_change_500ms labels for A@100/,
    );
    expect(() => joinLabels([row('A', 100, 1), row('A', 100, 2)], [], TARGET)).toThrow(DatasetError);
    expect(() => joinLabels([row('A', 100, 1)], [label('A', 100, 2)], TARGET)).toThrow(/is 2, not 0\/1/);
  });

  it('keeps vol_spike_60s values continuous (thresholded later) and rejects negative or NaN ones', () => {
    const vol = (tsUs: number, value: number) => label('A', tsUs, value, 'vol_spike_60s');
    expect(
      joinLabels([row('A', 100, 1), row('A', 200, 2)], [vol(100, 0.75), vol(200, 0)], 'vol_spike_60s'),
    ).toEqual([
      { product: 'A', tsUs: 100, x: [1], y: 0.75 },
      { product: 'A', tsUs: 200, x: [2], y: 0 },
    ]);
    expect(() => joinLabels([row('A', 100, 1)], [vol(100, -0.5)], 'vol_spike_60s')).toThrow(
      /vol_spike_60s for A@100 is -0.5, not a finite value >= 0/,
    );
    expect(() => joinLabels([row('A', 100, 1)], [vol(100, Number.NaN)], 'vol_spike_60s')).toThrow(
      DatasetError,
    );
  });
});

describe('splitByTime', () => {
  it('trains on the oldest rows and holds out the newest, without overlap', () => {
    const all = examples(10);
    const { train, holdout, holdoutWindow } = splitByTime(all, 0.7);
    expect([...train, ...holdout]).toEqual(all);
    expect(train.length).toBe(14);
    expect(Math.max(...train.map((e) => e.tsUs))).toBeLessThan(holdoutWindow.fromUs);
    expect(holdoutWindow).toEqual({ fromUs: holdout[0]!.tsUs, toUs: all.at(-1)!.tsUs });
  });

  it('moves the cut to a tick boundary so one tick is never on both sides', () => {
    // 3 products x 5 ticks = 15 rows; 70% would cut after row 10, inside the fourth tick.
    const { train, holdout } = splitByTime(examples(5, ['A', 'B', 'C']), 0.7);
    expect(train.length).toBe(12);
    expect(new Set(holdout.map((e) => e.tsUs)).size).toBe(1);
  });

  it('refuses a split that leaves one side empty, or unordered rows', () => {
    expect(() => splitByTime(examples(1), 0.7)).toThrow(/cannot be split/);
    expect(() => splitByTime([...examples(3)].reverse(), 0.7)).toThrow(/not in time order/);
    expect(() => splitByTime(examples(3), 1)).toThrow(RangeError);
  });

  it('purges training rows whose label horizon reaches the held-out part', () => {
    const all = examples(10); // ticks 100 ms apart; 70% cuts before tick 7
    const { train, purged, holdout } = splitByTime(all, 0.7, 250_000);
    // Ticks 5 and 6 end their 250 ms horizon at or after tick 7: purged; the held-out part is unchanged.
    expect(train).toEqual(all.slice(0, 10));
    expect(purged).toBe(4);
    expect(holdout).toEqual(splitByTime(all, 0.7).holdout);
    expect(train.at(-1)!.tsUs + 250_000).toBeLessThan(holdout[0]!.tsUs);
    expect(() => splitByTime(all, 0.7, 10e6)).toThrow(
      /0 would train \(14 purged by the 10 s label horizon\)/,
    );
  });

  it('selectWindow re-selects exactly the held-out rows', () => {
    const all = examples(20);
    const { holdout, holdoutWindow } = splitByTime(all, 0.7);
    expect(selectWindow(all, holdoutWindow)).toEqual(holdout);
  });
});

describe('checks', () => {
  it('checkSpecs accepts the code spec and names the file written with another', () => {
    expect(() => checkSpecs([{ key: 'features/a.parquet', spec: FEATURE_SPEC }], FEATURE_SPEC)).not.toThrow();
    expect(() => checkSpecs([{ key: 'features/b.parquet', spec: featureSpec(250) }], FEATURE_SPEC)).toThrow(
      /features\/b\.parquet was written with feature spec v\d+ \(tick 250 ms/,
    );
    const renamed = { ...FEATURE_SPEC, features: FEATURE_SPEC.features.slice(1) };
    expect(() => checkSpecs([{ key: 'k', spec: renamed }], FEATURE_SPEC)).toThrow(DatasetError);
  });

  it('modelRows refuses a complete row with a NaN input or label, naming the row and feature', () => {
    // A complete row: no gap flag set (zeros), every value finite.
    const whole = (product: string, tsUs: number, y = 1): Example => ({
      product,
      tsUs,
      x: new Array<number>(FEATURE_NAMES.length).fill(0),
      y,
    });
    const rows = [whole('BTC-USD', 1), whole('ETH-USD', 1)];
    expect(modelRows(rows, 'ticker')[0]!.x).toHaveLength(MODEL_FEATURES.ticker.length);
    const input = MODEL_FEATURES.ticker[3]!;
    const nan = whole('ETH-USD', 2);
    nan.x[FEATURE_NAMES.indexOf(input)] = Number.NaN;
    expect(() => modelRows([...rows, nan], 'ticker')).toThrow(DatasetError);
    expect(() => modelRows([...rows, nan], 'ticker')).toThrow(
      `the row of ETH-USD at 2 µs: feature ${input} is NaN, not a finite number`,
    );
    expect(() => completeRows([...rows, nan], 'l2')).toThrow(DatasetError);
    expect(() => modelRows([whole('BTC-USD', 3, Number.NaN)], 'l2')).toThrow(/its label is NaN/);
    // An incomplete row (a gap in its windows) is left out, whatever it holds: never checked, never learnt.
    const gap = whole('BTC-USD', 4);
    gap.x[FEATURE_NAMES.indexOf('data_gap_now')] = 1;
    gap.x[FEATURE_NAMES.indexOf(input)] = Number.NaN;
    expect(modelRows([...rows, gap], 'l2')).toHaveLength(2);
    expect(completeRows([...rows, gap], 'l2')).toEqual(rows);
  });

  it('assertBothClasses needs a 0 and a 1', () => {
    expect(() => assertBothClasses(examples(2), 'rows')).not.toThrow();
    const ones = examples(3).map((e) => ({ ...e, y: 1 }));
    expect(() => assertBothClasses(ones, 'held-out rows')).toThrow(/held-out rows: all 6 labels are 1/);
  });
});

describe('targets', () => {
  it('quote_change_500ms labels are 0/1 already: no threshold, rows unchanged', () => {
    const rows = examples(3);
    expect(fitThresholdsByProduct(TARGET, rows)).toBeUndefined();
    expect(binarizeByProduct(rows, undefined)).toEqual(rows);
  });

  it('vol_spike_60s: y becomes forward volatility / the trailing level, τ per product from its training rows', () => {
    const level = FEATURE_NAMES.indexOf('rv_300s_bps');
    const whole = (product: string, forward: number, levelBps: number) => {
      const x = new Array<number>(FEATURE_NAMES.length).fill(0);
      x[level] = levelBps;
      return { product, tsUs: 0, x, y: forward };
    };
    // The same forward 2 bps: 4x a calm 0.5 bps level, 0.5x a busy 4 bps one; a frozen quote (0) divides by 0.05.
    const values = toSpikeValues([whole('A', 2, 0.5), whole('A', 2, 4), whole('A', 0.1, 0)]).map((e) => e.y);
    expect(values).toEqual([4, 0.5, 0.1 / 0.05]);
    const quote = [whole('A', 1, 0.5)];
    expect(toSpikeValues(quote, TARGET)).toEqual(quote);
    expect(() => toSpikeValues([{ x: [1, 2], y: 1 }])).toThrow(/whole lake rows/);
    // Two products of very different volatility: each gets its own τ over its own ratios.
    const rows = Array.from({ length: 20 }, (_, i) => [
      whole('BTC-USD', (i + 1) / 10, 1),
      whole('ETH-USD', (i + 1) * 3, 2),
    ]).flat();
    const thresholds = fitThresholdsByProduct('vol_spike_60s', toSpikeValues(rows))!;
    expect(thresholds).toEqual({ 'BTC-USD': 1.8, 'ETH-USD': 27 });
    const spikes = binarizeByProduct(toSpikeValues(rows), thresholds);
    for (const p of ['BTC-USD', 'ETH-USD'])
      expect(spikes.filter((e) => e.product === p && e.y === 1)).toHaveLength(2);
    // A product without τ (not in the training rows) is left out, not judged by another's.
    expect(binarizeByProduct([{ product: 'SOL-USD', y: 99 }], thresholds)).toEqual([]);
  });

  it('label horizons: DELTA_MS for quote changes, 61 s for forward volatility (window from the next second)', () => {
    expect(labelHorizonUs(TARGET, 500)).toBe(500_000);
    expect(labelHorizonUs('vol_spike_60s', 500)).toBe(61_000_000);
  });
});
