/**
 * One client connection's view of the simulated exchange: its own SimExchange (same seed => same market
 * for every connection), its subscriptions, its ONE sequence counter across all channels and products,
 * and the frames due as simulated time advances. It produces text frames; the server decides when to send.
 */
import type { BookLevel, BookSide } from './book.js';
import { SimExchange } from './exchange.js';
import type { Market, MarketBatch, ProductSpec } from './market.js';
import {
  type Channel,
  ClientMessageError,
  errorFrame,
  FRAME_CHANNEL,
  formatPrice,
  formatQty,
  goTimeString,
  l2SnapshotEvent,
  l2UpdateEvent,
  parseClientMessage,
  rfc3339Nano,
  type TickerStats,
  tickerJson,
  tradeJson,
} from './protocol.js';
import { Rng } from './rng.js';

const TRADE_BATCH_US = 250_000;
const HEARTBEAT_US = 1_000_000;

export interface OutFrame {
  /** The exact text to send. */
  text: string;
  /** Its sequence_num, or null for frames outside the sequence (errors). */
  seq: number | null;
}

/** One level change a level2 update frame left out (the lost-update fault), as the exchange made it. */
export interface LostUpdate {
  product: string;
  side: BookSide;
  price: string;
  size: string;
  /** The change's exchange time (its batch's, the event_time of the frame that left it out). */
  timeUs: number;
}

/** The simulator's top of book right after a l2_data frame was produced. */
export interface TopOfBook {
  seq: number;
  timeUs: number;
  bestBid: string;
  bestAsk: string;
  bestBidQuantity: string;
  bestAskQuantity: string;
}

export class Session {
  readonly exchange: SimExchange;
  private readonly subs = new Map<Channel, Set<string>>();
  private seq = 0;
  private nowUs: number;
  private nextTradeFlushUs: number;
  private nextHeartbeatUs: number;
  private readonly heartbeatBase: number;
  private readonly startUs: number;
  private readonly pendingTrades = new Map<string, ReturnType<typeof tradeJson>[]>();
  private readonly stats = new Map<string, TickerStats>();
  private readonly lastTop = new Map<string, string>();
  /** Per product, the top of book after every recent l2_data frame, in sequence order (see keepTops). */
  readonly tops = new Map<string, TopOfBook[]>();
  private readonly keepTops: number;
  /** Market batches produced since the anchor (every session of a seed counts the same ones). */
  batches = 0;
  /** Every level change a frame left out (loseUpdate, loseUpdatesEvery), oldest first. */
  readonly lostUpdates: LostUpdate[] = [];
  /** Per product, level2 update frames still due to leave one change out. */
  private readonly toLose = new Map<string, number>();
  /** Which change a frame leaves out, and when the scheduled losses fall: streams of their own, never the market's. */
  private readonly lossPick: Rng;
  private readonly lossSchedule: Rng;
  private lossEveryUs = 0;
  private lossWindow = 0;
  private nextLossUs = Number.POSITIVE_INFINITY;

  /**
   * `keepTops`: how many of the latest tops per product topOfBookAt can answer for (tests compare what a
   * client built with them); older ones are dropped so a long run does not grow without bound. 0: none.
   */
  constructor(products: readonly ProductSpec[], seed: number, startUs: number, keepTops = 100_000) {
    this.keepTops = keepTops;
    this.startUs = startUs;
    this.lossPick = Rng.derive(seed, 'lost-update:pick');
    this.lossSchedule = Rng.derive(seed, 'lost-update:schedule');
    this.nowUs = startUs;
    this.exchange = new SimExchange(products, seed, startUs);
    const rng = Rng.derive(seed, 'session');
    this.heartbeatBase = 10_000 + rng.int(90_000);
    this.nextTradeFlushUs = startUs + TRADE_BATCH_US;
    this.nextHeartbeatUs = startUs + HEARTBEAT_US;
    for (const m of this.exchange.markets) {
      const last = m.lastTradeTicks;
      const drift = (r: number) => Math.round(last * (1 + r));
      this.stats.set(m.productId, {
        lastTicks: last,
        // A plausible 24 h volume: 1-20 million USD worth of base units.
        volumeUnits: Math.round(((1e6 + rng.int(19e6)) / (last / 100)) * 1e8),
        low24Ticks: drift(-0.01 - 0.01 * rng.uniform()),
        high24Ticks: drift(0.01 + 0.01 * rng.uniform()),
        low52wTicks: drift(-0.2 - 0.2 * rng.uniform()),
        high52wTicks: drift(0.5 + 0.5 * rng.uniform()),
        open24Ticks: drift(0.004 * (rng.uniform() - 0.5)),
      });
      this.pendingTrades.set(m.productId, []);
      this.tops.set(m.productId, []);
    }
  }

