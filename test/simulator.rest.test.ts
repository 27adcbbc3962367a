/**
 * The simulator's REST product book (Coinbase Advanced Trade `GET /api/v3/brokerage/market/product_book`) and the
 * lost-update fault: real HTTP (fetch) and real WebSocket clients against the simulator on 127.0.0.1. A client's
 * book is built from the frames it received with the production mapper and book, and compared with the REST book
 * by the production comparison (src/book/verify.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrderBook } from '../src/book/book.js';
import { compareBooks } from '../src/book/verify.js';
import { ConfigError, readSimulatorConfig } from '../src/config.js';
import { mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import { toUnits } from '../src/marketdata/decimal.js';
import { isoToMicros, type Level } from '../src/marketdata/events.js';
import { seedEpochUs } from '../src/simulator/exchange.js';
import { protoTime } from '../src/simulator/protocol.js';
import { DEFAULT_BOOK_LIMIT, MAX_BOOK_LIMIT, PRODUCT_BOOK_PATH } from '../src/simulator/rest.js';
import {
  type LostUpdateRecord,
  SimulatorError,
  type SimulatorServer,
  startSimulator,
} from '../src/simulator/server.js';
import { until } from './support/until.js';
import { connect, type TestClient } from './support/wsClient.js';

interface PriceBook {
  pricebook: {
    product_id: string;
    bids: { price: string; size: string }[];
    asks: { price: string; size: string }[];
    time: string;
  };
  last: string;
  mid_market: string;
  spread_bps: string;
  spread_absolute: string;
}

type Frame = Record<string, unknown> & { channel?: string; timestamp?: string; sequence_num?: number };

async function getBook(sim: SimulatorServer, query: string, init?: RequestInit) {
  const res = await fetch(`${sim.restUrl}${PRODUCT_BOOK_PATH}?${query}`, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

async function bookOf(sim: SimulatorServer, query: string): Promise<PriceBook> {
  const res = await getBook(sim, query);
  expect(res.status, res.text).toBe(200);
  return JSON.parse(res.text) as PriceBook;
}

const levels = (side: { price: string; size: string }[]): Level[] => side.map((l) => [l.price, l.size]);

async function subscribe(sim: SimulatorServer, products: string[], channels: string[]): Promise<TestClient> {
  const c = await connect(sim.url);
  for (const channel of channels) c.send({ type: 'subscribe', product_ids: products, channel });
  return c;
}

/** The book a client builds from the level2 frames it received (production mapper and book), at exchange time tUs. */
function clientBook(frames: readonly unknown[], product: string, tUs: number): OrderBook {
  const book = new OrderBook(product);
  for (const f of frames as Frame[]) {
    if (f.channel !== 'l2_data') continue;
    for (const e of mapAdvancedTradeFrame(JSON.stringify(f), 0).events) {
      if (e.product !== product) continue;
      if (e.type === 'book_snapshot') book.applySnapshot(e.bids, e.asks);
      else if (e.type === 'book_changes' && e.exchUs <= tUs)
        for (const c of e.changes) book.applyChange(c.side, c.price, c.size);
    }
  }
  return book;
}

/** Every level2 update of `product` received: (side, price, size, time). */
function updatesOf(frames: readonly unknown[], product: string) {
  return (frames as Frame[]).flatMap((f) => {
    if (f.channel !== 'l2_data') return [];
    return (f.events as { type: string; product_id: string; updates: Record<string, string>[] }[])
      .filter((e) => e.type === 'update' && e.product_id === product)
      .flatMap((e) =>
        e.updates.map((u) => ({
          side: u.side === 'bid' ? 'bid' : 'ask',
          price: u.price_level!,
          size: u.new_quantity!,
          timeUs: isoToMicros(u.event_time!),
        })),
      );
  });
}

const sequenceOf = (frames: readonly unknown[]) =>
  (frames as Frame[]).flatMap((f) => (typeof f.sequence_num === 'number' ? [f.sequence_num] : []));

