/**
 * Market statistics from a stream of normalized events (events.ts): one implementation for the simulator,
 * an archive of the live feed and every recording `quotewatch replay` reads. It measures what the simulator
 * is calibrated against: the price dynamics on a 1 s grid of exchange time (volatility, its tails and
 * clustering, how often the mid moves, spreads, order-flow imbalance against the mid change, cross-product
 * correlation) and the microstructure (event rates, removal share, distance of changes from the best,
 * trade sizes).
 *
 * Conventions. Each product has its own exchange-time clock (the newest exchange time seen). The state "at"
 * a grid time g is the state after every event with exchUs < g, as for feature ticks; grid points are whole
 * seconds of epoch time, so products line up. The quote comes from the L2 book; a product without L2 data
 * (a ticker-only recording) takes it from its ticker events, and figures that need the book or trades are
 * reported as missing with the reason. A figure that needs a longer recording is missing with a note saying
 * how long it needs, never a number from too little data.
 */
import { BookError, OrderBook } from '../book/book.js';
import { parseUnits } from '../book/units.js';
import { quoteChangedWithin } from '../labels/quoteChange.js';
import type { MarketEvent } from './events.js';

const SECOND_US = 1_000_000;
const UNITS = 100_000_000;

/** Every figure, in the order reports print them. `min` is the shortest span (s) that gives a number. */
export const STAT_DEFS = [
  { key: 'ret1s_sd_bps', label: 'sd of 1 s mid log returns, bps', min: 300, needs: 'quote' },
  {
    key: 'hourly_sd_max_over_min',
    label: 'hourly sd: busiest / quietest hour',
    min: 3 * 3600,
    needs: 'quote',
  },
  {
    key: 'top1pct_var_share',
    label: 'share of variance from the largest 1% of returns',
    min: 300,
    needs: 'quote',
  },
  { key: 'kurtosis_1s', label: 'kurtosis of 1 s returns', min: 300, needs: 'quote' },
  { key: 'mid_changed_share', label: 'share of seconds in which the mid changed', min: 60, needs: 'quote' },
  { key: 'spread_median_ticks', label: 'spread median, ticks', min: 20, needs: 'quote' },
  { key: 'spread_p90_ticks', label: 'spread 90th percentile, ticks', min: 20, needs: 'quote' },
  { key: 'abs_ret_acf_lag1', label: 'autocorrelation of |1 s return| at lag 1 s', min: 300, needs: 'quote' },
  {
    key: 'rv5m_acf_lag12',
    label: 'autocorrelation of 5-min realized vol at lag 1 h',
    min: 6 * 3600,
    needs: 'quote',
  },
  {
    key: 'fwd_rv_q90_over_q50_30min',
    label: 'forward 60 s realized vol q90/q50 within 30 min (median)',
    min: 1860,
    needs: 'quote',
  },
  {
    key: 'fwd_rv_q90_over_q50',
    label: 'forward 60 s realized vol q90/q50 over the span',
    min: 660,
    needs: 'quote',
  },
  {
    key: 'quote_change_500ms',
    label: 'best bid/ask changes within 500 ms (100 ms samples)',
    min: 20,
    needs: 'quote',
  },
  {
    key: 'quote_change_500ms_hourly_min',
    label: 'the same, lowest hourly average',
    min: 3600,
    needs: 'quote',
  },
  {
    key: 'quote_change_500ms_hourly_max',
    label: 'the same, highest hourly average',
    min: 3600,
    needs: 'quote',
  },
  {
    key: 'ofi_r2_same_s',
    label: 'R² of 1 s mid change on 1 s order-flow imbalance',
    min: 300,
    needs: 'book',
  },
  { key: 'ofi_r2_next_s', label: 'R² of the next second’s mid change on it', min: 300, needs: 'book' },
  { key: 'update_events_per_s', label: 'L2 update events per second', min: 20, needs: 'book' },
  { key: 'level_changes_per_s', label: 'level changes per second', min: 20, needs: 'book' },
  { key: 'removal_share', label: 'share of changes that remove a level', min: 20, needs: 'book' },
  {
    key: 'distance_median_ticks',
    label: 'distance of changes from the best: median, ticks',
    min: 20,
    needs: 'book',
  },
  {
    key: 'distance_p90_ticks',
    label: 'distance from the best: 90th percentile, ticks',
    min: 20,
    needs: 'book',
  },
  {
    key: 'distance_p99_ticks',
    label: 'distance from the best: 99th percentile, ticks',
    min: 20,
    needs: 'book',
  },
  { key: 'trades_per_s', label: 'trades per second', min: 20, needs: 'trades' },
  { key: 'trade_size_median', label: 'trade size median (base units)', min: 20, needs: 'trades' },
  { key: 'trade_size_p90', label: 'trade size 90th percentile', min: 20, needs: 'trades' },
  { key: 'trade_size_p99', label: 'trade size 99th percentile', min: 20, needs: 'trades' },
  {
    key: 'trade_sign_acf_lag1',
    label: 'autocorrelation of trade signs at lag 1 trade',
    min: 60,
    needs: 'trades',
  },
] as const;

