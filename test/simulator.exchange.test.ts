/**
 * The simulator speaks the legacy Coinbase Exchange feed too (#17): real WebSocket clients on its /exchange path and
 * real HTTP on its Exchange REST book, fast mode unless said otherwise. What a client receives goes through the
 * project's own Exchange mapper (src/marketdata/exchange.ts), book and REST parser (src/ingest/bookCheck.ts); the
 * shapes are checked against the real capture when ../shared is present.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSimulatorLog } from '../src/audit/audit.js';
import { OrderBook } from '../src/book/book.js';
import { compareBooks } from '../src/book/verify.js';
import { feedKindOf, simulatorFeedUrl } from '../src/config.js';
import { BookChecker, BookParseError, parseExchangeBook } from '../src/ingest/bookCheck.js';
import { mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import { normalizeDecimal, toUnits } from '../src/marketdata/decimal.js';
import { isoToMicros, type MarketEvent, type TradeEvent } from '../src/marketdata/events.js';
import {
  EXCHANGE_CHANNELS,
  ExchangeFeedError,
  exchangeSubscribeMessage,
  MalformedExchangeFrameError,
  mapExchangeFrame,
} from '../src/marketdata/exchange.js';
import { productSpecs, seedEpochUs } from '../src/simulator/exchange.js';
import { exchangePrice, exchangeTime, fixedDecimal } from '../src/simulator/exchangeProtocol.js';
import { ExchangeSession, LEVEL2_BATCH_US } from '../src/simulator/exchangeSession.js';
import { RestMarket } from '../src/simulator/rest.js';
import { type SimulatorServer, startSimulator } from '../src/simulator/server.js';
import { type BookCheckEvent, levelKey } from '../src/stream/record.js';
import { describeCapture, receivedFrames } from './support/captures.js';
import { until } from './support/until.js';
import { connect, type TestClient } from './support/wsClient.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const SMALL = productSpecs(PRODUCTS, undefined, { levelsPerSide: 60 });

type Frame = Record<string, unknown> & { type?: string; product_id?: string };

async function exchangeClient(
  sim: SimulatorServer,
  products = PRODUCTS,
  channels: readonly (typeof EXCHANGE_CHANNELS)[number][] = EXCHANGE_CHANNELS,
): Promise<TestClient> {
  const c = await connect(sim.exchangeUrl);
  c.send(exchangeSubscribeMessage(products, channels));
  return c;
}

const frames = (c: TestClient) => c.received as Frame[];
const mapped = (f: Frame): MarketEvent[] => mapExchangeFrame(JSON.stringify(f), 0).events;

/** The book a client builds from Exchange frames (the production mapper and book), through frame `upTo`. */
function clientBook(received: readonly Frame[], product: string, upTo = received.length - 1): OrderBook {
  const book = new OrderBook(product);
  for (const f of received.slice(0, upTo + 1)) {
    if (f.product_id !== product) continue;
    for (const e of mapped(f)) {
      if (e.type === 'book_snapshot') book.applySnapshot(e.bids, e.asks);
      else if (e.type === 'book_changes')
        for (const c of e.changes) book.applyChange(c.side, c.price, c.size);
    }
  }
  return book;
}

/** A book's whole side as [price units, size units], best first. */
const sideOf = (book: OrderBook, side: 'bid' | 'ask') =>
  Array.from({ length: book.depth(side) }, (_, i) => [book.priceAt(side, i), book.sizeAt(side, i)]);

