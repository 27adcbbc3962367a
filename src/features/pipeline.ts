/**
 * The event-time feature pipeline: normalized MarketEvents in (snapshot_refs already resolved to
 * book_snapshot events by the caller), FeatureRows and LabelRows out. Per product it keeps the book (or the
 * ticker's quote for a product without L2 data), trailing windows, per-second aggregates (seconds.ts) and a
 * watermark = newest exchange time seen. Every tick boundary t (a multiple of tickMs) and every second
 * boundary the watermark reaches is computed from the state as of all events with exchUs < t: before an event
 * at time e is applied, every boundary <= e is done. No wall clock anywhere, so a replay reproduces the live
 * rows.
 *
 * Late data: an event below its product's watermark is still applied (the book needs every update in stream
 * order) but counts as if it happened at the watermark; ticks, seconds and labels already emitted never change.
 * Idle products: each product's clock moves only with its own events, so a silent product emits nothing until
 * its next event, which then emits the missed ticks. A tick more than the gap limit after the product's last
 * event is flagged (data_gap_now = 1) and labels nothing; second boundaries in such a gap have no known quote,
 * so windows and forward-volatility labels break there instead of bridging it.
 */
import { BookError, type OrderBook } from '../book/book.js';
import { QuoteWatchError } from '../errors.js';
import { fromUnits, toUnits } from '../marketdata/decimal.js';
import { type MarketEvent, tellsExchangeNow } from '../marketdata/events.js';
import { ProductState } from './productState.js';
import { SECOND_RING } from './seconds.js';
import { DEFAULT_GAP_LIMIT_MS, FEATURES, WINDOW_US } from './spec.js';
import type { FeatureRow, LabelRow, TickLineage } from './types.js';

export class FeatureInputError extends QuoteWatchError {}

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
  /** No event of a product for longer than this is a data gap (default DEFAULT_GAP_LIMIT_MS, config GAP_LIMIT_MS). */
  gapLimitMs?: number;
  /**
   * Stamp each row with its TickLineage (the worker: predictions carry it); `verification` gives the product's
   * book check as it stood at the tick's time (a verdict reached later is not in force for it, though the tick is
   * emitted after it). Off by default (training does not need it).
   */
  lineage?: { verification?: (product: string, tsUs: number) => TickLineage['verification'] };
}

/** How far back a row's lineage keeps resyncs: the longest feature lookback (spec.ts lookbackS) and then some. */
export const MAX_LOOKBACK_S = 310;

export interface PipelineStats {
  events: number;
  rows: number;
  labels: number;
  /** Ticks without a row because the quote was empty, one-sided, crossed or awaiting a snapshot. */
  invalidTicks: number;
  skippedTicks: number;
  /** book_changes that arrived before any snapshot (nothing to apply them to). */
  changesBeforeSnapshot: number;
  /** Labels of all targets that could not be decided (invalid quote or a data gap); sum of the next two. */
  droppedLabels: number;
  droppedQuoteChangeLabels: number;
  droppedVolSpikeLabels: number;
  /** Rows emitted while the product's last event was older than the gap limit (data_gap_now = 1). */
  gapTicks: number;
  /** Events whose exchUs was below the product's watermark (applied to the next tick, see the header). */
  lateEvents: number;
}

export class FeaturePipeline {
  readonly tickUs: number;
  readonly gapLimitUs: number;
  private readonly deltaMs: number;
  private readonly topLevels: number;
  private readonly maxCatchUpTicks: number;
  private readonly ringSize: number;
  private readonly products = new Map<string, ProductState>();
  private rows: FeatureRow[] = [];
  private labels: LabelRow[] = [];
  private readonly counters = {
    events: 0,
    rows: 0,
    labels: 0,
    invalidTicks: 0,
    skippedTicks: 0,
    changesBeforeSnapshot: 0,
    gapTicks: 0,
    lateEvents: 0,
  };

