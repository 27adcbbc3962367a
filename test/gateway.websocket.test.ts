/**
 * The local WebSocket API (src/gateway/websocket.ts) over real WebSockets on loopback, running the very route
 * handlers Lambda runs (lambdas/ws/) against dynalite: route selection, the immediate snapshot on subscribe, clear
 * errors for bad messages, API Gateway's limits (1009 on an oversized frame or message, idle and maximum-duration
 * cuts, the connection rate, the per-address cap, Origin), a client that never reads, and the management API
 * (`/@connections/{id}`) driven by the AWS SDK client the worker's publisher uses.
 */
import { connect as netConnect } from 'node:net';
import {
  DeleteConnectionCommand,
  GetConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiGatewayManagementClient, dynamoClient } from '../src/aws/clients.js';
import { readResourceNames, WEBSOCKET_LIMITS } from '../src/config.js';
import { loadWebSocketRoutes } from '../src/gateway/handlers.js';
import { type RunningWebSocketApi, startWebSocketApi } from '../src/gateway/websocket.js';
import { ConnectionsStore } from '../src/storage/connections.js';
import { putLatest } from '../src/storage/latest.js';
import { type LocalGateway, snapshotAt, startLocalGateway } from './support/gateway.js';
import { until } from './support/until.js';
import { connect, type TestClient } from './support/wsClient.js';

const PER_IP = 12;
let local: LocalGateway;
let api: RunningWebSocketApi;
let store: ConnectionsStore;
const open: TestClient[] = [];

async function client(url = api.url, options = {}): Promise<TestClient> {
  const c = await connect(url, options);
  open.push(c);
  return c;
}

/** The connection id, as the page never needs it: asked through the management API's view of the table. */
async function idOf(before: Set<string>): Promise<string> {
  return until('the new connection in the table', async () => {
    const { live } = await store.list();
    return live.find((c) => !before.has(c.id))?.id;
  });
}

const ids = async () => new Set((await store.list()).live.map((c) => c.id));

beforeAll(async () => {
  local = await startLocalGateway({
    tempPrefix: 'qw-ws-',
    env: {
      SYMBOLS: 'BTC-USD,ETH-USD',
      WS_ORIGINS: 'http://dashboard.test',
      MAX_CONNECTIONS_PER_IP: String(PER_IP),
    },
    seed: () => putLatest(snapshotAt('BTC-USD', 65000.5)),
    websocket: { frameBytes: 8 * 1024, messageBytes: 128 * 1024 },
  });
  api = local.websocket!;
  store = new ConnectionsStore({ client: dynamoClient(), table: readResourceNames().connectionsTable });
});

afterAll(async () => {
  await Promise.all(open.map((c) => c.close().catch(() => {})));
  await local?.close();
});