describe('REST product book: shape, limit, errors (fast mode, no connection: the market at its start)', () => {
  let sim: SimulatorServer;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, seed: 31, mode: 'fast', restDelayMs: [0, 0] });
  });
  afterAll(async () => {
    await sim.close();
  });

  it('serves on the WebSocket port: restUrl is http://host:port of url', () => {
    expect(sim.restUrl).toBe(sim.url.replace(/^ws:/, 'http:'));
    expect(sim.restUrl).toBe(`http://127.0.0.1:${sim.port}`);
  });

  it('answers Coinbase`s shape: levels best first, decimal strings, the market figures of its best bid and ask', async () => {
    const body = await bookOf(sim, 'product_id=BTC-USD');
    expect(Object.keys(body).sort()).toEqual([
      'last',
      'mid_market',
      'pricebook',
      'spread_absolute',
      'spread_bps',
    ]);
    expect(Object.keys(body.pricebook)).toEqual(['product_id', 'bids', 'asks', 'time']);
    const { bids, asks } = body.pricebook;
    expect(body.pricebook.product_id).toBe('BTC-USD');
    expect([bids.length, asks.length]).toEqual([DEFAULT_BOOK_LIMIT, DEFAULT_BOOK_LIMIT]);
    for (const l of [...bids, ...asks]) {
      expect(Object.keys(l)).toEqual(['price', 'size']);
      expect(l.price).toMatch(/^\d+(\.\d*[1-9])?$/);
      expect(l.size).toMatch(/^\d+(\.\d*[1-9])?$/);
      expect(toUnits(l.size)).toBeGreaterThan(0);
    }
    const bidUnits = bids.map((l) => toUnits(l.price));
    const askUnits = asks.map((l) => toUnits(l.price));
    expect(bidUnits.every((p, i) => i === 0 || p < bidUnits[i - 1]!)).toBe(true);
    expect(askUnits.every((p, i) => i === 0 || p > askUnits[i - 1]!)).toBe(true);
    const [bb, ba] = [bidUnits[0]!, askUnits[0]!];
    expect(bb).toBeLessThan(ba);
    expect(toUnits(body.spread_absolute)).toBe(ba - bb);
    expect(Number(body.mid_market)).toBe((bb + ba) / 2 / 1e8);
    expect(Number(body.spread_bps)).toBeCloseTo(((ba - bb) / ((ba + bb) / 2)) * 1e4, 8);
    expect(toUnits(body.last)).toBeGreaterThan(0);
    // No connection has moved the market: the book is at the start, written as a protobuf timestamp.
    expect(body.pricebook.time).toBe(protoTime(seedEpochUs(31)));
    expect(body.pricebook.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$/);
  });

  it('is the book a WebSocket client gets in its snapshot at the same instant', async () => {
    const body = await bookOf(sim, 'product_id=ETH-USD&limit=40');
    const c = await subscribe(sim, ['ETH-USD'], ['level2']);
    const snapshot = await c.next<Frame>((f) => f.channel === 'l2_data');
    await c.close();
    const t = isoToMicros(body.pricebook.time);
    const book = clientBook([snapshot], 'ETH-USD', t);
    const cmp = compareBooks(
      book,
      { bids: levels(body.pricebook.bids), asks: levels(body.pricebook.asks) },
      40,
      () => false,
    );
    expect(cmp.differences).toEqual([]);
    expect(cmp.compared).toBe(80);
    expect(book.top('bid', 40)).toEqual(levels(body.pricebook.bids));
  });

  it('limit: that many levels per side, 0 the default; anything else a 400 naming it', async () => {
    const full = await bookOf(sim, 'product_id=BTC-USD');
    const five = await bookOf(sim, 'product_id=btc-usd&limit=5');
    expect(five.pricebook.bids).toEqual(full.pricebook.bids.slice(0, 5));
    expect(five.pricebook.asks).toEqual(full.pricebook.asks.slice(0, 5));
    expect((await bookOf(sim, 'product_id=BTC-USD&limit=0')).pricebook.bids).toHaveLength(DEFAULT_BOOK_LIMIT);
    expect((await bookOf(sim, `product_id=BTC-USD&limit=${MAX_BOOK_LIMIT}`)).pricebook.asks).toHaveLength(
      MAX_BOOK_LIMIT,
    );
    for (const bad of [String(MAX_BOOK_LIMIT + 1), '-1', 'abc', '1.5', '', '99999999999']) {
      const res = await getBook(sim, `product_id=BTC-USD&limit=${encodeURIComponent(bad)}`);
      expect(res.status, bad).toBe(400);
      const body = JSON.parse(res.text);
      expect(body.error).toBe('INVALID_ARGUMENT');
      expect(body.message).toMatch(/limit/);
      expect(body.error_details).toBe(body.message);
    }
  });

  it('unknown product 404, missing product 400, other paths 404, other methods 405: Coinbase-style JSON errors', async () => {
    const unknown = await getBook(sim, 'product_id=NOPE-USD');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toMatch(/application\/json/);
    expect(JSON.parse(unknown.text)).toEqual({
      error: 'NOT_FOUND',
      error_details: 'ProductID is invalid',
      message: 'ProductID is invalid',
    });
    const missing = await getBook(sim, 'limit=5');
    expect(missing.status).toBe(400);
    expect(JSON.parse(missing.text).message).toMatch(/product_id/);
    const aggregated = await getBook(sim, 'product_id=BTC-USD&aggregation_price_increment=1');
    expect(aggregated.status).toBe(400);
    for (const path of ['/', '/api/v3/brokerage/products/BTC-USD/book', `${PRODUCT_BOOK_PATH}/x`]) {
      const res = await fetch(`${sim.restUrl}${path}`);
      expect(res.status, path).toBe(404);
      expect((await res.json()).error).toBe('NOT_FOUND');
    }
    const post = await getBook(sim, 'product_id=BTC-USD', { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
  });

  it('counts every REST request', async () => {
    const before = sim.restRequests();
    await getBook(sim, 'product_id=BTC-USD&limit=1');
    await getBook(sim, 'product_id=NOPE-USD');
    await fetch(`${sim.restUrl}/elsewhere`).then((r) => r.text());
    expect(sim.restRequests()).toBe(before + 3);
  });
});