describe('the Exchange feed: subscribe, messages, the book it builds (fast mode)', () => {
  let sim: SimulatorServer;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, seed: 51, mode: 'fast', products: SMALL, subscribeTimeoutMs: 300 });
  });
  afterAll(async () => {
    await sim.close();
  });

  it('is served on /exchange of the same port, and FEED_URL names it', () => {
    expect(sim.exchangeUrl).toBe(`${sim.url}/exchange`);
    expect(simulatorFeedUrl(sim.port, 'exchange')).toBe(sim.exchangeUrl);
    expect(feedKindOf(sim.exchangeUrl)).toBe('exchange');
    expect(feedKindOf(sim.url)).toBe('advanced');
  });

  it('answers a subscribe as Coinbase does: subscriptions first, then each snapshot, last_match and ticker', async () => {
    const c = await connect(sim.exchangeUrl);
    // Channel names and a channel object with its own products, in one message.
    c.send({
      type: 'subscribe',
      product_ids: PRODUCTS,
      channels: ['level2_batch', 'matches', { name: 'ticker', product_ids: ['eth-usd'] }, 'heartbeat'],
    });
    await until('the first messages', () => c.received.length >= 40);
    await c.close();
    const f = frames(c);
    expect(f[0]).toEqual({
      type: 'subscriptions',
      channels: [
        { name: 'level2_batch', product_ids: PRODUCTS },
        { name: 'matches', product_ids: PRODUCTS },
        { name: 'ticker', product_ids: ['ETH-USD'] },
        { name: 'heartbeat', product_ids: PRODUCTS },
      ],
    });
    expect(f.slice(1, 6).map((x) => `${x.type} ${x.product_id}`)).toEqual([
      'snapshot BTC-USD',
      'snapshot ETH-USD',
      'last_match BTC-USD',
      'last_match ETH-USD',
      'ticker ETH-USD',
    ]);
    expect(f.filter((x) => x.type === 'ticker' && x.product_id === 'BTC-USD')).toEqual([]);
    // The ticker of the last trade is that trade's: same id and sequence as the last_match.
    const lastMatch = f[4]!;
    expect(f[5]).toMatchObject({ trade_id: lastMatch.trade_id, sequence: lastMatch.sequence });
  });

  it('the project`s Exchange mapper and book rebuild the simulator`s top of book at every level2 frame', async () => {
    const c = await exchangeClient(sim);
    await until('3000 messages', () => c.received.length >= 3000);
    await c.close();
    const conn = sim.connections().at(-1)!;
    const f = frames(c);
    const books = new Map(PRODUCTS.map((p) => [p, new OrderBook(p)]));
    const kinds = new Set<string>();
    let checked = 0;
    f.forEach((frame, i) => {
      const events = mapped(frame);
      for (const e of events) {
        kinds.add(e.type);
        const book = books.get(e.product)!;
        if (e.type === 'book_snapshot') book.applySnapshot(e.bids, e.asks);
        if (e.type === 'book_changes')
          for (const ch of e.changes) book.applyChange(ch.side, ch.price, ch.size);
      }
      if (frame.type !== 'snapshot' && frame.type !== 'l2update') return;
      const product = frame.product_id!;
      const book = books.get(product)!;
      expect(book.isCrossed()).toBe(false);
      // Frame i is the connection's i-th (the Exchange numbers none: the simulator counts them).
      const truth = sim.topOfBookAt(product, i, conn)!;
      const [bid] = book.top('bid', 1);
      const [ask] = book.top('ask', 1);
      expect([bid, ask], `${product} frame ${i}`).toEqual([
        [normalizeDecimal(truth.bestBid), normalizeDecimal(truth.bestBidQuantity)],
        [normalizeDecimal(truth.bestAsk), normalizeDecimal(truth.bestAskQuantity)],
      ]);
      checked++;
    });
    expect(checked).toBeGreaterThan(1500);
    expect([...kinds].sort()).toEqual(['book_changes', 'book_snapshot', 'heartbeat', 'ticker', 'trade']);
  });

  it('numbers each product`s match, ticker and heartbeat with one sequence; trade ids run without a gap', async () => {
    const c = await exchangeClient(sim);
    await until('3000 messages', () => c.received.length >= 3000);
    await c.close();
    for (const product of PRODUCTS) {
      const mine = frames(c).filter((x) => x.product_id === product);
      const matches = mine.filter((x) => x.type === 'match');
      expect(matches.length).toBeGreaterThan(20);
      const ids = matches.map((m) => m.trade_id as number);
      expect(ids).toEqual(ids.map((_, i) => ids[0]! + i));
      const seqs = matches.map((m) => m.sequence as number);
      expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!)).toBe(true);
      let last: Frame | undefined;
      let beats = 0;
      let tickers = 0;
      for (const x of mine) {
        if (x.type === 'match' || x.type === 'last_match') last = x;
        if (x.type === 'ticker') {
          // A ticker follows its trade's match and carries its sequence and id.
          expect(x).toMatchObject({ trade_id: last?.trade_id, sequence: last?.sequence, price: last?.price });
          expect(x.side).toBe(last?.side === 'sell' ? 'buy' : 'sell'); // taker side on the ticker, maker on the match
          tickers++;
        }
        if (x.type === 'heartbeat') {
          // The product's sequence now: at least its last match's (level changes count too); its last trade.
          expect(x.sequence as number).toBeGreaterThanOrEqual(last!.sequence as number);
          expect(x.last_trade_id).toBe(last!.trade_id);
          beats++;
        }
      }
      expect(beats).toBeGreaterThan(3);
      expect(tickers).toBeGreaterThan(10);
    }
  });

  it('unsubscribing level2_batch stops a product`s updates; subscribing again sends a fresh snapshot', async () => {
    const c = await exchangeClient(sim, PRODUCTS, ['level2_batch']);
    await until('updates', () => c.received.length >= 100);
    c.send(exchangeSubscribeMessage(['ETH-USD'], ['level2_batch'], 'unsubscribe'));
    c.send(exchangeSubscribeMessage(['ETH-USD'], ['level2_batch'], 'subscribe'));
    await until(
      'the second subscriptions',
      () => frames(c).filter((x) => x.type === 'subscriptions').length >= 3,
    );
    await until('more updates', () => c.received.length >= 400);
    await c.close();
    const f = frames(c);
    const [, off, on] = f.flatMap((x, i) => (x.type === 'subscriptions' ? [i] : []));
    expect(f[off!]).toEqual({
      type: 'subscriptions',
      channels: [{ name: 'level2_batch', product_ids: ['BTC-USD'] }],
    });
    expect(f.slice(off!, on!).filter((x) => x.product_id === 'ETH-USD')).toEqual([]);
    expect(f[on! + 1]).toMatchObject({ type: 'snapshot', product_id: 'ETH-USD' });
    // The book rebuilt from the second snapshot is the simulator's again.
    const conn = sim.connections().at(-1)!;
    const lastEth = f.findLastIndex((x) => x.product_id === 'ETH-USD');
    const truth = sim.topOfBookAt('ETH-USD', lastEth, conn)!;
    expect(clientBook(f, 'ETH-USD').top('bid', 1)[0]![0]).toBe(normalizeDecimal(truth.bestBid));
  });

  it('refuses bad subscribes with {"type":"error","message","reason"} and disconnects a silent client', async () => {
    const c = await connect(sim.exchangeUrl);
    const sends = [
      { type: 'subscribe', product_ids: ['NOPE-USD'], channels: ['ticker'] },
      { type: 'subscribe', product_ids: PRODUCTS },
      { type: 'subscribe', channels: ['heartbeat'] },
      { type: 'subscribe', product_ids: PRODUCTS, channels: ['level2'] },
      { type: 'subscribe', product_ids: PRODUCTS, channels: ['candles'] },
      { type: 'hello', product_ids: PRODUCTS, channels: ['ticker'] },
      '{not json',
      // Advanced Trade's form is not this feed's.
      { type: 'subscribe', product_ids: PRODUCTS, channel: 'level2' },
    ];
    for (const m of sends) c.send(m);
    await until('an answer to each', () => c.received.length >= sends.length);
    const errors = frames(c);
    expect(errors.map((e) => [e.type, e.message])).toEqual(sends.map(() => ['error', 'Failed to subscribe']));
    expect(errors.map((e) => Object.keys(e))).toEqual(sends.map(() => ['type', 'message', 'reason']));
    expect(errors.map((e) => e.reason)).toEqual([
      'NOPE-USD is not a valid product',
      'No channels provided',
      'You need to specify at least one product ID for channel heartbeat',
      expect.stringMatching(/level2 channel requires an authenticated connection/),
      'candles is not a valid channel',
      expect.stringMatching(/subscribe or unsubscribe/),
      'malformed JSON',
      'No channels provided',
    ]);
    // What the ingestor makes of one: a feed error carrying the reason.
    expect(() => mapExchangeFrame(JSON.stringify(errors[0]), 0)).toThrow(ExchangeFeedError);
    expect(() => mapExchangeFrame(JSON.stringify(errors[0]), 0)).toThrow(/NOPE-USD is not a valid product/);
    const { code } = await c.closed;
    expect(code).toBe(1008); // never subscribed: closed after subscribeTimeoutMs
  });
});

