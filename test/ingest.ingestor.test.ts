import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { OrderBook } from '../src/book/book.js';
import type { FeedKind } from '../src/config.js';
import { MAX_WATERMARK_EXTRAPOLATION_MS } from '../src/ingest/ingestor.js';
import type { Logger } from '../src/log.js';
import { fromUnits, normalizeDecimal } from '../src/marketdata/decimal.js';
import type { SimulatorServer } from '../src/simulator/server.js';
import { FEED } from '../src/telemetry/catalog.js';
import {
  eventsOf,
  fullBook,
  loadRef,
  localIngestor,
  PRODUCTS,
  startTwoProductSimulator,
} from './support/ingest.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';

// The exchange side is a real WebSocket server speaking the Advanced Trade protocol from a script, so the test
// decides exactly where the sequence gap and the disconnects happen.
const local = withEmulators({ provision: true });
const T0 = Date.UTC(2026, 7, 9, 21, 5, 48);
const iso = (ms: number) => new Date(ms).toISOString();

interface Script {
  /** Frames to send once the client has subscribed to every channel, given a seq allocator. */
  onSubscribed(send: (channel: string, events: unknown[]) => void, connection: number): void;
  /** Frames to send after a level2 resubscribe. */
  onResubscribe?(send: (channel: string, events: unknown[]) => void): void;
}

const snapshot = (product: string, bid: string, ask: string) => ({
  type: 'snapshot',
  product_id: product,
  updates: [
    { side: 'bid', event_time: iso(T0), price_level: bid, new_quantity: '1.5' },
    { side: 'offer', event_time: iso(T0), price_level: ask, new_quantity: '2' },
    { side: 'offer', event_time: iso(T0), price_level: `${ask}1`, new_quantity: '3' },
  ],
});
const update = (product: string, price: string, qty: string) => ({
  type: 'update',
  product_id: product,
  updates: [{ side: 'bid', event_time: iso(T0 + 1), price_level: price, new_quantity: qty }],
});

