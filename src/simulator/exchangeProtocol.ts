/**
 * The legacy Coinbase Exchange market-data protocol (`wss://ws-feed.exchange.coinbase.com`) as the real server
 * speaks it: frame builders, its number and time formats, and parsing of the client's subscribe messages. Shapes
 * and key order are the real capture's (../shared/data/coinbase/exchange-l2-10pairs-2021-04-17.txt.gz) and
 * Coinbase's docs (docs.cdp.coinbase.com/exchange/websocket-feed): every message is `{"type": ...}`; a subscribe
 * names its channels (strings, or `{name, product_ids}` objects) and products in one message.
 *
 * Numbers are written at the product's increments, trailing zeros kept ("65083.60", sizes "0.00583000", a removal
 * "0.00000000"), as the Exchange writes them; times always carry six fraction digits ("2021-04-17T16:43:37.075687Z").
 */
import * as z from 'zod';
import type { BookLevel, BookSide } from './book.js';
import type { SimLevelChange, SimTrade } from './market.js';
import { ClientMessageError, type TickerStats } from './protocol.js';
import { hashString } from './rng.js';

/** The channels the simulator serves on its Exchange feed. */
export const EXCHANGE_SIM_CHANNELS = ['level2_batch', 'matches', 'ticker', 'heartbeat'] as const;
export type ExchangeSimChannel = (typeof EXCHANGE_SIM_CHANNELS)[number];

/** Channels the real feed serves only to an authenticated connection (the simulator's Exchange feed has none). */
const AUTHENTICATED = new Set(['level2', 'level3', 'full', 'user']);

/** Book sides are "buy" and "sell" on this feed. */
const exchangeSide = (side: BookSide): 'buy' | 'sell' => (side === 'bid' ? 'buy' : 'sell');

// --- numbers and times ---------------------------------------------------------------------------------

/** Decimal places of an increment given in 1e-8 units (1_000_000 = 0.01 -> 2). */
export function decimalsOf(incrementUnits: number): number {
  let d = 8;
  for (let u = incrementUnits; d > 0 && u % 10 === 0; u /= 10) d--;
  return d;
}

/** `units` of 1e-8 written with exactly `decimals` places ("65083.60", "0.00583000"). */
export function fixedDecimal(units: number, decimals: number): string {
  const whole = Math.floor(units / 1e8);
  const frac = String(units - whole * 1e8).padStart(8, '0');
  return decimals > 0 ? `${whole}.${frac.slice(0, decimals)}` : String(whole);
}

/** A price at the product's increment. */
export const exchangePrice = (ticks: number, tickUnits: number): string =>
  fixedDecimal(ticks * tickUnits, decimalsOf(tickUnits));

/** A size at the base increment (1e-8, BTC's and ETH's). */
export const exchangeSize = (units: number): string => fixedDecimal(units, 8);

/** RFC 3339 with exactly six fraction digits, as every Exchange time is written. */
export function exchangeTime(us: number): string {
  const date = new Date(Math.floor(us / 1000));
  const micro = String(((us % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, '0');
  return `${date.toISOString().slice(0, 19)}.${micro}Z`;
}

/** A UUID-shaped order id, the same for the same labels (the simulator has no orders, only their ids). */
export function orderId(...labels: (string | number)[]): string {
  const base = labels.join(':');
  const hex = [0, 1, 2, 3].map((i) => hashString(`${base}:${i}`).toString(16).padStart(8, '0')).join('');
  // Version 4, variant 10xx: a well-formed random-looking UUID.
  const v = `${hex.slice(0, 12)}4${hex.slice(13, 16)}${((Number.parseInt(hex[16]!, 16) & 3) | 8).toString(16)}${hex.slice(17)}`;
  return `${v.slice(0, 8)}-${v.slice(8, 12)}-${v.slice(12, 16)}-${v.slice(16, 20)}-${v.slice(20, 32)}`;
}

// --- client messages -----------------------------------------------------------------------------------

const channelEntry = z.union([
  z.string(),
  z.object({ name: z.string(), product_ids: z.array(z.string()).optional() }),
]);
const clientMessage = z.object({
  type: z.enum(['subscribe', 'unsubscribe'], {
    message: 'type has to be either subscribe or unsubscribe',
  }),
  product_ids: z.array(z.string()).optional(),
  channels: z.array(channelEntry).optional(),
});

/** One (un)subscribe request: per channel, the products it names (empty on an unsubscribe: every product). */
export interface ExchangeRequest {
  type: 'subscribe' | 'unsubscribe';
  channels: { name: ExchangeSimChannel; productIds: string[] }[];
}

/**
 * Parses one client text message; throws ClientMessageError with the `reason` the server reports under
 * `"message":"Failed to subscribe"`. Product ids are upper-cased; whether they exist is the caller's check.
 */
export function parseExchangeMessage(text: string): ExchangeRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ClientMessageError('malformed JSON', { cause });
  }
  const parsed = clientMessage.safeParse(raw);
  if (!parsed.success)
    throw new ClientMessageError(parsed.error.issues.map((i) => i.message).join('; '), {
      cause: parsed.error,
    });
  const msg = parsed.data;
  if (!msg.channels?.length) throw new ClientMessageError('No channels provided');
  const top = msg.product_ids ?? [];
  const channels = msg.channels.map((c) => {
    const name = typeof c === 'string' ? c : c.name;
    const ids = (typeof c === 'string' ? top : (c.product_ids ?? top)).map((p) => p.toUpperCase());
    if (AUTHENTICATED.has(name))
      throw new ClientMessageError(`the ${name} channel requires an authenticated connection`);
    if (!(EXCHANGE_SIM_CHANNELS as readonly string[]).includes(name))
      throw new ClientMessageError(`${name} is not a valid channel`);
    if (msg.type === 'subscribe' && ids.length === 0)
      throw new ClientMessageError(`You need to specify at least one product ID for channel ${name}`);
    return { name: name as ExchangeSimChannel, productIds: ids };
  });
  return { type: msg.type, channels };
}

