/**
 * The worker's push sink (src/worker/sinks/push.ts) through its real SDK client, the local WebSocket API's
 * management endpoint and the connections table on dynalite: per-product filtering, one message per
 * PUSH_MIN_MS carrying the newest values (never a stale one in between), nothing for a tick that looks the same,
 * 410 Gone removing the connection, and a slow post never delaying the others.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PushEntry } from '../src/api/push.js';
import { apiGatewayManagementClient, dynamoClient, s3Client } from '../src/aws/clients.js';
import { readResourceNames } from '../src/config.js';
import { componentLogger } from '../src/log.js';
import { BUCKETS } from '../src/resources.js';
import { ConnectionsStore } from '../src/storage/connections.js';
import { PUSH } from '../src/telemetry/catalog.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import { simStream } from '../src/worker/simStream.js';
import type { LatestSnapshotInput } from '../src/worker/sinks/latest.js';
import { PushSink, type PushSinkOptions } from '../src/worker/sinks/push.js';
import { Worker } from '../src/worker/worker.js';
import { FakeClock } from './support/clock.js';
import { type LocalGateway, snapshotAt, startLocalGateway } from './support/gateway.js';
import { until } from './support/until.js';
import { connect, type TestClient } from './support/wsClient.js';

const TICK_MS = 100;
let local: LocalGateway;
let store: ConnectionsStore;
let mgmt: ApiGatewayManagementApiClient;
const sinks: PushSink[] = [];
const clients: TestClient[] = [];

/** Product `product` at tick `n` with mid `mid`. */
const tick = (product: string, n: number, mid: number) => ({
  ...snapshotAt(product, mid),
  tsUs: n * TICK_MS * 1000,
});

function sink(options: Partial<PushSinkOptions> = {}): PushSink {
  const s = new PushSink({
    client: mgmt,
    store,
    tickMs: TICK_MS,
    minIntervalMs: 200,
    concurrency: 8,
    refreshMs: 60_000,
    telemetry: new Telemetry({ service: 'worker' }),
    log: componentLogger('worker'),
    ...options,
  });
  sinks.push(s);
  return s;
}

async function subscriber(products: string[]): Promise<TestClient> {
  const c = await connect(local.websocket!.url);
  clients.push(c);
  c.send({ action: 'subscribe', products });
  await c.next((m) => m.type === 'subscribed');
  return c;
}

type Push = { type: 'snapshot'; snapshots: PushEntry[] };
const pushes = (c: TestClient) => c.received.filter((m): m is Push => (m as Push).type === 'snapshot');

beforeAll(async () => {
  local = await startLocalGateway({
    tempPrefix: 'qw-push-',
    env: { SYMBOLS: 'BTC-USD,ETH-USD' },
    websocket: {},
  });
  store = new ConnectionsStore({ client: dynamoClient(), table: readResourceNames().connectionsTable });
  mgmt = apiGatewayManagementClient(local.websocket!.managementUrl, { maxSockets: 8, timeoutMs: 3000 });
});

afterAll(async () => {
  for (const s of sinks) await s.stop();
  for (const c of clients) await c.close().catch(() => {});
  mgmt?.destroy();
  await local?.close();
});

