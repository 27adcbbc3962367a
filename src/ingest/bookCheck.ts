/**
 * The book check (#17): every BOOK_CHECK_S (± jitter) per product the ingestor fetches the exchange's own book over
 * REST and puts it into the product's stream as a `book_check` event (src/stream/record.ts), so the worker compares
 * its book with it at that point of the stream (src/book/verify.ts).
 *
 * - Advanced Trade: public `GET /api/v3/brokerage/market/product_book?product_id=&limit=` answers
 *   `{pricebook: {product_id, bids: [{price, size}], asks, time}, last, mid_market, ...}`; no sequence (seq -1).
 * - Exchange: `GET /products/{id}/book?level=2` answers `{bids: [[price, size, num_orders]], asks, sequence, time,
 *   auction_mode, auction}` with the whole aggregated book; the first `depth` levels a side are kept. While
 *   `auction_mode` is true the book may be crossed and is no trading book: the check is skipped (nothing published).
 *
 * Every request of every product goes through ONE RequestLimiter: Coinbase allows 10 public requests a second
 * per IP; a 429 holds the whole limiter for its Retry-After. A check that fails (HTTP error, 429, timeout,
 * network error, malformed body) is still published, with `unavailable` saying why and no levels, so the worker's
 * verification state says so; the product is then retried sooner, with capped jittered backoff (1 s doubling,
 * capped at BOOK_CHECK_S). A failed check is never a reason to resync: only the worker's verdict is
 * (src/ingest/verdictPoller.ts).
 *
 * Timers run on an injected Clock (tests: FakeClock), the request timeout included.
 */
import * as z from 'zod';
import { type Clock, systemClock } from '../clock.js';
import type { FeedKind } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { describeError, type Logger } from '../log.js';
import { DecimalError, isZeroDecimal, normalizeDecimal } from '../marketdata/decimal.js';
import { isoToMicros } from '../marketdata/events.js';
import type { BookCheckEvent } from '../stream/record.js';
import { FEED } from '../telemetry/catalog.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { RecordTooLargeError } from './producer.js';
import { SlidingWindow } from './rateLimit.js';

export type BookSource = BookCheckEvent['source'];

/** The REST endpoint that serves the book of a feed's protocol. */
export function bookSourceOf(kind: FeedKind): BookSource {
  return kind === 'exchange' ? 'exchange' : 'advanced_trade';
}

/**
 * Requests per second the limiter lets through: Coinbase's public REST limit is 10 per second per IP; 8 keeps a
 * margin for their window not being ours.
 */
export const BOOK_REST_MAX_PER_S = 8;
/** A Retry-After longer than this is taken as this (a broken header must not stop the checks for days). */
export const MAX_RETRY_AFTER_MS = 3_600_000;
/** First retry after a failed check; it doubles per failure, up to BOOK_CHECK_S. */
export const RETRY_BASE_MS = 1000;
/** While the feed is down (or another ingestor holds the lease) a due check looks again this often. */
export const INACTIVE_RECHECK_MS = 1000;

/** A REST answer that is not a book of the product asked for. */
export class BookParseError extends QuoteWatchError {}

/** A parsed REST book: levels normalized, best first, at most `depth` a side. */
export interface RestBook {
  exchUs: number;
  seq: number;
  bids: [string, string][];
  asks: [string, string][];
  /** Exchange: the book is in an auction (not a trading book). */
  auction: boolean;
}

const AdvancedTradeAnswer = z.object({
  pricebook: z.object({
    product_id: z.string(),
    bids: z.array(z.unknown()),
    asks: z.array(z.unknown()),
    time: z.string(),
  }),
});
const AdvancedTradeLevel = z.object({ price: z.string(), size: z.string() });

const ExchangeAnswer = z.object({
  bids: z.array(z.unknown()),
  asks: z.array(z.unknown()),
  sequence: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  time: z.string(),
  auction_mode: z.boolean().nullish(),
});
/** [price, size, num_orders]: the order count is not compared. */
const ExchangeLevel = z.tuple([z.string(), z.string()], z.unknown());

function issues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
    .join('; ');
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new BookParseError(`not JSON: ${JSON.stringify(body.slice(0, 80))}`);
  }
}

function timeOf(iso: string): number {
  try {
    return isoToMicros(iso);
  } catch {
    throw new BookParseError(`time: not an RFC 3339 time: ${JSON.stringify(iso.slice(0, 60))}`);
  }
}

/**
 * One side's first `depth` levels, normalized, checked best first (bids falling, asks rising) and with a size:
 * a book out of order or with an empty level is not one the worker could be compared with.
 */