export type StatKey = (typeof STAT_DEFS)[number]['key'];

/** Pairs of products: correlation of 1 min mid log returns (needs 30 common minutes). */
export const CORR_MIN_S = 1800;

export interface HourFigures {
  /** Start of the hour block, epoch µs. */
  fromUs: number;
  ret1sSdBps: number;
  midChangedShare: number;
  quoteChange500ms: number;
}

export interface ProductReport {
  product: string;
  /** Where the quote came from: the L2 book, the ticker (no L2 data), or nowhere. */
  source: 'book' | 'ticker' | 'none';
  /** Seconds of exchange time covered by the 1 s grid. */
  seconds: number;
  /** Price increment the spread is counted in (given, or inferred from the decimals of the prices seen). */
  tick: number;
  /** The first mid on the grid (quote currency), NaN when there is none. */
  firstMid: number;
  figures: Partial<Record<StatKey, number>>;
  /** Why a figure is absent (too short, or the recording lacks the data). */
  missing: Partial<Record<StatKey, string>>;
  hours: HourFigures[];
}

export interface PairReport {
  a: string;
  b: string;
  /** Correlation of 1 min mid log returns, or undefined with a note. */
  corr1m?: number;
  note?: string;
  minutes: number;
}

export interface StatsReport {
  products: ProductReport[];
  pairs: PairReport[];
}

export interface StatsOptions {
  /** Price increment per product; default: inferred from the number of decimals of the prices seen. */
  tick?: (product: string) => number | undefined;
  /** Products to measure (default: every product seen, except the `_feed` stats partition). */
  products?: readonly string[];
}

const SAMPLE_US = 100_000;
const HORIZON_US = 500_000;