  get timeUs(): number {
    return this.nowUs;
  }

  get subscribed(): boolean {
    for (const products of this.subs.values()) if (products.size > 0) return true;
    return false;
  }

  /** Takes the next sequence number for a frame made elsewhere (a hostile frame in sequence). */
  reserveSeq(): number {
    return this.seq++;
  }

  /** The next sequence number jumps by `n` (fault injection: the client should see a gap). */
  skipSequence(n: number): void {
    this.seq += n;
  }

  /**
   * Fault injection, the lost update: the next level2 update frame of `productId` (one carrying at least two
   * changes, so no frame goes out empty) leaves one change out, picked by a seeded stream. The frame keeps its
   * sequence number: a client's book is silently wrong at that level until that price changes again.
   */
  loseUpdate(productId: string): void {
    this.toLose.set(productId, (this.toLose.get(productId) ?? 0) + 1);
  }

  /**
   * Scheduled lost updates (long runs): in every `everyUs` of simulated time from the start, one seeded moment and
   * one seeded product (the same for every session of a seed); the product's next update frame from that moment
   * loses a change, when this client has level2 of that product then (a moment it has not is skipped).
   */
  loseUpdatesEvery(everyUs: number): void {
    this.lossEveryUs = everyUs;
    this.lossWindow = 0;
    this.nextLossUs = this.startUs + Math.floor(this.lossSchedule.uniform() * everyUs);
  }

  /**
   * Fault injection: a level2 snapshot of `productId` in sequence, padded to about `levels` levels (a real
   * BTC-USD snapshot is ~46k levels, ~5 MB). The padding lies beyond the deepest real levels (bids below,
   * asks above), so the top of book stays the simulator's; undefined when the client has no level2 for it.
   */
  oversizedSnapshot(productId: string, levels: number): OutFrame | undefined {
    const m = this.exchange.market(productId);
    if (!m || !this.has('level2', productId)) return undefined;
    const bids = m.levels('bid');
    const asks = m.levels('ask');
    const pad = Math.max(0, levels - bids.length - asks.length);
    const lowest = Math.min(...bids.map((l) => l.priceTicks), m.lastTradeTicks);
    const highest = Math.max(...asks.map((l) => l.priceTicks), m.lastTradeTicks);
    const padBids: BookLevel[] = [];
    for (let i = 1; i <= Math.ceil(pad / 2) && lowest - i > 0; i++)
      padBids.push({ priceTicks: lowest - i, qtyUnits: 1_000_000 });
    const padAsks: BookLevel[] = [];
    for (let i = 1; padBids.length + padAsks.length < pad; i++)
      padAsks.push({ priceTicks: highest + i, qtyUnits: 1_000_000 });
    const event = l2SnapshotEvent(
      productId,
      this.nowUs,
      [...padBids, ...bids],
      [...asks, ...padAsks],
      m.tickUnits,
    );
    const f = this.frame(FRAME_CHANNEL.level2, [event]);
    this.recordTop(m, f.seq!);
    return f;
  }

  /** Handles one client message at the current simulated time; returns the frames it answers with. */
  handleMessage(text: string): OutFrame[] {
    try {
      const msg = parseClientMessage(text);
      const ids =
        msg.channel === 'heartbeats' ? ['heartbeats'] : (msg.product_ids ?? []).map((p) => p.toUpperCase());
      if (msg.channel !== 'heartbeats') {
        if (ids.length === 0) throw new ClientMessageError('failure to subscribe: product_ids required');
        const unknown = ids.filter((p) => !this.exchange.market(p));
        if (unknown.length)
          throw new ClientMessageError(`failure to subscribe: unknown product ${unknown.join(',')}`);
      }
      const set = this.subs.get(msg.channel) ?? new Set<string>();
      this.subs.set(msg.channel, set);
      const out: OutFrame[] = [];
      if (msg.type === 'subscribe') {
        for (const id of ids) {
          if (set.has(id)) continue;
          set.add(id);
          if (msg.channel !== 'heartbeats') out.push(...this.snapshot(msg.channel, id));
        }
      } else {
        for (const id of ids) set.delete(id);
      }
      out.push(this.frame('subscriptions', [{ subscriptions: this.subscriptionMap() }]));
      return out;
    } catch (err) {
      if (err instanceof ClientMessageError)
        return [{ text: JSON.stringify(errorFrame(err.message)), seq: null }];
      throw err;
    }
  }

