/**
 * One connection to the simulator's legacy Exchange feed (server.ts, path SIMULATOR_EXCHANGE_PATH): the same market
 * as every Advanced Trade connection of the seed (MarketSession), serialized as wss://ws-feed.exchange.coinbase.com
 * does (exchangeProtocol.ts):
 * - `level2_batch`: a `snapshot` on subscribing, then one `l2update` per product every 50 ms carrying the changes of
 *   that batch in order, its `time` the batch's end (when it is published: every frame's time is then at or before
 *   its send time, and a match sent before an l2update never has a later time than it);
 * - `matches`: a `last_match` on subscribing, then one `match` per trade at its time;
 * - `ticker`: the last trade's ticker on subscribing, then one per market event with trades (its last trade);
 * - `heartbeat`: per product, every second, with the product's sequence and last trade id.
 * `sequence` is the exchange's per-product counter (Market.sequence): match, ticker and heartbeat of a product carry
 * the same one, as the REST book does; level2 messages carry none. The sequence fault (skipSequence) adds `n` to
 * every product's sequence this connection sees from then on: the gap shows on the next match, ticker or heartbeat.
 * Frames are not numbered on this feed: OutFrame.seq is the connection's frame count (what the server's losses and
 * log go by).
 */

import {
  type ExchangeSimChannel,
  exchangeErrorFrame,
  exchangeTickerFrame,
  heartbeatFrame,
  l2UpdateFrame,
  matchFrame,
  parseExchangeMessage,
  snapshotFrame,
  subscriptionsFrame,
} from './exchangeProtocol.js';
import type { MarketBatch, ProductSpec, SimLevelChange, SimTrade } from './market.js';
import { ClientMessageError } from './protocol.js';
import { MarketSession, type OutFrame } from './session.js';

/** level2_batch publishes a product's changes every this many µs. */
export const LEVEL2_BATCH_US = 50_000;
const HEARTBEAT_US = 1_000_000;

export class ExchangeSession extends MarketSession {
  /** Per channel, the products subscribed, channels in the order first subscribed (the subscriptions frame's). */
  private readonly subs = new Map<ExchangeSimChannel, Set<string>>();
  private frames = 0;
  /** Sequence numbers skipped on this connection (the sequence fault). */
  private skipped = 0;
  private nextBatchUs: number;
  private nextHeartbeatUs: number;
  /** Per product, the changes of the level2 batch being gathered. */
  private readonly pending = new Map<string, SimLevelChange[]>();
  private readonly volume30d = new Map<string, number>();

  constructor(products: readonly ProductSpec[], seed: number, startUs: number, keepTops = 100_000) {
    super(products, seed, startUs, keepTops);
    this.nextBatchUs = startUs + LEVEL2_BATCH_US;
    this.nextHeartbeatUs = startUs + HEARTBEAT_US;
    for (const m of this.exchange.markets) {
      this.pending.set(m.productId, []);
      // A 30-day volume in line with the 24 h one.
      this.volume30d.set(m.productId, this.stats.get(m.productId)!.volumeUnits * 30);
    }
  }

  get subscribed(): boolean {
    for (const products of this.subs.values()) if (products.size > 0) return true;
    return false;
  }

  skipSequence(n: number): void {
    this.skipped += n;
  }

  oversizedSnapshot(productId: string, levels: number): OutFrame | undefined {
    const m = this.exchange.market(productId);
    if (!m || !this.has('level2_batch', productId)) return undefined;
    const { bids, asks, padBids, padAsks } = this.paddedBook(m, levels);
    const f = this.frame(snapshotFrame(productId, [...bids, ...padBids], [...asks, ...padAsks], m.tickUnits));
    this.recordTop(m, f.seq!);
    return f;
  }

  emptyUpdateText(productId: string): string {
    const m = this.exchange.market(productId);
    return JSON.stringify(l2UpdateFrame(productId, [], this.nowUs, m?.tickUnits ?? 1));
  }

  errorText(message: string, reason?: string): string {
    return JSON.stringify(exchangeErrorFrame(message, reason));
  }

  handleMessage(text: string): OutFrame[] {
    let added: [ExchangeSimChannel, string][];
    try {
      added = this.apply(text);
    } catch (err) {
      if (err instanceof ClientMessageError)
        return [{ text: this.errorText('Failed to subscribe', err.message), seq: null }];
      throw err;
    }
    const out = [this.frame(subscriptionsFrame(this.subscriptionList()))];
    for (const [channel, id] of added) out.push(...this.initial(channel, id));
    return out;
  }

