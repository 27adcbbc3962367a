/**
 * Mapper: one raw Coinbase Advanced Trade WebSocket frame (a JSON string) -> normalized MarketEvents.
 * Pure and synchronous: no I/O, no clock (the caller passes the receive time), so it is trivially testable
 * against recorded captures. The connection, sequence checking and publishing live in src/ingest/.
 *
 * Protocol facts it relies on (checked against a real capture, see test/marketdata.advancedTrade.test.ts):
 * - every frame has `channel`, `timestamp` (ISO, ns precision) and `sequence_num`, ONE counter per connection;
 * - l2_data sides are "bid" / "offer", `new_quantity` is the absolute size and "0" removes the level;
 * - market_trades `side` is the MAKER's side, so the taker (aggressor) is the opposite;
 * - an error is `{"type":"error","message":...}` without channel.
 */
import { DecimalError, normalizeDecimal } from './decimal.js';
import {
  type Aggressor,
  type BookChangesEvent,
  type BookSnapshotEvent,
  type HeartbeatEvent,
  isoToMicros,
  type Level,
  type LevelChange,
  type MarketEvent,
  type TickerEvent,
  type TradeEvent,
} from './events.js';

/** Product used for events that belong to the connection rather than a product (heartbeats). */
export const FEED_PRODUCT = '_feed';

const PREVIEW_CHARS = 200;

/** The frame is not what the protocol promises (bad JSON, missing field, bad number). */
export class MalformedFrameError extends Error {
  constructor(
    reason: string,
    readonly frame: string,
    options?: { cause?: unknown },
  ) {
    super(
      `malformed Advanced Trade frame: ${reason}; frame starts ${JSON.stringify(frame.slice(0, PREVIEW_CHARS))}`,
      options,
    );
    this.name = 'MalformedFrameError';
  }
}

/** The exchange reported an error (e.g. a rejected subscription); the connection should be re-established. */
export class FeedError extends Error {
  constructor(
    readonly feedMessage: string,
    readonly frame: string,
  ) {
    super(`Advanced Trade feed error: ${feedMessage}`);
    this.name = 'FeedError';
  }
}

export interface MappedFrame {
  channel: string;
  /** The frame's sequence_num (one counter per connection, across channels and products). */
  seq: number;
  /** Frame timestamp, epoch µs. */
  exchUs: number;
  events: MarketEvent[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Field readers that fail with a path, so the error names exactly what was wrong. */
class Reader {
  constructor(readonly frame: string) {}

  fail(reason: string, cause?: unknown): never {
    throw new MalformedFrameError(reason, this.frame, cause === undefined ? undefined : { cause });
  }

  obj(v: unknown, path: string): Json {
    return isObject(v) ? v : this.fail(`${path} is not an object`);
  }

  arr(v: unknown, path: string): unknown[] {
    return Array.isArray(v) ? v : this.fail(`${path} is not an array`);
  }

  str(o: Json, key: string, path: string): string {
    const v = o[key];
    return typeof v === 'string' ? v : this.fail(`${path}.${key} is not a string`);
  }

  decimal(o: Json, key: string, path: string): string {
    const v = this.str(o, key, path);
    try {
      return normalizeDecimal(v);
    } catch (err) {
      if (err instanceof DecimalError) this.fail(`${path}.${key} is not a decimal`, err);
      throw err;
    }
  }

  optionalDecimal(o: Json, key: string, path: string): string | undefined {
    return o[key] === undefined || o[key] === '' ? undefined : this.decimal(o, key, path);
  }

  time(o: Json, key: string, path: string): number {
    const v = this.str(o, key, path);
    try {
      return isoToMicros(v);
    } catch (err) {
      return this.fail(`${path}.${key} is not an ISO time`, err);
    }
  }
}

/**
 * Maps one frame. Throws FeedError for an exchange error frame and MalformedFrameError for anything that
 * does not follow the protocol; never throws anything else for string input.
 * Channels without market events (subscriptions, candles, unknown ones) map to no events.
 */
export function mapAdvancedTradeFrame(raw: string, recvUs: number): MappedFrame {
  const r: Reader = new Reader(raw); // explicit type: lets TypeScript narrow after r.fail()
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    r.fail('not JSON', err);
  }
  const frame = r.obj(parsed, 'frame');
  if (frame.type === 'error') {
    throw new FeedError(typeof frame.message === 'string' ? frame.message : JSON.stringify(frame), raw);
  }
  const channel = r.str(frame, 'channel', 'frame');
  const seq = frame.sequence_num;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    r.fail('frame.sequence_num is not a non-negative integer');
  }
  const exchUs = r.time(frame, 'timestamp', 'frame');
  const items = r.arr(frame.events, 'frame.events');
  const base = { seq, recvUs };
  const events: MarketEvent[] = [];