async function startExchange(script: Script) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  const received: string[][] = [];
  const sockets: import('ws').WebSocket[] = [];
  wss.on('connection', (ws) => {
    const connection = received.length;
    const messages: string[] = [];
    received.push(messages);
    sockets.push(ws);
    let seq = 0;
    const send = (channel: string, events: unknown[]) =>
      ws.send(JSON.stringify({ channel, timestamp: iso(T0 + seq), sequence_num: seq++, events }));
    const skip = (n: number) => {
      seq += n;
    };
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { type: string; channel: string };
      messages.push(`${msg.type}:${msg.channel}`);
      if (messages.length === 4) script.onSubscribed(Object.assign(send, { skip }), connection);
      if (msg.type === 'subscribe' && msg.channel === 'level2' && messages.length > 4)
        script.onResubscribe?.(send);
    });
  });
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}`,
    received,
    sockets,
    close: () => new Promise((resolve) => wss.close(resolve)),
  };
}

const lines: Record<string, unknown>[] = [];
const log: Logger = (level, msg, fields) => lines.push({ level, msg, ...fields });
let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
  lines.length = 0;
});

function startIngestor(
  url: string,
  options: {
    silenceMs?: number;
    snapshotIntervalMs?: number;
    feedKind?: FeedKind;
    bookStaleMs?: number;
  } = {},
) {
  const ingestor = localIngestor(local.env, {
    feedUrl: url,
    log,
    session: `t${Math.random().toString(36).slice(2, 8)}`,
    silenceMs: options.silenceMs ?? 5000,
    reconnectBaseMs: 10,
    reconnectCapMs: 50,
    snapshotIntervalMs: options.snapshotIntervalMs ?? 0,
    feedKind: options.feedKind,
    bookStaleMs: options.bookStaleMs,
  });
  ingestor.start();
  cleanups.push(() => ingestor.stop());
  return ingestor;
}

describe('Ingestor against a scripted Advanced Trade server, into kinesalite and s3rver', () => {
  it('publishes snapshot refs and changes in order, resyncs on a sequence gap with a fresh snapshot', async () => {
    const exchange = await startExchange({
      onSubscribed(send) {
        const s = send as typeof send & { skip(n: number): void };
        s('subscriptions', [{ subscriptions: { level2: PRODUCTS } }]);
        s('l2_data', [snapshot('BTC-USD', '100.10', '100.2')]);
        s('l2_data', [snapshot('ETH-USD', '10.10', '10.2')]);
        s('l2_data', [update('BTC-USD', '100.05', '0.5')]);
        s('market_trades', [
          {
            type: 'update',
            trades: [
              {
                product_id: 'BTC-USD',
                trade_id: '7',
                price: '100.2',
                size: '0.1',
                time: iso(T0 + 2),
                side: 'SELL',
              },
            ],
          },
        ]);
        s('heartbeats', [{ current_time: 'x', heartbeat_counter: 1 }]);
        s('l2_data', [update('BTC-USD', '100.05', '0')]);
        s.skip(3); // frames lost
        s('l2_data', [update('BTC-USD', '99', '9')]); // after the gap: must not be published
      },
      onResubscribe(send) {
        send('l2_data', [snapshot('BTC-USD', '100.00', '100.3')]);
        send('l2_data', [snapshot('ETH-USD', '10.00', '10.3')]);
        send('l2_data', [update('BTC-USD', '100.01', '4')]);
      },
    });
    cleanups.push(exchange.close);
    const ingestor = startIngestor(exchange.url);
    await until('the fresh snapshots', () => ingestor.counters.frames >= 11);
    await ingestor.stop();

    // The client subscribed to every channel, then asked for a fresh book after the gap.
    expect(exchange.received[0]).toEqual([
      'subscribe:level2',
      'subscribe:market_trades',
      'subscribe:ticker',
      'subscribe:heartbeats',
      'unsubscribe:level2',
      'subscribe:level2',
    ]);

    const btc = await eventsOf(local.env, ingestor.session, 'BTC-USD');
    expect(
      btc.map((e) =>
        e.type === 'book_changes' ? `changes:${e.changes[0]!.price}=${e.changes[0]!.size}` : e.type,
      ),
    ).toEqual([
      'resync',
      'snapshot_ref',
      'changes:100.05=0.5',
      'trade',
      'changes:100.05=0',
      'resync',
      'snapshot_ref',
      'changes:100.01=4',
    ]);
    expect(new Set(btc.map((e) => e.id)).size).toBe(btc.length);
    const resync = btc[5]!;
    expect(resync.type === 'resync' && resync.reason).toMatch(/gap: expected 7, got 10/);
    const trade = btc[3]!;
    expect(trade.type === 'trade' && trade.aggressor).toBe('buy');

    // The claim-check object holds the full book.
    const ref = btc[6]!;
    if (ref.type !== 'snapshot_ref') throw new Error('expected a snapshot_ref');
    expect(ref.levels).toBe(3);
    const book = await loadRef(local.env, ref);
    expect(book).toEqual({
      bids: [['100', '1.5']],
      asks: [
        ['100.3', '2'],
        ['100.31', '3'],
      ],
    });
    expect(ref.key).toBe(`snapshots/BTC-USD/${ref.exchUs}-${ingestor.session}.0-${ref.seq}.json.gz`);

    const eth = await eventsOf(local.env, ingestor.session, 'ETH-USD');
    expect(eth.map((e) => e.type)).toEqual(['resync', 'snapshot_ref', 'resync', 'snapshot_ref']);
    // stop() publishes a final stats event on the feed partition.
    const feed = await eventsOf(local.env, ingestor.session, '_feed');
    expect(feed.at(-1)).toMatchObject({ type: 'stats', resyncs: 2, reconnects: 0 });
    expect(ingestor.counters.droppedChanges).toBe(1);
  });

  it('reconnects after the server drops it or goes silent, starting from fresh snapshots', async () => {
    const exchange = await startExchange({
      onSubscribed(send, connection) {
        for (const p of PRODUCTS) send('l2_data', [snapshot(p, '1', '2')]);
        send('l2_data', [update('BTC-USD', '0.5', String(connection + 1))]);
        // Connection 0 is dropped abruptly (below), connection 1 just stops talking, connection 2 stays healthy.
      },
    });
    cleanups.push(exchange.close);
    const ingestor = startIngestor(exchange.url, { silenceMs: 300 });
    // Dropped once its third frame is in hand (finished before the close completes): a fixed delay raced
    // the ingestor on a loaded machine, and frames still queued at a drop are rightly never handled.
    await until('connection 0 handling its last frame', () => ingestor.counters.frames >= 3);
    exchange.sockets[0]!.terminate();
    await until('a third connection', () => exchange.received.length >= 3 && ingestor.counters.frames >= 9);
    await ingestor.stop();

    expect(ingestor.counters.reconnects).toBeGreaterThanOrEqual(2);
    const disconnects = lines
      .filter((l) => l.msg === 'feed state' && l.to === 'backoff')
      .map((l) => l.reason);
    expect(disconnects.slice(0, 2)).toEqual(['remote', 'silence']);
    expect(ingestor.telemetry.value(FEED.closes, { Reason: 'remote' })).toBeGreaterThanOrEqual(1);
    expect(ingestor.telemetry.value(FEED.closes, { Reason: 'silence' })).toBeGreaterThanOrEqual(1);
    expect(
      ingestor.telemetry.value(FEED.transitions, { From: 'subscribed', To: 'backoff' }),
    ).toBeGreaterThanOrEqual(2);
    const btc = await eventsOf(local.env, ingestor.session, 'BTC-USD');
    const summary = btc.map((e) =>
      e.type === 'resync' ? e.reason : e.type === 'book_changes' ? `changes=${e.changes[0]!.size}` : e.type,
    );
    expect(summary.slice(0, 9)).toEqual([
      'connect',
      'snapshot_ref',
      'changes=1',
      'reconnect',
      'snapshot_ref',
      'changes=2',
      'reconnect',
      'snapshot_ref',
      'changes=3',
    ]);
    // Sequence numbers restart per connection, ids stay unique thanks to the connection number.
    expect(new Set(btc.map((e) => e.id)).size).toBe(btc.length);
  });
});

describe('Periodic full-depth snapshots', () => {
  let sim: SimulatorServer | undefined;
  afterEach(async () => {
    await sim?.close();
    sim = undefined;
  });

  it('let a consumer that starts at a periodic snapshot_ref rebuild the same book as a full replay', async () => {
    sim = await startTwoProductSimulator(5, 100);
    const ingestor = startIngestor(sim.url, { snapshotIntervalMs: 100 });
    await until('several periodic snapshots', () => ingestor.counters.periodicSnapshots >= 4);
    await ingestor.stop();
    const [conn] = sim.connections();

    for (const product of PRODUCTS) {
      const events = await eventsOf(local.env, ingestor.session, product);
      const periodic = events.flatMap((e, i) =>
        e.type === 'snapshot_ref' && e.source === 'periodic' ? [i] : [],
      );
      expect(periodic.length).toBeGreaterThanOrEqual(3);
      expect(events.find((e) => e.type === 'snapshot_ref')).toMatchObject({ source: 'exchange' });

      // The full replay, from the very first event, remembering the book at each periodic ref.
      const replay = new OrderBook(product);
      const atRef = new Map<number, ReturnType<typeof fullBook>>();
      for (const [i, e] of events.entries()) {
        if (e.type === 'snapshot_ref' && e.source !== 'periodic') {
          const { bids, asks } = await loadRef(local.env, e);
          replay.applySnapshot(bids, asks);
        }
        if (e.type === 'book_changes') for (const c of e.changes) replay.applyChange(c.side, c.price, c.size);
        if (periodic.includes(i)) atRef.set(i, fullBook(replay));
      }

      // A consumer that joins in the middle: everything before the second periodic ref is skipped.
      const start = periodic[1]!;
      const late = new OrderBook(product);
      let lastSeq = -1;
      for (const e of events.slice(start)) {
        if (e.type === 'snapshot_ref') {
          const { bids, asks } = await loadRef(local.env, e);
          // Every periodic snapshot equals the replayed book at that point of the stream.
          if (e.source === 'periodic') expect({ bids, asks }).toEqual(atRef.get(events.indexOf(e)));
          late.applySnapshot(bids, asks);
        }
        if (e.type === 'book_changes') for (const c of e.changes) late.applyChange(c.side, c.price, c.size);
        if (e.type === 'snapshot_ref' || e.type === 'book_changes') lastSeq = e.seq;
      }
      expect(fullBook(late)).toEqual(fullBook(replay));
      expect(late.depth('bid')).toBeGreaterThan(10);
      const top = sim.topOfBookAt(product, lastSeq, conn);
      expect(fromUnits(late.bestBid())).toBe(normalizeDecimal(top!.bestBid));
      expect(fromUnits(late.bestAsk())).toBe(normalizeDecimal(top!.bestAsk));
    }
  });

  it('wait for S3 to store the connection snapshot instead of reconnecting (S3 restarting as it connects)', async () => {
    sim = await startTwoProductSimulator(7, 20);
    await local.emulators.kill('s3');
    let restarting: Promise<void> | undefined;
    try {
      const ingestor = startIngestor(sim.url);
      await until('a snapshot put retried', () =>
        lines.some((l) => l.msg === 'snapshot not stored; retrying'),
      );
      restarting = local.emulators.restart('s3');
      await restarting;
      await until('both snapshots published', () => ingestor.counters.exchangeSnapshots >= 2);
      await ingestor.stop();
      expect(ingestor.counters.reconnects).toBe(0);
      expect(sim.connections()).toHaveLength(1);
    } finally {
      if (!restarting) await local.emulators.restart('s3');
    }
  });

  it('skip a periodic snapshot S3 cannot store, keeping the connection, and come back with S3', async () => {
    sim = await startTwoProductSimulator(6, 20);
    const ingestor = startIngestor(sim.url, { snapshotIntervalMs: 100 });
    await until('the first periodic snapshots', () => ingestor.counters.periodicSnapshots >= 2);
    await local.emulators.kill('s3');
    try {
      await until('a periodic snapshot skipped', () =>
        lines.some((l) => l.msg === 'periodic snapshot not stored; skipped'),
      );
    } finally {
      await local.emulators.restart('s3');
    }
    const stored = ingestor.counters.periodicSnapshots;
    await until('periodic snapshots again', () => ingestor.counters.periodicSnapshots > stored + 2);
    await ingestor.stop();
    // One connection all along: no reconnect, no resync, so nothing the feed sent was lost.
    expect(ingestor.counters.reconnects).toBe(0);
    expect(sim.connections()).toHaveLength(1);
    for (const product of PRODUCTS) {
      const events = await eventsOf(local.env, ingestor.session, product);
      expect(
        events.filter((e) => e.type === 'resync').map((e) => e.type === 'resync' && e.reason.split(':')[0]),
      ).toEqual(['connect']);
    }
  });
});

describe('Ingestor on the legacy Exchange feed (scripted server)', () => {
  it('resyncs a crossed book and a stale one (heartbeats but no updates), resubscribing only that product', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => wss.once('listening', resolve));
    cleanups.push(() => new Promise((r) => wss.close(r)));
    const received: { type: string; product_ids: string[]; channels: string[] }[] = [];
    wss.on('connection', (ws) => {
      const send = (frame: unknown) => ws.send(JSON.stringify(frame));
      const snap = (product: string, bid: string, ask: string) =>
        send({ type: 'snapshot', product_id: product, bids: [[bid, '1.00000000']], asks: [[ask, '2.0']] });
      let heartbeats: NodeJS.Timeout | undefined;
      ws.on('close', () => clearInterval(heartbeats));
      ws.on('message', (data) => {
        const msg = JSON.parse(data.toString());
        received.push(msg);
        if (msg.type !== 'subscribe') return;
        if (received.length === 1) {
          send({ type: 'subscriptions', channels: [{ name: 'level2_batch', product_ids: PRODUCTS }] });
          snap('BTC-USD', '100.10', '100.20');
          snap('ETH-USD', '10.10', '10.20');
          const l2 = (price: string, side: string) =>
            send({ type: 'l2update', product_id: 'BTC-USD', time: iso(T0), changes: [[side, price, '1.5']] });
          l2('100.15000000', 'buy');
          l2('100.1500', 'buy'); // same level, trailing zeros
          l2('100.25', 'buy'); // crosses the ask at 100.2
          let n = 0;
          heartbeats = setInterval(
            () => send({ type: 'heartbeat', product_id: 'ETH-USD', sequence: n++, time: iso(T0 + n) }),
            20,
          );
        } else if (msg.product_ids[0] === 'BTC-USD') snap('BTC-USD', '100.00', '100.30');
        else snap('ETH-USD', '10.00', '10.30');
      });
    });
    const { port } = wss.address() as { port: number };
    const ingestor = startIngestor(`ws://127.0.0.1:${port}`, { feedKind: 'exchange', bookStaleMs: 200 });
    await until(
      'the stale resync',
      () => ingestor.telemetry.value(FEED.resyncReasons, { Reason: 'stale' }) >= 1,
    );
    await ingestor.stop();

    expect(received[0]).toEqual({
      type: 'subscribe',
      product_ids: PRODUCTS,
      channels: ['level2_batch', 'matches', 'ticker', 'heartbeat'],
    });
    expect(received.slice(1, 3)).toEqual([
      { type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['level2_batch'] },
      { type: 'subscribe', product_ids: ['BTC-USD'], channels: ['level2_batch'] },
    ]);
    expect(received[4]).toEqual({ type: 'subscribe', product_ids: ['ETH-USD'], channels: ['level2_batch'] });
    expect(ingestor.telemetry.value(FEED.resyncReasons, { Reason: 'crossed' })).toBe(1);

    const btc = await eventsOf(local.env, ingestor.session, 'BTC-USD');
    expect(
      btc.map((e) =>
        e.type === 'resync'
          ? `resync:${e.reason}`
          : e.type === 'book_changes'
            ? `changes:${e.changes[0]!.price}`
            : e.type,
      ),
    ).toEqual([
      'resync:connect',
      'snapshot_ref',
      'changes:100.15',
      'changes:100.15',
      'changes:100.25',
      'resync:crossed: bid 100.25 >= ask 100.2',
      'snapshot_ref',
    ]);
    const eth = await eventsOf(local.env, ingestor.session, 'ETH-USD');
    expect(eth.filter((e) => e.type === 'resync').map((e) => e.type === 'resync' && e.reason)).toContain(
      'stale: no book update for 200 ms',
    );
  });
});