describe('WebSocket API routes', () => {
  it('subscribe answers at once with the current snapshots; unsubscribe answers what is left', async () => {
    const c = await client();
    c.send({ action: 'subscribe', products: ['BTC-USD', 'ETH-USD'] });
    const sub = await c.next<{
      type: string;
      products: string[];
      snapshots: { product: string; n: number }[];
    }>();
    expect(sub.type).toBe('subscribed');
    expect(sub.products).toEqual(['BTC-USD', 'ETH-USD']);
    // Only BTC-USD has a snapshot: ETH-USD's comes with the first push.
    expect(sub.snapshots.map((s) => s.product)).toEqual(['BTC-USD']);
    expect(sub.snapshots[0]).toMatchObject({ bestBid: '65000', bestAsk: '65001' });
    expect(sub.snapshots[0]!.n).toBeGreaterThan(0);
    const row = (await store.list()).live.find((x) => x.products.length === 2);
    expect(row?.products).toEqual(['BTC-USD', 'ETH-USD']);

    c.send({ action: 'unsubscribe', products: ['ETH-USD'] });
    expect(await c.next()).toEqual({ type: 'unsubscribed', products: ['BTC-USD'] });
    c.send({ action: 'unsubscribe' });
    expect(await c.next()).toEqual({ type: 'unsubscribed', products: [] });
    await c.close();
  });

  it('answers bad messages with a clear error and keeps the connection', async () => {
    const c = await client();
    const cases: [unknown, string, RegExp][] = [
      ['not json', 'bad_json', /not JSON/],
      [{ hello: 1 }, 'no_action', /names no action/],
      [{ action: 'dance' }, 'unknown_action', /unknown action "dance"/],
      [{ action: '$connect' }, 'unknown_action', /unknown action/],
      [{ action: 'subscribe' }, 'bad_request', /products/],
      [{ action: 'subscribe', products: ['nope'] }, 'bad_request', /BTC-USD/],
      [{ action: 'subscribe', products: ['DOGE-USD'] }, 'unknown_product', /DOGE-USD/],
    ];
    for (const [message, code, why] of cases) {
      c.send(message);
      const answer = await c.next<{ type: string; code: string; message: string }>();
      expect(answer, JSON.stringify(message)).toMatchObject({ type: 'error', code });
      expect(answer.message).toMatch(why);
    }
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    await c.close();
  });

  it('a subscription to 10,000 products: 1009 as one frame, a clear error when fragmented', async () => {
    const products = Array.from({ length: 10_000 }, (_, i) => `P${i}-USD`);
    const body = JSON.stringify({ action: 'subscribe', products });
    const whole = await client();
    whole.send(body);
    expect((await whole.closed).code).toBe(1009);

    const parts = await client();
    for (let i = 0; i < body.length; i += 4096) {
      parts.ws.send(body.slice(i, i + 4096), { fin: i + 4096 >= body.length });
    }
    const answer = await parts.next<{ code: string; message: string }>();
    expect(answer.code).toBe('bad_request');
    expect(answer.message).toMatch(/at most 50 products/);
    await parts.close();
  });

  it('closes with 1009 a message over the message limit', async () => {
    const c = await client();
    const chunk = 'x'.repeat(8 * 1024);
    for (let i = 0; i < 17; i++) c.ws.send(chunk, { fin: i === 16 });
    expect((await c.closed).code).toBe(1009);
  });

  it('a fast-check property: no message crashes the router, each gets an answer', async () => {
    const c = await client();
    const message = fc.oneof(
      fc.string(),
      fc.json(),
      fc.record({ action: fc.oneof(fc.constantFrom('subscribe', 'unsubscribe', '$default'), fc.string()) }),
      fc.record({
        action: fc.constantFrom('subscribe', 'unsubscribe'),
        products: fc.oneof(fc.array(fc.string(), { maxLength: 60 }), fc.anything()),
      }),
    );
    await fc.assert(
      fc.asyncProperty(message, async (m) => {
        c.send(typeof m === 'string' ? m : JSON.stringify(m));
        const answer = await c.next<{ type: string }>();
        expect(['subscribed', 'unsubscribed', 'error']).toContain(answer.type);
      }),
      { numRuns: 150 },
    );
    c.send({ action: 'subscribe', products: ['BTC-USD'] });
    expect(await c.next()).toMatchObject({ type: 'subscribed' });
    await c.close();
  });
});

describe('$connect checks', () => {
  it('refuses a browser origin other than the dashboard, accepts the dashboard and non-browsers', async () => {
    await expect(connect(api.url, { origin: 'http://evil.test' })).rejects.toThrow(/403/);
    await (await client(api.url, { origin: 'http://dashboard.test' })).close();
    await (await client()).close();
  });

  it('enforces MAX_CONNECTIONS_PER_IP and gives the slots back on disconnect', async () => {
    await until('no connection left', async () => (await store.list()).live.length === 0);
    const many = await Promise.all(Array.from({ length: PER_IP }, () => client()));
    await expect(connect(api.url)).rejects.toThrow(/429/);
    await Promise.all(many.map((c) => c.close()));
    await until('the counts given back', async () => (await store.count()) === 0);
    await (await client()).close();
  });
});