describe('push sink', () => {
  it('posts each connection only its products, the newest values once per interval', async () => {
    const btc = await subscriber(['BTC-USD']);
    const eth = await subscriber(['ETH-USD']);
    const both = await subscriber(['BTC-USD', 'ETH-USD']);
    const s = sink();
    await s.refresh();
    expect(s.connections).toBe(3);

    s.offer(tick('BTC-USD', 1000, 65000));
    const first = await btc.next<Push>((m) => m.type === 'snapshot');
    expect(first.snapshots.map((e) => [e.product, e.n])).toEqual([['BTC-USD', 1000]]);
    // Within the interval: nine newer ticks replace each other; the next message carries only the newest.
    for (let n = 1001; n <= 1009; n++) s.offer(tick('BTC-USD', n, 65000 + n));
    s.offer(tick('ETH-USD', 1009, 3000));
    const second = await btc.next<Push>((m) => m.type === 'snapshot');
    expect(second.snapshots.map((e) => [e.product, e.n, e.mid])).toEqual([['BTC-USD', 1009, 66009]]);
    expect(pushes(btc)).toHaveLength(2);

    await until('both products at the two-product connection', () =>
      pushes(both).some((p) => p.snapshots.some((e) => e.product === 'ETH-USD')),
    );
    const ethPush = await eth.next<Push>((m) => m.type === 'snapshot');
    expect(ethPush.snapshots.map((e) => e.product)).toEqual(['ETH-USD']);
    const seen = pushes(both).flatMap((p) => p.snapshots.map((e) => e.n));
    // Per product the counter only goes up: the page never has a stale frame to drop.
    expect(seen.filter((n) => n > 1000)).toEqual([...seen.filter((n) => n > 1000)].sort((a, b) => a - b));
    expect(pushes(eth).flatMap((p) => p.snapshots.map((e) => e.product))).not.toContain('BTC-USD');
    expect(s.posted).toBe(pushes(btc).length + pushes(eth).length + pushes(both).length);
  });

  it('posts go with ticks: an interval that ends mid-tick waits for the next tick of every product that keeps up', async () => {
    const c = await subscriber(['BTC-USD', 'ETH-USD']);
    const clock = new FakeClock();
    const s = sink({ minIntervalMs: 250, clock });
    await s.refresh();
    const both = async (n: number, at: number) => {
      await clock.advanceTo(at);
      s.offer(tick('BTC-USD', n, 65000 + n));
      s.offer(tick('ETH-USD', n, 3000 + n));
    };
    await both(3001, 0);
    await until('the first push', () => pushes(c).length === 1);
    await both(3002, 100);
    await both(3003, 200);
    // The interval ends at 250 ms; the newest entries are 50 ms old: it waits for tick 3004 of both products.
    await clock.advanceTo(280);
    await clock.advanceTo(300);
    s.offer(tick('BTC-USD', 3004, 70000));
    await clock.advanceTo(310);
    // Real time for a post already on its way to arrive (the fake clock does not move meanwhile).
    const inFlight = () => new Promise((r) => setTimeout(r, 200));
    await inFlight();
    expect(pushes(c)).toHaveLength(1);
    s.offer(tick('ETH-USD', 3004, 4000));
    await until('the second push', () => pushes(c).length === 2);
    expect(pushes(c)[1]!.snapshots.map((e) => [e.product, e.n])).toEqual([
      ['BTC-USD', 3004],
      ['ETH-USD', 3004],
    ]);
    // Next interval ends at 560 ms: ETH stalls at 3006; BTC's 3007 is not enough, its 3008 leaves ETH two behind.
    await both(3005, 400);
    await both(3006, 500);
    await clock.advanceTo(600);
    s.offer(tick('BTC-USD', 3007, 71000));
    await clock.advanceTo(700);
    await inFlight();
    expect(pushes(c)).toHaveLength(2);
    s.offer(tick('BTC-USD', 3008, 71001));
    await until('the third push', () => pushes(c).length === 3);
    expect(pushes(c)[2]!.snapshots.map((e) => [e.product, e.n])).toEqual([
      ['BTC-USD', 3008],
      ['ETH-USD', 3006],
    ]);
    // ETH comes back a tick behind and nothing follows: two ticks after the interval ends, what there is goes.
    await clock.advanceTo(800);
    s.offer(tick('ETH-USD', 3007, 4001));
    await clock.advanceTo(950 + 2 * TICK_MS - 5);
    await inFlight();
    expect(pushes(c)).toHaveLength(3);
    await clock.advanceTo(950 + 2 * TICK_MS);
    await until('the fourth push', () => pushes(c).length === 4);
    expect(pushes(c)[3]!.snapshots.map((e) => [e.product, e.n])).toEqual([['ETH-USD', 3007]]);
    // An interval that ends on a fresh tick of every product posts at once.
    await both(3009, 1400);
    await clock.advanceTo(1405);
    await until('the fifth push', () => pushes(c).length === 5);
    expect(pushes(c)[4]!.snapshots.map((e) => e.n)).toEqual([3009, 3009]);
  });

  it('sends nothing for a newer tick whose shown values are the same, nor an older tick', async () => {
    const c = await subscriber(['ETH-USD']);
    const s = sink({ minIntervalMs: 0 });
    await s.refresh();
    s.offer(tick('ETH-USD', 2000, 3100));
    await c.next<Push>((m) => m.type === 'snapshot');
    s.offer(tick('ETH-USD', 2001, 3100)); // same quote and levels
    s.offer(tick('ETH-USD', 1999, 3200)); // older
    s.offer(tick('ETH-USD', 2002, 3101));
    const next = await c.next<Push>((m) => m.type === 'snapshot');
    expect(next.snapshots.map((e) => e.n)).toEqual([2002]);
    expect(pushes(c)).toHaveLength(2);
  });

  it('removes a connection the API calls gone (410), from memory and the table', async () => {
    // A connection recorded in the table that the API no longer has (its $disconnect was lost).
    await store.open('gone-connection=', '10.0.0.9', { max: 1000, perIp: 20 });
    await store.subscribe('gone-connection=', ['BTC-USD']);
    const telemetry = new Telemetry({ service: 'worker' });
    const s = sink({ telemetry, minIntervalMs: 0 });
    await s.refresh();
    const held = s.connections;
    s.offer(tick('BTC-USD', 3000, 64000));
    await until('the gone connection removed', async () =>
      (await store.list()).live.every((c) => c.id !== 'gone-connection='),
    );
    expect(s.connections).toBe(held - 1);
    expect(telemetry.value(PUSH.gone)).toBe(1);
  });

  it('a slow post holds one slot: the other connections are served meanwhile', async () => {
    await Promise.all([1, 2, 3].map(() => subscriber(['BTC-USD'])));
    const subscribed = clients.filter((c) => c.ws.readyState === c.ws.OPEN);
    const { live } = await store.list();
    const slowId = live.find((c) => c.products.includes('BTC-USD'))!.id;
    const btcCount = live.filter((c) => c.products.includes('BTC-USD')).length;
    expect(btcCount).toBeGreaterThanOrEqual(5);
    // A management endpoint that stalls one connection cannot be made otherwise: this wraps the real client and
    // holds that connection's posts until released.
    let release = () => {};
    const stalled = new Promise<void>((r) => {
      release = r;
    });
    const s = sink({
      concurrency: 2,
      minIntervalMs: 0,
      client: {
        send: (async (command: { input: { ConnectionId?: string } }) => {
          if (command.input.ConnectionId === slowId) await stalled;
          return mgmt.send(command as never);
        }) as never,
      },
    });
    await s.refresh();
    s.offer(tick('BTC-USD', 4000, 64321));
    const got = (c: TestClient) => pushes(c).some((p) => p.snapshots.some((e) => e.n === 4000));
    await until('every connection but the stalled one served', () =>
      subscribed.filter(got).length === btcCount - 1 ? true : undefined,
    );
    release();
    await until('the stalled one served once released', () => subscribed.filter(got).length === btcCount);
  });

  it('is a sink stage of the worker: offered every latest snapshot the batch writes', async () => {
    const written: LatestSnapshotInput[] = [];
    const offered: LatestSnapshotInput[] = [];
    const worker = new Worker({
      tickMs: TICK_MS,
      deltaMs: 500,
      s3: s3Client(),
      lakeBucket: BUCKETS.lake.localName,
      writeLatest: async (snapshot) => void written.push(snapshot),
      push: { offer: (snapshot) => void offered.push(snapshot) },
      now: () => 0,
      log: () => {},
    });
    for (const b of simStream({ seed: 5, products: ['BTC-USD', 'ETH-USD'], seconds: 3 })) {
      await worker.handleBatch(b);
    }
    expect(new Set(written.map((w) => w.product))).toEqual(new Set(['BTC-USD', 'ETH-USD']));
    expect(offered).toEqual(written);
  });

  it('a post that never answers times out (PUSH_TIMEOUT_MS): counted as failed, its slot given back', async () => {
    // A management endpoint that accepts the request and never answers: a real server, the fault it makes.
    const stalled: ServerResponse[] = [];
    const server = createServer((req, res) => {
      req.resume();
      stalled.push(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = apiGatewayManagementClient(`http://127.0.0.1:${port}`, { maxSockets: 1, timeoutMs: 200 });
    const telemetry = new Telemetry({ service: 'worker' });
    await subscriber(['BTC-USD']);
    const one = {
      list: async () => ({
        live: (await store.list()).live.filter((c) => c.products.includes('BTC-USD')).slice(0, 1),
        expired: [],
      }),
      close: async () => true,
    };
    const s = sink({ client, store: one, telemetry, concurrency: 1, minIntervalMs: 0 });
    await s.refresh();
    expect(s.connections).toBe(1);
    s.offer(tick('BTC-USD', 5000, 61000));
    await until('the first post timed out', () => telemetry.value(PUSH.failedPosts) === 1);
    // The one slot is free again: the next snapshot is posted (and times out too).
    s.offer(tick('BTC-USD', 5001, 61001));
    await until('the second post timed out', () => telemetry.value(PUSH.failedPosts) === 2);
    expect(stalled.length).toBe(2);
    client.destroy();
    for (const res of stalled) res.destroy();
    server.close();
  });

  it('an endpoint that refuses every post: each counted, logged once per 10 s, the connection kept', async () => {
    // A real server answering every post with API Gateway's 500 (a management API in trouble).
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(500, {
        'content-type': 'application/json',
        'x-amzn-errortype': 'InternalServerErrorException',
      });
      res.end('{"message":"internal error"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = apiGatewayManagementClient(`http://127.0.0.1:${port}`, { maxSockets: 4, timeoutMs: 2000 });
    const telemetry = new Telemetry({ service: 'worker' });
    const lines: { message: string; fields: Record<string, unknown> | undefined }[] = [];
    await subscriber(['ETH-USD']);
    const s = sink({
      client,
      telemetry,
      minIntervalMs: 0,
      log: (_level, message, fields) => void lines.push({ message, fields }),
    });
    await s.refresh();
    const held = s.connections;
    for (let n = 6000; n < 6005; n++) {
      s.offer(tick('ETH-USD', n, 3000 + n));
      const failed = telemetry.value(PUSH.failedPosts);
      await until('the posts of this tick failed', () => telemetry.value(PUSH.failedPosts) > failed);
    }
    const failures = lines.filter((l) => l.message === 'push: post failed');
    expect(failures).toHaveLength(1);
    expect(failures[0]!.fields).toMatchObject({ failedSinceLastLine: 1 });
    expect(s.connections).toBe(held);
    client.destroy();
    server.close();
  });

  it('offer() returns before any post: the fan-out runs on a later turn, off the batch', async () => {
    await subscriber(['BTC-USD']);
    let sent = 0;
    const s = sink({
      minIntervalMs: 0,
      client: {
        send: ((command: never) => {
          sent++;
          return mgmt.send(command);
        }) as never,
      },
    });
    await s.refresh();
    s.offer(tick('BTC-USD', 7000, 62000));
    s.offer(tick('ETH-USD', 7000, 3100));
    expect(sent).toBe(0);
    await until('the posts, later', () => sent > 0);
  });

  // Last: it ends every connection of the table.
  it('drops and deletes connections past their expiry (TTL deletes lazily)', async () => {
    const live = (await store.list()).live.length;
    expect(live).toBeGreaterThan(0);
    // Three hours on: every item is past API Gateway's 2-hour limit plus the margin.
    const later = new ConnectionsStore({
      client: dynamoClient(),
      table: readResourceNames().connectionsTable,
      now: () => Date.now() + 3 * 3_600_000,
    });
    const s = sink({ store: later });
    await s.refresh();
    expect(s.connections).toBe(0);
    expect((await store.list()).live).toEqual([]);
    expect(await store.count()).toBe(0);
  });
});