describe('REST product book against the live market (realtime)', () => {
  it('is the market at the instant the request is handled, between batches, and equals the book the feed builds there', async () => {
    const speed = 4;
    const sim = await startSimulator({ port: 0, seed: 32, mode: 'realtime', speed });
    const products = ['BTC-USD', 'ETH-USD'];
    const c = await subscribe(sim, products, ['level2', 'heartbeats']);
    try {
      await until(
        'both snapshots',
        () => c.received.filter((f) => (f as Frame).channel === 'l2_data').length >= 2,
      );
      let onABatch = 0;
      let lastT = 0;
      const rounds = 8;
      for (let i = 0; i < rounds; i++) {
        const product = products[i % 2]!;
        const limit = [50, 250, 7, 120][i % 4]!;
        const before = sim.simulatedNowUs();
        const body = await bookOf(sim, `product_id=${product}&limit=${limit}`);
        const arrived = sim.simulatedNowUs();
        const t = isoToMicros(body.pricebook.time);
        expect(t).toBeGreaterThanOrEqual(before);
        expect(t).toBeGreaterThan(lastT);
        lastT = t;
        // Sent at least restDelayMs[0] = 20 ms after it was taken (less 2 ms: timers count whole ms), on the market's clock.
        expect(arrived - t).toBeGreaterThanOrEqual((20 - 2) * 1000 * speed);
        // Every frame up to t has arrived once one after it has (frames go out in time order; heartbeats every 1 s).
        await until('a frame after the book`s time', () =>
          (c.received as Frame[]).some(
            (f) => typeof f.timestamp === 'string' && isoToMicros(f.timestamp) > t,
          ),
        );
        const book = clientBook(c.received, product, t);
        const cmp = compareBooks(
          book,
          { bids: levels(body.pricebook.bids), asks: levels(body.pricebook.asks) },
          limit,
          () => false,
        );
        expect(cmp.differences, `${product} at ${body.pricebook.time}`).toEqual([]);
        expect(cmp.compared).toBe(2 * limit);
        if (updatesOf(c.received, product).some((u) => u.timeUs === t)) onABatch++;
      }
      // A random instant, not a batch's time (a coincidence is possible, two are not plausible).
      expect(onABatch).toBeLessThanOrEqual(1);
      expect(sim.restRequests()).toBe(rounds);
    } finally {
      await c.close();
      await sim.close();
    }
  });

  it('restDelayMs: the answer goes out that long after the book was taken, on the simulator`s own clock', async () => {
    const sim = await startSimulator({ port: 0, seed: 33, mode: 'realtime', restDelayMs: [200, 200] });
    try {
      for (let i = 0; i < 3; i++) {
        const body = await bookOf(sim, 'product_id=BTC-USD&limit=1');
        const lag = sim.simulatedNowUs() - isoToMicros(body.pricebook.time);
        expect(lag).toBeGreaterThanOrEqual((200 - 2) * 1000);
      }
    } finally {
      await sim.close();
    }
    await expect(startSimulator({ port: 0, seed: 1, mode: 'fast', restDelayMs: [5, 1] })).rejects.toThrow(
      SimulatorError,
    );
  });
});