describe('one market, two protocols', () => {
  it('the same seed gives the same trades and level changes on the Advanced Trade and the Exchange feed', async () => {
    const anchorUs = Date.UTC(2026, 2, 3) * 1000;
    const durationMs = 60_000;
    const sim = await startSimulator({
      port: 0,
      seed: 52,
      mode: 'fast',
      products: SMALL,
      anchorUs,
      durationMs,
    });
    const advanced = await connect(sim.url);
    for (const channel of ['level2', 'market_trades'])
      advanced.send({ type: 'subscribe', product_ids: PRODUCTS, channel });
    const exchange = await exchangeClient(sim, PRODUCTS, ['level2_batch', 'matches']);
    try {
      await until('the market`s end on both', () => sim.ended());
    } finally {
      await advanced.close();
      await exchange.close();
      await sim.close();
    }
    // A cutoff on a 50 ms boundary: an Advanced change before it is in an Exchange batch published by it.
    const cutoffUs = anchorUs + (durationMs - 1000) * 1000;
    const events = (c: TestClient, map: (raw: string) => MarketEvent[]) =>
      (c.received as unknown[]).flatMap((f) => map(JSON.stringify(f)));
    const adv = events(advanced, (raw) => mapAdvancedTradeFrame(raw, 0).events);
    const exc = events(exchange, (raw) => mapExchangeFrame(raw, 0).events);
    const trade = (t: TradeEvent) =>
      `${t.product} ${t.tradeId} ${t.price} ${t.size} ${t.aggressor} ${t.exchUs}`;
    // Trades since the subscribe (the Advanced snapshot holds 100 old ones, last_match one).
    const trades = (es: MarketEvent[]) =>
      es
        .filter((e): e is TradeEvent => e.type === 'trade' && e.exchUs > anchorUs && e.exchUs < cutoffUs)
        .map(trade);
    expect(trades(adv).length).toBeGreaterThan(100);
    expect(trades(exc).sort()).toEqual(trades(adv).sort());
    for (const product of PRODUCTS) {
      const changes = (es: MarketEvent[], inRange: (us: number) => boolean) =>
        es.flatMap((e) =>
          e.type === 'book_changes' && e.product === product && inRange(e.exchUs)
            ? e.changes.map((c) => ({ key: `${c.side} ${c.price} ${c.size}`, us: e.exchUs }))
            : [],
        );
      const a = changes(adv, (us) => us < cutoffUs);
      const x = changes(exc, (us) => us <= cutoffUs);
      expect(a.length).toBeGreaterThan(1000);
      expect(x.map((c) => c.key)).toEqual(a.map((c) => c.key));
      // Each published with the 50 ms batch it fell in: after it, at most 50 ms later.
      x.forEach((c, i) => {
        expect(c.us).toBeGreaterThan(a[i]!.us);
        expect(c.us - a[i]!.us).toBeLessThanOrEqual(LEVEL2_BATCH_US);
        expect((c.us - anchorUs) % LEVEL2_BATCH_US).toBe(0);
      });
    }
  });
});

