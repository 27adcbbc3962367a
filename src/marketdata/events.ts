/**
 * The normalized event model every feed mapper produces and every consumer reads.
 * Times are integer epoch MICROseconds (exact in a double until the year 2255).
 * Prices and sizes are normalized decimal strings (see decimal.ts): "8442.650" -> "8442.65", "0.000" -> "0".
 */

export type Side = 'bid' | 'ask';
export type Aggressor = 'buy' | 'sell';

/** [price, size] as normalized decimal strings. */
export type Level = readonly [price: string, size: string];

interface Base {
  product: string;
  /** Exchange time, epoch µs. */
  exchUs: number;
  /** Receive time at the ingestor, epoch µs. */
  recvUs: number;
  /** The feed's sequence number of the frame that carried this event (-1 when the feed has none). */
  seq: number;
}

export interface BookSnapshotEvent extends Base {
  type: 'book_snapshot';
  bids: Level[];
  asks: Level[];
}

export interface LevelChange {
  side: Side;
  price: string;
  /** New absolute size at the level; "0" removes it. */
  size: string;
}

export interface BookChangesEvent extends Base {
  type: 'book_changes';
  changes: LevelChange[];
}

export interface TradeEvent extends Base {
  type: 'trade';
  tradeId: string;
  price: string;
  size: string;
  /** Side of the taker. Advanced Trade reports the maker's side, so the mapper inverts it. */
  aggressor: Aggressor;
}

export interface TickerEvent extends Base {
  type: 'ticker';
  price: string;
  bestBid: string;
  bestAsk: string;
  bestBidSize?: string;
  bestAskSize?: string;
  /** The exchange's rolling 24 h traded volume (base units), when the feed sends it: trade flow without trades. */
  volume24h?: string;
}

export interface HeartbeatEvent extends Base {
  type: 'heartbeat';
  counter: number;
}

/** The book of `product` must be rebuilt: a sequence gap, a reconnect, a crossed book... */
export interface ResyncEvent extends Base {
  type: 'resync';
  reason: string;
}

export type MarketEvent =
  | BookSnapshotEvent
  | BookChangesEvent
  | TradeEvent
  | TickerEvent
  | HeartbeatEvent
  | ResyncEvent;

export type MarketEventType = MarketEvent['type'];

/**
 * Whether an event's exchange time is the exchange's time as it is now: a book update's or a heartbeat's. A ticker's
 * or a trade's may be old (an Exchange connection's first tickers and its `last_match` repeat the last trades'), and
 * a snapshot of the Exchange feed has none (its mapped time is the receive time until the ingestor stamps it).
 */
export function tellsExchangeNow(e: MarketEvent): boolean {
  return e.type === 'book_changes' || e.type === 'heartbeat';
}

/** Parses an ISO-8601 time with up to nanosecond precision ("2026-08-09T21:05:48.123456789Z") to epoch µs. */
export function isoToMicros(iso: string): number {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(iso);
  if (!m) throw new RangeError(`not an ISO-8601 time: ${JSON.stringify(iso)}`);
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(seconds)) throw new RangeError(`not an ISO-8601 time: ${JSON.stringify(iso)}`);
  const frac = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
  return seconds * 1000 + Number(frac);
}

/** Formats epoch µs as ISO-8601 with microseconds, the inverse of isoToMicros for µs inputs. */
export function microsToIso(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString(); // ...ss.mmmZ
  const micros = String(us - ms * 1000).padStart(3, '0');
  return `${iso.slice(0, -1)}${micros}Z`;
}
