/**
 * The event-time feature pipeline: normalized MarketEvents in (snapshot_refs already resolved to
 * book_snapshot events by the caller), FeatureRows and LabelRows out. Per product it keeps the book and
 * trailing windows, and a watermark = newest exchange time seen. Every tick boundary t (a multiple of tickMs)
 * the watermark reaches is emitted from the state as of all events with exchUs < t: before an event at time e
 * is applied, every tick t <= e is computed. No wall clock anywhere, so a replay reproduces the live rows.
 */
import { BookError, OrderBook } from '../book/book.js';
import { QuoteChangeLabeler } from '../labels/quoteChange.js';
import { fromUnits, toUnits } from '../marketdata/decimal.js';
import type { MarketEvent } from '../marketdata/events.js';
import { FEATURES, type TickContext, WINDOW_US } from './spec.js';
import type { FeatureRow, LabelRow } from './types.js';

export class FeatureInputError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FeatureInputError';
  }
}

export interface PipelineOptions {
  tickMs: number;
  deltaMs: number;
  /** Levels per side copied into FeatureRow.top (0 = none, e.g. for training). */
  topLevels?: number;
  /**
   * Most ticks emitted for one jump of the watermark; older ones in a longer gap are skipped (counted in
   * stats). Guards memory against a bogus far-future timestamp. Default: one hour of ticks.
   */
  maxCatchUpTicks?: number;
}

export interface PipelineStats {
  events: number;
  rows: number;
  labels: number;
  /** Ticks without a row because the book was empty, one-sided, crossed or awaiting a snapshot. */
  invalidTicks: number;
  skippedTicks: number;
  /** book_changes that arrived before any snapshot (nothing to apply them to). */
  changesBeforeSnapshot: number;
  droppedLabels: number;
}

/** Events in [t - window, t) with a count and exact sums of positive and negative values. */
class TimeWindow {
  private ts: number[] = [];
  private vals: number[] = [];
  private head = 0;
  count = 0;
  pos = 0;
  neg = 0;

  push(tsUs: number, value: number): void {
    this.ts.push(tsUs);
    this.vals.push(value);
    this.count++;
    if (value > 0) this.pos += value;
    else this.neg -= value;
  }

  /** Drops entries older than fromUs. Entries arrive in time order, so the oldest are at the head. */
  expire(fromUs: number): void {
    while (this.head < this.ts.length && this.ts[this.head]! < fromUs) {
      const v = this.vals[this.head]!;
      this.count--;
      if (v > 0) this.pos -= v;
      else this.neg += v;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.ts.length) {
      this.ts = this.ts.slice(this.head);
      this.vals = this.vals.slice(this.head);
      this.head = 0;
    }
  }
}

class ProductState {
  readonly book: OrderBook;
  readonly labeler: QuoteChangeLabeler;
  /** A snapshot has been applied since the start or the last resync. */
  ready = false;
  nextTickUs = Number.NaN;
  watermarkUs = Number.NEGATIVE_INFINITY;
  lastSeq = -1;
  lastBid = Number.NaN;
  lastAsk = Number.NaN;
  lastQuoteChangeUs = Number.NaN;
  readonly trades = new TimeWindow();
  readonly quoteChanges = new TimeWindow();
  readonly bookUpdates = new TimeWindow();
  /** Mid per tick (NaN when invalid), a ring indexed by tick number, long enough to look 1 s back. */
  readonly midRing: Float64Array;
  readonly midRingTs: Float64Array;
  readonly ctx: TickContext;

  constructor(
    readonly product: string,
    deltaMs: number,
    ringSize: number,
  ) {
    this.book = new OrderBook(product);
    this.labeler = new QuoteChangeLabeler(product, deltaMs);
    this.midRing = new Float64Array(ringSize).fill(Number.NaN);
    this.midRingTs = new Float64Array(ringSize).fill(Number.NaN);
    this.ctx = {
      tsUs: 0,
      book: this.book,
      bid: 0,
      ask: 0,
      mid: 0,
      midOneSecondAgo: Number.NaN,
      lastQuoteChangeUs: Number.NaN,
      quoteChanges1s: 0,
      tradeCount1s: 0,
      buyUnits1s: 0,
      sellUnits1s: 0,
      bookUpdates1s: 0,
    };
  }