/** Growable Float64Array. */
class Series {
  data = new Float64Array(1024);
  length = 0;
  push(x: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = x;
  }
  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

class ProductState {
  readonly book: OrderBook;
  hasBook = false;
  hasTicker = false;
  hasTrades = false;
  bookValid = false;
  /** Current quote (units), NaN when unknown. */
  bid = Number.NaN;
  ask = Number.NaN;
  bidQty = 0;
  askQty = 0;
  clockUs = Number.NEGATIVE_INFINITY;
  maxDecimals = 0;
  // 1 s grid
  nextGridUs = Number.NaN;
  firstGridUs = Number.NaN;
  readonly mids = new Series();
  readonly spreads = new Series();
  /** OFI (base units) over [g - 1 s, g), one per grid point (the first is NaN). */
  readonly ofi = new Series();
  ofiAcc = 0;
  ofiValid = false;
  /** The quote at the last book update (order-flow imbalance is measured between updates). */
  flowBid = Number.NaN;
  flowAsk = Number.NaN;
  flowBidQty = 0;
  flowAskQty = 0;
  // 100 ms quote-change samples: pending sample times; resolved labels per sample.
  nextSampleUs = Number.NaN;
  pending: number[] = [];
  pendingHead = 0;
  readonly sampleTimes = new Series();
  readonly sampleLabels = new Series();
  // microstructure
  updateEvents = 0;
  levelChanges = 0;
  removals = 0;
  readonly distances = new Series();
  trades = 0;
  readonly tradeSizes = new Series();
  readonly tradeSigns = new Series();
  firstEventUs = Number.NaN;
  lastEventUs = Number.NaN;
  /** Events applied before the first grid point (not counted in rates). */
  constructor(readonly product: string) {
    this.book = new OrderBook(product);
  }
}

/** Equal, NaN included (an unknown quote that stays unknown did not change). */
const same = (a: number, b: number) => a === b || (Number.isNaN(a) && Number.isNaN(b));

function decimals(price: string): number {
  const dot = price.indexOf('.');
  return dot < 0 ? 0 : price.length - dot - 1;
}

/** Nearest-rank quantile of a sorted sample (the value at floor(q * n)). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function sorted(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x).sort();
}

function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s / x.length;
}

/** Pearson correlation of paired samples (NaN pairs skipped). */
export function correlation(a: ArrayLike<number>, b: ArrayLike<number>): { r: number; n: number } {
  let n = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]!) || Number.isNaN(b[i]!)) continue;
    n++;
    sa += a[i]!;
    sb += b[i]!;
  }
  if (n < 3) return { r: Number.NaN, n };
  const ma = sa / n;
  const mb = sb / n;
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]!) || Number.isNaN(b[i]!)) continue;
    const da = a[i]! - ma;
    const db = b[i]! - mb;
    cov += da * db;
    va += da * da;
    vb += db * db;
  }
  return { r: va > 0 && vb > 0 ? cov / Math.sqrt(va * vb) : Number.NaN, n };
}

/** Autocorrelation at `lag` of a series with NaN gaps (pairs with a NaN are skipped; one overall mean). */
export function autocorrelation(x: ArrayLike<number>, lag: number): number {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = lag; i < x.length; i++) {
    if (Number.isNaN(x[i]!) || Number.isNaN(x[i - lag]!)) continue;
    a.push(x[i - lag]!);
    b.push(x[i]!);
  }
  if (a.length < 3) return Number.NaN;
  // One mean and variance for both (the standard sample ACF), not a lagged Pearson correlation.
  let s = 0;
  let n = 0;
  for (let i = 0; i < x.length; i++)
    if (!Number.isNaN(x[i]!)) {
      s += x[i]!;
      n++;
    }
  const m = s / n;
  let v = 0;
  for (let i = 0; i < x.length; i++) if (!Number.isNaN(x[i]!)) v += (x[i]! - m) ** 2;
  v /= n;
  let c = 0;
  for (let i = 0; i < a.length; i++) c += (a[i]! - m) * (b[i]! - m);
  c /= a.length;
  return v > 0 ? c / v : Number.NaN;
}

export class MarketStats {
  private readonly states = new Map<string, ProductState>();
  private readonly only: Set<string> | undefined;

  constructor(private readonly options: StatsOptions = {}) {
    this.only = options.products ? new Set(options.products) : undefined;
  }

  private state(product: string): ProductState | undefined {
    if (product.startsWith('_')) return undefined;
    if (this.only && !this.only.has(product)) return undefined;
    let s = this.states.get(product);
    if (!s) {
      s = new ProductState(product);
      this.states.set(product, s);
    }
    return s;
  }

