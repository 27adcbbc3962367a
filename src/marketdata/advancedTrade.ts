/**
 * Mapper: one raw Coinbase Advanced Trade WebSocket frame (a JSON string) -> normalized MarketEvents.
 * Pure: no I/O, no clock (the caller passes the receive time), so it is trivially testable against recorded
 * captures. The connection, sequence checking and publishing live in src/ingest/.
 *
 * Two entry points with identical output: mapAdvancedTradeFrame (synchronous) and mapAdvancedTradeFrameAsync,
 * which maps a large frame in slices and yields to the event loop between them. A real BTC-USD snapshot is
 * one ~5 MB frame with ~46k levels; mapped in one go it would hold the loop for tens of milliseconds on top of
 * JSON.parse, delaying heartbeats, pongs and the watchdog.
 *
 * Protocol facts it relies on (checked against a real capture, see test/marketdata.advancedTrade.test.ts):
 * - every frame has `channel`, `timestamp` (ISO, ns precision) and `sequence_num`, ONE counter per connection;
 * - l2_data sides are "bid" / "offer", `new_quantity` is the absolute size and "0" removes the level;
 * - market_trades `side` is the MAKER's side, so the taker (aggressor) is the opposite;
 * - an error is `{"type":"error","message":...}` without channel.
 */
import { QuoteWatchError } from '../errors.js';
import { normalizeDecimal } from './decimal.js';
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

/** Product used for events that belong to the connection rather than a product (heartbeats). */
export const FEED_PRODUCT = '_feed';

const PREVIEW_CHARS = 200;

/** The frame is not what the protocol promises (bad JSON, missing field, bad number). */
export class MalformedFrameError extends QuoteWatchError {
  constructor(
    reason: string,
    readonly frame: string,
    options?: { cause?: unknown },
  ) {
    super(
      `malformed Advanced Trade frame: ${reason}; frame starts ${JSON.stringify(frame.slice(0, PREVIEW_CHARS))}`,
      options,
    );
  }
}

/** The exchange reported an error (e.g. a rejected subscription); the connection should be re-established. */
export class FeedError extends QuoteWatchError {
  constructor(
    readonly feedMessage: string,
    readonly frame: string,
  ) {
    super(`Advanced Trade feed error: ${feedMessage}`);
  }
}

export interface MappedFrame {
  channel: string;
  /** The frame's sequence_num (one counter per connection, across channels and products). */
  seq: number;
  /** Frame timestamp, epoch µs. */
  exchUs: number;
  events: MarketEvent[];
  /**
   * The frame's book snapshot carries no exchange time (the Exchange feed's): its exchUs is the receive time, which a
   * replay does not share with the frames' exchange times. The ingestor gives it the exchange's time.
   */
  untimedSnapshot?: true;
}

/**
 * Maps one frame. Throws FeedError for an exchange error frame and MalformedFrameError for anything that
 * does not follow the protocol; never throws anything else for string input.
 * Channels without market events (subscriptions, candles, unknown ones) map to no events.
 */