describe('Exchange snapshots carry no time', () => {
  it('take the time of the next book update or heartbeat (not a stale ticker or last_match), in feed order', async () => {
    // Without a time of its own a snapshot used to take the receive time: the wall clock, which a replay of an
    // old recording does not share with its frames' exchange times (the worker's clock jumped years ahead).
    const us = (ms: number) => ms * 1000;
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => wss.once('listening', resolve));
    cleanups.push(() => new Promise((r) => wss.close(r)));
    wss.on('connection', (ws) => {
      const send = (frame: unknown) => ws.send(JSON.stringify(frame));
      const snap = (product: string, bid: string, ask: string) =>
        send({ type: 'snapshot', product_id: product, bids: [[bid, '1.0']], asks: [[ask, '2.0']] });
      const l2 = (product: string, ms: number, price: string) =>
        send({ type: 'l2update', product_id: product, time: iso(ms), changes: [['buy', price, '1.5']] });
      let subscribes = 0;
      ws.on('message', (data) => {
        const msg = JSON.parse(data.toString()) as { type: string };
        if (msg.type !== 'subscribe') return;
        if (++subscribes === 1) {
          send({ type: 'subscriptions', channels: [{ name: 'level2_batch', product_ids: PRODUCTS }] });
          snap('BTC-USD', '100.10', '100.20');
          snap('ETH-USD', '10.10', '10.20');
          // A connection's first ticker and last_match repeat the last trade: its time may be minutes old.
          const old = T0 - 100_000;
          send({
            type: 'ticker',
            sequence: 5,
            product_id: 'BTC-USD',
            price: '100.15',
            best_bid: '100.10',
            best_ask: '100.20',
            time: iso(old),
          });
          send({
            type: 'last_match',
            trade_id: 7,
            side: 'sell',
            size: '0.1',
            price: '100.15',
            product_id: 'BTC-USD',
            sequence: 4,
            time: iso(old),
          });
          l2('ETH-USD', T0 + 5, '10.11');
          l2('BTC-USD', T0 + 7, '100.11');
          l2('BTC-USD', T0 + 9, '100.25'); // crosses the ask: BTC-USD alone is resubscribed
        } else {
          snap('BTC-USD', '100.00', '100.30');
          send({
            type: 'ticker',
            sequence: 6,
            product_id: 'BTC-USD',
            price: '100.15',
            best_bid: '100.00',
            best_ask: '100.30',
            time: iso(T0 + 2),
          });
          send({
            type: 'heartbeat',
            product_id: 'ETH-USD',
            sequence: 1,
            last_trade_id: 7,
            time: iso(T0 + 50),
          });
          l2('BTC-USD', T0 + 60, '100.01');
        }
      });
    });
    const { port } = wss.address() as { port: number };
    // No bookStaleMs: startIngestor passes it as undefined, which must keep the Ingestor's default (60 s), not
    // make the book stale at every heartbeat.
    const ingestor = startIngestor(`ws://127.0.0.1:${port}`, { feedKind: 'exchange' });
    await until('both snapshots of BTC-USD published', () => ingestor.counters.exchangeSnapshots >= 3);
    await until(
      'every frame handled',
      async () => (await eventsOf(local.env, ingestor.session, 'BTC-USD')).length >= 9,
    );
    await ingestor.stop();

    const btc = await eventsOf(local.env, ingestor.session, 'BTC-USD');
    // Feed order kept: the frames after a snapshot waited with it.
    expect(btc.map((e) => (e.type === 'resync' ? `resync:${e.reason.split(':')[0]}` : e.type))).toEqual([
      'resync:connect',
      'snapshot_ref',
      'ticker',
      'trade',
      'book_changes',
      'book_changes',
      'resync:crossed',
      'snapshot_ref',
      'ticker',
      'book_changes',
    ]);
    const refs = btc.filter((e) => e.type === 'snapshot_ref');
    // The first: the first book update after it (ETH-USD's, the exchange's clock is one for every product).
    // After the resubscribe: the next heartbeat, not the ticker between (a ticker's time can be old).
    expect(refs.map((e) => e.exchUs)).toEqual([us(T0 + 5), us(T0 + 50)]);
    const eth = await eventsOf(local.env, ingestor.session, 'ETH-USD');
    expect(eth.find((e) => e.type === 'snapshot_ref')?.exchUs).toBe(us(T0 + 5));
  });
});

