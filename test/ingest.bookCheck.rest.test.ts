/**
 * The book check end to end on the ingestor's side: the exchange simulator (its WebSocket feed and its REST product
 * book on the same port, answering after 20-300 ms) -> the real Ingestor with its book check service
 * (startBookChecks, as containers/ingestor/main.ts runs it; the lease in dynalite) -> kinesalite. The stream gets
 * one book_check per check, in order with the WebSocket events, with the levels the simulator's REST book answered;
 * under each REST fault an `unavailable` check with its reason, no resync and nothing of the feed lost.
 * `fetch` is the real one, wrapped only to keep a copy of each answer the simulator sent.
 */
import { describe, expect, it } from 'vitest';
import { dynamoClient } from '../src/aws/clients.js';
import { parseAdvancedTradeBook } from '../src/ingest/bookCheck.js';
import { startBookChecks } from '../src/ingest/bookCheckService.js';
import type { Logger } from '../src/log.js';
import { normalizeDecimal } from '../src/marketdata/decimal.js';
import { TABLES } from '../src/resources.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { startSimulator } from '../src/simulator/server.js';
import type { BookCheckEvent, StreamEvent } from '../src/stream/record.js';
import { eventsOf, expectSimulatorBook, localIngestor, localProducer, PRODUCTS } from './support/ingest.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';

