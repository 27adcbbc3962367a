/**
 * The feature pipeline's state of one product (pipeline.ts): its book or ticker quote, labelers, trailing event
 * windows, per-second series and the tick context the feature definitions read (spec.ts).
 */
import { OrderBook } from '../book/book.js';
import { QuoteChangeLabeler } from '../labels/quoteChange.js';
import { VolSpikeLabeler } from '../labels/volSpike.js';
import { SecondSeries } from './seconds.js';
import { type TickContext, WINDOW_5S_US, WINDOW_US } from './spec.js';

/** Events in [t - window, t) with a count and exact sums of positive and negative values. */
export class TimeWindow {
  private ts: number[] = [];
  private vals: number[] = [];
  private head = 0;
  count = 0;
  pos = 0;
  neg = 0;

  constructor(private readonly lengthUs: number) {}

  push(tsUs: number, value: number): void {
    this.ts.push(tsUs);
    this.vals.push(value);
    this.count++;
    if (value > 0) this.pos += value;
    else this.neg -= value;
  }

  /** Drops entries older than the window before t. Entries arrive in time order, so the oldest are at the head. */
  expire(t: number): void {
    const fromUs = t - this.lengthUs;
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

/** Everything the pipeline keeps of one product between events. */
export class ProductState {
  readonly book: OrderBook;
  readonly labeler: QuoteChangeLabeler;
  readonly volLabeler: VolSpikeLabeler;
  /** A snapshot has been applied since the start or the last resync. */
  ready = false;
  /** The second its first event fell in, µs (lineage: windows reaching before it are filling, not broken). */
  firstUs = Number.NaN;
  /** Event times of the resyncs that reached it, pruned to MAX_LOOKBACK_S behind the newest tick (lineage). */
  resyncsUs: readonly number[] = [];
  /** Receive time less exchange time of its newest event that has an exchange time of its own, µs (lineage). */
  feedLatencyUs = Number.NaN;
  /** The product has had L2 data: the book is the quote source from then on, the ticker is ignored. */
  hasL2 = false;
  /** Last ticker quote in units (NaN = unknown), the quote source of a product without L2 data. */
  tickerBid = Number.NaN;
  tickerAsk = Number.NaN;
  tickerBidSize = Number.NaN;
  tickerAskSize = Number.NaN;
  nextTickUs = Number.NaN;
  watermarkUs = Number.NEGATIVE_INFINITY;
  lastEventUs = Number.NaN;
  lastTradeUs = Number.NaN;
  lastSeq = -1;
  lastBid = Number.NaN;
  lastAsk = Number.NaN;
  lastQuoteChangeUs = Number.NaN;
  /** The product has had trade events: its trade flow comes from them, never from the ticker's volume. */
  hasTrades = false;
  /** The ticker's last 24 h volume (units), NaN until seen: its increase is trade flow without a trades feed. */
  tickerVolume = Number.NaN;
  readonly trades1s = new TimeWindow(WINDOW_US);
  readonly trades5s = new TimeWindow(WINDOW_5S_US);
  readonly quoteChanges1s = new TimeWindow(WINDOW_US);
  readonly quoteChanges5s = new TimeWindow(WINDOW_5S_US);
  readonly bookUpdates = new TimeWindow(WINDOW_US);
  readonly bookUpdates5s = new TimeWindow(WINDOW_5S_US);
  readonly seconds = new SecondSeries();
  /** Mid per tick (NaN when invalid), a ring indexed by tick number, long enough to look 1 s back. */
  readonly midRing: Float64Array;
  readonly midRingTs: Float64Array;
  readonly ctx: TickContext;

  constructor(
    readonly product: string,
    deltaMs: number,
    ringSize: number,
    gapLimitUs: number,
  ) {
    this.book = new OrderBook(product);
    this.labeler = new QuoteChangeLabeler(product, deltaMs);
    this.volLabeler = new VolSpikeLabeler(product);
    this.midRing = new Float64Array(ringSize).fill(Number.NaN);
    this.midRingTs = new Float64Array(ringSize).fill(Number.NaN);
    this.ctx = {
      tsUs: 0,
      book: this.book,
      fromTicker: false,
      bid: 0,
      ask: 0,
      mid: 0,
      bidSize: 0,
      askSize: 0,
      midOneSecondAgo: Number.NaN,
      lastQuoteChangeUs: Number.NaN,
      quoteChanges1s: 0,
      quoteChanges5s: 0,
      bookUpdates1s: 0,
      bookUpdates5s: 0,
      tradeCount1s: 0,
      buyUnits1s: 0,
      sellUnits1s: 0,
      tradeCount5s: 0,
      buyUnits5s: 0,
      sellUnits5s: 0,
      lastTradeUs: Number.NaN,
      lastEventUs: Number.NaN,
      gapLimitUs,
      windows: this.seconds.windows,
    };
  }

  /** Best bid/ask (units) of the quote source; NaN when unknown. */
  bid(): number {
    return this.hasL2 ? this.book.bestBid() : this.tickerBid;
  }

  ask(): number {
    return this.hasL2 ? this.book.bestAsk() : this.tickerAsk;
  }

  /** The quote source holds a two-sided, uncrossed quote. */
  valid(): boolean {
    if (this.hasL2) return this.ready && this.book.isValid();
    return this.tickerBid < this.tickerAsk; // false when either is NaN
  }

  /** Best sizes (units) of the quote source, 0 when unknown. */
  bidSize(): number {
    return (this.hasL2 ? this.book.sizeAt('bid', 0) : this.tickerBidSize) || 0;
  }

  askSize(): number {
    return (this.hasL2 ? this.book.sizeAt('ask', 0) : this.tickerAskSize) || 0;
  }
}