describe('Sequence regression', () => {
  it('a counter that goes backwards triggers a resync and a level2 resubscribe on the same connection', async () => {
    const exchange = await startExchange({
      onSubscribed(send) {
        const s = send as typeof send & { skip(n: number): void };
        for (const p of PRODUCTS) s('l2_data', [snapshot(p, '1', '2')]);
        s('l2_data', [update('BTC-USD', '0.5', '1')]);
        s.skip(-2); // the feed restarted its counter under us
        s('l2_data', [update('BTC-USD', '0.5', '2')]);
      },
      onResubscribe(send) {
        for (const p of PRODUCTS) send('l2_data', [snapshot(p, '1', '2')]);
      },
    });
    cleanups.push(exchange.close);
    const ingestor = startIngestor(exchange.url);
    await until('the fresh snapshots', () => ingestor.counters.frames >= 6);
    await ingestor.stop();
    expect(ingestor.telemetry.value(FEED.resyncReasons, { Reason: 'regression' })).toBe(1);
    expect(ingestor.telemetry.value(FEED.reconnects)).toBe(0);
    expect(exchange.received[0]!.slice(4)).toEqual(['unsubscribe:level2', 'subscribe:level2']);
    const btc = await eventsOf(local.env, ingestor.session, 'BTC-USD');
    expect(btc.filter((e) => e.type === 'resync').map((e) => e.type === 'resync' && e.reason)).toEqual([
      'connect',
      'regression: expected 3, got 1',
    ]);
  });
});