  /** Feeds one event (events of a product in exchange-time order; late ones count at the product's clock). */
  push(e: MarketEvent): void {
    const s = this.state(e.product);
    if (!s) return;
    if (e.type === 'heartbeat') return;
    const t = Math.max(e.exchUs, s.clockUs);
    if (!Number.isFinite(t)) return;
    this.advance(s, t);
    s.clockUs = t;
    if (Number.isNaN(s.firstEventUs)) s.firstEventUs = t;
    s.lastEventUs = t;
    const before = { bid: s.bid, ask: s.ask, bidQty: s.bidQty, askQty: s.askQty };
    switch (e.type) {
      case 'book_snapshot':
        s.hasBook = true;
        for (const [p] of e.bids.slice(0, 50)) s.maxDecimals = Math.max(s.maxDecimals, decimals(p));
        try {
          s.book.applySnapshot(e.bids, e.asks);
          s.bookValid = true;
        } catch (err) {
          if (!(err instanceof BookError)) throw err;
          s.bookValid = false;
        }
        break;
      case 'book_changes': {
        s.hasBook = true;
        if (!s.bookValid) break;
        if (t >= s.firstGridUs) s.updateEvents++;
        const bestBid = s.book.bestBid();
        const bestAsk = s.book.bestAsk();
        for (const c of e.changes) {
          if (t >= s.firstGridUs) {
            s.levelChanges++;
            if (c.size === '0') s.removals++;
            const p = parseUnits(c.price);
            const ref = c.side === 'bid' ? bestBid : bestAsk;
            if (!Number.isNaN(ref) && p >= 0) s.distances.push(Math.abs(p - ref));
          }
          if (s.maxDecimals < 8) s.maxDecimals = Math.max(s.maxDecimals, decimals(c.price));
          try {
            s.book.applyChange(c.side, c.price, c.size);
          } catch (err) {
            if (!(err instanceof BookError)) throw err;
            s.bookValid = false;
            break;
          }
          // Order-flow imbalance counts each level change as one book update (the exchange batches them).
          if (e.changes.length > 1) this.flow(s);
        }
        break;
      }
      case 'resync':
        s.bookValid = false;
        s.book.clear();
        break;
      case 'trade': {
        s.hasTrades = true;
        if (t >= s.firstGridUs) {
          s.trades++;
          s.tradeSizes.push(parseUnits(e.size) / UNITS);
          s.tradeSigns.push(e.aggressor === 'buy' ? 1 : -1);
        }
        break;
      }
      case 'ticker': {
        s.hasTicker = true;
        if (s.hasBook) break;
        s.maxDecimals = Math.max(s.maxDecimals, decimals(e.bestBid), decimals(e.bestAsk));
        s.bid = parseUnits(e.bestBid);
        s.ask = parseUnits(e.bestAsk);
        s.bidQty = e.bestBidSize ? parseUnits(e.bestBidSize) / UNITS : 0;
        s.askQty = e.bestAskSize ? parseUnits(e.bestAskSize) / UNITS : 0;
        if (!(s.bid > 0 && s.ask > s.bid)) s.bid = s.ask = Number.NaN;
        break;
      }
    }
    if (s.hasBook) this.readBook(s);
    if (Number.isNaN(s.nextGridUs) && !Number.isNaN(s.bid)) {
      // The grid starts at the first whole second after the quote is known.
      s.nextGridUs = Math.floor(t / SECOND_US) * SECOND_US + SECOND_US;
      s.firstGridUs = s.nextGridUs;
      s.nextSampleUs = Math.floor(t / SAMPLE_US) * SAMPLE_US + SAMPLE_US;
    }
    this.flowFrom(s, s.flowBid, s.flowAsk, s.flowBidQty, s.flowAskQty);
    if (!same(s.bid, before.bid) || !same(s.ask, before.ask)) {
      // Every pending sample (all are at or before t, with t inside their horizon) saw a quote change: the
      // label's own definition (quoteChangedWithin), checked rather than assumed.
      for (let i = s.pendingHead; i < s.pending.length; i++) {
        const x = s.pending[i]!;
        s.sampleTimes.push(x);
        s.sampleLabels.push(quoteChangedWithin(x, t, HORIZON_US) ? 1 : 0);
      }
      s.pending.length = 0;
      s.pendingHead = 0;
    }
  }