describe('the management API through the SDK client', () => {
  it('PostToConnection delivers, GetConnection describes, DeleteConnection closes; a gone id is 410', async () => {
    const before = await ids();
    const c = await client();
    const id = await idOf(before);
    const mgmt = apiGatewayManagementClient(api.managementUrl, { maxSockets: 4, timeoutMs: 3000 });
    await mgmt.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('{"hello":"push"}') }));
    expect(await c.next()).toEqual({ hello: 'push' });

    const info = await mgmt.send(new GetConnectionCommand({ ConnectionId: id }));
    expect(info.Identity?.SourceIp).toBe('127.0.0.1');
    expect(info.ConnectedAt).toBeInstanceOf(Date);

    await mgmt.send(new DeleteConnectionCommand({ ConnectionId: id }));
    expect((await c.closed).code).toBe(1000);
    await until('$disconnect removed it', async () => !(await ids()).has(id));
    await expect(
      mgmt.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('{}') })),
    ).rejects.toBeInstanceOf(GoneException);
    mgmt.destroy();
  });

  it('cuts a client that never reads once its unsent data passes the bound (its posts then answer 410)', async () => {
    const before = await ids();
    // A raw socket: the handshake, then it never reads again.
    const socket = netConnect(Number(new URL(api.url).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await new Promise((resolve) => socket.once('data', resolve));
    socket.pause();
    const id = await idOf(before);
    const mgmt = apiGatewayManagementClient(api.managementUrl, { maxSockets: 4, timeoutMs: 3000 });
    const data = Buffer.alloc(100 * 1024, 'a');
    let posts = 0;
    // Bounded: the kernel's socket buffers fill first, then the gateway's bound (4 messages) is passed.
    for (; posts < 2000; posts++) {
      try {
        await mgmt.send(new PostToConnectionCommand({ ConnectionId: id, Data: data }));
      } catch (err) {
        expect(err).toBeInstanceOf(GoneException);
        break;
      }
    }
    expect(posts).toBeLessThan(2000);
    socket.destroy();
    mgmt.destroy();
  });
});

describe("API Gateway's time and rate limits (shortened)", () => {
  let short: RunningWebSocketApi;
  beforeAll(async () => {
    short = await startWebSocketApi({
      routes: await loadWebSocketRoutes(),
      port: 0,
      limits: { ...WEBSOCKET_LIMITS, idleMs: 300 },
    });
  });
  afterAll(async () => {
    await short?.close();
  });

  it('cuts an idle connection (1001), and the client reconnects', async () => {
    const c = await client(short.url);
    const cut = await c.closed;
    expect(cut).toEqual({ code: 1001, reason: 'Going away: idle timeout' });
    const again = await client(short.url);
    again.send({ action: 'subscribe', products: ['BTC-USD'] });
    expect(await again.next()).toMatchObject({ type: 'subscribed' });
    await again.close();
  });

  it('cuts a busy connection at the maximum duration (1001)', async () => {
    // Its own API: an idle timeout long enough that only the maximum duration can cut, however slow the machine.
    const long = await startWebSocketApi({
      routes: await loadWebSocketRoutes(),
      port: 0,
      limits: { ...WEBSOCKET_LIMITS, idleMs: 60_000, maxConnectionMs: 900 },
    });
    const c = await client(long.url);
    // Busy: a message every 100 ms keeps the idle timeout away.
    const timer = setInterval(() => c.send({ action: 'unsubscribe' }), 100);
    const cut = await c.closed;
    clearInterval(timer);
    expect(cut).toEqual({ code: 1001, reason: 'Going away: maximum connection duration' });
    expect(c.received.length).toBeGreaterThan(0); // it was answered while busy
    await long.close();
  });

  it('1,000 connects at once at the real limits: each opened or refused (429: the rate, then the address cap), no crash', async () => {
    const api1000 = await startWebSocketApi({
      routes: await loadWebSocketRoutes(),
      port: 0,
      limits: WEBSOCKET_LIMITS,
    });
    await until('no connection left', async () => (await store.count({ ip: '127.0.0.1' })) === 0);
    const results = await Promise.allSettled(
      Array.from({ length: 1000 }, () => connect(api1000.url, { handshakeTimeout: 60_000 })),
    );
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    // 500 a second pass the rate limit, then $connect's per-address cap keeps PER_IP of them.
    expect(opened.length).toBeLessThanOrEqual(PER_IP);
    expect(opened.length + refused.length).toBe(1000);
    for (const reason of refused) expect(reason).toMatch(/429/);
    expect(api1000.connections()).toBe(opened.length);
    opened[0]?.send({ action: 'subscribe', products: ['BTC-USD'] });
    if (opened[0]) expect(await opened[0].next()).toMatchObject({ type: 'subscribed' });
    await Promise.all(opened.map((c) => c.close()));
    await api1000.close();
    await until('the counts given back', async () => (await store.count({ ip: '127.0.0.1' })) === 0);
  });

  it('refuses more new connections a second than the limit (429)', async () => {
    const limited = await startWebSocketApi({
      routes: await loadWebSocketRoutes(),
      port: 0,
      limits: { ...WEBSOCKET_LIMITS, newConnectionsPerS: 5 },
    });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => client(limited.url)));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(results.length - refused.length).toBeGreaterThanOrEqual(5);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) expect(String((r as PromiseRejectedResult).reason)).toMatch(/429/);
    await limited.close();
  });
});
