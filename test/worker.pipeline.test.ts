import { describe, expect, it } from 'vitest';
import { FeatureInputError, FeaturePipeline } from '../src/features/pipeline.js';
import { FEATURE_NAMES, FEATURE_SPEC, QUOTE_AGE_CAP_S } from '../src/features/spec.js';
import type { FeatureRow } from '../src/features/types.js';
import type { Level, MarketEvent } from '../src/marketdata/events.js';

const P = 'BTC-USD';
const T0 = 1_700_000_000_000_000; // a multiple of the 100 ms tick, in µs
const ms = (n: number) => T0 + n * 1000;

let seq = 0;
const base = (atMs: number) => ({ product: P, exchUs: ms(atMs), recvUs: ms(atMs) + 5, seq: ++seq });
const snapshot = (atMs: number, bids: Level[], asks: Level[]): MarketEvent => ({
  ...base(atMs),
  type: 'book_snapshot',
  bids,
  asks,
});
const change = (atMs: number, side: 'bid' | 'ask', price: string, size: string): MarketEvent => ({
  ...base(atMs),
  type: 'book_changes',
  changes: [{ side, price, size }],
});
const trade = (atMs: number, aggressor: 'buy' | 'sell', price: string, size: string): MarketEvent => ({
  ...base(atMs),
  type: 'trade',
  tradeId: String(seq),
  price,
  size,
  aggressor,
});
const heartbeat = (atMs: number): MarketEvent => ({ ...base(atMs), type: 'heartbeat', counter: seq });

function feature(row: FeatureRow | undefined, name: string): number {
  const i = FEATURE_NAMES.indexOf(name);
  if (!row || i < 0) throw new Error(`no row or no feature ${name}`);
  return row.values[i]!;
}

function sequence(): MarketEvent[] {
  seq = 0;
  return [
    snapshot(
      10,
      [
        ['100.00', '2'],
        ['99.99', '1'],
        ['99.98', '1'],
      ],
      [
        ['100.02', '1'],
        ['100.03', '3'],
        ['100.04', '1'],
      ],
    ),
    trade(50, 'buy', '100.02', '0.5'),
    trade(60, 'sell', '100.00', '0.25'),
    heartbeat(100), // completes tick 100 ms
    change(150, 'bid', '100.01', '1'), // new best bid: a quote change
    heartbeat(1150), // completes ticks 200 .. 1100 ms
    change(1200, 'ask', '100.015', '1'), // lands exactly on tick 1200: belongs to the next tick
    heartbeat(1300),
  ];
}

function run(events: MarketEvent[]) {
  const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
  const rows: FeatureRow[] = [];
  const labels: { tsUs: number; value: number }[] = [];
  for (const e of events) {
    p.push(e);
    const out = p.drain();
    rows.push(...out.rows);
    labels.push(...out.labels.map((l) => ({ tsUs: l.tsUs, value: l.value })));
  }
  return { rows, labels, pipeline: p };
}

describe('FeaturePipeline on a hand-made sequence', () => {
  const { rows, labels, pipeline } = run(sequence());
  const at = (tickMs: number) => rows.find((r) => r.tsUs === ms(tickMs));

  it('emits one row per tick boundary crossed by the watermark, none before the first event', () => {
    expect(rows.map((r) => (r.tsUs - T0) / 1000)).toEqual([
      100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300,
    ]);
    expect(rows.every((r) => r.product === P)).toBe(true);
  });

  it('computes the first tick from the events before it', () => {
    const r = at(100)!;
    expect(r.bestBid).toBe('100');
    expect(r.bestAsk).toBe('100.02');
    // Its position: the exchange time of the newest event applied (the trade at 60 ms); the heartbeat at exactly
    // 100 ms is not part of tick 100.
    expect(r.seq).toBe(ms(60));
    const mid = 100.01;
    expect(r.mid).toBeCloseTo(mid, 12);
    expect(r.spread).toBeCloseTo(0.02, 12);
    expect(feature(r, 'spread_bps')).toBeCloseTo((0.02 / mid) * 1e4, 9);
    expect(feature(r, 'imbalance_l1')).toBeCloseTo((2 - 1) / (2 + 1), 12);
    expect(feature(r, 'imbalance_l3')).toBeCloseTo((4 - 5) / (4 + 5), 12);
    const micro = (100 * 1 + 100.02 * 2) / 3;
    expect(feature(r, 'microprice_offset_bps')).toBeCloseTo(((micro - mid) / mid) * 1e4, 9);
    expect(feature(r, 'mid_log_return_1s_bps')).toBe(0); // no mid 1 s earlier
    expect(feature(r, 'time_since_quote_change_s')).toBe(QUOTE_AGE_CAP_S); // no change seen yet
    expect(feature(r, 'quote_changes_1s')).toBe(0);
    expect(feature(r, 'trade_count_1s')).toBe(2);
    expect(feature(r, 'trade_imbalance_1s')).toBeCloseTo((0.5 - 0.25) / 0.75, 12);
    expect(feature(r, 'log_notional_volume_1s')).toBeCloseTo(Math.log1p(0.75 * mid), 9);
    expect(feature(r, 'book_updates_1s')).toBe(0);
    expect(r.top).toEqual({
      bids: [
        ['100', '2'],
        ['99.99', '1'],
        ['99.98', '1'],
      ],
      asks: [
        ['100.02', '1'],
        ['100.03', '3'],
        ['100.04', '1'],
      ],
    });
  });

  it('ages the quote and slides the 1 s windows in event time', () => {
    const r200 = at(200)!;
    expect(r200.bestBid).toBe('100.01');
    expect(feature(r200, 'time_since_quote_change_s')).toBeCloseTo(0.05, 12);
    expect(feature(r200, 'quote_changes_1s')).toBe(1);
    expect(feature(r200, 'book_updates_1s')).toBe(1);
    expect(feature(r200, 'trade_count_1s')).toBe(2); // trades at 50, 60 ms are within [-800, 200) ms
    expect(feature(r200, 'imbalance_l1')).toBe(0); // 1 vs 1

    const r1100 = at(1100)!;
    expect(feature(r1100, 'trade_count_1s')).toBe(0); // window [100, 1100) ms
    expect(feature(r1100, 'trade_imbalance_1s')).toBe(0);
    expect(feature(r1100, 'quote_changes_1s')).toBe(1); // the change at 150 ms is still inside
    expect(feature(r1100, 'time_since_quote_change_s')).toBeCloseTo(0.95, 12);
    expect(feature(r1100, 'mid_log_return_1s_bps')).toBeCloseTo(Math.log(100.015 / 100.01) * 1e4, 9);

    const r1200 = at(1200)!;
    expect(feature(r1200, 'quote_changes_1s')).toBe(0); // [200, 1200) ms
    expect(r1200.bestAsk).toBe('100.02'); // the change at exactly 1200 ms is not in tick 1200
    expect(at(1300)!.bestAsk).toBe('100.015');
    expect(feature(at(1300), 'time_since_quote_change_s')).toBeCloseTo(0.1, 12);
  });

  it('labels a tick 1 when the best price as of t + 500 ms differs, respecting the horizon edge', () => {
    // Tick 100: bid moved at 150 -> 1. Ticks 200..700: nothing before their horizon -> 0 (tick 700's horizon is
    // 1200, and the ask change at exactly 1200 ms is after it). Tick 800: horizon 1300 includes it -> 1.
    expect(labels).toEqual([
      { tsUs: ms(100), value: 1 },
      ...[200, 300, 400, 500, 600, 700].map((t) => ({ tsUs: ms(t), value: 0 })),
      { tsUs: ms(800), value: 1 },
    ]);
    expect(pipeline.stats()).toMatchObject({ rows: 13, labels: 8, invalidTicks: 0 });
  });

  it('is deterministic: the same events give identical rows and labels', () => {
    const again = run(sequence());
    expect(again.rows).toEqual(rows);
    expect(again.labels).toEqual(labels);
  });
});