  /** After one level change inside an event: the order-flow imbalance of that step. */
  private flow(s: ProductState): void {
    this.readBook(s);
    this.flowFrom(s, s.flowBid, s.flowAsk, s.flowBidQty, s.flowAskQty);
  }

  /**
   * Order-flow imbalance at the best (Cont, Kukanov & Stoikov 2014), in base units, from the quote of the
   * previous book update to the current one; remembers the current one.
   */
  private flowFrom(s: ProductState, bid: number, ask: number, bidQty: number, askQty: number): void {
    if (!Number.isNaN(s.bid) && !Number.isNaN(bid)) {
      s.ofiAcc +=
        (s.bid >= bid ? s.bidQty : 0) -
        (s.bid <= bid ? bidQty : 0) -
        (s.ask <= ask ? s.askQty : 0) +
        (s.ask >= ask ? askQty : 0);
    } else if (Number.isNaN(s.bid)) s.ofiValid = false;
    s.flowBid = s.bid;
    s.flowAsk = s.ask;
    s.flowBidQty = s.bidQty;
    s.flowAskQty = s.askQty;
  }

  private readBook(s: ProductState): void {
    if (!s.bookValid || !s.book.isValid()) {
      s.bid = s.ask = Number.NaN;
      s.bidQty = s.askQty = 0;
      return;
    }
    s.bid = s.book.bestBid();
    s.ask = s.book.bestAsk();
    s.bidQty = s.book.sizeAt('bid', 0) / UNITS;
    s.askQty = s.book.sizeAt('ask', 0) / UNITS;
  }

  /** Emits every grid point and sample at or before `t` from the state before the events at `t`. */
  private advance(s: ProductState, t: number): void {
    // Samples whose horizon [x, x + 500 ms) closed before t without a change.
    while (s.pendingHead < s.pending.length && s.pending[s.pendingHead]! + HORIZON_US <= t) {
      s.sampleTimes.push(s.pending[s.pendingHead++]!);
      s.sampleLabels.push(0);
    }
    if (s.pendingHead > 1024) {
      s.pending = s.pending.slice(s.pendingHead);
      s.pendingHead = 0;
    }
    if (Number.isNaN(s.nextGridUs)) return;
    const quote = !Number.isNaN(s.bid);
    while (s.nextSampleUs <= t) {
      const x = s.nextSampleUs;
      s.nextSampleUs += SAMPLE_US;
      if (!quote) continue;
      if (x + HORIZON_US <= t) {
        s.sampleTimes.push(x);
        s.sampleLabels.push(0);
      } else s.pending.push(x);
    }
    while (s.nextGridUs <= t) {
      s.nextGridUs += SECOND_US;
      s.mids.push(quote ? (s.bid + s.ask) / 2 : Number.NaN);
      s.spreads.push(quote ? s.ask - s.bid : Number.NaN);
      s.ofi.push(s.ofiValid && quote ? s.ofiAcc : Number.NaN);
      s.ofiAcc = 0;
      s.ofiValid = quote;
    }
  }

  /**
   * The report. `untilUs`: the data is known to be complete up to there (a simulation's end), so every
   * product's grid runs to it; without it each product's grid ends at its last event.
   */
  finish(untilUs?: number): StatsReport {
    if (untilUs !== undefined)
      for (const s of this.states.values()) if (untilUs > s.clockUs) this.advance(s, untilUs);
    const products = [...this.states.values()].map((s) => this.report(s));
    const pairs: PairReport[] = [];
    const states = [...this.states.values()];
    for (let i = 0; i < states.length; i++) {
      for (let j = i + 1; j < states.length; j++) pairs.push(pairCorrelation(states[i]!, states[j]!));
    }
    return { products, pairs };
  }

