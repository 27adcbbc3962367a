/**
 * The book check's verdict channel and lease against dynalite: a verdict item per product in the latest table,
 * written by the worker and read back by the ingestor's poller (once per checkId, verdicts from before its start
 * acknowledged without acting, a malformed item skipped and reported); the lease that lets one ingestor of several
 * fetch the checks.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { dynamoClient } from '../src/aws/clients.js';
import { BOOK_CHECK_LEASE_PK, BookCheckLease } from '../src/ingest/bookCheckLease.js';
import { VerdictPoller } from '../src/ingest/verdictPoller.js';
import type { Logger } from '../src/log.js';
import { TABLES } from '../src/resources.js';
import { type BookVerdict, putBookVerdict, readBookVerdicts } from '../src/storage/bookVerdicts.js';
import { LatestStoreError } from '../src/storage/latest.js';
import { FakeClock } from './support/clock.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const opts = () => ({ client: dynamoClient(local.env), table: TABLES.latest.localName });
const T0 = Date.UTC(2026, 7, 9, 21, 0, 0) * 1000;
const quiet: Logger = () => {};

const verdict = (product: string, checkId: string, atUs = T0): BookVerdict => ({
  product,
  result: 'mismatch',
  checkId,
  atUs,
  reason: 'bid 100.5: ours 1.2, exchange 0.7',
});

describe('book verdicts in the latest table', () => {
  it('reads back what was put, per product, the newest replacing the previous; none where there is none', async () => {
    await putBookVerdict(verdict('BTC-USD', 'v:BTC-USD:1:aa'), opts());
    await putBookVerdict(verdict('ETH-USD', 'v:ETH-USD:1:bb'), opts());
    await putBookVerdict(verdict('BTC-USD', 'v:BTC-USD:2:cc', T0 + 5), opts());
    expect(await readBookVerdicts(['SOL-USD', 'ETH-USD', 'BTC-USD'], opts())).toEqual([
      verdict('ETH-USD', 'v:ETH-USD:1:bb'),
      verdict('BTC-USD', 'v:BTC-USD:2:cc', T0 + 5),
    ]);
    expect(await readBookVerdicts([], opts())).toEqual([]);
  });

  it('reads more products than one BatchGet takes', async () => {
    const products = Array.from({ length: 130 }, (_, i) => `Q${String(i).padStart(3, '0')}-USD`);
    await putBookVerdict(verdict('Q129-USD', 'last'), opts());
    await putBookVerdict(verdict('Q000-USD', 'first'), opts());
    const got = await readBookVerdicts(products, opts());
    expect(got.map((v) => v.checkId)).toEqual(['first', 'last']);
  });

  it('skips and reports an item that is not a verdict, the others still read', async () => {
    await opts().client.send(
      new PutCommand({
        TableName: TABLES.latest.localName,
        Item: { pk: 'XRP-USD', sk: 'verdict', product: 'XRP-USD', result: 'mismatch', atUs: 'yesterday' },
      }),
    );
    await putBookVerdict(verdict('ADA-USD', 'ok'), opts());
    const problems: string[] = [];
    const got = await readBookVerdicts(['XRP-USD', 'ADA-USD'], {
      ...opts(),
      onMalformed: (product, problem) => problems.push(`${product}: ${problem}`),
    });
    expect(got.map((v) => v.product)).toEqual(['ADA-USD']);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^XRP-USD: .*checkId/);
    expect(problems[0]).toMatch(/atUs/);
  });

  it('refuses a bad verdict before writing, and names the table when DynamoDB fails', async () => {
    await expect(putBookVerdict({ ...verdict('btc', 'x') }, opts())).rejects.toThrow(
      /not a book verdict: product: expected a product like BTC-USD/,
    );
    await expect(putBookVerdict({ ...verdict('BTC-USD', '') }, opts())).rejects.toThrow(LatestStoreError);
    const missing = { client: opts().client, table: 'no-such-table' };
    await expect(readBookVerdicts(['BTC-USD'], missing)).rejects.toThrow(
      /reading book verdicts from no-such-table failed/,
    );
    await expect(putBookVerdict(verdict('BTC-USD', 'x'), missing)).rejects.toThrow(
      /writing the book verdict of BTC-USD to no-such-table failed/,
    );
  });
});

describe('the verdict poller', () => {
  it('acts once per new verdict; a verdict from before its start is acknowledged without acting', async () => {
    const products = ['DOT-USD', 'LTC-USD'];
    await putBookVerdict(verdict('DOT-USD', 'old', T0 - 1), opts());
    const acted: string[] = [];
    const poller = new VerdictPoller({
      products,
      everyMs: 5000,
      read: (p) => readBookVerdicts(p, opts()),
      act: (v) => {
        acted.push(`${v.product} ${v.checkId}`);
        return true;
      },
      startedAtUs: T0,
      log: quiet,
    });
    expect(await poller.poll()).toEqual([]);
    await putBookVerdict(verdict('LTC-USD', 'a', T0 + 1), opts());
    expect((await poller.poll()).map((v) => v.checkId)).toEqual(['a']);
    expect(await poller.poll()).toEqual([]); // the same verdict polled again
    await putBookVerdict(verdict('LTC-USD', 'b', T0 + 2), opts());
    await putBookVerdict(verdict('DOT-USD', 'c', T0 + 2), opts());
    await poller.poll();
    expect(acted).toEqual(['LTC-USD a', 'DOT-USD c', 'LTC-USD b']);
  });

  it('a failed read is logged and the next poll reads again', async () => {
    const lines: string[] = [];
    let fail = true;
    const poller = new VerdictPoller({
      products: ['LINK-USD'],
      everyMs: 5000,
      read: (p) => readBookVerdicts(p, fail ? { ...opts(), table: 'gone' } : opts()),
      act: () => true,
      startedAtUs: T0,
      log: (level, msg) => lines.push(`${level} ${msg}`),
    });
    await putBookVerdict(verdict('LINK-USD', 'l1', T0 + 1), opts());
    expect(await poller.poll()).toEqual([]);
    expect(lines).toContain('warn book verdicts not read; next poll tries again');
    fail = false;
    expect((await poller.poll()).map((v) => v.checkId)).toEqual(['l1']);
  });

  it('polls on its clock until stopped', async () => {
    const clock = new FakeClock();
    let reads = 0;
    const poller = new VerdictPoller({
      products: ['AVAX-USD'],
      everyMs: 5000,
      read: async () => {
        reads++;
        return [];
      },
      act: () => true,
      startedAtUs: T0,
      clock,
      log: quiet,
    });
    poller.start();
    await clock.advance(0);
    expect(reads).toBe(1);
    await clock.advance(4999);
    expect(reads).toBe(1);
    await clock.advance(1);
    expect(reads).toBe(2);
    await poller.stop();
    await clock.advance(60_000);
    expect(reads).toBe(2);
  });
});

describe('the book check lease', () => {
  const lease = (owner: string, clock: FakeClock, wall: { ms: number }) =>
    new BookCheckLease({
      ...opts(),
      owner,
      leaseMs: 30_000,
      renewMs: 10_000,
      clock,
      wallMs: () => wall.ms,
      log: quiet,
    });

  it('one holder at a time; the other takes it once it expired or was given up', async () => {
    const clock = new FakeClock();
    const wall = { ms: T0 / 1000 };
    const a = lease('ingestor-a', clock, wall);
    const b = lease('ingestor-b', clock, wall);
    expect(await a.tryTake()).toBe(true);
    expect(await b.tryTake()).toBe(false);
    expect(await a.tryTake()).toBe(true); // renewed
    expect([a.held(), b.held()]).toEqual([true, false]);
    // a stops renewing (killed): held locally for leaseMs - renewMs, taken by b once expired in the table.
    await clock.advance(20_000);
    wall.ms += 20_000;
    expect(a.held()).toBe(false);
    expect(await b.tryTake()).toBe(false);
    wall.ms += 10_001;
    expect(await b.tryTake()).toBe(true);
    expect(await a.tryTake()).toBe(false);
    // b gives it up on stop: a takes it at once.
    await b.stop();
    expect(b.held()).toBe(false);
    expect(await a.tryTake()).toBe(true);
  });

  it('two racing for a free lease: exactly one wins', async () => {
    await opts().client.send(
      new PutCommand({
        TableName: TABLES.latest.localName,
        Item: { pk: BOOK_CHECK_LEASE_PK, sk: 'lease', owner: 'gone', expiresAtMs: 0 },
      }),
    );
    const clock = new FakeClock();
    const wall = { ms: T0 / 1000 + 100_000 };
    const racers = ['r1', 'r2', 'r3', 'r4'].map((o) => lease(o, clock, wall));
    const won = await Promise.all(racers.map((r) => r.tryTake()));
    expect(won.filter(Boolean)).toHaveLength(1);
  });
});
