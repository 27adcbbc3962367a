/**
 * The Coinbase Advanced Trade market-data protocol as the real server speaks it (shapes checked against
 * ../shared/data/coinbase/advanced-trade-btc-eth-2026-08-09.jsonl.gz): frame builders, number and time
 * formatting, and parsing of the client's subscribe messages.
 */
import * as z from 'zod';
import { QuoteWatchError } from '../errors.js';
import { fromUnits } from '../marketdata/decimal.js';
import type { BookLevel, BookSide } from './book.js';
import type { SimLevelChange, SimTrade } from './market.js';

export const CHANNELS = ['level2', 'market_trades', 'ticker', 'heartbeats'] as const;
export type Channel = (typeof CHANNELS)[number];

/** The channel name frames carry: subscribing to level2 yields "l2_data" frames. */
export const FRAME_CHANNEL: Record<Channel, string> = {
  level2: 'l2_data',
  market_trades: 'market_trades',
  ticker: 'ticker',
  heartbeats: 'heartbeats',
};

/** A frame before the connection stamps its sequence number (key order matches the real server). */
export interface Frame {
  channel: string;
  timestamp: string;
  sequence_num: number;
  events: unknown[];
}

export class ClientMessageError extends QuoteWatchError {}

const clientMessage = z.object({
  type: z.enum(['subscribe', 'unsubscribe']),
  product_ids: z.array(z.string()).optional(),
  channel: z.enum(CHANNELS),
  jwt: z.string().optional(),
});

export type ClientMessage = z.infer<typeof clientMessage>;