describe('Watermarks for quiet products (issue 16)', () => {
  it('on the tick grid, at least the lateness after their time, past every event before them, none after silence', async () => {
    // An Exchange-feed server: two snapshots, one BTC update, then ETH heartbeats (time = now) for 1.2 s and
    // silence. Heartbeats tell the exchange's time without being published: both products are quiet in the stream.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => wss.once('listening', resolve));
    cleanups.push(() => new Promise((r) => wss.close(r)));
    let lastHeartbeatUs = 0;
    wss.on('connection', (ws) => {
      const send = (frame: unknown) => ws.send(JSON.stringify(frame));
      let timer: NodeJS.Timeout | undefined;
      ws.on('close', () => clearInterval(timer));
      ws.once('message', () => {
        send({ type: 'subscriptions', channels: [{ name: 'level2_batch', product_ids: PRODUCTS }] });
        send({ type: 'snapshot', product_id: 'BTC-USD', bids: [['100.10', '1']], asks: [['100.20', '2']] });
        send({ type: 'snapshot', product_id: 'ETH-USD', bids: [['10.10', '1']], asks: [['10.20', '2']] });
        const start = Date.now();
        send({
          type: 'l2update',
          product_id: 'BTC-USD',
          time: iso(start),
          changes: [['buy', '100.11', '1']],
        });
        let n = 0;
        timer = setInterval(() => {
          if (Date.now() - start > 1200) return clearInterval(timer);
          const now = Date.now();
          lastHeartbeatUs = now * 1000;
          send({ type: 'heartbeat', product_id: 'ETH-USD', sequence: n++, time: iso(now) });
        }, 20);
      });
    });
    const { port } = wss.address() as { port: number };
    const LATENESS_MS = 30;
    const ingestor = localIngestor(local.env, {
      feedUrl: `ws://127.0.0.1:${port}`,
      feedKind: 'exchange',
      log,
      session: `t${Math.random().toString(36).slice(2, 8)}`,
      snapshotIntervalMs: 0,
      watermarks: { tickMs: 100, latenessMs: LATENESS_MS },
    });
    ingestor.start();
    cleanups.push(() => ingestor.stop());
    // Past the heartbeats, their extrapolation (MAX_WATERMARK_EXTRAPOLATION_MS) and then some.
    await new Promise((r) => setTimeout(r, 1200 + MAX_WATERMARK_EXTRAPOLATION_MS + 500));
    await ingestor.stop();

    for (const product of PRODUCTS) {
      const events = await eventsOf(local.env, ingestor.session, product);
      const marks = events.filter((e) => e.type === 'watermark');
      expect(marks.length, product).toBeGreaterThan(5);
      let newest = Number.NEGATIVE_INFINITY;
      let mark = Number.NEGATIVE_INFINITY;
      for (const e of events) {
        if (e.type === 'resync') continue;
        if (e.type !== 'watermark') {
          expect(e.exchUs, `${product} ${e.type} after a watermark it precedes`).toBeGreaterThanOrEqual(mark);
          newest = Math.max(newest, e.exchUs);
          continue;
        }
        expect(e.exchUs % 100_000).toBe(0);
        expect(e.exchUs).toBeGreaterThan(newest);
        expect(e.exchUs).toBeGreaterThan(mark);
        expect(e.id).toBe(`w:${product}:${e.exchUs}`);
        // Published no sooner than the lateness after its time (the heartbeats' time is this machine's clock).
        expect(e.recvUs - e.exchUs).toBeGreaterThanOrEqual(LATENESS_MS * 1000);
        mark = e.exchUs;
      }
      // Silence: nothing past what the last heartbeat extrapolates to.
      expect(mark).toBeLessThanOrEqual(lastHeartbeatUs + MAX_WATERMARK_EXTRAPOLATION_MS * 1000);
    }
  });
});

