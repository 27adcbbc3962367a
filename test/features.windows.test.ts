import { describe, expect, it } from 'vitest';
import { FEATURE_NAMES, TRADE_AGE_CAP_S } from '../src/features/spec.js';
import type { MarketEvent } from '../src/marketdata/events.js';
import { midPath, quoteSnapshot, runPipeline } from './support/pipeline.js';

const T0 = 1_700_000_000_000_000; // a whole second, µs
const P = 'BTC-USD';
let seq = 0;
const at = (s: number) => T0 + Math.round(s * 1e6);
const base = (s: number, product = P) => ({ product, exchUs: at(s), recvUs: at(s), seq: ++seq });

/** Mid path: the quote set at j + 0.5 s has mid m(j), spread 1, sizes 2 (bid) / 1 (ask). */
const m = midPath;
const quote = (j: number): MarketEvent => quoteSnapshot(P, m(j), at(j + 0.5), ++seq);
const trade = (s: number, aggressor: 'buy' | 'sell', size: string, product = P): MarketEvent => ({
  ...base(s, product),
  type: 'trade',
  tradeId: String(seq),
  price: '100',
  size,
  aggressor,
});

function run(events: MarketEvent[], opts: { gapLimitMs?: number } = {}) {
  const { rows, labels, stats } = runPipeline({ tickMs: 100, deltaMs: 500, topLevels: 1, ...opts }, events);
  const row = (s: number, product = P) => {
    const r = rows.find((x) => x.product === product && x.tsUs === at(s));
    if (!r) throw new Error(`no row at ${s} s`);
    return r;
  };
  const f = (s: number, name: string, product = P) => {
    const i = FEATURE_NAMES.indexOf(name);
    if (i < 0) throw new Error(`no feature ${name}`);
    return row(s, product).values[i]!;
  };
  return { rows, labels, row, f, stats };
}