  constructor(private readonly opts: PipelineOptions) {
    if (!Number.isInteger(opts.tickMs) || opts.tickMs <= 0) throw new RangeError(`bad tickMs ${opts.tickMs}`);
    const gapLimitMs = opts.gapLimitMs ?? DEFAULT_GAP_LIMIT_MS;
    if (!(gapLimitMs > 0)) throw new RangeError(`bad gapLimitMs ${gapLimitMs}`);
    this.tickUs = opts.tickMs * 1000;
    this.gapLimitUs = gapLimitMs * 1000;
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
      s = new ProductState(event.product, this.deltaMs, this.ringSize, this.gapLimitUs);
      this.products.set(event.product, s);
    }
    this.counters.events++;
    if (event.type === 'resync') {
      // A resync marks a point of the stream, not a market time: it empties the book (rows wait for the next
      // snapshot) but must not drive the product's clock — its time is only the ingestor's last sighting, and a
      // replay or a lagging feed would otherwise push every later event into the past.
      // Only a resync that broke a book in use is one in its lineage (a connection's first resync comes before
      // any book; several lines' resyncs of a book already being rebuilt are one break). Its time is the stream's
      // position (the watermark), for the reason above.
      if (this.opts.lineage && s.ready)
        s.resyncsUs = [...s.resyncsUs, Number.isFinite(s.watermarkUs) ? s.watermarkUs : e];
      s.ready = false;
      s.book.clear();
      s.tickerBid = Number.NaN;
      s.tickerAsk = Number.NaN;
      return;
    }
    if (Number.isNaN(s.nextTickUs)) {
      // On the second grid, as the windows are: what another connection's first event shifts by a few
      // milliseconds (the features do not move) must not move the lineage either.
      s.firstUs = Math.floor(e / 1e6) * 1e6;
      s.nextTickUs = Math.floor(e / this.tickUs) * this.tickUs + this.tickUs;
      s.seconds.start(Math.floor(e / 1e6));
    }
    // A ticker of a product with a book carries its frame's time, which is one connection's: another connection
    // frames it, and so places it among the book's events, differently. It does not move the clock (exchange-timed
    // events and watermarks do) and is applied at the clock. A ticker-only product's tickers are its data: they do.
    if (event.type === 'ticker' && s.hasL2) {
      this.apply(s, event, Number.isFinite(s.watermarkUs) ? s.watermarkUs : e);
      return;
    }
    // A snapshot's time is its book's (a periodic one is the ingestor's copy as of its last change): not an arrival.
    if (e < s.watermarkUs && event.type !== 'book_snapshot') this.counters.lateEvents++;
    this.advance(s, e);
    this.apply(s, event);
  }

  /**
   * A watermark (src/stream/record.ts WatermarkEvent): closes the product's ticks and seconds up to `exchUs` as an
   * event of that time would, without one. It changes when ticks are emitted, never what they hold: no book, window
   * or data-gap clock moves (a quiet product is not a live one). An event older than it is late, as after any event.
   */
  watermark(product: string, exchUs: number): void {
    if (!Number.isSafeInteger(exchUs) || exchUs < 0) {
      throw new FeatureInputError(`watermark of ${product} has bad exchUs ${String(exchUs)}`);
    }
    const s = this.products.get(product);
    // Before the product's first event there is no tick grid to close.
    if (!s || Number.isNaN(s.nextTickUs) || !(exchUs > s.watermarkUs)) return;
    this.advance(s, exchUs);
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

  /**
   * The product's L2 book: 'synced' once a snapshot is applied, 'resyncing' from a resync (or an update that could
   * not be applied) until the next snapshot; undefined for a product without L2 data (its quote is the ticker's).
   */
  bookState(product: string): 'synced' | 'resyncing' | undefined {
    const s = this.products.get(product);
    if (!s?.hasL2) return undefined;
    return s.ready ? 'synced' : 'resyncing';
  }

  watermarkUs(product: string): number | undefined {
    const w = this.products.get(product)?.watermarkUs;
    return w === undefined || w === Number.NEGATIVE_INFINITY ? undefined : w;
  }

  stats(): PipelineStats {
    let quote = 0;
    let vol = 0;
    for (const s of this.products.values()) {
      quote += s.labeler.dropped;
      vol += s.volLabeler.dropped;
    }
    return {
      ...this.counters,
      droppedLabels: quote + vol,
      droppedQuoteChangeLabels: quote,
      droppedVolSpikeLabels: vol,
    };
  }

  /** Emits every tick and closes every second with boundary <= e, in time order, then resolves labels. */
  private advance(s: ProductState, e: number): void {
    if (s.nextTickUs <= e) {
      const n = Math.floor((e - s.nextTickUs) / this.tickUs) + 1;
      if (n > this.maxCatchUpTicks) {
        const skip = n - this.maxCatchUpTicks;
        this.counters.skippedTicks += skip;
        s.nextTickUs += skip * this.tickUs;
      }
    }
    const sec = s.seconds;
    // A jump longer than the second ring leaves nothing of the old seconds to keep.
    const lastBoundary = Math.floor(e / 1e6);
    if (lastBoundary - sec.next > SECOND_RING) sec.skip(lastBoundary - SECOND_RING - sec.next);
    for (;;) {
      const secondUs = (sec.next + 1) * 1e6;
      const t = s.nextTickUs;
      if (secondUs <= e && secondUs <= t) this.closeSecond(s, secondUs);
      else if (t <= e) {
        this.emitTick(s, t);
        s.nextTickUs += this.tickUs;
      } else break;
    }
    const before = this.labels.length;
    // The quote is unknown past the gap limit after the last event: such horizons are dropped, not guessed.
    const knownUntil = s.lastEventUs + this.gapLimitUs;
    s.labeler.resolve(e, s.valid(), this.labels, knownUntil);
    this.counters.labels += this.labels.length - before;
    if (e > s.watermarkUs) s.watermarkUs = e;
  }

  /** True when the product's last event is more than the gap limit before t. */
  private stale(s: ProductState, t: number): boolean {
    return t - s.lastEventUs > this.gapLimitUs;
  }

  private closeSecond(s: ProductState, boundaryUs: number): void {
    if (s.valid() && !this.stale(s, boundaryUs)) {
      const bid = s.bid();
      const ask = s.ask();
      const mid = (bid + ask) / 2;
      const qb = s.bidSize();
      const qa = s.askSize();
      s.seconds.close(mid / 1e8, (ask - bid) / mid, qb + qa > 0 ? (qb - qa) / (qb + qa) : 0);
    } else {
      s.seconds.close(Number.NaN, Number.NaN, Number.NaN);
    }
    const before = this.labels.length;
    s.volLabeler.resolve(s.seconds.next, s.seconds, this.labels);
    this.counters.labels += this.labels.length - before;
  }

  private emitTick(s: ProductState, t: number): void {
    s.trades1s.expire(t);
    s.trades5s.expire(t);
    s.quoteChanges1s.expire(t);
    s.quoteChanges5s.expire(t);
    s.bookUpdates.expire(t);
    s.bookUpdates5s.expire(t);

    const valid = s.valid();
    const bidU = s.bid();
    const askU = s.ask();
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
    c.fromTicker = !s.hasL2;
    c.bid = bidU / 1e8;
    c.ask = askU / 1e8;
    c.mid = mid;
    c.bidSize = s.bidSize();
    c.askSize = s.askSize();
    c.midOneSecondAgo = midAgo;
    c.lastQuoteChangeUs = s.lastQuoteChangeUs;
    c.quoteChanges1s = s.quoteChanges1s.count;
    c.quoteChanges5s = s.quoteChanges5s.count;
    c.bookUpdates1s = s.bookUpdates.pos;
    c.bookUpdates5s = s.bookUpdates5s.pos;
    c.tradeCount1s = s.trades1s.count;
    c.buyUnits1s = s.trades1s.pos;
    c.sellUnits1s = s.trades1s.neg;
    c.tradeCount5s = s.trades5s.count;
    c.buyUnits5s = s.trades5s.pos;
    c.sellUnits5s = s.trades5s.neg;
    c.lastTradeUs = s.lastTradeUs;
    c.lastEventUs = s.lastEventUs;
    c.windows = s.seconds.aggregates();

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
    if (this.opts.lineage) {
      // Replaced, never changed in place: every row of the stretch shares one list (no copy per tick).
      const fromUs = t - MAX_LOOKBACK_S * 1e6;
      if ((s.resyncsUs[0] ?? Number.POSITIVE_INFINITY) < fromUs)
        s.resyncsUs = s.resyncsUs.filter((us) => us >= fromUs);
      const verification = this.opts.lineage.verification?.(s.product, t);
      row.lineage = {
        startUs: s.firstUs,
        resyncsUs: s.resyncsUs,
        feedLatencyUs: Number.isNaN(s.feedLatencyUs) ? null : s.feedLatencyUs,
        ...(verification ? { verification } : {}),
      };
    }
    if (this.topLevels > 0) {
      row.top = s.hasL2
        ? { bids: s.book.top('bid', this.topLevels), asks: s.book.top('ask', this.topLevels) }
        : { bids: [[row.bestBid, fromUnits(c.bidSize)]], asks: [[row.bestAsk, fromUnits(c.askSize)]] };
    }
    this.rows.push(row);
    this.counters.rows++;
    if (this.stale(s, t)) {
      // The state is older than the gap limit: the row is flagged (data_gap_now) but no label is made
      // from it, so no label spans a gap.
      this.counters.gapTicks++;
      s.labeler.dropped++;
      s.volLabeler.dropped++;
      return;
    }
    s.labeler.addTick(t, s.lastSeq);
    s.volLabeler.addTick(t, s.lastSeq);
  }

  private apply(s: ProductState, ev: MarketEvent, atUs?: number): void {
    const e = ev.exchUs;
    // Late data (below the watermark) is applied in stream order but counted at the watermark: emitted ticks
    // and closed seconds never change, and the trailing windows stay in time order.
    const at = atUs ?? Math.max(e, s.watermarkUs);
    // The data-gap clock is the newest exchange time of an event that moves the clock (not a watermark's, not a
    // ticker's applied at the clock): whether a product was live must not depend on when watermarks came.
    if (atUs === undefined) s.lastEventUs = Number.isNaN(s.lastEventUs) ? e : Math.max(s.lastEventUs, e);
    // Latency from the events whose time is the exchange's now (a ticker or trade may repeat an old one after a
    // connect); a product without level2 has only its tickers to tell it.
    if (tellsExchangeNow(ev) || (ev.type === 'ticker' && !s.hasL2)) s.feedLatencyUs = ev.recvUs - e;
    try {
      switch (ev.type) {
        case 'book_snapshot':
          s.ready = false;
          s.hasL2 = true;
          s.book.applySnapshot(ev.bids, ev.asks);
          s.ready = true;
          this.afterQuoteChange(s, at);
          break;
        case 'book_changes':
          if (!s.ready) {
            this.counters.changesBeforeSnapshot++;
            break;
          }
          for (const ch of ev.changes) s.book.applyChange(ch.side, ch.price, ch.size);
          s.bookUpdates.push(at, ev.changes.length);
          s.bookUpdates5s.push(at, ev.changes.length);
          s.seconds.addBookUpdates(ev.changes.length);
          this.afterQuoteChange(s, at);
          break;
        case 'trade':
          s.hasTrades = true;
          this.addTrade(s, at, ev.aggressor === 'buy' ? toUnits(ev.size) : -toUnits(ev.size));
          break;
        case 'ticker':
          if (!s.hasTrades) this.tickerFlow(s, at, ev);
          // The book is the source of truth when there is one; otherwise the ticker's quote is.
          if (!s.hasL2) {
            s.tickerBid = toUnits(ev.bestBid);
            s.tickerAsk = toUnits(ev.bestAsk);
            s.tickerBidSize = ev.bestBidSize === undefined ? Number.NaN : toUnits(ev.bestBidSize);
            s.tickerAskSize = ev.bestAskSize === undefined ? Number.NaN : toUnits(ev.bestAskSize);
            this.afterQuoteChange(s, at);
          }
          break;
        case 'heartbeat':
          break; // only moves the clock
      }
    } catch (cause) {
      if (cause instanceof BookError) {
        // A half-applied update leaves the book unknown: wait for the next snapshot.
        s.ready = false;
        s.book.clear();
      } else if (ev.type === 'ticker') {
        s.tickerBid = Number.NaN;
        s.tickerAsk = Number.NaN;
      }
      throw new FeatureInputError(`cannot apply ${ev.type} event of ${ev.product} (seq ${ev.seq})`, {
        cause,
      });
    }
    // The row's position is the newest exchange time applied, not the feed's sequence number: that one belongs to
    // one connection, and the same events from another (a standby ingestor, a reconnect) must give the same rows.
    // Only what the exchange timed counts: book events and trades (tickers only as a ticker-only product's quote;
    // their place among the book frames, like heartbeats', differs from connection to connection).
    const timed = ev.type !== 'heartbeat' && (ev.type !== 'ticker' || !s.hasL2);
    if (timed && e > s.lastSeq) s.lastSeq = e;
  }

  /** One trade of `signedUnits` (taker buy > 0, taker sell < 0) at `at`. */
  private addTrade(s: ProductState, at: number, signedUnits: number): void {
    s.trades1s.push(at, signedUnits);
    s.trades5s.push(at, signedUnits);
    s.seconds.addTrade(Math.abs(signedUnits));
    s.lastTradeUs = at;
  }

  /**
   * A ticker-only feed has no trades: the growth of the ticker's 24 h volume since the previous ticker is the
   * volume traded in between, one trade, a taker buy when its last price is above the quote's mid before it
   * (at or below: a sell). The rolling 24 h window can also shrink: then nothing traded that we can tell.
   */
  private tickerFlow(s: ProductState, at: number, ev: Extract<MarketEvent, { type: 'ticker' }>): void {
    if (ev.volume24h === undefined) return;
    const volume = toUnits(ev.volume24h);
    const traded = volume - s.tickerVolume; // NaN for the first ticker
    s.tickerVolume = volume;
    if (!(traded > 0)) return;
    const mid = (s.bid() + s.ask()) / 2;
    const price = toUnits(ev.price);
    this.addTrade(s, at, price > mid ? traded : -traded);
  }

  /** Records a best bid/ask price change; the first valid quote after start is not a change. */
  private afterQuoteChange(s: ProductState, at: number): void {
    if (!s.valid()) return;
    const bid = s.bid();
    const ask = s.ask();
    if (bid === s.lastBid && ask === s.lastAsk) return;
    if (!Number.isNaN(s.lastBid)) {
      s.lastQuoteChangeUs = at;
      s.labeler.markChange(at);
      s.quoteChanges1s.push(at, 0);
      s.quoteChanges5s.push(at, 0);
      s.seconds.addQuoteChange();
    }
    s.lastBid = bid;
    s.lastAsk = ask;
  }
}