  /** Advances simulated time to `timeUs`, returning every frame that became due, in time order. */
  advanceTo(timeUs: number, out: OutFrame[] = []): OutFrame[] {
    for (;;) {
      const next = Math.min(this.exchange.peekTimeUs(), this.nextTradeFlushUs, this.nextHeartbeatUs);
      if (next > timeUs) break;
      this.nowUs = next;
      if (next === this.nextTradeFlushUs) {
        this.flushTrades(out);
        this.nextTradeFlushUs += TRADE_BATCH_US;
      } else if (next === this.nextHeartbeatUs) {
        this.heartbeat(out);
        this.nextHeartbeatUs += HEARTBEAT_US;
      } else {
        const batch = this.exchange.step();
        if (batch) this.onBatch(batch, out);
      }
    }
    this.nowUs = Math.max(this.nowUs, timeUs);
    return out;
  }

  /** Time of the next frame-producing (or state-changing) instant. */
  peekTimeUs(): number {
    return Math.min(this.exchange.peekTimeUs(), this.nextTradeFlushUs, this.nextHeartbeatUs);
  }

  /** The top of book the simulator had right after the last l2_data frame with sequence_num <= seq. */
  topOfBookAt(productId: string, seq: number): TopOfBook | undefined {
    return this.lastTopWhere(productId, (t) => t.seq <= seq);
  }

  /** The top of book after the last l2_data frame with exchange time <= timeUs (tops are in time order). */
  topOfBookAtTime(productId: string, timeUs: number): TopOfBook | undefined {
    return this.lastTopWhere(productId, (t) => t.timeUs <= timeUs);
  }

  /** The last of a product's tops (in frame order, so seq and time both ascend) for which `upTo` holds. */
  private lastTopWhere(productId: string, upTo: (t: TopOfBook) => boolean): TopOfBook | undefined {
    const list = this.tops.get(productId);
    if (!list) return undefined;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (upTo(list[mid]!)) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 ? list[lo - 1] : undefined;
  }

  private has(channel: Channel, productId: string): boolean {
    return this.subs.get(channel)?.has(productId) ?? false;
  }

  private frame(channel: string, events: unknown[]): OutFrame {
    const seq = this.seq++;
    const text = JSON.stringify({ channel, timestamp: rfc3339Nano(this.nowUs), sequence_num: seq, events });
    return { text, seq };
  }

  private subscriptionMap(): Record<string, string[]> {
    const map: Record<string, string[]> = {};
    for (const channel of [...this.subs.keys()].sort()) {
      const products = [...this.subs.get(channel)!];
      if (products.length) map[channel] = products;
    }
    return map;
  }

  private snapshot(channel: Channel, productId: string): OutFrame[] {
    const m = this.exchange.market(productId)!;
    switch (channel) {
      case 'level2': {
        const event = l2SnapshotEvent(productId, this.nowUs, m.levels('bid'), m.levels('ask'), m.tickUnits);
        const f = this.frame(FRAME_CHANNEL.level2, [event]);
        this.recordTop(m, f.seq!);
        return [f];
      }
      case 'market_trades': {
        const trades = m.recentTrades(100).map((t) => tradeJson(productId, t, m.tickUnits));
        return [this.frame('market_trades', [{ type: 'snapshot', trades }])];
      }
      case 'ticker':
        return [this.frame('ticker', [{ type: 'snapshot', tickers: [this.ticker(m)] }])];
      default:
        return [];
    }
  }

  private ticker(m: Market) {
    return tickerJson(m.productId, this.stats.get(m.productId)!, m.bestBid(), m.bestAsk(), m.tickUnits);
  }