describe('windowed features over whole seconds (hand-made sequence with known answers)', () => {
  seq = 0;
  const events: MarketEvent[] = [];
  for (let j = 0; j < 50; j++) {
    // One taker buy of 0.1 each second at j + 0.25 s, plus a taker sell of 0.3 every 10th second.
    events.push(trade(j + 0.25, 'buy', '0.1'));
    events.push(quote(j));
    if (j % 10 === 0) events.push(trade(j + 0.75, 'sell', '0.3'));
  }
  const { f, rows, row } = run(events);
  // At the tick 40.0 s the windows end at the boundary 40 s: the 30 s window holds seconds 10..39, whose
  // returns are ln(m(k)/m(k-1)), mids at the boundaries 11..40 are m(10)..m(39).
  const rets = Array.from({ length: 30 }, (_, i) => Math.log(m(10 + i) / m(9 + i)));

  it('log return, realized volatility and mean |Δmid| of the 1 s returns', () => {
    expect(f(40, 'log_return_30s_bps')).toBeCloseTo(Math.log(m(39) / m(9)) * 1e4, 8);
    const rv = Math.sqrt(rets.reduce((a, r) => a + r * r, 0) / 30) * 1e4;
    expect(f(40, 'rv_30s_bps')).toBeCloseTo(rv, 8);
    let abs = 0;
    for (let k = 10; k < 40; k++) abs += Math.abs(m(k) - m(k - 1)) / m(k - 1);
    expect(f(40, 'mean_abs_dmid_30s_bps')).toBeCloseTo((abs / 30) * 1e4, 8);
    // Between boundaries the window does not move: 40.9 s sees the same seconds as 40.0 s.
    expect(f(40.9, 'rv_30s_bps')).toBe(f(40, 'rv_30s_bps'));
    expect(f(41, 'rv_30s_bps')).not.toBe(f(40, 'rv_30s_bps'));
  });

  it('mean spread and mean imbalance at the second boundaries', () => {
    let spread = 0;
    for (let j = 10; j < 40; j++) spread += 1 / m(j);
    expect(f(40, 'mean_spread_30s_bps')).toBeCloseTo((spread / 30) * 1e4, 8);
    expect(f(40, 'mean_imbalance_30s')).toBeCloseTo(1 / 3, 12);
  });

  it('trade intensity, volume velocity, time since the last trade', () => {
    // Seconds 10..39: 30 buys of 0.1 and sells of 0.3 at 10, 20, 30.
    expect(f(40, 'trade_rate_30s')).toBeCloseTo(33 / 30, 12);
    // Volume valued at the tick's mid (notional, so one model serves products of any price).
    expect(f(40, 'log_notional_volume_rate_30s')).toBeCloseTo(Math.log1p((3.9 / 30) * row(40).mid), 12);
    expect(f(40, 'time_since_trade_s')).toBeCloseTo(0.75, 12); // last trade at 39.25 s
    expect(f(0.6, 'time_since_trade_s')).toBeCloseTo(0.35, 12); // the trade at 0.25 s came before the book
  });

  it('short trade windows: count, volume, signed volume and imbalance over 1 s and 5 s', () => {
    // [35.1, 40.1): buys at 35.25 .. 39.25 (5 x 0.1); [39.1, 40.1): one buy.
    expect(f(40.1, 'trade_count_5s')).toBe(5);
    expect(f(40.1, 'log_notional_volume_5s')).toBeCloseTo(Math.log1p(0.5 * row(40.1).mid), 12);
    expect(f(40.1, 'trade_count_1s')).toBe(1);
    // [40.8, 41.8): the sell of 0.3 at 40.75 is out, only the buy at 41.25; [36.8, 41.8) has both.
    expect(f(41.8, 'trade_count_1s')).toBe(1);
    expect(f(40.8, 'trade_count_1s')).toBe(2); // [39.8, 40.8): buy 40.25, sell 40.75
    expect(f(40.8, 'signed_log_notional_volume_1s')).toBeCloseTo(-Math.log1p(0.2 * row(40.8).mid), 12);
    expect(f(40.8, 'trade_imbalance_1s')).toBeCloseTo((0.1 - 0.3) / 0.4, 12);
    expect(f(41.8, 'trade_imbalance_5s')).toBeCloseTo((0.5 - 0.3) / 0.8, 12);
    expect(f(41.8, 'signed_log_notional_volume_5s')).toBeCloseTo(Math.log1p(0.2 * row(41.8).mid), 12);
  });

  it('quote change rates, and the recent market against the 300 s level', () => {
    // A quote at every j + 0.5 s, each a new mid (the first is no change): seconds 10..39 hold 30 changes, the
    // 300 s window (back to before the start) the 39 of seconds 1..39.
    expect(f(40, 'quote_change_rate_30s')).toBeCloseTo(1, 12);
    expect(f(40, 'quote_change_rate_300s')).toBeCloseTo(39 / 300, 12);
    expect(f(40, 'trade_rate_300s')).toBeCloseTo(44 / 300, 12);
    const ln = (a: number, b: number, floor: number) => Math.log((a + floor) / (b + floor));
    const rv300 = f(40, 'rv_300s_bps');
    for (const w of [30, 60])
      expect(f(40, `log_rv_ratio_${w}s_300s`)).toBeCloseTo(ln(f(40, `rv_${w}s_bps`), rv300, 0.05), 5);
    // Rates floored at one event per 300 s: [35.1, 40.1) holds 5 changes and 5 trades; seconds 0..39 hold 44
    // trades (40 buys, sells at 0.75, 10.75, 20.75, 30.75).
    expect(f(40.1, 'log_quote_rate_ratio_5s_300s')).toBeCloseTo(ln(5 / 5, 39 / 300, 1 / 300), 5);
    expect(f(40, 'log_quote_rate_ratio_30s_300s')).toBeCloseTo(ln(1, 39 / 300, 1 / 300), 5);
    expect(f(40.1, 'log_trade_rate_ratio_5s_300s')).toBeCloseTo(ln(1, 44 / 300, 1 / 300), 5);
    expect(f(40, 'log_trade_rate_ratio_30s_300s')).toBeCloseTo(ln(33 / 30, 44 / 300, 1 / 300), 5);
    expect(f(40, 'abs_return_1s_vs_rv_300s')).toBeCloseTo(
      Math.abs(f(40, 'mid_log_return_1s_bps')) / Math.max(rv300, 0.05),
      5,
    );
    expect(f(40, 'abs_return_1s_vs_rv_300s')).toBeGreaterThan(0);
  });

  it("the book's activity against its 300 s level: level changes per second over 5 s and 30 s", () => {
    // A book of its own (product B): one snapshot, then at j + 0.6 s one event changing deep levels, 2 changes
    // before second 35 and 6 from it on. A snapshot is not activity.
    const B = 'ETH-USD';
    const book: MarketEvent[] = [{ ...quoteSnapshot(B, 100, at(0.5), ++seq) }];
    for (let j = 0; j < 45; j++) {
      const n = j < 35 ? 2 : 6;
      book.push({
        ...base(j + 0.6, B),
        type: 'book_changes',
        changes: Array.from({ length: n }, (_, k) => ({
          side: 'bid' as const,
          price: String(50 - k),
          size: String(1 + (j % 3)),
        })),
      });
    }
    const b = run(book);
    const ln = (a: number, level: number) => Math.log((a + 1 / 300) / (level + 1 / 300));
    // At 40.1 s: [35.1, 40.1) holds the events of 35..39 (5 x 6 changes); seconds 0..39 before the boundary 40
    // hold 35 x 2 + 5 x 6 = 100; seconds 10..39 hold 25 x 2 + 5 x 6 = 80.
    expect(b.f(40.1, 'log_book_update_rate_ratio_5s_300s', B)).toBeCloseTo(ln(30 / 5, 100 / 300), 5);
    expect(b.f(40.1, 'log_book_update_rate_ratio_30s_300s', B)).toBeCloseTo(ln(80 / 30, 100 / 300), 5);
    // At 20.1 s the activity is steady: 2 changes a second against 40 in 300 s.
    expect(b.f(20.1, 'log_book_update_rate_ratio_5s_300s', B)).toBeCloseTo(ln(2, 40 / 300), 5);
    // The first row's only events are the snapshot: no activity anywhere, a ratio of 1.
    expect(b.f(0.6, 'log_book_update_rate_ratio_30s_300s', B)).toBe(0);
  });

  it('gap flags: set until a window is full of known returns', () => {
    expect(f(40, 'data_gap_30s')).toBe(0);
    expect(f(30, 'data_gap_30s')).toBe(1); // second 0 starts before the first quote
    expect(f(31, 'data_gap_30s')).toBe(0);
    expect(f(40, 'data_gap_60s')).toBe(1);
    expect(f(40, 'data_gap_300s')).toBe(1);
    expect(rows.every((r) => r.values.every(Number.isFinite))).toBe(true);
  });

  it('a replay that starts later agrees bit for bit once its windows are full', () => {
    seq = 0;
    const later = run(events.filter((e) => e.exchUs >= at(5)));
    // Seconds 10.. are complete in both runs by 40 s (the later one starts at 5 s).
    for (const s of [40, 45.5, 49]) {
      for (const name of ['rv_30s_bps', 'mean_spread_30s_bps', 'log_return_30s_bps', 'trade_rate_30s']) {
        expect(later.f(s, name)).toBe(f(s, name));
      }
    }
  });
});