describe('FeaturePipeline book validity', () => {
  it('emits no rows while the book awaits a snapshot after a resync, then resumes', () => {
    seq = 0;
    const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500, topLevels: 0 });
    p.push(snapshot(10, [['10', '1']], [['11', '1']]));
    p.push({ ...base(120), type: 'resync', reason: 'sequence gap' });
    p.push(change(130, 'bid', '10.5', '1')); // no book to apply to
    p.push(heartbeat(450));
    p.push(snapshot(460, [['10.2', '1']], [['10.8', '1']]));
    p.push(heartbeat(500));
    const { rows } = p.drain();
    // Tick 100 is still pending when the resync arrives; the resync does not move the clock (its time is not
    // market time), so every tick emitted after it waits for the new snapshot: the book is unknown from there.
    expect(rows.map((r) => [(r.tsUs - T0) / 1000, r.bestBid])).toEqual([[500, '10.2']]);
    expect(rows[0]!.top).toBeUndefined();
    expect(p.stats()).toMatchObject({ invalidTicks: 4, changesBeforeSnapshot: 1 });
  });

  it('does not let a resync move the clock: its time is a stream position, not market time', () => {
    seq = 0;
    const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500, topLevels: 0 });
    // A replay of an old recording: the ingestor's first resync may carry today's time, years ahead.
    p.push({ ...base(0), exchUs: ms(0) + 3e13, type: 'resync', reason: 'connect' });
    p.push(snapshot(10, [['10', '1']], [['11', '1']]));
    p.push({ ...base(150), exchUs: ms(150) + 3e13, type: 'resync', reason: 'reconnect' });
    p.push(snapshot(160, [['10.1', '1']], [['11', '1']]));
    p.push(heartbeat(300));
    // Tick 100 was pending at the second resync, so it has no row; the clock never jumped to the resyncs' times.
    expect(p.drain().rows.map((r) => [(r.tsUs - T0) / 1000, r.bestBid])).toEqual([
      [200, '10.1'],
      [300, '10.1'],
    ]);
    expect(p.stats().lateEvents).toBe(0);
    expect(p.watermarkUs(P)).toBe(ms(300));
  });

  it('rejects a malformed level with FeatureInputError and waits for the next snapshot', () => {
    seq = 0;
    const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
    p.push(snapshot(10, [['10', '1']], [['11', '1']]));
    expect(() => p.push(change(20, 'bid', '10,5', '1'))).toThrow(FeatureInputError);
    p.push(heartbeat(200));
    expect(p.drain().rows.map((r) => (r.tsUs - T0) / 1000)).toEqual([]);
    expect(() => p.push({ ...heartbeat(300), exchUs: Number.NaN })).toThrow(/bad exchUs/);
  });

  it('the spec lists the features in the order of the row values', () => {
    expect(FEATURE_SPEC.features.map((f) => f.name)).toEqual(FEATURE_NAMES);
    expect(FEATURE_SPEC.version).toBe(5);
    expect(new Set(FEATURE_NAMES).size).toBe(FEATURE_NAMES.length);
  });
});