  private recordTop(m: Market, seq: number): void {
    if (this.keepTops === 0) return;
    const b = m.bestBid();
    const a = m.bestAsk();
    const list = this.tops.get(m.productId)!;
    if (list.length >= 2 * this.keepTops) list.splice(0, list.length - this.keepTops);
    list.push({
      seq,
      timeUs: this.nowUs,
      bestBid: b ? formatPrice(b.priceTicks, m.tickUnits) : '',
      bestAsk: a ? formatPrice(a.priceTicks, m.tickUnits) : '',
      bestBidQuantity: b ? formatQty(b.qtyUnits) : '',
      bestAskQuantity: a ? formatQty(a.qtyUnits) : '',
    });
  }

  private onBatch(batch: MarketBatch, out: OutFrame[]): void {
    this.batches++;
    const id = batch.productId;
    const m = this.exchange.market(id)!;
    const s = this.stats.get(id)!;
    for (const t of batch.trades) {
      s.lastTicks = t.priceTicks;
      s.volumeUnits += t.sizeUnits;
      s.low24Ticks = Math.min(s.low24Ticks, t.priceTicks);
      s.high24Ticks = Math.max(s.high24Ticks, t.priceTicks);
      if (this.has('market_trades', id)) this.pendingTrades.get(id)!.push(tradeJson(id, t, m.tickUnits));
    }
    this.armScheduledLosses(batch.timeUs);
    if (batch.changes.length > 0 && this.has('level2', id)) {
      const lose = batch.changes.length > 1 && (this.toLose.get(id) ?? 0) > 0;
      const left = lose ? this.lossPick.int(batch.changes.length) : -1;
      const changes = lose ? batch.changes.filter((_, i) => i !== left) : batch.changes;
      const f = this.frame(FRAME_CHANNEL.level2, [l2UpdateEvent(id, batch.timeUs, changes, m.tickUnits)]);
      if (lose) {
        this.toLose.set(id, this.toLose.get(id)! - 1);
        const c = batch.changes[left]!;
        this.lostUpdates.push({
          product: id,
          side: c.side,
          price: formatPrice(c.priceTicks, m.tickUnits),
          size: formatQty(c.qtyUnits),
          timeUs: batch.timeUs,
        });
      }
      this.recordTop(m, f.seq!);
      out.push(f);
    }
    const top = topKey(m.bestBid(), m.bestAsk());
    const topChanged = this.lastTop.get(id) !== top;
    this.lastTop.set(id, top);
    if ((topChanged || batch.trades.length > 0) && this.has('ticker', id)) {
      out.push(this.frame('ticker', [{ type: 'update', tickers: [this.ticker(m)] }]));
    }
  }

  /** Arms the scheduled losses whose moment has come (loseUpdatesEvery). */
  private armScheduledLosses(timeUs: number): void {
    while (timeUs >= this.nextLossUs) {
      const markets = this.exchange.markets;
      const product = markets[this.lossSchedule.int(markets.length)]!.productId;
      if (this.has('level2', product)) this.loseUpdate(product);
      this.lossWindow++;
      this.nextLossUs =
        this.startUs +
        this.lossWindow * this.lossEveryUs +
        Math.floor(this.lossSchedule.uniform() * this.lossEveryUs);
    }
  }

  /** market_trades updates go out in batches, newest first like the snapshot. */
  private flushTrades(out: OutFrame[]): void {
    for (const [id, trades] of this.pendingTrades) {
      if (trades.length === 0) continue;
      if (this.has('market_trades', id))
        out.push(this.frame('market_trades', [{ type: 'update', trades: trades.reverse() }]));
      this.pendingTrades.set(id, []);
    }
  }

  private heartbeat(out: OutFrame[]): void {
    if (!this.has('heartbeats', 'heartbeats')) return;
    const elapsed = this.nowUs - this.startUs;
    const counter = this.heartbeatBase + Math.floor(elapsed / HEARTBEAT_US);
    const monotonicUs = this.heartbeatBase * HEARTBEAT_US + elapsed;
    out.push(
      this.frame('heartbeats', [
        { current_time: goTimeString(this.nowUs, monotonicUs), heartbeat_counter: counter },
      ]),
    );
  }
}

function topKey(b: BookLevel | undefined, a: BookLevel | undefined): string {
  return `${b?.priceTicks}:${b?.qtyUnits}/${a?.priceTicks}:${a?.qtyUnits}`;
}
