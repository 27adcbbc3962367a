/**
 * The simulator's REST side: the exchange's own book that a client checks the book it built from the WebSocket feed
 * against (#17), in both of Coinbase's APIs — Advanced Trade's public product book
 * (`GET /api/v3/brokerage/market/product_book?product_id=BTC-USD&limit=50`) and the Exchange's level-2 book
 * (`GET /products/BTC-USD/book?level=2`).
 *
 * The book is the market's state at the instant the request is handled, not at a market batch: a SimExchange of
 * its own (same products, seed and start as every connection's Session, so the same market) is advanced to that
 * instant, and `pricebook.time` is the instant itself. It never touches a connection's Session, so no WebSocket
 * frame changes, and no connection's fault (a lost update) reaches it: it is the exchange's truth.
 *
 * Advanced Trade answers, shaped as Coinbase's (docs.cdp.coinbase.com, "Get Public Product Book"):
 *   200 `{"pricebook":{"product_id","bids":[{"price","size"}],"asks":[...],"time"},"last","mid_market",
 *        "spread_bps","spread_absolute"}`, levels best first, prices and sizes as the feed writes them;
 *   errors `{"error":"NOT_FOUND","error_details":"...","message":"..."}` (the gRPC-gateway style of Advanced Trade):
 *   404 unknown product or path, 400 a missing product_id or a bad limit, 405 a method other than GET.
 * `limit`: default 250 levels per side, at most 250 (what third-party clients document; Coinbase's page gives no
 * figure); 0 means the default (a protobuf int32 left unset), anything not a whole number in 0..250 is a 400
 * rather than silently clamped, so a client never mistakes a cut answer for the whole side.
 *
 * Exchange answers, shaped as Coinbase's (docs.cdp.coinbase.com/exchange, "Get product book"):
 *   200 `{"bids":[[price, size, num_orders]],"asks":[...],"sequence","auction_mode":false,"auction":null,"time"}`,
 *   prices and sizes written as the Exchange feed writes them (exchangeProtocol.ts), `sequence` the product's
 *   sequence at the book's time (the one its match, ticker and heartbeat messages carry); `level` 1 (the default)
 *   is the best bid and ask, 2 the whole aggregated book; level 3 (every order) is not simulated (a 400);
 *   errors `{"message":"..."}`: 404 unknown product (`NotFound`) or path, 400 a bad level, 405 a method other than GET.
 * The simulator's books have no orders, only aggregated levels: num_orders is a plausible count that grows with the
 * level's size (nothing compares it).
 */
import type { BookLevel, BookSide } from './book.js';
import { SimExchange } from './exchange.js';
import { exchangePrice, exchangeSize, exchangeTime } from './exchangeProtocol.js';
import type { Market, ProductSpec } from './market.js';
import { formatNumber, formatPrice, formatQty, protoTime } from './protocol.js';

export const PRODUCT_BOOK_PATH = '/api/v3/brokerage/market/product_book';
/** The Exchange's book of one product: `/products/{product_id}/book`. */
export const EXCHANGE_BOOK_PATH = /^\/products\/([^/]+)\/book$/;

/** Which API a path's book belongs to (its error bodies differ); undefined: not a book. */
export type RestDialect = 'advanced' | 'exchange';
export function bookDialect(pathname: string): RestDialect | undefined {
  if (pathname === PRODUCT_BOOK_PATH) return 'advanced';
  return EXCHANGE_BOOK_PATH.test(pathname) ? 'exchange' : undefined;
}
export const DEFAULT_BOOK_LIMIT = 250;
export const MAX_BOOK_LIMIT = 250;

/** What a REST fault makes of the next answers (SimulatorFaults.rest). */
export const REST_FAULTS = ['error', 'timeout', 'throttle', 'malformed'] as const;
export type RestFaultKind = (typeof REST_FAULTS)[number];

export interface RestAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' };

/** An Advanced Trade error answer. */
export function restError(status: number, error: string, message: string): RestAnswer {
  return { status, headers: JSON_TYPE, body: JSON.stringify({ error, error_details: message, message }) };
}

/** An Exchange error answer. */
export function exchangeRestError(status: number, message: string): RestAnswer {
  return { status, headers: JSON_TYPE, body: JSON.stringify({ message }) };
}