export function mapAdvancedTradeFrame(raw: string, recvUs: number): MappedFrame {
  const steps = mapFrameInSlices(raw, recvUs, Number.POSITIVE_INFINITY);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Frames at least this long are mapped in slices by mapAdvancedTradeFrameAsync (a snapshot is megabytes). */
export const LARGE_FRAME_CHARS = 256 * 1024;
/** Book levels mapped between two yields (a few milliseconds of work). */
export const LEVELS_PER_SLICE = 4096;

export interface AsyncMapOptions {
  /** Default LARGE_FRAME_CHARS; smaller frames are mapped synchronously. */
  largeFrameChars?: number;
  /** Default LEVELS_PER_SLICE. */
  levelsPerSlice?: number;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Same result and errors as mapAdvancedTradeFrame, but a large frame's book levels are mapped in slices with
 * a turn of the event loop (setImmediate) between slices, so timers, socket reads and the watchdog keep
 * running while a multi-megabyte snapshot is mapped. JSON.parse of the frame is still one block (~20 ms for
 * 5 MB). Small frames are mapped synchronously and cost no extra turn.
 */
export async function mapAdvancedTradeFrameAsync(
  raw: string,
  recvUs: number,
  options: AsyncMapOptions = {},
): Promise<MappedFrame> {
  const { largeFrameChars = LARGE_FRAME_CHARS, levelsPerSlice = LEVELS_PER_SLICE } = options;
  if (raw.length < largeFrameChars) return mapAdvancedTradeFrame(raw, recvUs);
  const steps = mapFrameInSlices(raw, recvUs, Math.max(1, levelsPerSlice));
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await nextTurn();
  }
}

/**
 * The mapping itself, as a generator that pauses (yields) after every `levelsPerSlice` book levels; the
 * sync entry point runs it straight through, the async one waits a turn at each pause.
 */
function* mapFrameInSlices(
  raw: string,
  recvUs: number,
  levelsPerSlice: number,
): Generator<void, MappedFrame> {
  const r: FrameReader = new FrameReader(raw, MalformedFrameError); // explicit type: lets TypeScript narrow after r.fail()
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
  const stamp: Stamp = { seq, recvUs, exchUs };
  const events: MarketEvent[] = [];

  for (let i = 0; i < items.length; i++) {
    const path = `events[${i}]`;
    const e = r.obj(items[i], path);
    switch (channel) {
      case 'l2_data': {
        const l2 = startL2(r, e, path, stamp);
        for (let from = 0; from < l2.updates.length; from += levelsPerSlice) {
          if (from > 0) yield;
          mapLevels(r, l2, from, Math.min(from + levelsPerSlice, l2.updates.length));
        }
        events.push(finishL2(l2));
        break;
      }
      case 'market_trades':
        events.push(...mapTrades(r, e, path, stamp));
        break;
      case 'ticker':
        events.push(...mapTickers(r, e, path, stamp));
        break;
      case 'heartbeats': {
        const counter = e.heartbeat_counter;
        if (typeof counter !== 'number') r.fail(`${path}.heartbeat_counter is not a number`);
        const hb: HeartbeatEvent = { type: 'heartbeat', product: FEED_PRODUCT, exchUs, seq, recvUs, counter };
        events.push(hb);
        break;
      }
      default:
        // subscriptions, candles, status...: acknowledged, nothing to normalize.
        break;
    }
  }
  return { channel, seq, exchUs, events };
}

interface Stamp {
  seq: number;
  recvUs: number;
  exchUs: number;
}

/** An l2_data event being mapped: levels go straight into bids/asks (snapshot) or changes (update). */
interface L2Progress {
  path: string;
  product: string;
  stamp: Stamp;
  updates: unknown[];
  snapshot: boolean;
  bids: Level[];
  asks: Level[];
  changes: LevelChange[];
  /** Latest event_time seen, epoch µs. */
  exchUs: number;
  lastTime: unknown;
}

/** Marks "no event_time read yet" (a missing event_time is undefined and must still be checked). */
const NO_TIME = Symbol('no event_time yet');

function startL2(r: FrameReader, e: Json, path: string, stamp: Stamp): L2Progress {
  const type = r.str(e, 'type', path);
  if (type !== 'snapshot' && type !== 'update') r.fail(`${path}.type is ${JSON.stringify(type)}`);
  const product = r.id(e, 'product_id', path);
  const updates = r.arr(e.updates, `${path}.updates`);
  return {
    path,
    product,
    stamp,
    updates,
    snapshot: type === 'snapshot',
    bids: [],
    asks: [],
    changes: [],
    // Exchange time of the book change is the updates' event_time (the frame timestamp is the send time).
    exchUs: updates.length === 0 ? stamp.exchUs : Number.NEGATIVE_INFINITY,
    lastTime: NO_TIME,
  };
}

/**
 * Maps updates[from, to). The hot loop of the mapper (tens of thousands of levels per snapshot): field paths
 * for error messages are only built when something is wrong.
 */
function mapLevels(r: FrameReader, l2: L2Progress, from: number, to: number): void {
  const { updates, snapshot, bids, asks, changes } = l2;
  for (let j = from; j < to; j++) {
    const u = updates[j];
    if (!isObject(u)) r.fail(`${l2.path}.updates[${j}] is not an object`);
    const side = u.side;
    const bid = side === 'bid';
    if (!bid && side !== 'offer') {
      r.fail(
        typeof side === 'string'
          ? `${l2.path}.updates[${j}].side is ${JSON.stringify(side)}`
          : `${l2.path}.updates[${j}].side is not a string`,
      );
    }
    // The latest event_time wins; all updates of a batch usually share it, so parse only when it changes.
    if (u.event_time !== l2.lastTime) {
      l2.exchUs = Math.max(l2.exchUs, r.time(u, 'event_time', `${l2.path}.updates[${j}]`));
      l2.lastTime = u.event_time;
    }
    const price = levelDecimal(r, l2, u, 'price_level', j);
    const size = levelDecimal(r, l2, u, 'new_quantity', j);
    if (snapshot) (bid ? bids : asks).push([price, size]);
    else changes.push({ side: bid ? 'bid' : 'ask', price, size });
  }
}

function levelDecimal(r: FrameReader, l2: L2Progress, o: Json, key: string, j: number): string {
  const v = o[key];
  if (typeof v !== 'string') return r.fail(`${l2.path}.updates[${j}].${key} is not a string`);
  try {
    return normalizeDecimal(v);
  } catch (err) {
    return r.fail(`${l2.path}.updates[${j}].${key} is not a decimal`, err);
  }
}

function finishL2(l2: L2Progress): BookSnapshotEvent | BookChangesEvent {
  const { product, stamp, exchUs } = l2;
  if (l2.snapshot) {
    return {
      type: 'book_snapshot',
      product,
      seq: stamp.seq,
      recvUs: stamp.recvUs,
      exchUs,
      bids: l2.bids,
      asks: l2.asks,
    };
  }
  return { type: 'book_changes', product, seq: stamp.seq, recvUs: stamp.recvUs, exchUs, changes: l2.changes };
}

function mapTrades(r: FrameReader, e: Json, path: string, stamp: Stamp): TradeEvent[] {
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
      product: r.id(o, 'product_id', tpath),
      exchUs: r.time(o, 'time', tpath),
      seq: stamp.seq,
      recvUs: stamp.recvUs,
      tradeId: r.id(o, 'trade_id', tpath),
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

function mapTickers(r: FrameReader, e: Json, path: string, stamp: Stamp): TickerEvent[] {
  return r.arr(e.tickers, `${path}.tickers`).map((t, j) => {
    const tpath = `${path}.tickers[${j}]`;
    const o = r.obj(t, tpath);
    const ticker: TickerEvent = {
      type: 'ticker',
      product: r.id(o, 'product_id', tpath),
      seq: stamp.seq,
      recvUs: stamp.recvUs,
      exchUs: stamp.exchUs,
      price: r.decimal(o, 'price', tpath),
      bestBid: r.decimal(o, 'best_bid', tpath),
      bestAsk: r.decimal(o, 'best_ask', tpath),
    };
    const bidSize = r.optionalDecimal(o, 'best_bid_quantity', tpath);
    const askSize = r.optionalDecimal(o, 'best_ask_quantity', tpath);
    if (bidSize !== undefined) ticker.bestBidSize = bidSize;
    if (askSize !== undefined) ticker.bestAskSize = askSize;
    const volume = r.optionalDecimal(o, 'volume_24_h', tpath);
    if (volume !== undefined) ticker.volume24h = volume;
    return ticker;
  });
}