  private report(s: ProductState): ProductReport {
    // Pending samples at the end have an incomplete horizon: dropped.
    const tick = this.options.tick?.(s.product) ?? Number(`1e-${Math.min(s.maxDecimals, 8)}`);
    const tickUnits = Math.round(tick * UNITS);
    const source = s.hasBook ? 'book' : s.hasTicker ? 'ticker' : 'none';
    const figures: Partial<Record<StatKey, number>> = {};
    const missing: Partial<Record<StatKey, string>> = {};
    const mids = s.mids.view();
    const seconds = Math.max(0, mids.length - 1);
    const r = new Float64Array(mids.length).fill(Number.NaN);
    for (let i = 1; i < mids.length; i++) r[i] = Math.log(mids[i]! / mids[i - 1]!) * 1e4;
    const returns = r.filter((x) => !Number.isNaN(x));

    const set = (key: StatKey, value: number) => {
      if (Number.isFinite(value)) figures[key] = value;
      else missing[key] = 'not defined on this data (e.g. no variation)';
    };
    for (const def of STAT_DEFS) {
      if (def.needs === 'book' && !s.hasBook) missing[def.key] = 'needs L2 book data (level2 / level2_batch)';
      else if (def.needs === 'trades' && !s.hasTrades)
        missing[def.key] = 'needs trades (market_trades / matches)';
      else if (source === 'none') missing[def.key] = 'no quote in the recording';
      else if (seconds < def.min)
        missing[def.key] = `recording too short: needs ${formatSpan(def.min)}, has ${formatSpan(seconds)}`;
    }
    const want = (key: StatKey) => !(key in missing);

    // Volatility and its tails.
    const sd = Math.sqrt(mean(returns.map((x) => x * x)) - mean(returns) ** 2);
    if (want('ret1s_sd_bps')) set('ret1s_sd_bps', sd);
    if (want('kurtosis_1s') || want('top1pct_var_share')) {
      const m = mean(returns);
      let m2 = 0;
      let m4 = 0;
      for (const x of returns) {
        const d = (x - m) ** 2;
        m2 += d;
        m4 += d * d;
      }
      m2 /= returns.length;
      m4 /= returns.length;
      if (want('kurtosis_1s')) set('kurtosis_1s', m4 / (m2 * m2));
      if (want('top1pct_var_share')) {
        const sq = sorted(returns.map((x) => x * x)).reverse();
        const k = Math.max(1, Math.floor(sq.length / 100));
        let top = 0;
        let all = 0;
        for (let i = 0; i < sq.length; i++) {
          all += sq[i]!;
          if (i < k) top += sq[i]!;
        }
        set('top1pct_var_share', top / all);
      }
    }
    if (want('mid_changed_share')) set('mid_changed_share', mean(returns.map((x) => (x !== 0 ? 1 : 0))));
    if (want('abs_ret_acf_lag1')) set('abs_ret_acf_lag1', autocorrelation(r.map(Math.abs), 1));

    // Spreads on the grid.
    const spreads = sorted(s.spreads.view().filter((x) => !Number.isNaN(x)));
    if (want('spread_median_ticks')) set('spread_median_ticks', quantileSorted(spreads, 0.5) / tickUnits);
    if (want('spread_p90_ticks')) set('spread_p90_ticks', quantileSorted(spreads, 0.9) / tickUnits);

    // Hours: blocks of 3600 grid points from the first.
    const samples = s.sampleTimes.view();
    const labels = s.sampleLabels.view();
    const hours: HourFigures[] = [];
    for (let h = 0; (h + 1) * 3600 <= seconds; h++) {
      const block = r.subarray(h * 3600 + 1, (h + 1) * 3600 + 1).filter((x) => !Number.isNaN(x));
      const from = s.firstGridUs + h * 3600 * SECOND_US;
      let n = 0;
      let pos = 0;
      for (let i = 0; i < samples.length; i++) {
        if (samples[i]! >= from && samples[i]! < from + 3600 * SECOND_US) {
          n++;
          pos += labels[i]!;
        }
      }
      hours.push({
        fromUs: from,
        ret1sSdBps: Math.sqrt(mean(block.map((x) => x * x)) - mean(block) ** 2),
        midChangedShare: mean(block.map((x) => (x !== 0 ? 1 : 0))),
        quoteChange500ms: n ? pos / n : Number.NaN,
      });
    }
    if (want('hourly_sd_max_over_min')) {
      const sds = hours.map((h) => h.ret1sSdBps);
      set('hourly_sd_max_over_min', Math.max(...sds) / Math.min(...sds));
    }
    if (want('quote_change_500ms')) set('quote_change_500ms', mean(labels));
    if (want('quote_change_500ms_hourly_min'))
      set('quote_change_500ms_hourly_min', Math.min(...hours.map((h) => h.quoteChange500ms)));
    if (want('quote_change_500ms_hourly_max'))
      set('quote_change_500ms_hourly_max', Math.max(...hours.map((h) => h.quoteChange500ms)));

    // Realized vol: 5-min blocks, and the forward 60 s window at every grid point.
    if (want('rv5m_acf_lag12')) {
      const rv: number[] = [];
      for (let b = 0; (b + 1) * 300 <= seconds; b++) {
        let ss = 0;
        let ok = true;
        for (let i = b * 300 + 1; i <= (b + 1) * 300; i++) {
          if (Number.isNaN(r[i]!)) ok = false;
          else ss += r[i]! ** 2;
        }
        rv.push(ok ? Math.sqrt(ss) : Number.NaN);
      }
      set('rv5m_acf_lag12', autocorrelation(rv, 12));
    }
    if (want('fwd_rv_q90_over_q50') || want('fwd_rv_q90_over_q50_30min')) {
      const fwd = forwardRv(r, 60);
      if (want('fwd_rv_q90_over_q50')) set('fwd_rv_q90_over_q50', q90OverQ50(fwd));
      const blocks: number[] = [];
      for (let b = 0; (b + 1) * 1800 + 60 <= seconds; b++) {
        const ratio = q90OverQ50(fwd.subarray(b * 1800, (b + 1) * 1800));
        if (Number.isFinite(ratio)) blocks.push(ratio);
      }
      if (want('fwd_rv_q90_over_q50_30min')) set('fwd_rv_q90_over_q50_30min', median(blocks));
    }

    // Order-flow imbalance against the mid change of the same and of the next second.
    if (want('ofi_r2_same_s')) {
      const ofi = s.ofi.view();
      const dm = new Float64Array(mids.length).fill(Number.NaN);
      for (let i = 1; i < mids.length; i++) dm[i] = (mids[i]! - mids[i - 1]!) / tickUnits;
      set('ofi_r2_same_s', correlation(ofi.subarray(1), dm.subarray(1)).r ** 2);
      set('ofi_r2_next_s', correlation(ofi.subarray(1, -1), dm.subarray(2)).r ** 2);
    }

    // Microstructure rates over the grid's span.
    const span = Math.max(seconds, 1);
    if (want('update_events_per_s')) set('update_events_per_s', s.updateEvents / span);
    if (want('level_changes_per_s')) set('level_changes_per_s', s.levelChanges / span);
    if (want('removal_share')) set('removal_share', s.removals / s.levelChanges);
    if (want('distance_median_ticks')) {
      const d = sorted(s.distances.view());
      set('distance_median_ticks', quantileSorted(d, 0.5) / tickUnits);
      set('distance_p90_ticks', quantileSorted(d, 0.9) / tickUnits);
      set('distance_p99_ticks', quantileSorted(d, 0.99) / tickUnits);
    }
    if (want('trades_per_s')) set('trades_per_s', s.trades / span);
    if (want('trade_size_median')) {
      const z = sorted(s.tradeSizes.view());
      set('trade_size_median', quantileSorted(z, 0.5));
      set('trade_size_p90', quantileSorted(z, 0.9));
      set('trade_size_p99', quantileSorted(z, 0.99));
    }
    if (want('trade_sign_acf_lag1')) set('trade_sign_acf_lag1', autocorrelation(s.tradeSigns.view(), 1));
    const firstMid = mids.find((m) => !Number.isNaN(m));
    return {
      product: s.product,
      source,
      seconds,
      tick,
      firstMid: firstMid === undefined ? Number.NaN : firstMid / UNITS,
      figures,
      missing,
      hours,
    };
  }

