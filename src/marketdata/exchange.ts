/**
 * Mapper for the legacy Coinbase Exchange feed (`wss://ws-feed.exchange.coinbase.com`, formerly
 * ws-feed.pro.coinbase.com): one raw frame (a JSON string) -> normalized MarketEvents. Pure and synchronous,
 * like the Advanced Trade mapper, and reports problems with the same error classes so the ingestor treats
 * both feeds alike.
 *
 * Protocol facts it relies on (checked against a real capture, see test/marketdata.exchange.test.ts):
 * - frames are `{"type": ...}` objects: `snapshot` {product_id, bids, asks} and `l2update` {product_id,
 *   changes: [[side, price, size]], time} for level2 and level2_batch (same schema), sides "buy" / "sell",
 *   absolute sizes, "0.00000000" removes; some products write prices with trailing zeros;
 * - level2 carries NO sequence number (ticker/match `sequence` is per product and skips level2 messages);
 * - `match` / `last_match` `side` is the MAKER order's side, so the taker (aggressor) is the opposite;
 * - `heartbeat` is per product, once a second, when subscribed to the heartbeat channel.
 */

import { FeedError, MalformedFrameError, type MappedFrame } from './advancedTrade.js';
import type {
  Aggressor,
  BookChangesEvent,
  BookSnapshotEvent,
  HeartbeatEvent,
  Level,
  LevelChange,
  MarketEvent,
  TickerEvent,
  TradeEvent,
} from './events.js';
import { FrameReader, isObject, type Json } from './frameReader.js';

/** Public channels the ingestor subscribes to (level2 itself needs authentication today). */
export const EXCHANGE_CHANNELS = ['level2_batch', 'matches', 'ticker', 'heartbeat'] as const;
export type ExchangeChannel = (typeof EXCHANGE_CHANNELS)[number];

const PREVIEW_CHARS = 200;

/** A frame that does not follow the Exchange protocol (same class as the Advanced Trade mapper's). */
export class MalformedExchangeFrameError extends MalformedFrameError {
  constructor(reason: string, frame: string, options?: { cause?: unknown }) {
    super(reason, frame, options);
    this.message = `malformed Exchange frame: ${reason}; frame starts ${JSON.stringify(frame.slice(0, PREVIEW_CHARS))}`;
  }
}

/** An `{"type":"error"}` frame from the Exchange feed. */
export class ExchangeFeedError extends FeedError {
  constructor(feedMessage: string, frame: string) {
    super(feedMessage, frame);
    this.message = `Exchange feed error: ${feedMessage}`;
  }
}

/** The one subscribe (or unsubscribe) message the Exchange feed expects: product_ids and channels together. */
export function exchangeSubscribeMessage(
  products: string[],
  channels: readonly ExchangeChannel[] = EXCHANGE_CHANNELS,
  type: 'subscribe' | 'unsubscribe' = 'subscribe',
): string {
  return JSON.stringify({ type, product_ids: products, channels });
}

/** The shared readers plus the Exchange feed's own shapes: price levels, optional `time`, null as absent. */
class ExchangeReader extends FrameReader {
  constructor(frame: string) {
    super(frame, MalformedExchangeFrameError);
  }

  /** Absent, null or "" reads as undefined. */
  override optionalDecimal(o: Json, key: string, path = 'frame'): string | undefined {
    return o[key] === null ? undefined : super.optionalDecimal(o, key, path);
  }

  /** `time` when present (snapshots and some first tickers have none), else the receive time (see untimedSnapshot). */
  timeOr(o: Json, fallbackUs: number): number {
    return o.time === undefined || o.time === null ? fallbackUs : this.time(o, 'time');
  }

  levels(v: unknown, path: string): Level[] {
    return this.arr(v, path).map((l, i) => {
      const pair = this.arr(l, `${path}[${i}]`);
      return [this.decimalValue(pair[0], `${path}[${i}][0]`), this.decimalValue(pair[1], `${path}[${i}][1]`)];
    });
  }
}

/**
 * Maps one frame. Throws ExchangeFeedError (a FeedError) for an error frame and MalformedExchangeFrameError
 * (a MalformedFrameError) for anything off-protocol. `seq` is -1: the Exchange level2 feed has no sequence.
 * `subscriptions` and unknown types map to no events.
 */