describe('Exchange sessions in process: the whole book, the sequence, the lost update', () => {
  const seed = 53;
  const startUs = seedEpochUs(seed);
  const subscribeAll = (s: ExchangeSession) =>
    s.handleMessage(exchangeSubscribeMessage(PRODUCTS)).map((f) => JSON.parse(f.text) as Frame);

  it('after every l2update the client`s whole book equals the market`s, and the REST book carries the heartbeat`s sequence', () => {
    const s = new ExchangeSession(SMALL, seed, startUs);
    const rest = new RestMarket(SMALL, seed, startUs);
    const received = subscribeAll(s);
    let compared = 0;
    let heartbeats = 0;
    for (let t = startUs; t <= startUs + 20e6; t += LEVEL2_BATCH_US) {
      const out = s.advanceTo(t).map((f) => JSON.parse(f.text) as Frame);
      received.push(...out);
      for (const product of PRODUCTS) {
        const m = s.exchange.market(product)!;
        const book = clientBook(received, product);
        for (const side of ['bid', 'ask'] as const)
          expect(sideOf(book, side)).toEqual(
            m.levels(side).map((l) => [l.priceTicks * m.tickUnits, l.qtyUnits]),
          );
        compared++;
      }
      for (const hb of out.filter((f) => f.type === 'heartbeat')) {
        const body = rest.answer('GET', new URL(`http://sim/products/${hb.product_id}/book?level=1`), t).body;
        expect(JSON.parse(body).sequence).toBe(hb.sequence);
        heartbeats++;
      }
    }
    expect(compared).toBe(2 * 401);
    expect(heartbeats).toBe(2 * 20);
  });

  it('a lost update: the frame goes out without one change, the client`s book is wrong at that level only until it changes again', () => {
    const s = new ExchangeSession(SMALL, seed, startUs);
    const clean = new ExchangeSession(SMALL, seed, startUs);
    const received = subscribeAll(s);
    const cleanReceived = subscribeAll(clean);
    const resubscribe = (session: ExchangeSession) =>
      [
        exchangeSubscribeMessage(['ETH-USD'], ['level2_batch'], 'unsubscribe'),
        exchangeSubscribeMessage(['ETH-USD'], ['level2_batch']),
      ].flatMap((m) => session.handleMessage(m).map((f) => JSON.parse(f.text) as Frame));
    let wrongSeen = 0;
    for (let round = 0; round < 5; round++) {
      s.loseUpdate('ETH-USD');
      for (let t = s.timeUs + LEVEL2_BATCH_US; s.lostUpdates.length <= round; t += LEVEL2_BATCH_US) {
        received.push(...s.advanceTo(t).map((f) => JSON.parse(f.text) as Frame));
        cleanReceived.push(...clean.advanceTo(t).map((f) => JSON.parse(f.text) as Frame));
      }
      // One more second: later batches may set the level again.
      received.push(...s.advanceTo(s.timeUs + 1e6).map((f) => JSON.parse(f.text) as Frame));
      cleanReceived.push(...clean.advanceTo(clean.timeUs + 1e6).map((f) => JSON.parse(f.text) as Frame));
      const lost = s.lostUpdates.at(-1)!;
      expect(lost.product).toBe('ETH-USD');
      // The same messages as a clean connection's, one of them short of one change: nothing missing, no gap.
      expect(received.map((f) => f.type)).toEqual(cleanReceived.map((f) => f.type));
      const shorts = received.flatMap((f, i) =>
        JSON.stringify(f) === JSON.stringify(cleanReceived[i]) ? [] : [{ ours: f, clean: cleanReceived[i]! }],
      );
      expect(shorts).toHaveLength(round + 1);
      const short = shorts.at(-1)!;
      const ours = short.ours.changes as string[][];
      const full = short.clean.changes as string[][];
      expect(full.length - ours.length).toBe(1);
      const k = full.findIndex((c, i) => JSON.stringify(c) !== JSON.stringify(ours[i]));
      const [side, price, size] = full[k]!;
      expect([side === 'buy' ? 'bid' : 'ask', toUnits(price!), toUnits(size!)]).toEqual([
        lost.side,
        toUnits(lost.price),
        toUnits(lost.size),
      ]);
      // Healed when the same level changes later: in that batch after it, or in a later one.
      const after = [
        ...full.slice(k + 1),
        ...received
          .slice(received.indexOf(short.ours) + 1)
          .flatMap((f) =>
            f.type === 'l2update' && f.product_id === 'ETH-USD' ? (f.changes as string[][]) : [],
          ),
      ];
      const healed = after.some(([sd, p]) => sd === side && toUnits(p!) === toUnits(price!));
      const truth = clientBook(cleanReceived, 'ETH-USD');
      const differing = compareBooks(
        clientBook(received, 'ETH-USD'),
        { bids: truth.top('bid', 10_000), asks: truth.top('ask', 10_000) },
        10_000,
        () => false,
      ).differences;
      expect(differing.map((d) => `${d.side} ${d.price} ${d.exchange}`)).toEqual(
        healed ? [] : [`${lost.side} ${normalizeDecimal(lost.price)} ${normalizeDecimal(lost.size)}`],
      );
      if (!healed) wrongSeen++;
      // A fresh snapshot repairs it for the next round.
      received.push(...resubscribe(s));
      cleanReceived.push(...resubscribe(clean));
    }
    expect(wrongSeen).toBeGreaterThan(0);
  });

  it('the sequence fault: every later match, ticker and heartbeat of every product is n higher, nothing else changes', () => {
    const s = new ExchangeSession(SMALL, seed, startUs);
    const clean = new ExchangeSession(SMALL, seed, startUs);
    const a = subscribeAll(s);
    const b = subscribeAll(clean);
    a.push(...s.advanceTo(startUs + 5e6).map((f) => JSON.parse(f.text) as Frame));
    b.push(...clean.advanceTo(startUs + 5e6).map((f) => JSON.parse(f.text) as Frame));
    const before = a.length;
    s.skipSequence(7);
    a.push(...s.advanceTo(startUs + 10e6).map((f) => JSON.parse(f.text) as Frame));
    b.push(...clean.advanceTo(startUs + 10e6).map((f) => JSON.parse(f.text) as Frame));
    expect(a.length).toBe(b.length);
    const shifted = new Set<string>();
    a.forEach((f, i) => {
      const g = b[i]!;
      if (typeof f.sequence !== 'number') {
        expect(f).toEqual(g);
        return;
      }
      expect(f.sequence - (g.sequence as number)).toBe(i < before ? 0 : 7);
      expect({ ...f, sequence: 0 }).toEqual({ ...g, sequence: 0 });
      if (i >= before) shifted.add(`${f.type} ${f.product_id}`);
    });
    expect([...shifted].sort()).toEqual(
      ['heartbeat', 'match', 'ticker'].flatMap((t) => PRODUCTS.map((p) => `${t} ${p}`)).sort(),
    );
  });
});

