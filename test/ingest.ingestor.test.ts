import { gunzipSync } from 'node:zlib';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { kinesisClient, s3Client } from '../src/aws/clients.js';
import { Ingestor } from '../src/ingest/ingestor.js';
import type { Logger } from '../src/ingest/log.js';
import { KinesisProducer } from '../src/ingest/producer.js';
import { SnapshotStore } from '../src/ingest/snapshots.js';
import { BUCKETS, STREAM } from '../src/resources.js';
import type { StreamEvent } from '../src/stream/record.js';
import { readStream } from './ingest.helpers.js';
import { withEmulators } from './support/system.js';

// The exchange side is a real WebSocket server speaking the Advanced Trade protocol from a script, so the test
// decides exactly where the sequence gap and the disconnects happen.
const local = withEmulators({ provision: true });
const PRODUCTS = ['BTC-USD', 'ETH-USD'];
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

function startIngestor(url: string, options: { silenceMs?: number } = {}) {
  const producer = new KinesisProducer({
    client: kinesisClient(local.env),
    streamName: STREAM.localName,
    lingerMs: 5,
  });
  const ingestor = new Ingestor({
    feedUrl: url,
    products: PRODUCTS,
    producer,
    snapshots: new SnapshotStore(s3Client(local.env), BUCKETS.lake.localName),
    log,
    session: `t${Math.random().toString(36).slice(2, 8)}`,
    silenceMs: options.silenceMs ?? 5000,
    statsIntervalMs: 60_000,
    reconnectBaseMs: 10,
    reconnectCapMs: 50,
  });
  ingestor.start();
  cleanups.push(() => ingestor.stop());
  return ingestor;
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** This session's events of one partition key, in stream order. */
async function eventsOf(session: string, product: string): Promise<StreamEvent[]> {
  const records = await readStream(kinesisClient(local.env), STREAM.localName);
  return records
    .filter((r) => r.partitionKey === product)
    .flatMap((r) => r.events)
    .filter((e) => e.id.startsWith(`${session}.`));
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

    const btc = await eventsOf(ingestor.session, 'BTC-USD');
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
    const obj = await s3Client(local.env).send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    const book = JSON.parse(gunzipSync(await obj.Body!.transformToByteArray()).toString('utf8'));
    expect(book).toEqual({
      bids: [['100', '1.5']],
      asks: [
        ['100.3', '2'],
        ['100.31', '3'],
      ],
    });
    expect(ref.key).toBe(`snapshots/BTC-USD/${ref.exchUs}-${ingestor.session}.0-${ref.seq}.json.gz`);

    const eth = await eventsOf(ingestor.session, 'ETH-USD');
    expect(eth.map((e) => e.type)).toEqual(['resync', 'snapshot_ref', 'resync', 'snapshot_ref']);
    // stop() publishes a final stats event on the feed partition.
    const feed = await eventsOf(ingestor.session, '_feed');
    expect(feed.at(-1)).toMatchObject({ type: 'stats', resyncs: 2, reconnects: 0 });
    expect(ingestor.counters.droppedChanges).toBe(1);
  });

  it('reconnects after the server drops it or goes silent, starting from fresh snapshots', async () => {
    const exchange = await startExchange({
      onSubscribed(send, connection) {
        for (const p of PRODUCTS) send('l2_data', [snapshot(p, '1', '2')]);
        send('l2_data', [update('BTC-USD', '0.5', String(connection + 1))]);
        // Connection 0 is dropped abruptly, connection 1 just stops talking, connection 2 stays healthy.
        if (connection === 0) setTimeout(() => exchange.sockets[0]!.terminate(), 20);
      },
    });
    cleanups.push(exchange.close);
    const ingestor = startIngestor(exchange.url, { silenceMs: 300 });
    await until('a third connection', () => exchange.received.length >= 3 && ingestor.counters.frames >= 9);
    await ingestor.stop();

    expect(ingestor.counters.reconnects).toBeGreaterThanOrEqual(2);
    const disconnects = lines
      .filter((l) => l.msg === 'feed state' && l.to === 'backoff')
      .map((l) => l.reason);
    expect(disconnects.slice(0, 2)).toEqual(['remote', 'silence']);
    expect(ingestor.metrics.get('feed.close.remote')).toBeGreaterThanOrEqual(1);
    expect(ingestor.metrics.get('feed.close.silence')).toBeGreaterThanOrEqual(1);
    expect(ingestor.metrics.get('feed.transition.subscribed.backoff')).toBeGreaterThanOrEqual(2);
    const btc = await eventsOf(ingestor.session, 'BTC-USD');
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