  valid(): boolean {
    return this.ready && this.book.isValid();
  }
}

export class FeaturePipeline {
  readonly tickUs: number;
  private readonly deltaMs: number;
  private readonly topLevels: number;
  private readonly maxCatchUpTicks: number;
  private readonly ringSize: number;
  private readonly products = new Map<string, ProductState>();
  private rows: FeatureRow[] = [];
  private labels: LabelRow[] = [];
  private readonly counters: PipelineStats = {
    events: 0,
    rows: 0,
    labels: 0,
    invalidTicks: 0,
    skippedTicks: 0,
    changesBeforeSnapshot: 0,
    droppedLabels: 0,
  };

  constructor(opts: PipelineOptions) {
    if (!Number.isInteger(opts.tickMs) || opts.tickMs <= 0) throw new RangeError(`bad tickMs ${opts.tickMs}`);
    this.tickUs = opts.tickMs * 1000;
    this.deltaMs = opts.deltaMs;
    this.topLevels = opts.topLevels ?? 3;
    this.maxCatchUpTicks = opts.maxCatchUpTicks ?? Math.ceil(3_600_000 / opts.tickMs);
    this.ringSize = Math.ceil(WINDOW_US / this.tickUs) + 1;
  }

  /**
   * Feeds one event (events of a product in stream order). Emits the ticks and labels its time completes
   * (collect them with drain()), then applies it. A malformed event throws FeatureInputError after the
   * product's book is reset to wait for the next snapshot; the pipeline stays usable.
   */
  push(event: MarketEvent): void {
    const e = event.exchUs;
    if (!Number.isSafeInteger(e) || e < 0) {
      throw new FeatureInputError(`${event.type} event of ${event.product} has bad exchUs ${String(e)}`);
    }
    let s = this.products.get(event.product);
    // A heartbeat only moves the clock of a product already seen (feed-wide heartbeats have no book).
    if (!s && event.type === 'heartbeat') return;
    if (!s) {
      s = new ProductState(event.product, this.deltaMs, this.ringSize);
      this.products.set(event.product, s);
    }
    this.counters.events++;
    if (Number.isNaN(s.nextTickUs)) s.nextTickUs = Math.floor(e / this.tickUs) * this.tickUs + this.tickUs;
    this.advance(s, e);
    this.apply(s, event);
  }

  /** Rows and labels emitted since the last drain, in emission order. */
  drain(): { rows: FeatureRow[]; labels: LabelRow[] } {
    const out = { rows: this.rows, labels: this.labels };
    this.rows = [];
    this.labels = [];
    return out;
  }

  book(product: string): OrderBook | undefined {
    return this.products.get(product)?.book;
  }

  watermarkUs(product: string): number | undefined {
    const w = this.products.get(product)?.watermarkUs;
    return w === undefined || w === Number.NEGATIVE_INFINITY ? undefined : w;
  }

  stats(): PipelineStats {
    let dropped = 0;
    for (const s of this.products.values()) dropped += s.labeler.dropped;
    return { ...this.counters, droppedLabels: dropped };
  }

  private advance(s: ProductState, e: number): void {
    if (s.nextTickUs <= e) {
      const n = Math.floor((e - s.nextTickUs) / this.tickUs) + 1;
      if (n > this.maxCatchUpTicks) {
        const skip = n - this.maxCatchUpTicks;
        this.counters.skippedTicks += skip;
        s.nextTickUs += skip * this.tickUs;
      }
      for (; s.nextTickUs <= e; s.nextTickUs += this.tickUs) this.emitTick(s, s.nextTickUs);
    }
    const valid = s.valid();
    const before = this.labels.length;
    s.labeler.resolve(e, s.book.bestBid(), s.book.bestAsk(), valid, this.labels);
    this.counters.labels += this.labels.length - before;
    if (e > s.watermarkUs) s.watermarkUs = e;
  }