describe('Exchange feed trade ids', () => {
  it('a skipped trade id resyncs that product before the trade that shows it, and resubscribes its level2 alone', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => wss.once('listening', resolve));
    cleanups.push(() => new Promise((r) => wss.close(r)));
    const received: { type: string; product_ids: string[]; channels: string[] }[] = [];
    wss.on('connection', (ws) => {
      const send = (frame: unknown) => ws.send(JSON.stringify(frame));
      const match = (product: string, id: number, ms: number) =>
        send({
          type: 'match',
          trade_id: id,
          side: 'buy',
          size: '0.1',
          price: product === 'BTC-USD' ? '100.15' : '10.15',
          product_id: product,
          sequence: id,
          time: iso(T0 + ms),
        });
      ws.on('message', (data) => {
        const msg = JSON.parse(data.toString());
        received.push(msg);
        if (msg.type !== 'subscribe' || received.length > 1) return;
        send({ type: 'subscriptions', channels: [{ name: 'level2_batch', product_ids: PRODUCTS }] });
        send({ type: 'snapshot', product_id: 'BTC-USD', bids: [['100.10', '1']], asks: [['100.20', '2']] });
        send({ type: 'snapshot', product_id: 'ETH-USD', bids: [['10.10', '1']], asks: [['10.20', '2']] });
        send({ type: 'l2update', product_id: 'BTC-USD', time: iso(T0), changes: [['buy', '100.11', '1']] });
        match('BTC-USD', 41, 1);
        match('ETH-USD', 7, 2);
        match('BTC-USD', 42, 3);
        match('BTC-USD', 45, 4); // 43 and 44 lost on the way
        match('ETH-USD', 8, 5);
        match('BTC-USD', 45, 6); // a repeat is no gap
        match('BTC-USD', 46, 7);
      });
    });
    const { port } = wss.address() as { port: number };
    const ingestor = startIngestor(`ws://127.0.0.1:${port}`, { feedKind: 'exchange' });
    await until(
      'the trade-gap resync',
      () => ingestor.telemetry.value(FEED.resyncReasons, { Reason: 'trade_gap' }) >= 1,
    );
    await until('every trade published', async () => {
      const btc = await eventsOf(local.env, ingestor.session, 'BTC-USD');
      return btc.filter((e) => e.type === 'trade').length === 5;
    });
    await ingestor.stop();
    expect(ingestor.telemetry.value(FEED.resyncReasons, { Reason: 'trade_gap' })).toBe(1);
    expect(received.slice(1)).toEqual([
      { type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['level2_batch'] },
      { type: 'subscribe', product_ids: ['BTC-USD'], channels: ['level2_batch'] },
    ]);
    const btc = await eventsOf(local.env, ingestor.session, 'BTC-USD');
    expect(
      btc
        .filter((e) => e.type === 'trade' || e.type === 'resync')
        .map((e) => (e.type === 'trade' ? e.tradeId : `resync:${e.type === 'resync' && e.reason}`)),
    ).toEqual(['resync:connect', '41', '42', 'resync:trade gap: expected 43, got 45', '45', '45', '46']);
    const eth = await eventsOf(local.env, ingestor.session, 'ETH-USD');
    expect(eth.filter((e) => e.type === 'resync').map((e) => e.type === 'resync' && e.reason)).toEqual([
      'connect',
    ]);
  });
});