describe('the Exchange REST book: GET /products/{id}/book?level=2', () => {
  let sim: SimulatorServer;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, seed: 54, mode: 'fast', products: SMALL, restDelayMs: [0, 5] });
  });
  afterAll(async () => {
    await sim.close();
  });
  const get = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${sim.restUrl}${path}`, init);
    return { status: res.status, headers: res.headers, text: await res.text() };
  };

  it('answers Coinbase`s shape, and the ingestor`s parser reads it: sequence, time, no auction, levels best first', async () => {
    const two = await get('/products/BTC-USD/book?level=2');
    expect(two.status).toBe(200);
    const body = JSON.parse(two.text);
    expect(Object.keys(body)).toEqual(['bids', 'asks', 'sequence', 'auction_mode', 'auction', 'time']);
    expect(body).toMatchObject({ auction_mode: false, auction: null });
    expect(body.bids.length).toBeGreaterThan(50);
    for (const [price, size, orders] of [...body.bids, ...body.asks]) {
      expect(price).toMatch(/^\d+\.\d{2}$/); // at the product's increment, trailing zeros kept
      expect(size).toMatch(/^\d+\.\d{8}$/);
      expect(Number.isInteger(orders) && orders >= 1).toBe(true);
    }
    expect(body.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const parsed = parseExchangeBook(two.text, 50);
    expect(parsed).toMatchObject({ seq: body.sequence, exchUs: isoToMicros(body.time), auction: false });
    expect(parsed.bids).toHaveLength(50);
    expect(parsed.bids[0]).toEqual([normalizeDecimal(body.bids[0][0]), normalizeDecimal(body.bids[0][1])]);
    // Level 1 (the default) is the best bid and ask.
    const one = JSON.parse((await get('/products/BTC-USD/book')).text);
    expect([one.bids, one.asks].map((s) => s.length)).toEqual([1, 1]);
    expect(one.bids[0]).toEqual(body.bids[0]);
  });

  it('unknown product 404, a bad or unsimulated level 400, another method 405: {"message"} errors', async () => {
    const answers = await Promise.all([
      get('/products/NOPE-USD/book?level=2'),
      get('/products/BTC-USD/book?level=3'),
      get('/products/BTC-USD/book?level=9'),
      get('/products/BTC-USD/book?level=2', { method: 'POST' }),
    ]);
    expect(answers.map((a) => a.status)).toEqual([404, 400, 400, 405]);
    for (const a of answers) expect(Object.keys(JSON.parse(a.text))).toEqual(['message']);
    expect(JSON.parse(answers[0]!.text).message).toBe('NotFound');
    expect(answers[3]!.headers.get('allow')).toBe('GET');
  });

  it('the ingestor`s book checker fetches it; the REST faults reach it in the Exchange`s own error shape', async () => {
    const published: BookCheckEvent[] = [];
    const checker = new BookChecker({
      products: PRODUCTS,
      source: 'exchange',
      restUrl: sim.restUrl,
      everyS: 60,
      depth: 20,
      jitter: 0,
      timeoutMs: 2000,
      publish: async (e) => {
        published.push(e);
      },
      log: () => {},
    });
    const ok = await checker.check('ETH-USD');
    expect(ok).toMatchObject({ kind: 'book', event: { product: 'ETH-USD', source: 'exchange', depth: 20 } });
    const event = published[0]!;
    expect(event.seq).toBeGreaterThan(1_000_000_000);
    expect(event.bids).toHaveLength(20);
    sim.faults.rest('error');
    sim.faults.rest('throttle');
    sim.faults.rest('malformed');
    const failures = [];
    for (let i = 0; i < 3; i++) failures.push(await checker.check('ETH-USD'));
    expect(failures.map((f) => (f?.kind === 'unavailable' ? f.failure : f?.kind))).toEqual([
      'http',
      'throttled',
      'malformed',
    ]);
    expect(published.slice(1).map((e) => e.unavailable)).toEqual([
      expect.stringMatching(/^HTTP 500: \{"message":"simulated internal error"\}/),
      expect.stringMatching(/rate limited \(HTTP 429, retry after 1000 ms\)/),
      expect.stringMatching(/malformed answer: not JSON/),
    ]);
    expect(() => parseExchangeBook('{"bids":[', 1)).toThrow(BookParseError);
    await checker.stop();
  });

  it('a lost update on the Exchange feed: the client`s book differs from the REST book at exactly that level', async () => {
    const own = await startSimulator({
      port: 0,
      seed: 55,
      mode: 'fast',
      products: SMALL,
      restDelayMs: [0, 0],
    });
    const c = await exchangeClient(own, ['BTC-USD'], ['level2_batch']);
    const snapshots = () => frames(c).filter((f) => f.type === 'snapshot').length;
    let stillWrong = 0;
    try {
      for (let round = 0; round < 6; round++) {
        await until('the feed running', () => snapshots() === round + 1 && c.received.length > 50);
        own.faults.loseUpdate('BTC-USD');
        await until('the update lost', () => own.lostUpdates().length === round + 1, { everyMs: 1 });
        own.faults.goSilent();
        await until('every frame sent received', () => c.received.length === own.framesSent(1));
        const answer = await fetch(`${own.restUrl}/products/BTC-USD/book?level=2`).then((r) => r.text());
        const rest = parseExchangeBook(answer, 10_000);
        const atPause = [...frames(c)];
        own.faults.resume();
        // The REST book is the market at its instant; the changes of the batch still being gathered then come in
        // the next l2update: those levels are in flight.
        const lastTime = atPause.findLast((f) => f.type === 'l2update')!.time as string;
        const next = await until('the next batch', () =>
          frames(c).find((f) => f.type === 'l2update' && (f.time as string) > lastTime),
        );
        const inFlight = new Set(
          (next.changes as string[][]).map(
            ([side, price]) => `${side === 'buy' ? 'bid' : 'ask'} ${toUnits(price!)}`,
          ),
        );
        const cmp = compareBooks(clientBook(atPause, 'BTC-USD'), rest, 10_000, (side, price) =>
          inFlight.has(`${side} ${price}`),
        );
        // A real comparison: most of the book (the busy levels are in flight, more of them on a loaded machine).
        expect(cmp.compared).toBeGreaterThan(50);
        const lost = own.lostUpdates().at(-1)!;
        expect(lost).toMatchObject({ conn: 1, product: 'BTC-USD' });
        // The batch that lost it is the first published after it; a change of that level in a later one healed it.
        const level = ([side, price]: string[]) =>
          (side === 'buy' ? 'bid' : 'ask') === lost.side && toUnits(price!) === toUnits(lost.price);
        const batches = atPause.filter(
          (f) => f.type === 'l2update' && isoToMicros(f.time as string) > lost.timeUs,
        );
        const healed = batches.slice(1).some((f) => (f.changes as string[][]).some(level));
        const wrong = [
          `${lost.side} ${normalizeDecimal(lost.price)} exchange ${normalizeDecimal(lost.size)}`,
        ];
        const found = cmp.differences.map((d) => `${d.side} ${d.price} exchange ${d.exchange}`);
        if (healed || inFlight.has(`${lost.side} ${toUnits(lost.price)}`)) expect(found).toEqual([]);
        // Set again in its own batch: before the lost change (still wrong) or after it (healed); the frame does not say.
        else if ((batches[0]!.changes as string[][]).some(level))
          expect(wrong).toEqual(expect.arrayContaining(found));
        else {
          expect(found).toEqual(wrong);
          stillWrong++;
        }
        // A fresh snapshot repairs it before the next round (what the ingestor does on a mismatch).
        c.send(exchangeSubscribeMessage(['BTC-USD'], ['level2_batch'], 'unsubscribe'));
        c.send(exchangeSubscribeMessage(['BTC-USD'], ['level2_batch']));
      }
      expect(stillWrong).toBeGreaterThan(0);
    } finally {
      await c.close();
      await own.close();
    }
  });
});