/** The answer a REST fault gives instead of the book (`book` is the answer it replaces), in that book's API. */
export function faultAnswer(
  kind: Exclude<RestFaultKind, 'timeout'>,
  book: RestAnswer,
  dialect: RestDialect = 'advanced',
): RestAnswer {
  const exchange = dialect === 'exchange';
  switch (kind) {
    case 'error':
      return exchange
        ? exchangeRestError(500, 'simulated internal error')
        : restError(500, 'INTERNAL', 'simulated internal error');
    case 'throttle':
      return {
        ...(exchange
          ? exchangeRestError(429, 'Public rate limit exceeded')
          : restError(429, 'RATE_LIMIT_EXCEEDED', 'Too many requests')),
        headers: { ...JSON_TYPE, 'retry-after': '1' },
      };
    case 'malformed':
      // A real answer cut in the middle: a 200 whose body does not parse.
      return { status: 200, headers: JSON_TYPE, body: book.body.slice(0, Math.floor(book.body.length / 2)) };
  }
}

interface PriceLevel {
  price: string;
  size: string;
}

export interface ProductBookResponse {
  pricebook: { product_id: string; bids: PriceLevel[]; asks: PriceLevel[]; time: string };
  last: string;
  mid_market: string;
  spread_bps: string;
  spread_absolute: string;
}

/** A decimal string for `n / 2` units of 1e-8 (a mid price can fall half a unit between two). */
function halfUnits(n: number): string {
  if (n % 2 === 0) return formatQty(n / 2);
  const whole = formatQty((n - 1) / 2);
  const [int, frac = ''] = whole.split('.');
  return `${int}.${frac.padEnd(8, '0')}5`;
}

/** The product book of `m` as it stands, taken at `timeUs`, `limit` levels per side. */
export function productBook(m: Market, timeUs: number, limit: number): ProductBookResponse {
  const side = (s: BookSide): PriceLevel[] =>
    m
      .levels(s)
      .slice(0, limit)
      .map((l) => ({ price: formatPrice(l.priceTicks, m.tickUnits), size: formatQty(l.qtyUnits) }));
  const bid = m.bestBid();
  const ask = m.bestAsk();
  const both = bid !== undefined && ask !== undefined;
  const spreadTicks = both ? ask.priceTicks - bid.priceTicks : 0;
  const midTicks2 = both ? ask.priceTicks + bid.priceTicks : 0;
  return {
    pricebook: { product_id: m.productId, bids: side('bid'), asks: side('ask'), time: protoTime(timeUs) },
    last: formatPrice(m.lastTradeTicks, m.tickUnits),
    mid_market: halfUnits(midTicks2 * m.tickUnits),
    spread_bps: both ? formatNumber((spreadTicks / (midTicks2 / 2)) * 10_000) : '0',
    spread_absolute: formatPrice(spreadTicks, m.tickUnits),
  };
}

/** [price, size, num_orders] as the Exchange writes a level. */
type ExchangeLevel = [string, string, number];

export interface ExchangeBookResponse {
  bids: ExchangeLevel[];
  asks: ExchangeLevel[];
  sequence: number;
  auction_mode: boolean;
  auction: null;
  time: string;
}

/** A plausible order count for an aggregated level: 1 for the smallest, one more per doubling of 0.01 units. */
const numOrders = (qtyUnits: number) => 1 + Math.floor(Math.log2(1 + qtyUnits / 1_000_000));

/** The Exchange's book of `m` as it stands, taken at `timeUs`: level 1 the best bid and ask, level 2 every level. */
export function exchangeBook(m: Market, timeUs: number, level: 1 | 2): ExchangeBookResponse {
  const side = (s: BookSide): ExchangeLevel[] => {
    const all: BookLevel[] =
      level === 1 ? [s === 'bid' ? m.bestBid() : m.bestAsk()].flatMap((l) => l ?? []) : m.levels(s);
    return all.map((l) => [
      exchangePrice(l.priceTicks, m.tickUnits),
      exchangeSize(l.qtyUnits),
      numOrders(l.qtyUnits),
    ]);
  };
  return {
    bids: side('bid'),
    asks: side('ask'),
    sequence: m.sequence,
    auction_mode: false,
    auction: null,
    time: exchangeTime(timeUs),
  };
}