  /** Absolute 1 min mids (NaN where unknown), keyed by minute index since the epoch. */
  static minuteMids(s: ProductState): Map<number, number> {
    const out = new Map<number, number>();
    const mids = s.mids.view();
    for (let i = 0; i < mids.length; i++) {
      const gridUs = s.firstGridUs + i * SECOND_US;
      if (gridUs % (60 * SECOND_US) === 0) out.set(gridUs / (60 * SECOND_US), mids[i]!);
    }
    return out;
  }
}

function pairCorrelation(a: ProductState, b: ProductState): PairReport {
  const ma = MarketStats.minuteMids(a);
  const mb = MarketStats.minuteMids(b);
  const ra: number[] = [];
  const rb: number[] = [];
  for (const [minute, mid] of ma) {
    const prevA = ma.get(minute - 1);
    const midB = mb.get(minute);
    const prevB = mb.get(minute - 1);
    if (prevA === undefined || midB === undefined || prevB === undefined) continue;
    ra.push(Math.log(mid / prevA));
    rb.push(Math.log(midB / prevB));
  }
  const { r, n } = correlation(ra, rb);
  if (n * 60 < CORR_MIN_S)
    return {
      a: a.product,
      b: b.product,
      minutes: n,
      note: `recording too short: needs ${formatSpan(CORR_MIN_S)} in common, has ${n} min`,
    };
  return Number.isFinite(r)
    ? { a: a.product, b: b.product, corr1m: r, minutes: n }
    : { a: a.product, b: b.product, minutes: n, note: 'not defined (a mid that never moved)' };
}