describe('REST faults', () => {
  let sim: SimulatorServer;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, seed: 34, mode: 'fast', restDelayMs: [0, 5] });
  });
  afterAll(async () => {
    await sim.close();
  });

  it('error: 500 with an error body; throttle: 429 with Retry-After; malformed: a 200 that is not JSON; each for `count` answers', async () => {
    sim.faults.rest('error', 2);
    sim.faults.rest('throttle');
    sim.faults.rest('malformed');
    const answers: Awaited<ReturnType<typeof getBook>>[] = [];
    for (let i = 0; i < 5; i++) answers.push(await getBook(sim, 'product_id=BTC-USD&limit=3'));
    expect(answers.map((a) => a.status)).toEqual([500, 500, 429, 200, 200]);
    expect(JSON.parse(answers[0]!.text).error).toBe('INTERNAL');
    expect(answers[2]!.headers.get('retry-after')).toBe('1');
    expect(JSON.parse(answers[2]!.text).error).toBe('RATE_LIMIT_EXCEEDED');
    expect(() => JSON.parse(answers[3]!.text)).toThrow(SyntaxError);
    expect(answers[3]!.text.startsWith('{"pricebook":{"product_id":"BTC-USD"')).toBe(true);
    expect(JSON.parse(answers[4]!.text).pricebook.bids).toHaveLength(3);
    expect(() => sim.faults.rest('error', 0)).toThrow(SimulatorError);
    expect(() => sim.faults.rest('nope' as 'error')).toThrow(SimulatorError);
  });

  it('timeout: the request is never answered (later ones are) until the client gives up', async () => {
    sim.faults.rest('timeout');
    const giveUp = new AbortController();
    let settled = false;
    const hanging = getBook(sim, 'product_id=BTC-USD', { signal: giveUp.signal }).finally(() => {
      settled = true;
    });
    await until('the server has the hanging request', () => sim.restRequests() > 0);
    const next = await getBook(sim, 'product_id=BTC-USD&limit=1');
    expect(next.status).toBe(200);
    expect(settled).toBe(false);
    giveUp.abort();
    await expect(hanging).rejects.toThrow(/abort/i);
  });

  it('a client that gives up while its answer waits out the delay costs nothing: later requests are answered', async () => {
    const slow = await startSimulator({ port: 0, seed: 36, mode: 'fast', restDelayMs: [300, 300] });
    try {
      const giveUp = new AbortController();
      const first = getBook(slow, 'product_id=BTC-USD', { signal: giveUp.signal });
      await until('the server has the request', () => slow.restRequests() === 1);
      giveUp.abort();
      await expect(first).rejects.toThrow(/abort/i);
      expect((await getBook(slow, 'product_id=BTC-USD&limit=1')).status).toBe(200);
    } finally {
      await slow.close();
    }
  });

  it('timeout: a request left hanging does not keep the server from closing', async () => {
    const own = await startSimulator({ port: 0, seed: 35, mode: 'fast' });
    own.faults.rest('timeout');
    const hanging = getBook(own, 'product_id=BTC-USD');
    await until('the server has the request', () => own.restRequests() === 1);
    await own.close();
    await expect(hanging).rejects.toThrow();
  });
});