describe('Exchange feed faults over the wire', () => {
  it('malformed and error frames, an oversized snapshot, a sequence gap, frames lost on the way', async () => {
    const logPath = join(mkdtempSync(join(tmpdir(), 'qw-simx-')), 'sent.ndjson');
    const sim = await startSimulator({ port: 0, seed: 56, mode: 'fast', products: SMALL, logPath });
    const a = await exchangeClient(sim);
    const b = await exchangeClient(sim);
    try {
      await until('the feeds running', () => a.received.length > 100 && b.received.length > 100);
      sim.faults.on(1).sendMalformed('truncated');
      sim.faults.on(1).sendHostile('nan'); // Advanced Trade's shapes: not sent here
      sim.faults.on(1).skipSequence(5);
      sim.faults.sendError('simulated failure');
      sim.faults.sendOversizedSnapshot('ETH-USD', 5000);
      sim.faults.on(1).loseFrames(3);
      await until('the faults through', () => a.received.length > 3000 && b.received.length > 3000);
      sim.faults.goSilent();
      await until('every frame sent received', () =>
        [a, b].every((c, i) => c.received.length === sim.framesSent(i + 1)),
      );
      const broken = a.received.filter((f) => typeof f === 'string') as string[];
      expect(broken).toHaveLength(1);
      expect(() => mapExchangeFrame(broken[0]!, 0)).toThrow(MalformedExchangeFrameError);
      expect(sim.hostileSent).toEqual({});
      for (const c of [a, b]) {
        const error = frames(c).find((f) => f.type === 'error')!;
        expect(error).toEqual({ type: 'error', message: 'simulated failure' });
        expect(() => mapExchangeFrame(JSON.stringify(error), 0)).toThrow(ExchangeFeedError);
        const big = frames(c).findLast((f) => f.type === 'snapshot' && f.product_id === 'ETH-USD')!;
        expect((big.bids as unknown[]).length + (big.asks as unknown[]).length).toBeGreaterThanOrEqual(5000);
      }
      // The gap: from the fault on, connection 1's heartbeats of each product are 5 above connection 2's.
      const beats = (c: TestClient) =>
        new Map(
          frames(c)
            .filter((f) => f.type === 'heartbeat')
            .map((f) => [`${f.product_id} ${f.time}`, f.sequence as number]),
        );
      const [one, two] = [beats(a), beats(b)];
      const diffs = [...one].flatMap(([k, seq]) => (two.has(k) ? [seq - two.get(k)!] : []));
      expect(diffs.length).toBeGreaterThan(10);
      expect(new Set(diffs)).toEqual(new Set([0, 5]));
      expect(diffs.indexOf(5)).toBeGreaterThan(diffs.lastIndexOf(0));
      // Lost on the way: logged as sent to connection 1, never delivered.
      await sim.close();
      const log = readFileSync(logPath, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { conn: number; seq: number | null; lost?: true; frame?: Frame });
      const lost = log.filter((l) => l.lost);
      expect(lost.map((l) => l.conn)).toEqual([1, 1, 1]);
      const sentTo1 = log.filter((l) => l.conn === 1 && l.frame);
      expect(sentTo1.length).toBe(a.received.length - broken.length - 1 + 3); // less the broken and error frames
      const got = new Set(frames(a).map((f) => JSON.stringify(f)));
      for (const l of lost) expect(got.has(JSON.stringify(l.frame))).toBe(false);
      // The audit (and the book-check run) read what was sent from this log, Exchange frames too.
      const sent = await readSimulatorLog(logPath);
      for (const product of PRODUCTS) {
        const matches = frames(b).filter((f) => f.type === 'match' && f.product_id === product);
        expect(matches.length).toBeGreaterThan(10);
        for (const m of matches)
          expect(sent.get(product)!.trades.get(String(m.trade_id))).toBe(isoToMicros(m.time as string));
        // Every level change connection 2 received, under the key the stream and the raw zone use.
        const changes = frames(b).flatMap((f) =>
          f.type === 'l2update' && f.product_id === product
            ? mapped(f).flatMap((e) =>
                e.type === 'book_changes' ? e.changes.map((c) => levelKey(product, c, e.exchUs)) : [],
              )
            : [],
        );
        expect(changes.length).toBeGreaterThan(100);
        for (const k of changes) expect(sent.get(product)!.levels.has(k), k).toBe(true);
      }
    } finally {
      await a.close();
      await b.close();
      await sim.close();
    }
  });
});

