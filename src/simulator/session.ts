/**
 * One client connection's view of the simulated exchange: its own SimExchange (same seed => same market for every
 * connection), its subscriptions, and the frames due as simulated time advances. It produces text frames; the
 * server decides when to send.
 *
 * MarketSession is the part both protocols share — the market, the ticker statistics, the tops of book a client's
 * book can be checked against, the lost-update fault — and one subclass per protocol serializes it: Session here
 * (Advanced Trade: ONE sequence counter across all channels and products), ExchangeSession in exchangeSession.ts
 * (the legacy Exchange feed). The same seed gives the same market events in both.
 */
import type { BookLevel, BookSide } from './book.js';
import { SimExchange } from './exchange.js';
import type { Market, MarketBatch, ProductSpec, SimLevelChange } from './market.js';
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
  /**
   * Its place in the connection's stream — Advanced Trade: its sequence_num; Exchange: the connection's frame
   * count (that feed numbers no frames) — or null for frames outside it (errors, broken frames).
   */
  seq: number | null;
}

/** One level change a level2 update frame left out (the lost-update fault), as the exchange made it. */
export interface LostUpdate {
  product: string;
  side: BookSide;
  price: string;
  size: string;
  /** The change's exchange time (its market event's). */
  timeUs: number;
}

/** The simulator's top of book right after a level2 frame was produced. */
export interface TopOfBook {
  seq: number;
  timeUs: number;
  bestBid: string;
  bestAsk: string;
  bestBidQuantity: string;
  bestAskQuantity: string;
}

/** The wire protocols the simulator speaks (per connection: server.ts). */
export type SimProtocol = 'advanced' | 'exchange';

export abstract class MarketSession {
  readonly exchange: SimExchange;
  protected nowUs: number;
  protected readonly startUs: number;
  protected readonly seed: number;
  /** Advanced Trade's heartbeat counter starts here (drawn for every session: the statistics' draws follow it). */
  protected readonly heartbeatBase: number;
  protected readonly stats = new Map<string, TickerStats>();
  /** Per product, the top of book after every recent level2 frame, in frame order (see keepTops). */
  readonly tops = new Map<string, TopOfBook[]>();
  private readonly keepTops: number;
  /** Market batches produced since the anchor (every session of a seed counts the same ones). */
  batches = 0;
  /** Every level change a frame left out (loseUpdate, loseUpdatesEvery), oldest first. */
  readonly lostUpdates: LostUpdate[] = [];
  /** Per product, level2 updates still due to leave one change out. */
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
    this.seed = seed;
    this.startUs = startUs;
    this.lossPick = Rng.derive(seed, 'lost-update:pick');
    this.lossSchedule = Rng.derive(seed, 'lost-update:schedule');
    this.nowUs = startUs;
    this.exchange = new SimExchange(products, seed, startUs);
    const rng = Rng.derive(seed, 'session');
    this.heartbeatBase = 10_000 + rng.int(90_000);
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
      this.tops.set(m.productId, []);
    }
  }

  get timeUs(): number {
    return this.nowUs;
  }

  /** The client has subscribed to something. */
  abstract get subscribed(): boolean;

  /** Handles one client text message at the current simulated time; returns the frames it answers with. */
  abstract handleMessage(text: string): OutFrame[];

  /** The connection's sequence jumps `n` ahead (fault injection: the client should see a gap). */
  abstract skipSequence(n: number): void;

  /**
   * Fault injection: a level2 snapshot of `productId` in the stream, padded to about `levels` levels (a real BTC-USD
   * snapshot is ~46k levels, ~5 MB); undefined when the client has no level2 of it.
   */
  abstract oversizedSnapshot(productId: string, levels: number): OutFrame | undefined;

  /** A well-formed, empty level2 update of `productId` in this protocol (the malformed-frame fault cuts it). */
  abstract emptyUpdateText(productId: string): string;

  /** An error frame in this protocol. */
  abstract errorText(message: string): string;

  /** Whether the client has the level2 feed of `productId` (a lost update needs one). */
  protected abstract hasBook(productId: string): boolean;

  /** The next protocol timer (trade flushes, level2 batches, heartbeats) and what it does. */
  protected abstract nextTimerUs(): number;
  protected abstract onTimer(out: OutFrame[]): void;

  /** Serializes one market batch (the statistics are already updated). */
  protected abstract onBatch(batch: MarketBatch, out: OutFrame[]): void;

  /**
   * Fault injection, the lost update: the next level2 update of `productId` (one carrying at least two changes, so
   * no frame goes out empty) leaves one change out, picked by a seeded stream. Nothing else shows: no sequence gap,
   * and a client's book is silently wrong at that level until that price changes again.
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

  /** Advances simulated time to `timeUs`, returning every frame that became due, in time order. */
  advanceTo(timeUs: number, out: OutFrame[] = []): OutFrame[] {
    for (;;) {
      const timer = this.nextTimerUs();
      const next = Math.min(this.exchange.peekTimeUs(), timer);
      if (next > timeUs) break;
      this.nowUs = next;
      // A timer due at the same instant as a market event goes first.
      if (next === timer) this.onTimer(out);
      else {
        const batch = this.exchange.step();
        if (batch) this.applyBatch(batch, out);
      }
    }
    this.nowUs = Math.max(this.nowUs, timeUs);
    return out;
  }

  /** Time of the next frame-producing (or state-changing) instant. */
  peekTimeUs(): number {
    return Math.min(this.exchange.peekTimeUs(), this.nextTimerUs());
  }

  /** The top of book the simulator had right after the last level2 frame with seq <= `seq`. */
  topOfBookAt(productId: string, seq: number): TopOfBook | undefined {
    return this.lastTopWhere(productId, (t) => t.seq <= seq);
  }

  /** The top of book after the last level2 frame with exchange time <= timeUs (tops are in time order). */
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

  /** Notes the market's top of book now, as the client's book holds it after level2 frame `seq`. */
  protected recordTop(m: Market, seq: number): void {
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

  /**
   * The changes of a batch a level2 client gets: all of them, or all but one when a lost update is due for its
   * product (and the batch has two or more). Call once per batch, only when the client has its level2.
   */
  protected deliveredChanges(batch: MarketBatch, m: Market): SimLevelChange[] {
    const id = batch.productId;
    const lose = batch.changes.length > 1 && (this.toLose.get(id) ?? 0) > 0;
    if (!lose) return batch.changes;
    const left = this.lossPick.int(batch.changes.length);
    this.toLose.set(id, this.toLose.get(id)! - 1);
    const c = batch.changes[left]!;
    this.lostUpdates.push({
      product: id,
      side: c.side,
      price: formatPrice(c.priceTicks, m.tickUnits),
      size: formatQty(c.qtyUnits),
      timeUs: batch.timeUs,
    });
    return batch.changes.filter((_, i) => i !== left);
  }

  private applyBatch(batch: MarketBatch, out: OutFrame[]): void {
    this.batches++;
    const s = this.stats.get(batch.productId)!;
    for (const t of batch.trades) {
      s.lastTicks = t.priceTicks;
      s.volumeUnits += t.sizeUnits;
      s.low24Ticks = Math.min(s.low24Ticks, t.priceTicks);
      s.high24Ticks = Math.max(s.high24Ticks, t.priceTicks);
    }
    this.armScheduledLosses(batch.timeUs);
    this.onBatch(batch, out);
  }

  /** Arms the scheduled losses whose moment has come (loseUpdatesEvery). */
  private armScheduledLosses(timeUs: number): void {
    while (timeUs >= this.nextLossUs) {
      const markets = this.exchange.markets;
      const product = markets[this.lossSchedule.int(markets.length)]!.productId;
      if (this.hasBook(product)) this.loseUpdate(product);
      this.lossWindow++;
      this.nextLossUs =
        this.startUs +
        this.lossWindow * this.lossEveryUs +
        Math.floor(this.lossSchedule.uniform() * this.lossEveryUs);
    }
  }

  /**
   * A padded copy of `m`'s book: the padding lies beyond the deepest real levels (bids below, asks above), so the
   * top of book stays the simulator's.
   */
  protected paddedBook(
    m: Market,
    levels: number,
  ): { bids: BookLevel[]; asks: BookLevel[]; padBids: BookLevel[]; padAsks: BookLevel[] } {
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
    return { bids, asks, padBids, padAsks };
  }
}