  /** Applies one (un)subscribe to the subscriptions; returns the (channel, product) pairs it added. */
  private apply(text: string): [ExchangeSimChannel, string][] {
    const req = parseExchangeMessage(text);
    const unknown = [
      ...new Set(req.channels.flatMap((c) => c.productIds.filter((p) => !this.exchange.market(p)))),
    ];
    if (unknown.length) throw new ClientMessageError(`${unknown.join(', ')} is not a valid product`);
    const added: [ExchangeSimChannel, string][] = [];
    for (const { name, productIds } of req.channels) {
      const set = this.subs.get(name) ?? new Set<string>();
      this.subs.set(name, set);
      if (req.type === 'subscribe') {
        for (const id of productIds) {
          if (set.has(id)) continue;
          set.add(id);
          added.push([name, id]);
        }
      } else {
        // Without product ids an unsubscribe leaves the channel altogether.
        for (const id of productIds.length ? productIds : [...set]) {
          set.delete(id);
          if (name === 'level2_batch') this.pending.set(id, []);
        }
      }
    }
    return added;
  }

  protected hasBook(productId: string): boolean {
    return this.has('level2_batch', productId);
  }

  protected nextTimerUs(): number {
    return Math.min(this.nextBatchUs, this.nextHeartbeatUs);
  }

  protected onTimer(out: OutFrame[]): void {
    if (this.nowUs === this.nextBatchUs) {
      this.publishBatch(out);
      this.nextBatchUs += LEVEL2_BATCH_US;
    } else {
      this.heartbeats(out);
      this.nextHeartbeatUs += HEARTBEAT_US;
    }
  }

  protected onBatch(batch: MarketBatch, out: OutFrame[]): void {
    const id = batch.productId;
    const m = this.exchange.market(id)!;
    if (batch.changes.length > 0 && this.has('level2_batch', id))
      this.pending.get(id)!.push(...this.deliveredChanges(batch, m));
    for (const t of batch.trades) {
      this.volume30d.set(id, this.volume30d.get(id)! + t.sizeUnits);
      if (this.has('matches', id))
        out.push(this.frame(matchFrame('match', this.seed, id, t, t.sequence + this.skipped, m.tickUnits)));
    }
    const last = batch.trades.at(-1);
    if (last && this.has('ticker', id)) out.push(this.ticker(id, last));
  }

  private has(channel: ExchangeSimChannel, productId: string): boolean {
    return this.subs.get(channel)?.has(productId) ?? false;
  }

  private frame(message: unknown): OutFrame {
    return { text: JSON.stringify(message), seq: this.frames++ };
  }

  private subscriptionList(): { name: string; product_ids: string[] }[] {
    return [...this.subs]
      .filter(([, products]) => products.size > 0)
      .map(([name, products]) => ({ name, product_ids: [...products] }));
  }

  /** What subscribing to `channel` of `productId` sends first. */
  private initial(channel: ExchangeSimChannel, productId: string): OutFrame[] {
    const m = this.exchange.market(productId)!;
    const [last] = m.recentTrades(1);
    switch (channel) {
      case 'level2_batch': {
        this.pending.set(productId, []); // the snapshot is the book now
        const f = this.frame(snapshotFrame(productId, m.levels('bid'), m.levels('ask'), m.tickUnits));
        this.recordTop(m, f.seq!);
        return [f];
      }
      case 'matches':
        return last
          ? [
              this.frame(
                matchFrame(
                  'last_match',
                  this.seed,
                  productId,
                  last,
                  last.sequence + this.skipped,
                  m.tickUnits,
                ),
              ),
            ]
          : [];
      case 'ticker':
        return last ? [this.ticker(productId, last)] : [];
      case 'heartbeat':
        return [];
    }
  }

  private ticker(productId: string, t: SimTrade): OutFrame {
    const m = this.exchange.market(productId)!;
    return this.frame(
      exchangeTickerFrame(
        productId,
        this.stats.get(productId)!,
        this.volume30d.get(productId)!,
        m.bestBid(),
        m.bestAsk(),
        t,
        t.sequence + this.skipped,
        m.tickUnits,
      ),
    );
  }

  /** The level2 batch ends: each product's changes since the last one, in one l2update. */
  private publishBatch(out: OutFrame[]): void {
    for (const m of this.exchange.markets) {
      const changes = this.pending.get(m.productId)!;
      if (changes.length === 0) continue;
      this.pending.set(m.productId, []);
      if (!this.has('level2_batch', m.productId)) continue;
      const f = this.frame(l2UpdateFrame(m.productId, changes, this.nowUs, m.tickUnits));
      this.recordTop(m, f.seq!);
      out.push(f);
    }
  }

  private heartbeats(out: OutFrame[]): void {
    for (const m of this.exchange.markets) {
      if (!this.has('heartbeat', m.productId)) continue;
      const lastTradeId = m.recentTrades(1)[0]?.tradeId ?? 0;
      out.push(this.frame(heartbeatFrame(m.productId, m.sequence + this.skipped, lastTradeId, this.nowUs)));
    }
  }
}