describe('ticker-only products', () => {
  const ticker = (s: number, bid: string, ask: string, sizes?: [string, string]): MarketEvent => ({
    ...base(s, 'SOL-USD'),
    type: 'ticker',
    price: bid,
    bestBid: bid,
    bestAsk: ask,
    ...(sizes ? { bestBidSize: sizes[0], bestAskSize: sizes[1] } : {}),
  });

  it('take the quote from the ticker, flag source_is_ticker and give book-only features 0', () => {
    seq = 0;
    const { f, row } = run([
      ticker(0.05, '20.00', '20.02', ['3', '1']),
      ticker(0.5, '20.01', '20.03'),
      ticker(1.2, '20.01', '20.03'),
    ]);
    const S = 'SOL-USD';
    expect(row(0.1, S).bestBid).toBe('20');
    expect(f(0.1, 'source_is_ticker', S)).toBe(1);
    expect(f(0.1, 'spread_bps', S)).toBeCloseTo((0.02 / 20.01) * 1e4, 9);
    expect(f(0.1, 'imbalance_l1', S)).toBeCloseTo(0.5, 12);
    expect(f(0.1, 'imbalance_l2', S)).toBe(0);
    expect(f(0.1, 'log_notional_depth_bid_3', S)).toBe(0);
    expect(f(0.1, 'book_updates_1s', S)).toBe(0);
    expect(row(0.1, S).top).toEqual({ bids: [['20', '3']], asks: [['20.02', '1']] });
    // The second ticker has no sizes: imbalance and microprice fall back to 0; the quote change counts.
    expect(f(0.6, 'imbalance_l1', S)).toBe(0);
    expect(f(0.6, 'microprice_offset_bps', S)).toBe(0);
    expect(f(0.6, 'quote_changes_1s', S)).toBe(1);
    expect(f(1.1, 'mid_log_return_1s_bps', S)).toBeCloseTo(Math.log(20.02 / 20.01) * 1e4, 9);
  });

  it('feed the windows and the vol label from the ticker quote', () => {
    seq = 0;
    const events: MarketEvent[] = [];
    for (let j = 0; j < 75; j++) {
      const mid = m(j);
      events.push(ticker(j + 0.5, (mid - 0.01).toFixed(2), (mid + 0.01).toFixed(2)));
    }
    const { f, labels } = run(events);
    const S = 'SOL-USD';
    expect(f(40, 'log_return_30s_bps', S)).toBeCloseTo(Math.log(m(39) / m(9)) * 1e4, 6);
    expect(f(40, 'source_is_ticker', S)).toBe(1);
    const vol = labels.filter((l) => l.target === 'vol_spike_60s');
    expect(vol.length).toBeGreaterThan(100);
    let s2 = 0;
    for (let k = 1; k <= 60; k++) s2 += Math.log(m(k) / m(k - 1)) ** 2;
    expect(vol.find((l) => l.tsUs === at(1))!.value).toBeCloseTo(Math.sqrt(s2 / 60) * 1e4, 6);
  });

  it('take trade flow from the growth of the ticker volume when there is no trades feed', () => {
    seq = 0;
    const withVolume = (e: MarketEvent, volume: string): MarketEvent =>
      ({ ...e, volume24h: volume }) as MarketEvent;
    const { f } = run([
      withVolume(ticker(0.05, '20.00', '20.02'), '100'),
      { ...withVolume(ticker(0.3, '20.00', '20.02'), '100.5'), price: '20.02' } as MarketEvent, // buy 0.5
      { ...withVolume(ticker(0.45, '20.00', '20.02'), '100.7'), price: '20.00' } as MarketEvent, // sell 0.2
      withVolume(ticker(0.55, '20.00', '20.02'), '90'), // the 24 h window rolled: nothing known traded
      ticker(0.65, '20.00', '20.02'),
    ]);
    const S = 'SOL-USD';
    expect(f(0.6, 'trade_count_1s', S)).toBe(2);
    expect(f(0.6, 'trade_imbalance_1s', S)).toBeCloseTo((0.5 - 0.2) / 0.7, 12);
    expect(f(0.6, 'time_since_trade_s', S)).toBeCloseTo(0.15, 12);
  });

  it('a product with L2 data ignores its ticker', () => {
    seq = 0;
    const { row, f } = run(
      [quote(0), ticker(0.6, '1.00', '2.00', ['1', '1']), trade(0.85, 'buy', '1')].map((e) => ({
        ...e,
        product: P,
      })),
    );
    expect(row(0.7).bestBid).toBe(row(0.6).bestBid);
    expect(f(0.7, 'source_is_ticker')).toBe(0);
  });
});