function side(
  raw: unknown[],
  depth: number,
  which: 'bids' | 'asks',
  level: (v: unknown) => [string, string],
): [string, string][] {
  const out: [string, string][] = [];
  let previous: number | undefined;
  for (const [i, entry] of raw.slice(0, depth).entries()) {
    let price: string;
    let size: string;
    try {
      [price, size] = level(entry).map(normalizeDecimal) as [string, string];
    } catch (err) {
      if (err instanceof DecimalError) throw new BookParseError(`${which}.${i}: ${err.message}`);
      if (err instanceof z.ZodError) throw new BookParseError(`${which}.${i}: ${issues(err)}`);
      throw err;
    }
    if (isZeroDecimal(size)) throw new BookParseError(`${which}.${i}: level ${price} has size 0`);
    const p = Number(price);
    if (previous !== undefined && (which === 'bids' ? p >= previous : p <= previous)) {
      throw new BookParseError(`${which}.${i}: ${price} is out of order (best first expected)`);
    }
    previous = p;
    out.push([price, size]);
  }
  return out;
}

/** Parses Advanced Trade's public product book of `product` (throws BookParseError). */
export function parseAdvancedTradeBook(body: string, product: string, depth: number): RestBook {
  const parsed = AdvancedTradeAnswer.safeParse(parseJson(body));
  if (!parsed.success) throw new BookParseError(issues(parsed.error));
  const book = parsed.data.pricebook;
  if (book.product_id !== product) {
    throw new BookParseError(`pricebook.product_id: ${JSON.stringify(book.product_id)}, asked ${product}`);
  }
  const level = (v: unknown): [string, string] => {
    const { price, size } = AdvancedTradeLevel.parse(v);
    return [price, size];
  };
  return {
    exchUs: timeOf(book.time),
    seq: -1,
    bids: side(book.bids, depth, 'bids', level),
    asks: side(book.asks, depth, 'asks', level),
    auction: false,
  };
}

/** Parses the Exchange's level-2 book (the first `depth` levels a side; throws BookParseError). */
export function parseExchangeBook(body: string, depth: number): RestBook {
  const parsed = ExchangeAnswer.safeParse(parseJson(body));
  if (!parsed.success) throw new BookParseError(issues(parsed.error));
  const book = parsed.data;
  const level = (v: unknown): [string, string] => {
    const [price, size] = ExchangeLevel.parse(v);
    return [price, size];
  };
  const auction = book.auction_mode === true;
  return {
    exchUs: timeOf(book.time),
    seq: book.sequence,
    // An auction's book may be crossed: it is skipped, not checked for order.
    bids: auction ? [] : side(book.bids, depth, 'bids', level),
    asks: auction ? [] : side(book.asks, depth, 'asks', level),
    auction,
  };
}

/** The URL of one product's book. */
export function bookUrl(source: BookSource, restUrl: string, product: string, depth: number): string {
  const id = encodeURIComponent(product);
  return source === 'exchange'
    ? `${restUrl}/products/${id}/book?level=2`
    : `${restUrl}/api/v3/brokerage/market/product_book?product_id=${id}&limit=${depth}`;
}

/** Retry-After (seconds, or an HTTP date) in ms from `nowMs`; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, nowMs: number): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const text = header.trim();
  const ms = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : Date.parse(text) - nowMs;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.round(ms)));
}

/**
 * At most `perS` requests in any 1 s window (src/ingest/rateLimit.ts SlidingWindow), shared by every product's
 * checks; `hold` stops every request for a while (a 429's Retry-After: the limit is per IP, not per product).
 */
export class RequestLimiter {
  private readonly window: SlidingWindow;
  private heldUntil = Number.NEGATIVE_INFINITY;

  constructor(
    readonly perS: number = BOOK_REST_MAX_PER_S,
    private readonly clock: Clock = systemClock,
  ) {
    this.window = new SlidingWindow(perS, 1000);
  }

  /** Waits for a slot; false when `signal` aborted first. */
  async acquire(signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      if (signal?.aborted) return false;
      const now = this.clock.now();
      const wait = Math.max(this.heldUntil - now, this.window.waitFor(now, 1));
      if (wait <= 0) {
        this.window.add(now, 1);
        return true;
      }
      await this.clock.sleep(wait, signal);
    }
  }

  /** No request for the next `ms`. */
  hold(ms: number): void {
    this.heldUntil = Math.max(this.heldUntil, this.clock.now() + ms);
  }
}

/** Why a fetch gave no book: the metric's Reason. */
export type FailureKind = 'http' | 'throttled' | 'timeout' | 'malformed' | 'network' | 'too_large';

/** What one check did. */
export type CheckOutcome =
  | { kind: 'book'; event: BookCheckEvent }
  | { kind: 'skipped'; why: string }
  | { kind: 'unavailable'; failure: FailureKind; event: BookCheckEvent; retryAfterMs?: number };