export function mapExchangeFrame(raw: string, recvUs: number): MappedFrame {
  const r: ExchangeReader = new ExchangeReader(raw);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    r.fail('not JSON', err);
  }
  if (!isObject(parsed)) r.fail('frame is not an object');
  const o = parsed;
  const type = r.str(o, 'type');
  if (type === 'error') {
    const message = typeof o.message === 'string' ? o.message : JSON.stringify(o);
    throw new ExchangeFeedError(typeof o.reason === 'string' ? `${message}: ${o.reason}` : message, raw);
  }
  const seq = -1;
  const events: MarketEvent[] = [];
  let exchUs = recvUs;
  let untimed = false;
  switch (type) {
    case 'snapshot': {
      exchUs = r.timeOr(o, recvUs);
      untimed = o.time === undefined || o.time === null;
      const e: BookSnapshotEvent = {
        type: 'book_snapshot',
        product: r.id(o, 'product_id'),
        exchUs,
        recvUs,
        seq,
        bids: r.levels(o.bids, 'frame.bids'),
        asks: r.levels(o.asks, 'frame.asks'),
      };
      events.push(e);
      break;
    }
    case 'l2update': {
      exchUs = r.timeOr(o, recvUs);
      const changes = r.arr(o.changes, 'frame.changes').map((c, i): LevelChange => {
        const path = `frame.changes[${i}]`;
        const [side, price, size] = r.arr(c, path);
        if (side !== 'buy' && side !== 'sell') r.fail(`${path}[0] is ${JSON.stringify(side)}`);
        return {
          side: side === 'buy' ? 'bid' : 'ask',
          price: r.decimalValue(price, `${path}[1]`),
          size: r.decimalValue(size, `${path}[2]`),
        };
      });
      const e: BookChangesEvent = {
        type: 'book_changes',
        product: r.id(o, 'product_id'),
        exchUs,
        recvUs,
        seq,
        changes,
      };
      events.push(e);
      break;
    }
    case 'match':
    case 'last_match': {
      exchUs = r.timeOr(o, recvUs);
      const makerSide = r.str(o, 'side');
      let aggressor: Aggressor;
      // The maker's side: a resting sell order was lifted by a buyer, and vice versa.
      if (makerSide === 'sell') aggressor = 'buy';
      else if (makerSide === 'buy') aggressor = 'sell';
      else return r.fail(`frame.side is ${JSON.stringify(makerSide)}`);
      const tradeId = o.trade_id;
      if (typeof tradeId !== 'number' && typeof tradeId !== 'string') r.fail('frame.trade_id is missing');
      if (String(tradeId).length === 0 || String(tradeId).length > 64) r.fail('frame.trade_id is not an id');
      const e: TradeEvent = {
        type: 'trade',
        product: r.id(o, 'product_id'),
        exchUs,
        recvUs,
        seq,
        tradeId: String(tradeId),
        price: r.decimal(o, 'price'),
        size: r.decimal(o, 'size'),
        aggressor,
      };
      events.push(e);
      break;
    }
    case 'ticker': {
      exchUs = r.timeOr(o, recvUs);
      const e: TickerEvent = {
        type: 'ticker',
        product: r.id(o, 'product_id'),
        exchUs,
        recvUs,
        seq,
        price: r.decimal(o, 'price'),
        bestBid: r.decimal(o, 'best_bid'),
        bestAsk: r.decimal(o, 'best_ask'),
      };
      const bidSize = r.optionalDecimal(o, 'best_bid_size');
      const askSize = r.optionalDecimal(o, 'best_ask_size');
      if (bidSize !== undefined) e.bestBidSize = bidSize;
      if (askSize !== undefined) e.bestAskSize = askSize;
      const volume = r.optionalDecimal(o, 'volume_24h');
      if (volume !== undefined) e.volume24h = volume;
      events.push(e);
      break;
    }
    case 'heartbeat': {
      exchUs = r.timeOr(o, recvUs);
      const counter = o.sequence;
      if (typeof counter !== 'number') r.fail('frame.sequence is not a number');
      const e: HeartbeatEvent = {
        type: 'heartbeat',
        product: r.id(o, 'product_id'),
        exchUs,
        recvUs,
        seq,
        counter,
      };
      events.push(e);
      break;
    }
    default:
      // subscriptions, status, ...: acknowledged, nothing to normalize.
      break;
  }
  return { channel: type, seq, exchUs, events, ...(untimed ? { untimedSnapshot: true as const } : {}) };
}