function forwardRv(r: Float64Array, window: number): Float64Array {
  // fwd[i] = sqrt(sum of r[i+1..i+window]^2), NaN when any is unknown or past the end.
  const n = r.length;
  const out = new Float64Array(Math.max(0, n - window)).fill(Number.NaN);
  let ss = 0;
  let bad = 0;
  for (let j = 1; j <= Math.min(window, n - 1); j++) {
    if (Number.isNaN(r[j]!)) bad++;
    else ss += r[j]! ** 2;
  }
  for (let i = 0; i + window < n; i++) {
    if (i > 0) {
      const out1 = r[i]!;
      const in1 = r[i + window]!;
      if (Number.isNaN(out1)) bad--;
      else ss -= out1 * out1;
      if (Number.isNaN(in1)) bad++;
      else ss += in1 * in1;
    }
    out[i] = bad === 0 ? Math.sqrt(Math.max(ss, 0)) : Number.NaN;
  }
  return out;
}

function q90OverQ50(x: Float64Array): number {
  const s = sorted(x.filter((v) => !Number.isNaN(v)));
  if (s.length < 100) return Number.NaN;
  const q50 = quantileSorted(s, 0.5);
  return q50 > 0 ? quantileSorted(s, 0.9) / q50 : Number.NaN;
}

function median(x: number[]): number {
  return quantileSorted(sorted(x), 0.5);
}

export function formatSpan(seconds: number): string {
  if (seconds >= 3600) return `${+(seconds / 3600).toFixed(1)} h`;
  if (seconds >= 60) return `${+(seconds / 60).toFixed(1)} min`;
  return `${Math.round(seconds)} s`;
}