// --- messages ------------------------------------------------------------------------------------------

/** `{"type":"error","message","reason"}`: a subscribe the server refused, or the error fault's frame. */
export function exchangeErrorFrame(message: string, reason?: string) {
  return reason === undefined ? { type: 'error', message } : { type: 'error', message, reason };
}

export function subscriptionsFrame(channels: { name: string; product_ids: string[] }[]) {
  return { type: 'subscriptions', channels };
}

const levelPair = (l: BookLevel, tickUnits: number) => [
  exchangePrice(l.priceTicks, tickUnits),
  exchangeSize(l.qtyUnits),
];

/** The level2 snapshot: no time (the real one has none), bids and asks best first. */
export function snapshotFrame(productId: string, bids: BookLevel[], asks: BookLevel[], tickUnits: number) {
  return {
    type: 'snapshot',
    product_id: productId,
    asks: asks.map((l) => levelPair(l, tickUnits)),
    bids: bids.map((l) => levelPair(l, tickUnits)),
  };
}

/** One level2 update: absolute sizes, "0.00000000" removes; `time` is the batch's. */
export function l2UpdateFrame(
  productId: string,
  changes: SimLevelChange[],
  timeUs: number,
  tickUnits: number,
) {
  return {
    type: 'l2update',
    product_id: productId,
    changes: changes.map((c) => [
      exchangeSide(c.side),
      exchangePrice(c.priceTicks, tickUnits),
      exchangeSize(c.qtyUnits),
    ]),
    time: exchangeTime(timeUs),
  };
}

/**
 * A `match` (or, on subscribing to matches, the `last_match`): `side` is the MAKER order's, so a buyer lifting an
 * offer is a "sell" match. `sequence` is the product's at the trade (plus the connection's skipped numbers).
 */
export function matchFrame(
  type: 'match' | 'last_match',
  seed: number,
  productId: string,
  t: SimTrade,
  sequence: number,
  tickUnits: number,
) {
  return {
    type,
    trade_id: t.tradeId,
    maker_order_id: orderId(seed, productId, t.tradeId, 'maker'),
    taker_order_id: orderId(seed, productId, t.tradeId, 'taker'),
    side: t.aggressor === 'buy' ? 'sell' : 'buy',
    size: exchangeSize(t.sizeUnits),
    price: exchangePrice(t.priceTicks, tickUnits),
    product_id: productId,
    sequence,
    time: exchangeTime(t.timeUs),
  };
}

/**
 * A `ticker`, sent on a trade: its price, size and id, the TAKER's side (the real ticker and match of one trade
 * disagree on `side`), the best bid and ask after it with their sizes (today's feed adds the sizes; the 2021 capture
 * has none), and the 24 h statistics.
 */
export function exchangeTickerFrame(
  productId: string,
  s: TickerStats,
  volume30dUnits: number,
  bid: BookLevel | undefined,
  ask: BookLevel | undefined,
  t: SimTrade,
  sequence: number,
  tickUnits: number,
) {
  const price = (ticks: number) => exchangePrice(ticks, tickUnits);
  return {
    type: 'ticker',
    sequence,
    product_id: productId,
    price: price(t.priceTicks),
    open_24h: price(s.open24Ticks),
    volume_24h: exchangeSize(s.volumeUnits),
    low_24h: price(s.low24Ticks),
    high_24h: price(s.high24Ticks),
    volume_30d: exchangeSize(volume30dUnits),
    best_bid: bid ? price(bid.priceTicks) : '',
    best_bid_size: bid ? exchangeSize(bid.qtyUnits) : '',
    best_ask: ask ? price(ask.priceTicks) : '',
    best_ask_size: ask ? exchangeSize(ask.qtyUnits) : '',
    side: t.aggressor,
    time: exchangeTime(t.timeUs),
    trade_id: t.tradeId,
    last_size: exchangeSize(t.sizeUnits),
  };
}

/** The per-product heartbeat: the product's sequence and last trade id now. */
export function heartbeatFrame(productId: string, sequence: number, lastTradeId: number, timeUs: number) {
  return {
    type: 'heartbeat',
    sequence,
    last_trade_id: lastTradeId,
    product_id: productId,
    time: exchangeTime(timeUs),
  };
}
