/**
 * The book check's ingestor side (src/ingest/bookCheck.ts): both REST shapes parsed and normalized, every failure
 * published as `unavailable` with its reason (produced by a real HTTP server on loopback), the schedule on a
 * FakeClock: periods jittered, retries capped and jittered, Retry-After honoured, one limiter for all products.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BOOK_REST_MAX_PER_S,
  BookChecker,
  type BookCheckerOptions,
  BookParseError,
  bookSourceOf,
  bookUrl,
  parseAdvancedTradeBook,
  parseExchangeBook,
  parseRetryAfter,
  RequestLimiter,
} from '../src/ingest/bookCheck.js';
import { KinesisProducer } from '../src/ingest/producer.js';
import type { Logger } from '../src/log.js';
import type { BookCheckEvent } from '../src/stream/record.js';
import { FEED } from '../src/telemetry/catalog.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import { FakeClock } from './support/clock.js';
import { until } from './support/until.js';

// Shaped as Coinbase answers them (docs.cdp.coinbase.com: Get Public Product Book; Exchange: Get product book).
const AT_BODY = JSON.stringify({
  pricebook: {
    product_id: 'BTC-USD',
    bids: [
      { price: '68923.66', size: '0.17189468' },
      { price: '68923.00', size: '0.05795895' },
      { price: '68922.99', size: '0.02177956' },
    ],
    asks: [
      { price: '68923.67', size: '0.16987193' },
      { price: '68926', size: '0.05800000' },
      { price: '68926.09', size: '0.01015616' },
    ],
    time: '2026-04-07T00:28:59.662782123Z',
  },
  last: '68923.665',
  mid_market: '68923.665',
  spread_bps: '0.001450880372',
  spread_absolute: '0.01',
});
const AT_TIME_US = Date.UTC(2026, 3, 7, 0, 28, 59) * 1000 + 662_782;

const exchangeBody = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    bids: [
      ['3135.14', '1.20000000', 3],
      ['3135.1', '0.48', 1],
      ['3134.99', '12.5', 7],
    ],
    asks: [
      ['3135.15', '0.73000000', 2],
      ['3135.20', '5', 4],
    ],
    sequence: 58735113229,
    auction_mode: false,
    auction: null,
    time: '2026-04-07T00:28:59.662782Z',
    ...over,
  });

describe('REST book parsers', () => {
  it('Advanced Trade: normalized levels best first, the book time in µs, no sequence, cut to the depth', () => {
    expect(parseAdvancedTradeBook(AT_BODY, 'BTC-USD', 2)).toEqual({
      exchUs: AT_TIME_US,
      seq: -1,
      bids: [
        ['68923.66', '0.17189468'],
        ['68923', '0.05795895'],
      ],
      asks: [
        ['68923.67', '0.16987193'],
        ['68926', '0.058'],
      ],
      auction: false,
    });
  });

  it('Exchange: [price, size, num_orders] levels normalized, its sequence, cut to the depth', () => {
    expect(parseExchangeBook(exchangeBody(), 50)).toEqual({
      exchUs: AT_TIME_US,
      seq: 58735113229,
      bids: [
        ['3135.14', '1.2'],
        ['3135.1', '0.48'],
        ['3134.99', '12.5'],
      ],
      asks: [
        ['3135.15', '0.73'],
        ['3135.2', '5'],
      ],
      auction: false,
    });
    expect(parseExchangeBook(exchangeBody(), 1).bids).toEqual([['3135.14', '1.2']]);
  });

  it('Exchange in an auction: flagged, its (possibly crossed) book not read', () => {
    const crossed = exchangeBody({ auction_mode: true, bids: [['10', '1', 1]], asks: [['9', '1', 1]] });
    expect(parseExchangeBook(crossed, 50)).toMatchObject({ auction: true, bids: [], asks: [] });
  });

  it.each([
    ['not JSON', '<html>502 Bad Gateway</html>', /not JSON/],
    ['no pricebook', '{"error":"NOT_FOUND"}', /pricebook/],
    [
      'another product',
      AT_BODY.replace('"product_id":"BTC-USD"', '"product_id":"ETH-USD"'),
      /product_id.*ETH-USD.*asked BTC-USD/,
    ],
    ['a bad time', AT_BODY.replace('2026-04-07T00:28:59.662782123Z', 'yesterday'), /time: not an RFC 3339/],
    ['a bad price', AT_BODY.replace('"68923.66"', '"NaN"'), /bids\.0: not a decimal number: "NaN"/],
    ['a negative size', AT_BODY.replace('"0.17189468"', '"-1"'), /bids\.0: not a decimal/],
    ['an empty level', AT_BODY.replace('"0.17189468"', '"0.000"'), /bids\.0: level 68923.66 has size 0/],
    ['bids out of order', AT_BODY.replace('"68923.00"', '"68999"'), /bids\.1: 68999 is out of order/],
    ['a level without size', AT_BODY.replace(',"size":"0.16987193"', ''), /asks\.0: size/],
  ])('Advanced Trade answer with %s is malformed, saying where', (_what, body, message) => {
    const parse = () => parseAdvancedTradeBook(body, 'BTC-USD', 50);
    expect(parse).toThrow(BookParseError);
    expect(parse).toThrow(message);
  });

  it.each([
    ['no sequence', exchangeBody({ sequence: undefined }), /sequence/],
    ['a level of one string', exchangeBody({ asks: [['3135.15']] }), /asks\.0/],
    [
      'asks out of order',
      exchangeBody({
        asks: [
          ['3136', '1', 1],
          ['3135.5', '1', 1],
        ],
      }),
      /asks\.1: 3135.5 is out/,
    ],
  ])('Exchange answer with %s is malformed', (_what, body, message) => {
    expect(() => parseExchangeBook(body, 50)).toThrow(message);
  });

  it('builds each endpoint and reads Retry-After as seconds or a date', () => {
    expect(bookUrl('advanced_trade', 'https://api.coinbase.com', 'BTC-USD', 50)).toBe(
      'https://api.coinbase.com/api/v3/brokerage/market/product_book?product_id=BTC-USD&limit=50',
    );
    expect(bookUrl('exchange', 'https://api.exchange.coinbase.com', 'ETH-USD', 50)).toBe(
      'https://api.exchange.coinbase.com/products/ETH-USD/book?level=2',
    );
    expect([bookSourceOf('advanced'), bookSourceOf('exchange')]).toEqual(['advanced_trade', 'exchange']);
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:05 GMT', 1000)).toBe(4000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(null, 0)).toBeUndefined();
    expect(parseRetryAfter('999999999', 0)).toBe(3_600_000);
  });
});

// --- against a real HTTP server ---------------------------------------------------------------------------

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];
const checkers: BookChecker[] = [];
afterEach(async () => {
  for (const c of checkers.splice(0)) await c.stop();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(handler: Handler): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const answer =
  (status: number, body: string, headers: Record<string, string> = {}): Handler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body);
  };

const quiet: Logger = () => {};

function checker(over: Partial<BookCheckerOptions> & Pick<BookCheckerOptions, 'restUrl'>) {
  const published: BookCheckEvent[] = [];
  const telemetry = new Telemetry({ service: 'ingestor' });
  const c = new BookChecker({
    products: ['BTC-USD'],
    source: 'advanced_trade',
    everyS: 10,
    depth: 50,
    jitter: 0.2,
    timeoutMs: 2000,
    publish: async (e) => {
      published.push(e);
    },
    exchangeNowUs: () => 1_775_000_000_000_000,
    wallUs: () => 1_775_000_000_500_000,
    clock: new FakeClock(),
    log: quiet,
    telemetry,
    ...over,
  });
  checkers.push(c);
  return { c, published, telemetry };
}

describe('BookChecker against a REST server on loopback', () => {
  it('publishes the book it got: levels, the book time, the depth asked, the source', async () => {
    const server = await serve(answer(200, AT_BODY));
    const { c, published, telemetry } = checker({ restUrl: server.url, depth: 2 });
    const outcome = await c.check('BTC-USD');
    expect(outcome?.kind).toBe('book');
    expect(server.requests).toEqual(['/api/v3/brokerage/market/product_book?product_id=BTC-USD&limit=2']);
    expect(published).toEqual([
      {
        type: 'book_check',
        product: 'BTC-USD',
        exchUs: AT_TIME_US,
        recvUs: 1_775_000_000_500_000,
        seq: -1,
        source: 'advanced_trade',
        depth: 2,
        bids: [
          ['68923.66', '0.17189468'],
          ['68923', '0.05795895'],
        ],
        asks: [
          ['68923.67', '0.16987193'],
          ['68926', '0.058'],
        ],
      },
    ]);
    expect(telemetry.value(FEED.bookChecks, { Result: 'book' })).toBe(1);
  });

  it('Exchange: the level-2 book with its sequence; in an auction nothing is published', async () => {
    let auction = false;
    const server = await serve((req, res) => answer(200, exchangeBody({ auction_mode: auction }))(req, res));
    const { c, published, telemetry } = checker({
      restUrl: server.url,
      source: 'exchange',
      products: ['ETH-USD'],
    });
    expect((await c.check('ETH-USD'))?.kind).toBe('book');
    expect(published[0]).toMatchObject({ source: 'exchange', seq: 58735113229, depth: 50 });
    auction = true;
    expect(await c.check('ETH-USD')).toEqual({ kind: 'skipped', why: 'auction_mode' });
    expect(published).toHaveLength(1);
    expect(server.requests).toEqual(['/products/ETH-USD/book?level=2', '/products/ETH-USD/book?level=2']);
    expect(telemetry.value(FEED.bookChecks, { Result: 'skipped' })).toBe(1);
  });

  it.each([
    [
      'an HTTP error',
      answer(503, '{"message":"service unavailable"}'),
      'http',
      /^HTTP 503: \{"message":"service unavailable"\}$/,
    ],
    [
      '429',
      answer(429, '{"message":"slow down"}', { 'retry-after': '7' }),
      'throttled',
      /^rate limited \(HTTP 429, retry after 7000 ms\)$/,
    ],
    [
      'a malformed body',
      answer(200, '{"pricebook":{"product_id":"BTC-USD"}}'),
      'malformed',
      /^malformed answer: pricebook\.bids/,
    ],
    [
      'a body that is not JSON',
      answer(200, 'upstream connect error'),
      'malformed',
      /^malformed answer: not JSON/,
    ],
  ])(
    "%s: published as unavailable with the reason, no levels, the exchange clock's time",
    async (_what, handler, kind, reason) => {
      const server = await serve(handler);
      const { c, published, telemetry } = checker({ restUrl: server.url, depth: 25 });
      const outcome = await c.check('BTC-USD');
      expect(outcome?.kind).toBe('unavailable');
      expect(outcome).toMatchObject({ failure: kind });
      expect(published).toHaveLength(1);
      expect(published[0]).toMatchObject({
        type: 'book_check',
        product: 'BTC-USD',
        exchUs: 1_775_000_000_000_000,
        seq: -1,
        depth: 25,
        bids: [],
        asks: [],
      });
      expect(published[0]!.unavailable).toMatch(reason);
      expect(telemetry.value(FEED.bookCheckFailures, { Reason: kind })).toBe(1);
      if (kind === 'throttled') expect(outcome).toMatchObject({ retryAfterMs: 7000 });
    },
  );

  it('a server that does not answer in time: unavailable after timeoutMs of the clock', async () => {
    const server = await serve(() => {}); // holds every request
    const clock = new FakeClock();
    const { c, published } = checker({ restUrl: server.url, clock, timeoutMs: 1500 });
    const outcome = c.check('BTC-USD');
    await until('the request reached the server', () => server.requests.length === 1);
    await clock.advance(1499);
    expect(published).toHaveLength(0);
    await clock.advance(1);
    expect(await outcome).toMatchObject({ kind: 'unavailable', failure: 'timeout' });
    expect(published[0]!.unavailable).toBe('no answer within 1500 ms');
  });

  it("a book over the producer's record limit: this check unavailable (too large), the checker goes on", async () => {
    // 50 levels a side (about 2.4 KB as a record); the failure record says why in a few hundred bytes.
    const level = (i: number) => ({ price: `${68_000 + i}.5`, size: '0.12345678' });
    const { pricebook } = JSON.parse(AT_BODY) as { pricebook: object };
    const deep = {
      pricebook: {
        ...pricebook,
        bids: Array.from({ length: 50 }, (_, i) => level(-i)),
        asks: Array.from({ length: 50 }, (_, i) => level(i + 1)),
      },
    };
    const server = await serve(answer(200, JSON.stringify(deep)));
    // The real producer's size check, with a limit under the book's size. The one stand-in of this file: a client
    // acknowledging what the producer sends (the fault is the producer's own refusal, before any stream is asked).
    const producer = new KinesisProducer({
      client: {
        send: async (command) => ({
          FailedRecordCount: 0,
          Records: (command.input.Records ?? []).map(() => ({ SequenceNumber: '1', ShardId: 'shardId-0' })),
          $metadata: {},
        }),
      },
      streamName: 'unused',
      maxRecordBytes: 1000,
    });
    const { c, published } = checker({
      restUrl: server.url,
      depth: 50,
      publish: async (e) => {
        await producer.put({ ...e, id: 'x' });
        published.push(e);
      },
    });
    const outcome = await c.check('BTC-USD');
    expect(outcome).toMatchObject({ kind: 'unavailable', failure: 'too_large' });
    expect(published).toHaveLength(1);
    expect(published[0]!.unavailable).toMatch(
      /^too large to publish: event x \(book_check, BTC-USD\) is \d+ bytes/,
    );
    expect(published[0]!.bids).toEqual([]);
    expect(await c.check('BTC-USD')).toMatchObject({ kind: 'unavailable', failure: 'too_large' });
    await producer.close();
  });

  it('nothing listening: a network error, unavailable', async () => {
    const server = await serve(answer(200, AT_BODY));
    const url = server.url;
    const s = servers.pop()!;
    await new Promise((r) => s.close(r));
    const { c, published } = checker({ restUrl: url });
    expect(await c.check('BTC-USD')).toMatchObject({ kind: 'unavailable', failure: 'network' });
    expect(published[0]!.unavailable).toMatch(/^network error: TypeError: fetch failed <- .*ECONNREFUSED/);
  });
});

// --- the schedule, on a FakeClock -------------------------------------------------------------------------
// Here `fetch` answers from memory: what is under test is when requests go out, not HTTP (above).

/** A fetch that records the clock's time of each request and answers what `reply` says. */
function memoryFetch(clock: FakeClock, reply: (url: string, n: number) => Response) {
  const calls: { at: number; url: string }[] = [];
  const f = (async (input: string | URL | Request) => {
    const url = String(input);
    calls.push({ at: clock.now(), url });
    return reply(url, calls.length - 1);
  }) as typeof fetch;
  return { fetch: f, calls };
}