const local = withEmulators({ provision: true });
const DEPTH = 10;
/** The simulator's REST faults and the reason each must be published with. */
const FAULTS = [
  ['error', /^HTTP 500: \{"error":"INTERNAL"/],
  ['throttle', /^rate limited \(HTTP 429, retry after 1000 ms\)$/],
  ['malformed', /^malformed answer: not JSON/],
  ['timeout', /^no answer within 1500 ms$/],
] as const;
const isJson = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

describe('book checks from the simulator REST book into the stream', () => {
  it('one book_check per check, with the REST levels; each REST fault an unavailable check, no resync, no loss', async () => {
    const sim = await startSimulator({
      port: 0,
      seed: 29,
      mode: 'realtime',
      products: productSpecs(PRODUCTS, undefined, { levelsPerSide: 60 }),
      restDelayMs: [20, 300],
    });
    const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
    const log: Logger = (level, msg, fields) => lines.push({ level, msg, ...fields });
    const session = `r${Math.random().toString(36).slice(2, 8)}`;
    const ingestor = localIngestor(local.env, {
      feedUrl: sim.url,
      producer: localProducer(local.env, { lingerMs: 5 }),
      log,
      session,
      snapshotIntervalMs: 0,
    });
    // What the simulator answered, per product in request order (undefined: no body, a failure).
    const answered = new Map<string, (string | undefined)[]>(PRODUCTS.map((p) => [p, []]));
    let stopping = false;
    const observed: typeof fetch = async (input, init) => {
      const product = new URL(String(input)).searchParams.get('product_id')!;
      const slot = answered.get(product)!;
      const i = slot.push(undefined) - 1;
      try {
        const res = await fetch(input, init);
        const body = await res.text();
        if (res.ok) slot[i] = body;
        return new Response(body, { status: res.status, headers: res.headers });
      } catch (err) {
        if (stopping) slot.splice(i, 1); // cut short by stop(): not a check (nothing is published)
        throw err;
      }
    };
    ingestor.start();
    const service = startBookChecks({
      ingestor,
      products: PRODUCTS,
      config: {
        everyS: 1,
        depth: DEPTH,
        jitter: 0.2,
        timeoutMs: 1500,
        restUrl: sim.restUrl,
        verdictPollMs: 0,
      },
      latest: { client: dynamoClient(local.env), table: TABLES.latest.localName },
      log,
      fetch: observed,
    });
    const { checker } = service;
    try {
      await until('three checks of each product', () => checker.counters.books >= 3 * PRODUCTS.length);
      for (const [kind, reason] of FAULTS) {
        sim.faults.rest(kind, 1);
        await until(`an unavailable check under the ${kind} fault`, () =>
          lines.some((l) => l.msg === 'book check unavailable' && reason.test(String(l.reason))),
        );
      }
      const books = checker.counters.books;
      await until('checks again after the faults', () => checker.counters.books >= books + PRODUCTS.length);
    } finally {
      stopping = true;
      await service.stop();
      await ingestor.stop();
      await sim.close();
    }
    expect(ingestor.counters.resyncs).toBe(1); // the connection's own round, nothing for a failed check
    expect(ingestor.counters.droppedChanges).toBe(0);

    const checks: BookCheckEvent[] = [];
    for (const product of PRODUCTS) {
      const events: StreamEvent[] = await eventsOf(local.env, session, product);
      expect(new Set(events.map((e) => e.id)).size).toBe(events.length); // every event once
      expect(events.filter((e) => e.type === 'resync').map((e) => e.reason)).toEqual(['connect']);
      const mine = events.filter((e): e is StreamEvent & BookCheckEvent => e.type === 'book_check');
      // One per check asked, in the order asked.
      const asked = answered.get(product)!;
      expect(mine).toHaveLength(asked.length);
      mine.forEach((check, i) => {
        expect(check).toMatchObject({ product, source: 'advanced_trade', depth: DEPTH });
        const body = asked[i];
        if (check.unavailable !== undefined) {
          // No answer, an error status, or a 200 that is not a book.
          expect(body === undefined || !isJson(body), check.unavailable).toBe(true);
          expect([check.bids, check.asks]).toEqual([[], []]);
          return;
        }
        const book = parseAdvancedTradeBook(body!, product, DEPTH);
        expect([check.exchUs, check.bids, check.asks]).toEqual([book.exchUs, book.bids, book.asks]);
        const served = JSON.parse(body!) as { pricebook: { bids: { price: string }[] } };
        expect(check.bids[0]![0]).toBe(normalizeDecimal(served.pricebook.bids[0]!.price));
        expect(check.bids).toHaveLength(DEPTH);
        // The REST book is the market the feed sends: its best prices are the feed's at the book's time.
        const top = sim.topOfBookAtTime(product, check.exchUs);
        expect([check.bids[0]![0], check.asks[0]![0]]).toEqual([
          normalizeDecimal(top!.bestBid),
          normalizeDecimal(top!.bestAsk),
        ]);
      });
      // In order with the feed: everything before a check in the stream had arrived before the REST answer.
      events.forEach((e, i) => {
        if (e.type !== 'book_check') return;
        const before = events.slice(0, i).map((x) => x.recvUs);
        expect(Math.max(0, ...before)).toBeLessThanOrEqual(e.recvUs);
      });
      checks.push(...mine);
      // The feed lost nothing around the checks: the book rebuilt from the stream is the simulator's.
      await expectSimulatorBook(local.env, sim, sim.connections()[0], product, events);
    }
    const reasons = checks.flatMap((c) => (c.unavailable === undefined ? [] : [c.unavailable]));
    // Each fault once (a loaded machine may add a timeout of its own: the same reason, never another).
    for (const [kind, reason] of FAULTS) {
      expect(reasons.filter((r) => reason.test(r)).length, kind).toBeGreaterThanOrEqual(1);
    }
    for (const r of reasons)
      expect(
        FAULTS.some(([, reason]) => reason.test(r)),
        r,
      ).toBe(true);
    expect(reasons.filter((r) => !r.startsWith('no answer'))).toHaveLength(3);
    expect(lines.filter((l) => l.msg === 'book check unavailable')).toHaveLength(reasons.length);
  });
});

describe('two ingestors on the feed', () => {
  it('only the lease holder fetches; when it stops, the other takes over', async () => {
    const sim = await startSimulator({
      port: 0,
      seed: 31,
      mode: 'realtime',
      products: productSpecs(PRODUCTS, undefined, { levelsPerSide: 40 }),
      restDelayMs: [20, 100],
    });
    const log: Logger = () => {};
    const latest = { client: dynamoClient(local.env), table: TABLES.latest.localName };
    const lines = ['a', 'b'].map((name) => {
      const session = `${name}${Math.random().toString(36).slice(2, 7)}`;
      const ingestor = localIngestor(local.env, { feedUrl: sim.url, log, session, snapshotIntervalMs: 0 });
      ingestor.start();
      const service = startBookChecks({
        ingestor,
        products: PRODUCTS,
        config: { everyS: 1, depth: 5, jitter: 0.2, timeoutMs: 2000, restUrl: sim.restUrl, verdictPollMs: 0 },
        latest,
        log,
        lease: { leaseMs: 3000, renewMs: 1000 },
      });
      return { session, ingestor, service };
    });
    const books = () => lines.map((l) => l.service.checker.counters.books);
    try {
      await until('six checks', () => books()[0]! + books()[1]! >= 6);
      const holder = lines.findIndex((l) => l.service.lease!.held());
      const other = 1 - holder;
      expect(lines[other]!.service.lease!.held()).toBe(false);
      expect(lines[other]!.service.checker.counters).toEqual({ books: 0, unavailable: 0, skipped: 0 });
      // The holder stops (and gives the lease up): the other takes it at its next try and checks.
      await lines[holder]!.service.stop();
      await until('the other ingestor checking', () => books()[other]! >= 2);
      expect(lines[other]!.service.lease!.held()).toBe(true);
    } finally {
      for (const l of lines) {
        await l.service.stop();
        await l.ingestor.stop();
      }
      await sim.close();
    }
    for (const l of lines) {
      const events = (await Promise.all(PRODUCTS.map((p) => eventsOf(local.env, l.session, p)))).flat();
      const checks = events.filter((e) => e.type === 'book_check');
      expect(checks.length).toBe(l.service.checker.counters.books);
    }
  });
});