  private emitTick(s: ProductState, t: number): void {
    s.trades.expire(t - WINDOW_US);
    s.quoteChanges.expire(t - WINDOW_US);
    s.bookUpdates.expire(t - WINDOW_US);

    const valid = s.valid();
    const bidU = s.book.bestBid();
    const askU = s.book.bestAsk();
    const mid = (bidU + askU) / 2 / 1e8;

    const tickNo = t / this.tickUs;
    const agoTs = Math.floor((t - WINDOW_US) / this.tickUs) * this.tickUs;
    const agoIdx = (agoTs / this.tickUs) % this.ringSize;
    const midAgo = s.midRingTs[agoIdx] === agoTs ? s.midRing[agoIdx]! : Number.NaN;
    const idx = tickNo % this.ringSize;
    s.midRing[idx] = valid ? mid : Number.NaN;
    s.midRingTs[idx] = t;

    if (!valid) {
      this.counters.invalidTicks++;
      return;
    }
    const c = s.ctx;
    c.tsUs = t;
    c.bid = bidU / 1e8;
    c.ask = askU / 1e8;
    c.mid = mid;
    c.midOneSecondAgo = midAgo;
    c.lastQuoteChangeUs = s.lastQuoteChangeUs;
    c.quoteChanges1s = s.quoteChanges.count;
    c.tradeCount1s = s.trades.count;
    c.buyUnits1s = s.trades.pos;
    c.sellUnits1s = s.trades.neg;
    c.bookUpdates1s = s.bookUpdates.pos;

    const values = new Float64Array(FEATURES.length);
    for (let i = 0; i < FEATURES.length; i++) values[i] = FEATURES[i]!.compute(c);
    const row: FeatureRow = {
      product: s.product,
      tsUs: t,
      seq: s.lastSeq,
      bestBid: fromUnits(bidU),
      bestAsk: fromUnits(askU),
      mid,
      spread: (askU - bidU) / 1e8,
      values,
    };
    if (this.topLevels > 0) {
      row.top = { bids: s.book.top('bid', this.topLevels), asks: s.book.top('ask', this.topLevels) };
    }
    this.rows.push(row);
    this.counters.rows++;
    s.labeler.addTick(t, bidU, askU, s.lastSeq);
  }

  private apply(s: ProductState, ev: MarketEvent): void {
    const e = ev.exchUs;
    try {
      switch (ev.type) {
        case 'book_snapshot':
          s.ready = false;
          s.book.applySnapshot(ev.bids, ev.asks);
          s.ready = true;
          this.afterBookChange(s, e);
          break;
        case 'book_changes':
          if (!s.ready) {
            this.counters.changesBeforeSnapshot++;
            break;
          }
          for (const ch of ev.changes) s.book.applyChange(ch.side, ch.price, ch.size);
          s.bookUpdates.push(e, ev.changes.length);
          this.afterBookChange(s, e);
          break;
        case 'trade': {
          const units = toUnits(ev.size);
          s.trades.push(e, ev.aggressor === 'buy' ? units : -units);
          break;
        }
        case 'resync':
          s.ready = false;
          s.book.clear();
          break;
        case 'ticker':
        case 'heartbeat':
          break; // the book is the source of truth; these only move the watermark
      }
    } catch (cause) {
      if (cause instanceof BookError) {
        // A half-applied update leaves the book unknown: wait for the next snapshot.
        s.ready = false;
        s.book.clear();
      }
      throw new FeatureInputError(`cannot apply ${ev.type} event of ${ev.product} (seq ${ev.seq})`, {
        cause,
      });
    }
    if (ev.seq >= 0) s.lastSeq = ev.seq;
  }

  /** Records a best bid/ask price change; the first valid quote after start is not a change. */
  private afterBookChange(s: ProductState, e: number): void {
    if (!s.valid()) return;
    const bid = s.book.bestBid();
    const ask = s.book.bestAsk();
    if (bid === s.lastBid && ask === s.lastAsk) return;
    if (!Number.isNaN(s.lastBid)) {
      s.lastQuoteChangeUs = e;
      s.quoteChanges.push(e, 0);
    }
    s.lastBid = bid;
    s.lastAsk = ask;
  }
}