/** The Advanced Trade serialization: one sequence_num counter across every channel and product of a connection. */
export class Session extends MarketSession {
  private readonly subs = new Map<Channel, Set<string>>();
  private seq = 0;
  private nextTradeFlushUs: number;
  private nextHeartbeatUs: number;
  private readonly pendingTrades = new Map<string, ReturnType<typeof tradeJson>[]>();
  private readonly lastTop = new Map<string, string>();

  constructor(products: readonly ProductSpec[], seed: number, startUs: number, keepTops = 100_000) {
    super(products, seed, startUs, keepTops);
    this.nextTradeFlushUs = startUs + TRADE_BATCH_US;
    this.nextHeartbeatUs = startUs + HEARTBEAT_US;
    for (const m of this.exchange.markets) this.pendingTrades.set(m.productId, []);
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

  oversizedSnapshot(productId: string, levels: number): OutFrame | undefined {
    const m = this.exchange.market(productId);
    if (!m || !this.has('level2', productId)) return undefined;
    const { bids, asks, padBids, padAsks } = this.paddedBook(m, levels);
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

  emptyUpdateText(productId: string): string {
    return JSON.stringify({
      channel: 'l2_data',
      timestamp: rfc3339Nano(this.nowUs),
      sequence_num: 0,
      events: [{ type: 'update', product_id: productId, updates: [] }],
    });
  }

  errorText(message: string): string {
    return JSON.stringify(errorFrame(message));
  }

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
      if (err instanceof ClientMessageError) return [{ text: this.errorText(err.message), seq: null }];
      throw err;
    }
  }

  protected hasBook(productId: string): boolean {
    return this.has('level2', productId);
  }

  protected nextTimerUs(): number {
    return Math.min(this.nextTradeFlushUs, this.nextHeartbeatUs);
  }

  protected onTimer(out: OutFrame[]): void {
    if (this.nowUs === this.nextTradeFlushUs) {
      this.flushTrades(out);
      this.nextTradeFlushUs += TRADE_BATCH_US;
    } else {
      this.heartbeat(out);
      this.nextHeartbeatUs += HEARTBEAT_US;
    }
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

  protected onBatch(batch: MarketBatch, out: OutFrame[]): void {
    const id = batch.productId;
    const m = this.exchange.market(id)!;
    if (this.has('market_trades', id))
      for (const t of batch.trades) this.pendingTrades.get(id)!.push(tradeJson(id, t, m.tickUnits));
    if (batch.changes.length > 0 && this.has('level2', id)) {
      const changes = this.deliveredChanges(batch, m);
      const f = this.frame(FRAME_CHANNEL.level2, [l2UpdateEvent(id, batch.timeUs, changes, m.tickUnits)]);
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