  items.forEach((item, i) => {
    const path = `events[${i}]`;
    const e = r.obj(item, path);
    switch (channel) {
      case 'l2_data':
        events.push(mapL2(r, e, path, { ...base, exchUs }));
        break;
      case 'market_trades':
        events.push(...mapTrades(r, e, path, base));
        break;
      case 'ticker':
        events.push(...mapTickers(r, e, path, { ...base, exchUs }));
        break;
      case 'heartbeats': {
        const counter = e.heartbeat_counter;
        if (typeof counter !== 'number') r.fail(`${path}.heartbeat_counter is not a number`);
        const hb: HeartbeatEvent = { type: 'heartbeat', product: FEED_PRODUCT, exchUs, ...base, counter };
        events.push(hb);
        break;
      }
      default:
        // subscriptions, candles, status...: acknowledged, nothing to normalize.
        break;
    }
  });
  return { channel, seq, exchUs, events };
}

interface Stamp {
  seq: number;
  recvUs: number;
  exchUs: number;
}

function mapL2(r: Reader, e: Json, path: string, stamp: Stamp): BookSnapshotEvent | BookChangesEvent {
  const type = r.str(e, 'type', path);
  const product = r.str(e, 'product_id', path);
  const updates = r.arr(e.updates, `${path}.updates`);
  // Exchange time of the book change is the updates' event_time (the frame timestamp is the send time).
  // The latest one wins; all updates of a batch usually share it, so parse only when it changes.
  let exchUs = updates.length === 0 ? stamp.exchUs : Number.NEGATIVE_INFINITY;
  let lastTime: unknown;
  const changes: LevelChange[] = updates.map((u, j) => {
    const upath = `${path}.updates[${j}]`;
    const o = r.obj(u, upath);
    const rawSide = r.str(o, 'side', upath);
    if (rawSide !== 'bid' && rawSide !== 'offer') r.fail(`${upath}.side is ${JSON.stringify(rawSide)}`);
    if (o.event_time !== lastTime) {
      exchUs = Math.max(exchUs, r.time(o, 'event_time', upath));
      lastTime = o.event_time;
    }
    return {
      side: rawSide === 'bid' ? 'bid' : 'ask',
      price: r.decimal(o, 'price_level', upath),
      size: r.decimal(o, 'new_quantity', upath),
    };
  });
  if (type === 'snapshot') {
    const bids: Level[] = [];
    const asks: Level[] = [];
    for (const c of changes) (c.side === 'bid' ? bids : asks).push([c.price, c.size]);
    return { type: 'book_snapshot', product, ...stamp, exchUs, bids, asks };
  }
  if (type === 'update') return { type: 'book_changes', product, ...stamp, exchUs, changes };
  return r.fail(`${path}.type is ${JSON.stringify(type)}`);
}

function mapTrades(r: Reader, e: Json, path: string, base: { seq: number; recvUs: number }): TradeEvent[] {
  const trades = r.arr(e.trades, `${path}.trades`).map((t, j): TradeEvent => {
    const tpath = `${path}.trades[${j}]`;
    const o = r.obj(t, tpath);
    const makerSide = r.str(o, 'side', tpath);
    let aggressor: Aggressor;
    // Coinbase reports the maker's side: a resting SELL order was hit by a buyer, and vice versa.
    if (makerSide === 'SELL') aggressor = 'buy';
    else if (makerSide === 'BUY') aggressor = 'sell';
    else return r.fail(`${tpath}.side is ${JSON.stringify(makerSide)}`);
    return {
      type: 'trade',
      product: r.str(o, 'product_id', tpath),
      exchUs: r.time(o, 'time', tpath),
      ...base,
      tradeId: r.str(o, 'trade_id', tpath),
      price: r.decimal(o, 'price', tpath),
      size: r.decimal(o, 'size', tpath),
      aggressor,
    };
  });
  // Batches arrive newest-first or oldest-first; consumers want time order (trade ids break ties).
  return trades.sort((a, b) => a.exchUs - b.exchUs || compareIds(a.tradeId, b.tradeId));
}

/** Numeric ids as strings of any length: shorter is smaller, equal length compares as text. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function mapTickers(r: Reader, e: Json, path: string, stamp: Stamp): TickerEvent[] {
  return r.arr(e.tickers, `${path}.tickers`).map((t, j) => {
    const tpath = `${path}.tickers[${j}]`;
    const o = r.obj(t, tpath);
    const ticker: TickerEvent = {
      type: 'ticker',
      product: r.str(o, 'product_id', tpath),
      ...stamp,
      price: r.decimal(o, 'price', tpath),
      bestBid: r.decimal(o, 'best_bid', tpath),
      bestAsk: r.decimal(o, 'best_ask', tpath),
    };
    const bidSize = r.optionalDecimal(o, 'best_bid_quantity', tpath);
    const askSize = r.optionalDecimal(o, 'best_ask_quantity', tpath);
    if (bidSize !== undefined) ticker.bestBidSize = bidSize;
    if (askSize !== undefined) ticker.bestAskSize = askSize;
    return ticker;
  });
}