/** Per (side, price), the last lost change not since healed by a later update the client received. */
function stillWrong(lost: LostUpdateRecord[], frames: readonly unknown[], product: string) {
  const updates = updatesOf(frames, product);
  const wrong = new Map<string, LostUpdateRecord>();
  for (const l of lost.filter((x) => x.product === product)) {
    const key = `${l.side} ${l.price}`;
    wrong.delete(key);
    if (!updates.some((u) => u.side === l.side && u.price === l.price && u.timeUs > l.timeUs))
      wrong.set(key, l);
  }
  return wrong;
}

describe('lost updates: a frame silently leaves one level change out', () => {
  it('the client`s book differs from the REST book at exactly the logged levels not since healed, with no sequence gap', async () => {
    const sim = await startSimulator({ port: 0, seed: 36, mode: 'fast', restDelayMs: [0, 0] });
    const c = await subscribe(sim, ['BTC-USD'], ['level2']);
    try {
      await until('the feed running', () => c.received.length > 200);
      let seenWrong = 0;
      for (let round = 0; round < 6; round++) {
        // Every connection, or only this one; BTC-USD is the default product (the first).
        if (round % 2 === 0) sim.faults.loseUpdate('BTC-USD');
        else sim.faults.on(1).loseUpdate();
        await until('the update lost', () => sim.lostUpdates().length === round + 1, { everyMs: 1 });
        sim.faults.goSilent();
        await until('every frame sent received', () => c.received.length === sim.framesSent(1));
        const body = await bookOf(sim, `product_id=BTC-USD&limit=${MAX_BOOK_LIMIT}`);
        const t = isoToMicros(body.pricebook.time);
        const lost = sim.lostUpdates();
        const last = lost.at(-1)!;
        expect(last).toMatchObject({ conn: 1, product: 'BTC-USD' });
        expect(last.timeUs).toBeLessThanOrEqual(t);
        // The frame at the lost change's time went out without it, and not empty.
        const sameTime = updatesOf(c.received, 'BTC-USD').filter((u) => u.timeUs === last.timeUs);
        expect(sameTime.length).toBeGreaterThan(0);
        expect(sameTime.some((u) => u.side === last.side && u.price === last.price)).toBe(false);

        const cmp = compareBooks(
          clientBook(c.received, 'BTC-USD', t),
          { bids: levels(body.pricebook.bids), asks: levels(body.pricebook.asks) },
          MAX_BOOK_LIMIT,
          () => false,
        );
        // Only levels within the depth returned are compared.
        const worst = {
          bid: toUnits(body.pricebook.bids.at(-1)!.price),
          ask: toUnits(body.pricebook.asks.at(-1)!.price),
        };
        const inDepth = (l: LostUpdateRecord) =>
          l.side === 'bid' ? toUnits(l.price) >= worst.bid : toUnits(l.price) <= worst.ask;
        const expected = [...stillWrong(lost, c.received, 'BTC-USD').values()].filter(inDepth);
        expect(
          cmp.differences.map((d) => `${d.side} ${d.price} exchange ${d.exchange}`).sort(),
          `round ${round}`,
        ).toEqual(expected.map((l) => `${l.side} ${l.price} exchange ${l.size}`).sort());
        seenWrong += expected.length;
        sim.faults.resume();
      }
      expect(seenWrong).toBeGreaterThan(0); // at least one check saw a level still wrong
      const seqs = sequenceOf(c.received);
      expect(seqs).toEqual(seqs.map((_, i) => i));
      expect(() => sim.faults.loseUpdate('NOPE-USD')).toThrow(SimulatorError);
    } finally {
      await c.close();
      await sim.close();
    }
  });

  it('lostUpdates option: one per connection every everyMs, at the same moments for the same seed', async () => {
    const durationMs = 60_000;
    const everyMs = 5_000;
    const run = async (seed: number) => {
      const sim = await startSimulator({ port: 0, seed, mode: 'fast', durationMs, lostUpdates: { everyMs } });
      const c = await subscribe(sim, ['BTC-USD', 'ETH-USD'], ['level2']);
      try {
        await until('the market over', () => sim.ended());
        await until('every frame received', () => c.received.length === sim.framesSent(1));
        const lost = sim.lostUpdates();
        for (const l of lost) {
          const sameTime = updatesOf(c.received, l.product).filter((u) => u.timeUs === l.timeUs);
          expect(sameTime.some((u) => u.side === l.side && u.price === l.price)).toBe(false);
        }
        const seqs = sequenceOf(c.received);
        expect(seqs).toEqual(seqs.map((_, i) => i));
        return { lost, anchorUs: seedEpochUs(seed) };
      } finally {
        await c.close();
        await sim.close();
      }
    };
    const a = await run(37);
    const b = await run(37);
    const other = await run(38);
    expect(b.lost).toEqual(a.lost);
    // One seeded moment in each 5 s window; the loss lands on the product's next frame from there.
    const windows = a.lost.map((l) => Math.floor((l.timeUs - a.anchorUs) / (everyMs * 1000)));
    expect(a.lost.length).toBeGreaterThanOrEqual(durationMs / everyMs - 1);
    expect(a.lost.length).toBeLessThanOrEqual(durationMs / everyMs);
    expect(new Set(windows).size).toBeGreaterThanOrEqual(durationMs / everyMs - 2);
    expect(new Set(a.lost.map((l) => l.product))).toEqual(new Set(['BTC-USD', 'ETH-USD']));
    expect(a.lost.every((l) => l.conn === 1)).toBe(true);
    const offsets = (r: typeof a) => r.lost.map((l) => l.timeUs - r.anchorUs);
    expect(offsets(other)).not.toEqual(offsets(a));
    await expect(
      startSimulator({ port: 0, seed: 1, mode: 'fast', lostUpdates: { everyMs: 0 } }),
    ).rejects.toThrow(SimulatorError);
  });
});