/** Runs the clock to `to`, one wake-up at a time (each lets the woken check finish before the next). */
async function runTo(clock: FakeClock, to: number): Promise<void> {
  for (let next = clock.nextAt(); next !== undefined && next <= to; next = clock.nextAt()) {
    await clock.advanceTo(next);
  }
  await clock.advanceTo(to);
}

/** A random source cycling through `values`. */
const cycle = (values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe('BookChecker schedule', () => {
  it('checks every everyS x (1 ± jitter), the products spread over the first period', async () => {
    const clock = new FakeClock();
    const { fetch: f, calls } = memoryFetch(clock, () => new Response(AT_BODY));
    const { c, published } = checker({
      restUrl: 'http://rest',
      clock,
      fetch: f,
      everyS: 10,
      jitter: 0.2,
      random: cycle([0.05, 0.5, 0.95, 0.0, 0.999]),
    });
    c.start();
    await runTo(clock, 120_000);
    const times = calls.map((x) => x.at);
    expect(times[0]).toBeLessThan(10_000);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(10);
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(8000);
      expect(g).toBeLessThanOrEqual(12_000);
    }
    expect(new Set(gaps).size).toBeGreaterThan(1); // jittered, not a fixed period
    expect(published).toHaveLength(calls.length);
  });

  it('a failing product is retried sooner: 1 s doubling, equal jitter, capped at everyS, then back to the period', async () => {
    const clock = new FakeClock();
    const failures = 7;
    const { fetch: f, calls } = memoryFetch(clock, (_url, n) =>
      n < failures ? new Response('oops', { status: 500 }) : new Response(AT_BODY),
    );
    const { c, published } = checker({
      restUrl: 'http://rest',
      clock,
      fetch: f,
      everyS: 8,
      jitter: 0.2,
      random: cycle([0, 0.99, 0.5, 0.25]),
    });
    c.start();
    await runTo(clock, 60_000);
    const gaps = calls.slice(1, failures + 1).map((x, i) => x.at - calls[i]!.at);
    gaps.forEach((g, i) => {
      const base = Math.min(8000, 1000 * 2 ** i);
      expect(g, `retry ${i + 1}`).toBeGreaterThanOrEqual(base / 2);
      expect(g, `retry ${i + 1}`).toBeLessThanOrEqual(base);
    });
    expect(new Set(gaps.slice(0, 4).map((g, i) => g / 2 ** i)).size).toBeGreaterThan(1); // jittered
    expect(Math.max(...gaps)).toBeLessThanOrEqual(8000); // capped
    // Back to the period after a success.
    expect(calls[failures + 1]!.at - calls[failures]!.at).toBeGreaterThanOrEqual(6400);
    expect(published.slice(0, failures).every((e) => e.unavailable?.startsWith('HTTP 500'))).toBe(true);
    expect(published[failures]!.unavailable).toBeUndefined();
  });

  it('429 honours Retry-After, for every product: the limit is per IP', async () => {
    const clock = new FakeClock();
    const { fetch: f, calls } = memoryFetch(clock, (_url, n) =>
      n === 0 ? new Response('{}', { status: 429, headers: { 'retry-after': '30' } }) : new Response(AT_BODY),
    );
    const { c } = checker({
      restUrl: 'http://rest',
      clock,
      fetch: f,
      products: ['BTC-USD', 'ETH-USD'],
      everyS: 10,
      jitter: 0,
      random: cycle([0.1, 0.2]), // BTC-USD first at 1 s, ETH-USD at 2 s
    });
    c.start();
    await runTo(clock, 45_000);
    expect(calls[0]).toEqual({ at: 1000, url: expect.stringContaining('BTC-USD') });
    // ETH-USD was due at 2 s but waits for the hold; BTC-USD retries no sooner than Retry-After.
    expect(calls[1]!.at).toBe(31_000);
    const btcRetry = calls.slice(1).find((x) => x.url.includes('BTC-USD'))!;
    expect(btcRetry.at).toBeGreaterThanOrEqual(31_000);
  });

  it('one limiter for every product: never more than BOOK_REST_MAX_PER_S requests in any second', async () => {
    const clock = new FakeClock();
    const products = Array.from({ length: 30 }, (_, i) => `P${String(i).padStart(2, '0')}-USD`);
    const { fetch: f, calls } = memoryFetch(clock, (url) => {
      const id = new URL(url).searchParams.get('product_id')!;
      return new Response(AT_BODY.replace('"BTC-USD"', JSON.stringify(id)));
    });
    const { c, published } = checker({
      restUrl: 'http://rest',
      clock,
      fetch: f,
      products,
      everyS: 1,
      jitter: 0.2,
      random: cycle([0.3, 0.7, 0.1, 0.9, 0.5]),
    });
    c.start();
    await runTo(clock, 20_000);
    const times = calls.map((x) => x.at);
    for (const t of times) {
      expect(times.filter((u) => u > t - 1000 && u <= t).length).toBeLessThanOrEqual(BOOK_REST_MAX_PER_S);
    }
    // The limiter is what sets the pace: all the budget is used, and every product got its turn.
    expect(calls.length).toBeGreaterThanOrEqual(19 * BOOK_REST_MAX_PER_S);
    expect(new Set(published.map((e) => e.product))).toEqual(new Set(products));
    expect(published.every((e) => e.unavailable === undefined)).toBe(true);
  });

  it('checks nothing while inactive (feed down, another ingestor holds the lease), and stop() ends it', async () => {
    const clock = new FakeClock();
    const { fetch: f, calls } = memoryFetch(clock, () => new Response(AT_BODY));
    let active = false;
    const { c, published } = checker({
      restUrl: 'http://rest',
      clock,
      fetch: f,
      everyS: 5,
      active: () => active,
    });
    c.start();
    await runTo(clock, 30_000);
    expect(calls).toHaveLength(0);
    active = true;
    await runTo(clock, 31_000);
    expect(calls).toHaveLength(1);
    await c.stop();
    await runTo(clock, 120_000);
    expect(calls).toHaveLength(1);
    expect(published).toHaveLength(1);
    expect(clock.pending).toBe(0);
  });

  it('everyS 0 is off', async () => {
    const clock = new FakeClock();
    const { fetch: f, calls } = memoryFetch(clock, () => new Response(AT_BODY));
    const { c } = checker({ restUrl: 'http://rest', clock, fetch: f, everyS: 0 });
    c.start();
    expect(c.enabled).toBe(false);
    await runTo(clock, 60_000);
    expect(calls).toHaveLength(0);
  });
});

describe('RequestLimiter', () => {
  it('lets perS through in any 1 s window, and hold() stops all for its time', async () => {
    const clock = new FakeClock();
    const limiter = new RequestLimiter(3, clock);
    const at: number[] = [];
    const take = async () => {
      await limiter.acquire();
      at.push(clock.now());
    };
    const all = Promise.all(Array.from({ length: 7 }, take));
    await runTo(clock, 5000);
    await all;
    expect(at).toEqual([0, 0, 0, 1000, 1000, 1000, 2000]);
    limiter.hold(10_000);
    const later = take();
    await runTo(clock, 20_000);
    await later;
    expect(at.at(-1)).toBe(15_000);
  });
});
