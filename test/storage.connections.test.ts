/**
 * The WebSocket API's connections table (src/storage/connections.ts) on dynalite: the caps $connect checks
 * (overall and per address, by conditional counters), counts given back exactly once, subscriptions on a gone
 * connection, expired items told apart from live ones, and a table that is not there named in the error.
 */
import { describe, expect, it } from 'vitest';
import { dynamoClient } from '../src/aws/clients.js';
import { TABLES } from '../src/resources.js';
import { CONNECTION_TTL_S, ConnectionsError, ConnectionsStore } from '../src/storage/connections.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const store = (now?: () => number) =>
  new ConnectionsStore({
    client: dynamoClient(local.env),
    table: TABLES.connections.localName,
    ...(now ? { now } : {}),
  });

describe('connections table', () => {
  it('caps connections per address and overall, and gives the counts back once', async () => {
    const s = store();
    const limits = { max: 3, perIp: 2 };
    expect(await s.open('a1=', '10.0.0.1', limits)).toEqual({ ok: true });
    expect(await s.open('a2=', '10.0.0.1', limits)).toEqual({ ok: true });
    expect(await s.open('a3=', '10.0.0.1', limits)).toEqual({ ok: false, reason: 'per_ip' });
    expect(await s.open('b1=', '10.0.0.2', limits)).toEqual({ ok: true });
    expect(await s.open('c1=', '10.0.0.3', limits)).toEqual({ ok: false, reason: 'full' });
    // The refused connection's address count was given back: it may connect once there is room.
    expect(await s.count({ ip: '10.0.0.3' })).toBe(0);
    expect(await s.count()).toBe(3);

    expect(await s.close('a1=')).toBe(true);
    expect(await s.close('a1=')).toBe(false);
    expect(await s.count()).toBe(2);
    expect(await s.count({ ip: '10.0.0.1' })).toBe(1);
    expect(await s.open('c1=', '10.0.0.3', limits)).toEqual({ ok: true });
    for (const id of ['a2=', 'b1=', 'c1=']) await s.close(id);
    expect(await s.count()).toBe(0);
  });

  it('keeps each connection products; a gone connection answers undefined', async () => {
    const s = store();
    await s.open('p1=', '10.0.1.1', { max: 100, perIp: 10 });
    expect(await s.subscribe('p1=', ['ETH-USD', 'BTC-USD'])).toEqual(['BTC-USD', 'ETH-USD']);
    expect(await s.subscribe('p1=', ['BTC-USD'])).toEqual(['BTC-USD', 'ETH-USD']);
    expect(await s.unsubscribe('p1=', ['BTC-USD'])).toEqual(['ETH-USD']);
    expect((await s.list()).live.find((c) => c.id === 'p1=')).toMatchObject({
      ip: '10.0.1.1',
      products: ['ETH-USD'],
    });
    expect(await s.unsubscribe('p1=')).toEqual([]);
    await s.close('p1=');
    expect(await s.subscribe('p1=', ['BTC-USD'])).toBeUndefined();
    expect(await s.unsubscribe('p1=')).toBeUndefined();
    // Not recreated by the failed update.
    expect((await s.list()).live.map((c) => c.id)).not.toContain('p1=');
  });

  it('lists a connection past its expiry apart from the live ones (TTL deletes lazily)', async () => {
    const s = store();
    await s.open('e1=', '10.0.2.1', { max: 100, perIp: 10 });
    const later = store(() => Date.now() + (CONNECTION_TTL_S + 1) * 1000);
    const { live, expired } = await later.list();
    expect(expired).toContain('e1=');
    expect(live.map((c) => c.id)).not.toContain('e1=');
    expect((await s.list()).live.map((c) => c.id)).toContain('e1=');
    // Past API Gateway's 2-hour limit, by a margin.
    expect(CONNECTION_TTL_S).toBeGreaterThan(2 * 3600);
    await s.close('e1=');
  });

  it('names the table when it cannot be reached', async () => {
    const missing = new ConnectionsStore({ client: dynamoClient(local.env), table: 'no-such-table' });
    await expect(missing.list()).rejects.toBeInstanceOf(ConnectionsError);
    await expect(missing.list()).rejects.toThrow(/connections table no-such-table/);
  });
});