describe('simulator settings', () => {
  it('SIM_REST_DELAY_MS (min,max) and SIM_LOST_UPDATE_MS are read and validated, naming the variable', () => {
    expect(readSimulatorConfig({}).restDelayMs).toEqual([20, 300]);
    expect(readSimulatorConfig({}).lostUpdateEveryMs).toBe(0);
    expect(readSimulatorConfig({ SIM_REST_DELAY_MS: '5, 10' }).restDelayMs).toEqual([5, 10]);
    expect(readSimulatorConfig({ SIM_REST_DELAY_MS: '7' }).restDelayMs).toEqual([7, 7]);
    expect(readSimulatorConfig({ SIM_LOST_UPDATE_MS: '30000' }).lostUpdateEveryMs).toBe(30_000);
    for (const bad of ['10,5', 'abc', '1,2,3', '-1,5', '0,70000']) {
      expect(() => readSimulatorConfig({ SIM_REST_DELAY_MS: bad }), bad).toThrow(ConfigError);
      expect(() => readSimulatorConfig({ SIM_REST_DELAY_MS: bad })).toThrow(/SIM_REST_DELAY_MS/);
    }
    expect(() => readSimulatorConfig({ SIM_LOST_UPDATE_MS: '-1' })).toThrow(/SIM_LOST_UPDATE_MS/);
  });
});