/** Parses one client text message; throws ClientMessageError with the reason the server reports. */
export function parseClientMessage(text: string): ClientMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ClientMessageError('malformed JSON', { cause });
  }
  if (raw && typeof raw === 'object' && 'channels' in raw) {
    throw new ClientMessageError('one channel per subscribe message: use "channel", not "channels"');
  }
  const parsed = clientMessage.safeParse(raw);
  if (!parsed.success) {
    throw new ClientMessageError(
      `failure to subscribe: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
      {
        cause: parsed.error,
      },
    );
  }
  return parsed.data;
}

export function errorFrame(message: string): { type: 'error'; message: string } {
  return { type: 'error', message };
}

// --- numbers and times ---------------------------------------------------------------------------------

/** Price increment 0.01 in 1e-8 units (BTC-USD's, and the default). */
export const CENT_TICK_UNITS = 1_000_000;

/** Ticks -> "65083.67", "1925" (trailing zeros dropped, as Coinbase writes them); tickUnits = tick in 1e-8. */
export function formatPrice(ticks: number, tickUnits = CENT_TICK_UNITS): string {
  return fromUnits(ticks * tickUnits);
}

/** Units of 1e-8 -> "0.00583". */
export function formatQty(units: number): string {
  return fromUnits(units);
}

/** A plain decimal string without exponent, at most 14 decimals ("0.09601107287722"). */
export function formatNumber(x: number): string {
  const s = x.toFixed(14).replace(/0+$/, '').replace(/\.$/, '');
  return s === '-0' ? '0' : s;
}

function splitUs(us: number): { date: Date; fraction: string } {
  const ms = Math.floor(us / 1000);
  const fraction = String((us - Math.floor(us / 1_000_000) * 1_000_000) * 1000).padStart(9, '0');
  return { date: new Date(ms), fraction };
}

/** Go's RFC3339Nano, as Coinbase writes times: "2026-08-09T21:05:38.50436Z" (trailing zeros dropped). */
export function rfc3339Nano(us: number): string {
  const { date, fraction } = splitUs(us);
  const frac = fraction.replace(/0+$/, '');
  return `${date.toISOString().slice(0, 19)}${frac ? `.${frac}` : ''}Z`;
}

/**
 * A protobuf Timestamp in JSON, as Coinbase's REST API writes times ("2026-08-09T21:05:38.504360Z"): 0, 3 or 6
 * fraction digits (9 for nanoseconds, which simulated µs times never need).
 */
export function protoTime(us: number): string {
  const { date, fraction } = splitUs(us);
  const frac =
    fraction === '000000000' ? '' : fraction.endsWith('000000') ? fraction.slice(0, 3) : fraction.slice(0, 6);
  return `${date.toISOString().slice(0, 19)}${frac ? `.${frac}` : ''}Z`;
}

/** Go's time.String() with monotonic clock reading, as in heartbeats' current_time. */
export function goTimeString(us: number, monotonicUs: number): string {
  const { date, fraction } = splitUs(us);
  const frac = fraction.replace(/0+$/, '');
  const wall = `${date.toISOString().slice(0, 10)} ${date.toISOString().slice(11, 19)}${frac ? `.${frac}` : ''}`;
  const mono = `${Math.floor(monotonicUs / 1_000_000)}.${String((monotonicUs % 1_000_000) * 1000).padStart(9, '0')}`;
  return `${wall} +0000 UTC m=+${mono}`;
}

// --- events ----------------------------------------------------------------------------------------------

const wireSide = (side: BookSide): 'bid' | 'offer' => (side === 'bid' ? 'bid' : 'offer');

export function l2SnapshotEvent(
  productId: string,
  timeUs: number,
  bids: BookLevel[],
  asks: BookLevel[],
  tickUnits = CENT_TICK_UNITS,
) {
  const eventTime = rfc3339Nano(timeUs);
  const updates = [
    ...bids.map((l) => level('bid', l.priceTicks, l.qtyUnits, eventTime, tickUnits)),
    ...asks.map((l) => level('ask', l.priceTicks, l.qtyUnits, eventTime, tickUnits)),
  ];
  return { type: 'snapshot', product_id: productId, updates };
}

export function l2UpdateEvent(
  productId: string,
  timeUs: number,
  changes: SimLevelChange[],
  tickUnits = CENT_TICK_UNITS,
) {
  const eventTime = rfc3339Nano(timeUs);
  return {
    type: 'update',
    product_id: productId,
    updates: changes.map((c) => level(c.side, c.priceTicks, c.qtyUnits, eventTime, tickUnits)),
  };
}

function level(side: BookSide, priceTicks: number, qtyUnits: number, eventTime: string, tickUnits: number) {
  return {
    side: wireSide(side),
    event_time: eventTime,
    price_level: formatPrice(priceTicks, tickUnits),
    new_quantity: formatQty(qtyUnits),
  };
}

/** Coinbase reports the MAKER's side: a buyer lifting the offer is a "SELL" trade. */
export function tradeJson(productId: string, t: SimTrade, tickUnits = CENT_TICK_UNITS) {
  return {
    product_id: productId,
    trade_id: String(t.tradeId),
    price: formatPrice(t.priceTicks, tickUnits),
    size: formatQty(t.sizeUnits),
    time: rfc3339Nano(t.timeUs),
    side: t.aggressor === 'buy' ? 'SELL' : 'BUY',
  };
}

export interface TickerStats {
  lastTicks: number;
  volumeUnits: number;
  low24Ticks: number;
  high24Ticks: number;
  low52wTicks: number;
  high52wTicks: number;
  open24Ticks: number;
}

export function tickerJson(
  productId: string,
  s: TickerStats,
  bid: BookLevel | undefined,
  ask: BookLevel | undefined,
  tickUnits = CENT_TICK_UNITS,
) {
  const price = (ticks: number) => formatPrice(ticks, tickUnits);
  return {
    type: 'ticker',
    product_id: productId,
    price: price(s.lastTicks),
    volume_24_h: formatQty(s.volumeUnits),
    low_24_h: price(s.low24Ticks),
    high_24_h: price(s.high24Ticks),
    low_52_w: price(s.low52wTicks),
    high_52_w: price(s.high52wTicks),
    price_percent_chg_24_h: formatNumber(((s.lastTicks - s.open24Ticks) / s.open24Ticks) * 100),
    best_bid: bid ? price(bid.priceTicks) : '',
    best_ask: ask ? price(ask.priceTicks) : '',
    best_bid_quantity: bid ? formatQty(bid.qtyUnits) : '',
    best_ask_quantity: ask ? formatQty(ask.qtyUnits) : '',
  };
}
