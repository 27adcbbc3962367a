/**
 * The statistics module (src/marketdata/stats.ts) on hand-made event streams whose figures are known, on a
 * ticker-only stream (it says what it cannot measure), on too-short data (notes, not numbers), and on the
 * simulator through the real Advanced Trade mapper (the same figures as the in-process path).
 */
import { describe, expect, it } from 'vitest';
import { mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import type { MarketEvent } from '../src/marketdata/events.js';
import { autocorrelation, correlation, MarketStats, quantileSorted } from '../src/marketdata/stats.js';
import { productSpecs, seedEpochUs } from '../src/simulator/exchange.js';
import { measureSimulation } from '../src/simulator/measure.js';
import { Session } from '../src/simulator/session.js';

const T0 = Date.UTC(2026, 0, 1) * 1000;
const S = 1_000_000;
const P = 'BTC-USD';

const base = (exchUs: number) => ({ product: P, exchUs, recvUs: exchUs, seq: -1 });
const snapshot = (exchUs: number, bid: string, ask: string, size = '1'): MarketEvent => ({
  ...base(exchUs),
  type: 'book_snapshot',
  bids: [[bid, size]],
  asks: [[ask, size]],
});
const changes = (
  exchUs: number,
  ...c: [side: 'bid' | 'ask', price: string, size: string][]
): MarketEvent => ({
  ...base(exchUs),
  type: 'book_changes',
  changes: c.map(([side, price, size]) => ({ side, price, size })),
});
const trade = (exchUs: number, size: string, aggressor: 'buy' | 'sell'): MarketEvent => ({
  ...base(exchUs),
  type: 'trade',
  tradeId: String(exchUs),
  price: '100',
  size,
  aggressor,
});

/** A one-level book whose quote moves up one cent at every whole second + 0.5 s, for `seconds`. */
function steppingBook(seconds: number): MarketEvent[] {
  const out: MarketEvent[] = [snapshot(T0, '100.00', '100.01')];
  const cents = (n: number) => (100 + n / 100).toFixed(2);
  for (let i = 0; i < seconds; i++) {
    // New ask, old ask out, new bid, old bid out: the best moves one tick on each side.
    out.push(
      changes(
        T0 + i * S + S / 2,
        ['ask', cents(i + 2), '2'],
        ['ask', cents(i + 1), '0'],
        ['bid', cents(i + 1), '3'],
        ['bid', cents(i), '0'],
      ),
    );
  }
  return out;
}

describe('MarketStats on a known book', () => {
  const stats = new MarketStats();
  for (const e of steppingBook(400)) stats.push(e);
  const report = stats.finish();
  const r = report.products[0]!;

  it('measures the quote on the 1 s grid: every second moves the mid by one tick', () => {
    expect(r.source).toBe('book');
    expect(r.tick).toBe(0.01);
    expect(r.figures.mid_changed_share).toBe(1);
    expect(r.figures.spread_median_ticks).toBeCloseTo(1, 9);
    expect(r.figures.spread_p90_ticks).toBeCloseTo(1, 9);
    // log returns of ~1 bps each, nearly constant: sd near 0, no tails.
    expect(r.figures.ret1s_sd_bps).toBeLessThan(0.05);
  });

  it('counts update events, level changes, removals and distances from the best before the change', () => {
    expect(r.seconds).toBe(398);
    // 400 events of 4 changes; the first, before the first grid point, is not counted.
    expect(r.figures.update_events_per_s).toBeCloseTo(399 / 398, 9);
    expect(r.figures.level_changes_per_s).toBeCloseTo((4 * 399) / 398, 9);
    expect(r.figures.removal_share).toBe(0.5);
    // New levels are 1 tick from the best before the event, removals at it: distances 0, 1, 0, 1.
    expect(r.figures.distance_median_ticks).toBeCloseTo(1, 9);
  });

  it('order-flow imbalance is undefined against a mid that always moves by the same amount', () => {
    expect(r.missing.ofi_r2_same_s).toMatch(/not defined/);
  });

  it('labels 100 ms samples by a quote change at any moment within the next 500 ms', () => {
    // Changes at x.5 s: the samples at x.1 ... x.5 have x.5 inside [t, t + 500 ms), x.0 and x.6 ... x.9 not.
    expect(r.figures.quote_change_500ms).toBeCloseTo(0.5, 2);
  });

  it('gives notes, not numbers, for what needs more time', () => {
    expect(r.missing.hourly_sd_max_over_min).toMatch(/recording too short: needs 3 h, has 6.6 min/);
    expect(r.missing.rv5m_acf_lag12).toMatch(/needs 6 h/);
    expect(r.missing.trades_per_s).toMatch(/needs trades/);
  });
});

describe('MarketStats details', () => {
  it('order-flow imbalance of each level change, against the mid change (R² 1 for a noiseless link)', () => {
    const stats = new MarketStats();
    const events: MarketEvent[] = [snapshot(T0, '100.00', '110.00', '1')];
    let bid = 10_000;
    // Each second the bid moves up or down k ticks with queue 1: OFI = +1 per step up, -1 per step down.
    const moves = Array.from({ length: 400 }, (_, i) => ((i * 7919) % 5) - 2);
    moves.forEach((k, i) => {
      const at = T0 + i * S + S / 2;
      if (k > 0) {
        const c: [side: 'bid' | 'ask', price: string, size: string][] = [];
        for (let j = 1; j <= k; j++) c.push(['bid', ((bid + j) / 100).toFixed(2), '1']);
        events.push(changes(at, ...c));
      } else if (k < 0) {
        const c: [side: 'bid' | 'ask', price: string, size: string][] = [];
        for (let j = 0; j < -k; j++) c.push(['bid', ((bid - j) / 100).toFixed(2), '0']);
        events.push(changes(at, ...c));
      }
      bid += k;
    });
    // The book below the bid: a level at every tick down to 96, so removals uncover the next tick.
    events.splice(
      1,
      0,
      changes(
        T0 + 1,
        ...Array.from({ length: 400 }, (_, j): ['bid', string, string] => [
          'bid',
          ((9_999 - j) / 100).toFixed(2),
          '1',
        ]),
      ),
    );
    for (const e of events) stats.push(e);
    const r = stats.finish().products[0]!;
    expect(r.figures.ofi_r2_same_s).toBeGreaterThan(0.99);
    expect(r.figures.ofi_r2_next_s).toBeLessThan(0.05);
  });

  it('trade figures: rate, size quantiles, sign autocorrelation', () => {
    const stats = new MarketStats();
    stats.push(snapshot(T0, '100.00', '100.01'));
    for (let i = 0; i < 100; i++)
      stats.push(trade(T0 + S + i * S, i < 50 ? '0.5' : '2', i % 2 ? 'buy' : 'sell'));
    stats.push(changes(T0 + 102 * S, ['bid', '99.99', '1']));
    const r = stats.finish().products[0]!;
    expect(r.figures.trades_per_s).toBeCloseTo(100 / 101, 6);
    expect(r.figures.trade_size_median).toBe(2);
    expect(r.figures.trade_size_p90).toBe(2);
    expect(r.figures.trade_sign_acf_lag1).toBeCloseTo(-1, 9);
  });

  it('a ticker-only recording gives the quote-based figures and names what it cannot measure', () => {
    const stats = new MarketStats();
    for (let i = 0; i < 700; i++) {
      const bid = (100 + (i % 3) * 0.01).toFixed(2);
      stats.push({
        ...base(T0 + i * S),
        type: 'ticker',
        price: bid,
        bestBid: bid,
        bestAsk: (Number(bid) + 0.02).toFixed(2),
      });
    }
    const r = stats.finish().products[0]!;
    expect(r.source).toBe('ticker');
    expect(r.figures.spread_median_ticks).toBeCloseTo(2, 9);
    expect(r.figures.mid_changed_share).toBeCloseTo(1, 9);
    expect(r.figures.ret1s_sd_bps).toBeGreaterThan(0);
    for (const key of ['ofi_r2_same_s', 'update_events_per_s', 'distance_median_ticks'] as const)
      expect(r.missing[key]).toMatch(/needs L2 book data/);
    expect(r.missing.trades_per_s).toMatch(/needs trades/);
  });

  it('a resync invalidates the quote until the next snapshot (no returns across it)', () => {
    const stats = new MarketStats();
    stats.push(snapshot(T0, '100.00', '100.01'));
    stats.push({ ...base(T0 + 10 * S), type: 'resync', reason: 'gap' });
    stats.push(snapshot(T0 + 20 * S + 1, '200.00', '200.01'));
    stats.push(changes(T0 + 400 * S, ['bid', '199.99', '1']));
    const r = stats.finish().products[0]!;
    // The jump from 100 to 200 happened while the quote was unknown: not a return.
    expect(r.figures.ret1s_sd_bps).toBe(0);
  });

  it('correlation of 1 min returns between products, aligned on whole minutes; a note below 30 minutes', () => {
    const minuteUs = 60 * S;
    const start = Math.ceil(T0 / minuteUs) * minuteUs;
    const run = (minutes: number) => {
      const stats = new MarketStats();
      for (let m = 0; m <= minutes; m++) {
        const x = ((m * 7) % 11) - 5; // an irregular path of cents
        for (const [product, sign] of [
          ['BTC-USD', 1],
          ['ETH-USD', -1],
        ] as const) {
          const bid = (100 + (sign * x) / 100).toFixed(2);
          stats.push({
            ...base(start + m * minuteUs - S / 2),
            product,
            type: 'ticker',
            price: bid,
            bestBid: bid,
            bestAsk: (Number(bid) + 0.02).toFixed(2),
          });
        }
      }
      return stats.finish().pairs[0]!;
    };
    const long = run(40);
    expect(long.minutes).toBe(39);
    expect(long.corr1m).toBeLessThan(-0.99);
    const short = run(20);
    expect(short.corr1m).toBeUndefined();
    expect(short.note).toMatch(/recording too short: needs 30 min in common, has 19 min/);
  });

  it('helpers: nearest-rank quantile, Pearson correlation, autocorrelation with gaps', () => {
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(3);
    expect(correlation([1, 2, 3, Number.NaN], [2, 4, 6, 1]).r).toBeCloseTo(1, 12);
    expect(correlation([1, 2, 3], [3, 2, 1]).r).toBeCloseTo(-1, 12);
    expect(autocorrelation([1, -1, 1, -1, 1, -1], 1)).toBeLessThan(-0.8);
  });
});

describe('the simulator measured through the Advanced Trade mapper equals the in-process path', () => {
  it('same quote, spread, volatility and book figures from frames as from batches', () => {
    const seed = 5;
    const seconds = 360;
    const products = productSpecs(['BTC-USD', 'ETH-USD'], undefined, { levelsPerSide: 300 });
    const direct = measureSimulation({ products, seed, seconds });
    const startUs = seedEpochUs(seed);
    const session = new Session(products, seed, startUs);
    const stats = new MarketStats({ tick: () => 0.01 });
    const feed = (text: string) => {
      for (const e of mapAdvancedTradeFrame(text, session.timeUs).events) stats.push(e);
    };
    const subscribe = { type: 'subscribe', channel: 'level2', product_ids: ['BTC-USD', 'ETH-USD'] };
    for (const f of session.handleMessage(JSON.stringify(subscribe))) feed(f.text);
    const endUs = startUs + (seconds + 1) * S;
    for (const f of session.advanceTo(endUs)) feed(f.text);
    const viaFrames = stats.finish(endUs);
    for (const [i, product] of ['BTC-USD', 'ETH-USD'].entries()) {
      const a = direct.products[i]!;
      const b = viaFrames.products.find((p) => p.product === product)!;
      for (const key of [
        'ret1s_sd_bps',
        'mid_changed_share',
        'spread_p90_ticks',
        'quote_change_500ms',
        'ofi_r2_same_s',
        'update_events_per_s',
        'level_changes_per_s',
        'distance_median_ticks',
      ] as const)
        expect(b.figures[key], `${product} ${key}`).toBe(a.figures[key]);
    }
  });
});