/** (type) -> the keys and the JSON types of their values, as one string. */
function shapeOf(f: Record<string, unknown>): string {
  const kind = (v: unknown): string =>
    Array.isArray(v)
      ? `[${v.length ? kind(v[0]) : ''}]`
      : v === null
        ? 'null'
        : typeof v === 'object'
          ? `{${Object.keys(v as object).join(',')}}`
          : typeof v;
  return Object.entries(f)
    .map(([k, v]) => `${k}:${kind(v)}`)
    .join(' ');
}

describeCapture('exchange', 'simulator Exchange frames have the real capture`s shapes', (capture) => {
  it('every message type both send has the same keys, order and value types; numbers and times are written alike', async () => {
    const real = new Map<string, string>();
    const realFrames: Frame[] = [];
    for (const f of await receivedFrames(capture)) {
      const frame = JSON.parse(f.frame) as Frame;
      realFrames.push(frame);
      real.set(frame.type!, shapeOf(frame));
    }
    const sim = await startSimulator({ port: 0, seed: 57, mode: 'fast', products: SMALL });
    const c = await exchangeClient(sim);
    await until('2000 messages', () => c.received.length >= 2000);
    await c.close();
    await sim.close();
    const mine = new Map<string, string>();
    for (const f of frames(c)) mine.set(f.type!, shapeOf(f));
    // The capture predates the heartbeat channel's use there (checked against Coinbase's docs below) and has no
    // error; the simulator sends every other type the capture has.
    expect([...real.keys()].sort()).toEqual([
      'l2update',
      'last_match',
      'match',
      'snapshot',
      'subscriptions',
      'ticker',
    ]);
    expect([...mine.keys()].sort()).toEqual([...real.keys(), 'heartbeat'].sort());
    for (const type of real.keys()) {
      if (type === 'ticker') continue;
      expect(mine.get(type), type).toBe(real.get(type));
    }
    // Today's ticker adds the best bid's and ask's sizes after each price (Coinbase's docs); the rest is the capture's.
    expect(mine.get('ticker')).toBe(
      real
        .get('ticker')!
        .replace('best_bid:string', 'best_bid:string best_bid_size:string')
        .replace('best_ask:string', 'best_ask:string best_ask_size:string'),
    );
    expect(mine.get('heartbeat')).toBe(
      'type:string sequence:number last_trade_id:number product_id:string time:string',
    );
    // Written alike: sides, six-digit times, removals, changes of three strings.
    const sim6 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
    for (const f of [...realFrames, ...frames(c)]) {
      if (typeof f.time === 'string') expect(f.time).toMatch(sim6);
      if (f.type === 'l2update')
        for (const ch of f.changes as unknown[][]) {
          expect(ch).toHaveLength(3);
          expect(['buy', 'sell']).toContain(ch[0]);
        }
      if (f.type === 'match') expect(['buy', 'sell']).toContain(f.side);
    }
    const removal = (fs: Frame[]) =>
      fs.flatMap((f) =>
        f.type === 'l2update' ? (f.changes as string[][]).filter((ch) => Number(ch[2]) === 0) : [],
      );
    // A removal is a zero written at the product's size increment: "0.00000000" for BTC and ETH (1e-8).
    for (const ch of removal(realFrames)) expect(ch[2]).toMatch(/^0\.0+$/);
    expect(new Set(removal(frames(c)).map((ch) => ch[2]))).toEqual(new Set(['0.00000000']));
  });
});

describe('Exchange number and time formats', () => {
  it('prices at the increment with trailing zeros, sizes at 1e-8, times with six fraction digits', () => {
    expect(exchangePrice(6_508_360, 1_000_000)).toBe('65083.60');
    expect(exchangePrice(17, 1)).toBe('0.00000017');
    expect(exchangePrice(5, 100_000_000)).toBe('5');
    expect(fixedDecimal(583_000, 8)).toBe('0.00583000');
    expect(exchangeTime(Date.UTC(2021, 3, 17, 16, 43, 37) * 1000 + 75_687)).toBe(
      '2021-04-17T16:43:37.075687Z',
    );
    expect(exchangeTime(Date.UTC(2021, 3, 17) * 1000)).toBe('2021-04-17T00:00:00.000000Z');
  });
});