export interface BookCheckerOptions {
  products: readonly string[];
  source: BookSource;
  /** The REST base (BOOK_REST_URL): scheme, host and port. */
  restUrl: string;
  /** Seconds between two checks of a product; 0 = off (start() does nothing). */
  everyS: number;
  /** Levels asked per side. */
  depth: number;
  /** Each period is everyS x (1 ± jitter). */
  jitter: number;
  timeoutMs: number;
  /** Puts the event into the product's stream (Ingestor.publishBookCheck: its producer, its ids). */
  publish: (event: BookCheckEvent) => Promise<void>;
  /** The ingestor's exchange clock (src/ingest/exchangeClock.ts): a failed check's time. */
  exchangeNowUs?: () => number | undefined;
  /** Checks run only while this says so (the feed is up, this ingestor holds the book-check lease). */
  active?: () => boolean;
  /** Shared by every checker of the process; default: one of its own at BOOK_REST_MAX_PER_S. */
  limiter?: RequestLimiter;
  clock?: Clock;
  /** Jitter source in [0, 1). */
  random?: () => number;
  fetch?: typeof fetch;
  /**
   * Wall clock, epoch µs: a check's recvUs, read when the answer is in hand and the event goes into the stream
   * (nothing runs in between), so every event before it in the stream was received before it.
   */
  wallUs?: () => number;
  log: Logger;
  telemetry?: Telemetry;
}

/** Per product a loop: wait its period, fetch, parse, publish; a failure publishes why and retries sooner. */
export class BookChecker {
  readonly counters = { books: 0, unavailable: 0, skipped: 0 };
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly limiter: RequestLimiter;
  private readonly telemetry: Telemetry;
  private readonly stopped = new AbortController();
  private loops: Promise<void>[] = [];

  constructor(private readonly o: BookCheckerOptions) {
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? Math.random;
    this.limiter = o.limiter ?? new RequestLimiter(BOOK_REST_MAX_PER_S, this.clock);
    this.telemetry = o.telemetry ?? new Telemetry({ service: 'ingestor' });
    for (const result of ['book', 'unavailable', 'skipped'] as const) {
      this.telemetry.declare(FEED.bookChecks, { Result: result });
    }
  }

  get enabled(): boolean {
    return this.o.everyS > 0 && this.o.products.length > 0;
  }

  start(): void {
    if (!this.enabled || this.loops.length > 0) return;
    this.loops = this.o.products.map((p) => this.run(p));
    this.o.log('info', 'book checks started', {
      products: this.o.products,
      everyS: this.o.everyS,
      depth: this.o.depth,
      source: this.o.source,
      restUrl: this.o.restUrl,
    });
  }

  /** Ends every loop (a fetch in flight is aborted, nothing more is published). */
  async stop(): Promise<void> {
    this.stopped.abort();
    await Promise.all(this.loops);
  }

  /** The next period: everyS x (1 ± jitter). */
  periodMs(): number {
    return Math.round(this.o.everyS * 1000 * (1 + this.o.jitter * (2 * this.random() - 1)));
  }

  /** After `failures` failed checks in a row: 1 s doubling, capped at everyS, equal jitter (half to all of it). */
  retryMs(failures: number): number {
    const base = Math.min(this.o.everyS * 1000, RETRY_BASE_MS * 2 ** Math.min(failures - 1, 30));
    return Math.round(base / 2 + (this.random() * base) / 2);
  }

  private async run(product: string): Promise<void> {
    const signal = this.stopped.signal;
    // The first checks spread over one period, so the products do not all ask at once.
    let delayMs = Math.round(this.random() * this.o.everyS * 1000);
    let failures = 0;
    while (!signal.aborted) {
      await this.clock.sleep(delayMs, signal);
      if (signal.aborted) break;
      if (this.o.active && !this.o.active()) {
        delayMs = INACTIVE_RECHECK_MS;
        continue;
      }
      let outcome: CheckOutcome | undefined;
      try {
        outcome = await this.check(product, signal);
      } catch (err) {
        // The producer failed for good: the ingestor reports it (onFatal); this loop ends.
        this.o.log('error', 'book check not published: stopping its loop', {
          product,
          error: describeError(err),
        });
        return;
      }
      if (outcome === undefined) break; // stopped
      if (outcome.kind === 'unavailable') {
        failures++;
        delayMs = Math.max(this.retryMs(failures), outcome.retryAfterMs ?? 0);
      } else {
        failures = 0;
        delayMs = this.periodMs();
      }
    }
  }