describe('late data and idle products', () => {
  it('applies a late event at the watermark: emitted ticks stay, the next tick counts it', () => {
    seq = 0;
    const { f, stats, rows } = run([
      quote(0),
      trade(0.9, 'buy', '1'),
      trade(0.7, 'sell', '2'),
      trade(1.05, 'buy', '1'),
    ]);
    expect(stats.lateEvents).toBe(1);
    expect(f(0.9, 'trade_count_1s')).toBe(0); // emitted before the trade at 0.9 s arrived
    expect(f(1.0, 'trade_count_1s')).toBe(2);
    expect(f(1.0, 'trade_imbalance_1s')).toBeCloseTo((1 - 2) / 3, 12);
    expect(f(1.0, 'time_since_trade_s')).toBeCloseTo(0.1, 12); // the late trade counts at 0.9 s
    expect(rows.map((r) => r.tsUs)).toEqual([...new Set(rows.map((r) => r.tsUs))]);
  });

  it('an idle product emits nothing until its next event, then catches up with its own clock', () => {
    seq = 0;
    const events = [quote(0), { ...quote(0), product: 'ETH-USD' }, quote(3)];
    const { rows } = run(events);
    const eth = rows.filter((r) => r.product === 'ETH-USD');
    expect(eth).toEqual([]); // ETH-USD saw one event only: no tick boundary passed on its clock
    expect(rows.filter((r) => r.product === P).map((r) => (r.tsUs - T0) / 1e5)).toEqual(
      Array.from({ length: 30 }, (_, i) => 6 + i),
    );
  });

  it('time since the last trade saturates when there was none', () => {
    seq = 0;
    expect(run([quote(0), quote(1)]).f(1.2, 'time_since_trade_s')).toBe(TRADE_AGE_CAP_S);
  });
});