/**
 * The REST endpoint's market: its own SimExchange, made on the first request and advanced to each request's time
 * (never back: a request for an earlier time, as when the furthest fast-mode connection closed, gets the book at
 * the latest time it served).
 */
export class RestMarket {
  private exchange: SimExchange | undefined;
  private nowUs: number;

  constructor(
    private readonly products: readonly ProductSpec[],
    private readonly seed: number,
    private readonly startUs: number,
  ) {
    this.nowUs = startUs;
  }

  /**
   * Keeps the market at `timeUs` once a request has made it (the realtime server calls this every round, so a
   * request finds it there instead of catching up on minutes of market while the feed waits).
   */
  advanceTo(timeUs: number): void {
    if (!this.exchange) return;
    this.nowUs = Math.max(this.nowUs, timeUs);
    this.exchange.advanceTo(this.nowUs, () => {});
  }

  /** The answer to one request handled at market time `timeUs` (before any delay or fault). */
  answer(method: string, url: URL, timeUs: number): RestAnswer {
    const exchangeId = EXCHANGE_BOOK_PATH.exec(url.pathname)?.[1];
    if (exchangeId !== undefined)
      return this.exchangeAnswer(method, decodeURIComponent(exchangeId), url, timeUs);
    if (url.pathname !== PRODUCT_BOOK_PATH)
      return restError(404, 'NOT_FOUND', `no route for ${url.pathname}`);
    if (method !== 'GET')
      return {
        ...restError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed, use GET`),
        headers: { ...JSON_TYPE, allow: 'GET' },
      };
    const productId = url.searchParams.get('product_id');
    if (!productId) return restError(400, 'INVALID_ARGUMENT', 'product_id is required');
    const rawLimit = url.searchParams.get('limit');
    let limit = DEFAULT_BOOK_LIMIT;
    if (rawLimit !== null) {
      if (!/^\d{1,9}$/.test(rawLimit) || Number(rawLimit) > MAX_BOOK_LIMIT)
        return restError(
          400,
          'INVALID_ARGUMENT',
          `limit must be a whole number from 0 to ${MAX_BOOK_LIMIT} (0: the default ${DEFAULT_BOOK_LIMIT}), got ${JSON.stringify(rawLimit)}`,
        );
      limit = Number(rawLimit) || DEFAULT_BOOK_LIMIT;
    }
    if (url.searchParams.has('aggregation_price_increment'))
      return restError(400, 'INVALID_ARGUMENT', 'aggregation_price_increment is not simulated');
    const m = this.marketAt(productId, timeUs);
    if (!m) return restError(404, 'NOT_FOUND', 'ProductID is invalid');
    return { status: 200, headers: JSON_TYPE, body: JSON.stringify(productBook(m, this.nowUs, limit)) };
  }

  /** `GET /products/{id}/book?level=1|2`. */
  private exchangeAnswer(method: string, productId: string, url: URL, timeUs: number): RestAnswer {
    if (method !== 'GET')
      return {
        ...exchangeRestError(405, `${method} is not allowed, use GET`),
        headers: { ...JSON_TYPE, allow: 'GET' },
      };
    const level = url.searchParams.get('level') ?? '1';
    if (level === '3') return exchangeRestError(400, 'level 3 (every order) is not simulated');
    if (level !== '1' && level !== '2')
      return exchangeRestError(400, `Invalid level ${JSON.stringify(level)}: expected 1, 2 or 3`);
    const m = this.marketAt(productId, timeUs);
    if (!m) return exchangeRestError(404, 'NotFound');
    return {
      status: 200,
      headers: JSON_TYPE,
      body: JSON.stringify(exchangeBook(m, this.nowUs, level === '1' ? 1 : 2)),
    };
  }

  /** The market of `productId` advanced to `timeUs` (undefined: no such product). */
  private marketAt(productId: string, timeUs: number): Market | undefined {
    this.exchange ??= new SimExchange(this.products, this.seed, this.startUs);
    const m = this.exchange.market(productId.toUpperCase());
    if (m) this.advanceTo(timeUs);
    return m;
  }
}