  /**
   * One check of `product`: waits for the limiter, fetches, publishes what it got (a book, or why there is none).
   * Undefined when `signal` aborted first (nothing published).
   */
  async check(product: string, signal?: AbortSignal): Promise<CheckOutcome | undefined> {
    const { source, depth } = this.o;
    const outer = signal ?? this.stopped.signal;
    if (!(await this.limiter.acquire(outer))) return undefined;
    const url = bookUrl(source, this.o.restUrl, product, depth);
    const started = this.clock.now();
    const fetched = await this.fetchBody(url, outer);
    if (fetched === undefined) return undefined;
    const wallUs = this.o.wallUs ?? (() => Date.now() * 1000);
    this.telemetry.timing(FEED.bookCheckMs, this.clock.now() - started);

    let failure: { kind: FailureKind; reason: string; retryAfterMs?: number };
    if ('failure' in fetched) {
      failure = fetched.failure;
    } else {
      try {
        const book =
          source === 'exchange'
            ? parseExchangeBook(fetched.body, depth)
            : parseAdvancedTradeBook(fetched.body, product, depth);
        if (book.auction) {
          this.counters.skipped++;
          this.telemetry.count(FEED.bookChecks, 1, { Result: 'skipped' });
          this.o.log('debug', 'book check skipped: the product is in an auction', { product });
          return { kind: 'skipped', why: 'auction_mode' };
        }
        const event: BookCheckEvent = {
          type: 'book_check',
          product,
          exchUs: book.exchUs,
          recvUs: wallUs(),
          seq: book.seq,
          source,
          depth,
          bids: book.bids,
          asks: book.asks,
        };
        await this.o.publish(event);
        this.counters.books++;
        this.telemetry.count(FEED.bookChecks, 1, { Result: 'book' });
        return { kind: 'book', event };
      } catch (err) {
        // A book over the producer's record limit (PRODUCER_MAX_BYTES_PER_S can set it under a deep check's size):
        // this check is unavailable, the next ones are tried all the same.
        if (err instanceof RecordTooLargeError)
          failure = { kind: 'too_large', reason: `too large to publish: ${err.message}` };
        else if (err instanceof BookParseError)
          failure = { kind: 'malformed', reason: `malformed answer: ${err.message}` };
        else throw err;
      }
    }
    const recvUs = wallUs();
    const event: BookCheckEvent = {
      type: 'book_check',
      product,
      exchUs: this.o.exchangeNowUs?.() ?? recvUs,
      recvUs,
      seq: -1,
      source,
      depth,
      bids: [],
      asks: [],
      unavailable: failure.reason.slice(0, 500),
    };
    this.o.log('warn', 'book check unavailable', { product, url, reason: event.unavailable });
    await this.o.publish(event);
    this.counters.unavailable++;
    this.telemetry.count(FEED.bookChecks, 1, { Result: 'unavailable' });
    this.telemetry.count(FEED.bookCheckFailures, 1, { Reason: failure.kind });
    return {
      kind: 'unavailable',
      failure: failure.kind,
      event,
      ...(failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}),
    };
  }

  /** GET `url` within timeoutMs (on the injected clock): the body of a 2xx answer, or why there is none. */
  private async fetchBody(
    url: string,
    outer: AbortSignal,
  ): Promise<
    { body: string } | { failure: { kind: FailureKind; reason: string; retryAfterMs?: number } } | undefined
  > {
    const timeout = new AbortController();
    const done = new AbortController();
    void this.clock.sleep(this.o.timeoutMs, done.signal).then(() => {
      if (!done.signal.aborted) timeout.abort();
    });
    const signal = AbortSignal.any([outer, timeout.signal]);
    try {
      const res = await (this.o.fetch ?? fetch)(url, {
        signal,
        headers: { accept: 'application/json', 'user-agent': 'quotewatch' },
      });
      const body = await res.text();
      if (res.status === 429) {
        const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), Date.now());
        if (retryAfterMs !== undefined) this.limiter.hold(retryAfterMs);
        const after = retryAfterMs === undefined ? '' : `, retry after ${retryAfterMs} ms`;
        return {
          failure: {
            kind: 'throttled',
            reason: `rate limited (HTTP 429${after})`,
            ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
          },
        };
      }
      if (!res.ok) {
        return {
          failure: {
            kind: 'http',
            reason: `HTTP ${res.status}: ${body.slice(0, 200).trim() || res.statusText}`,
          },
        };
      }
      return { body };
    } catch (err) {
      if (outer.aborted) return undefined;
      if (timeout.signal.aborted) {
        return { failure: { kind: 'timeout', reason: `no answer within ${this.o.timeoutMs} ms` } };
      }
      return { failure: { kind: 'network', reason: `network error: ${describeError(err)}` } };
    } finally {
      done.abort();
    }
  }
}
