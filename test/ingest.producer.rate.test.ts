/**
 * The producer's rate limit on virtual time: a fake clock and a fake PutRecords client, so "any 1 s window" is
 * checked exactly and nothing depends on how fast this machine is. The client is a fake because what is tested
 * is what the producer sends and when; the kinesalite test in ingest.producer.test.ts covers the real path.
 */
import type { PutRecordsCommand, PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import { ConfigError, readIngestConfig } from '../src/config.js';
import { KinesisProducer, type PutRecordsClient } from '../src/ingest/producer.js';
import { decodeRecord, type StreamEvent } from '../src/stream/record.js';
import { FakeClock } from './support/clock.js';

interface Attempt {
  at: number;
  key: string;
  bytes: number;
  ok: boolean;
}

/**
 * Records every PutRecords entry with the virtual time it was sent; takes `latencyMs` of virtual time to
 * answer. `fail(call, index)` marks entries as throttled (they count as sent: the budget charges them too).
 */
function fakeKinesis(
  clock: FakeClock,
  latencyMs: number,
  fail: (call: number, i: number) => boolean = () => false,
) {
  const attempts: Attempt[] = [];
  const delivered: { at: number; event: StreamEvent }[] = [];
  let call = 0;
  const client: PutRecordsClient = {
    async send(command: PutRecordsCommand): Promise<PutRecordsCommandOutput> {
      const at = clock.now();
      const c = call++;
      const records = command.input.Records ?? [];
      await clock.sleep(latencyMs);
      const results = records.map((r, i) => {
        const ok = !fail(c, i);
        const key = r.PartitionKey!;
        attempts.push({ at, key, bytes: r.Data!.byteLength + Buffer.byteLength(key), ok });
        if (!ok) return { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'fake' };
        for (const event of decodeRecord(r.Data!).events) delivered.push({ at: clock.now(), event });
        return { SequenceNumber: String(delivered.length), ShardId: 'shardId-000000000000' };
      });
      const failed = results.filter((r) => 'ErrorCode' in r).length;
      return { Records: results, FailedRecordCount: failed, $metadata: {} };
    },
  };
  return { client, attempts, delivered };
}

/** The most records and bytes sent in any window [t, t + 1000) of virtual time, over `attempts`. */
function busiestSecond(attempts: Attempt[]): { records: number; bytes: number } {
  let records = 0;
  let bytes = 0;
  for (const start of new Set(attempts.map((a) => a.at))) {
    const inside = attempts.filter((a) => a.at >= start && a.at < start + 1000);
    records = Math.max(records, inside.length);
    bytes = Math.max(
      bytes,
      inside.reduce((sum, a) => sum + a.bytes, 0),
    );
  }
  return { records, bytes };
}

/** `perMs` events per virtual millisecond for `durationMs`, product chosen by `pick(i)`. */
function feed(
  durationMs: number,
  perMs: number,
  pick: (i: number) => string,
): { atMs: number; event: StreamEvent }[] {
  return Array.from({ length: durationMs * perMs }, (_, i) => ({
    atMs: Math.floor(i / perMs),
    event: {
      type: 'trade' as const,
      id: `rate:${i}`,
      product: pick(i),
      exchUs: 1_786_309_548_000_000 + i,
      recvUs: 1_786_309_548_000_000 + i,
      seq: i,
      tradeId: String(i),
      price: '64000.5',
      size: '0.0015',
      aggressor: i % 2 === 0 ? ('buy' as const) : ('sell' as const),
    },
  }));
}

/** Puts each event at its virtual time (without awaiting: backpressure queues them in order), then closes. */
async function run(
  clock: FakeClock,
  producer: KinesisProducer,
  events: { atMs: number; event: StreamEvent }[],
): Promise<void> {
  const puts: Promise<void>[] = [];
  for (const { atMs, event } of events) {
    if (atMs > clock.t) await clock.advanceTo(atMs);
    puts.push(producer.put(event));
  }
  let closed = false;
  const closing = producer.close().then(() => {
    closed = true;
  });
  while (!closed) await clock.advanceTo(clock.t + 50);
  await Promise.all([...puts, closing]);
}

function expectEachOnceInOrder(delivered: { event: StreamEvent }[], events: { event: StreamEvent }[]): void {
  const seen = delivered.map((d) => d.event);
  expect(seen.map((e) => e.id).sort()).toEqual(events.map((e) => e.event.id).sort());
  for (const product of new Set(events.map((e) => e.event.product))) {
    expect(seen.filter((e) => e.product === product).map((e) => e.seq)).toEqual(
      events.filter((e) => e.event.product === product).map((e) => e.event.seq),
    );
  }
}

const PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'DOGE-USD'];

describe('KinesisProducer rate limit (virtual time)', () => {
  it('never sends more than the budget in any 1 s window, per key and in total, and delivers every event once in order', async () => {
    const budget = { maxRecordsPerS: 40, maxBytesPerS: 24_000, shardCount: 2 };
    const clock = new FakeClock();
    // Every 3rd call has its even entries throttled: retries must wait for budget like first sends.
    const kinesis = fakeKinesis(clock, 20, (call, i) => call % 3 === 1 && i % 2 === 0);
    const producer = new KinesisProducer({
      client: kinesis.client,
      streamName: 'rate',
      lingerMs: 10,
      backoffBaseMs: 10,
      backoffCapMs: 40,
      clock,
      ...budget,
    });
    const events = feed(3000, 1, (i) => PRODUCTS[i % PRODUCTS.length]!);
    await run(clock, producer, events);

    expectEachOnceInOrder(kinesis.delivered, events);
    const total = busiestSecond(kinesis.attempts);
    expect(total.records).toBeLessThanOrEqual(budget.maxRecordsPerS * budget.shardCount);
    expect(total.bytes).toBeLessThanOrEqual(budget.maxBytesPerS * budget.shardCount);
    for (const product of PRODUCTS) {
      const own = busiestSecond(kinesis.attempts.filter((a) => a.key === product));
      expect(own.records).toBeLessThanOrEqual(budget.maxRecordsPerS);
      expect(own.bytes).toBeLessThanOrEqual(budget.maxBytesPerS);
    }
    // The limit was what bound the producer (not an idle feed): it used most of its byte budget and had to wait.
    expect(total.bytes).toBeGreaterThanOrEqual(0.75 * budget.maxBytesPerS * budget.shardCount);
    const stats = producer.stats();
    expect(stats.throttledWaits).toBeGreaterThan(0);
    expect(stats.throttledMs).toBeGreaterThan(0);
    expect(stats.heldBack).toBeGreaterThan(0);
    expect(stats.retries).toBe(kinesis.attempts.filter((a) => !a.ok).length);
    expect(stats.retries).toBeGreaterThan(0);
    expect(stats.events).toBe(events.length);
    expect(stats.bufferDepth).toBe(0);
  });

  it('held-back records keep aggregating: the same feed makes fewer, bigger records under a tight budget', async () => {
    const events = feed(2000, 2, (i) => PRODUCTS[i % PRODUCTS.length]!);
    const outcome = async (limits: { maxRecordsPerS: number; maxBytesPerS: number }) => {
      const clock = new FakeClock();
      const kinesis = fakeKinesis(clock, 20);
      const producer = new KinesisProducer({
        client: kinesis.client,
        streamName: 'rate',
        lingerMs: 10,
        clock,
        ...limits,
      });
      await run(clock, producer, events);
      expectEachOnceInOrder(kinesis.delivered, events);
      return { ...producer.stats(), busiest: busiestSecond(kinesis.attempts) };
    };
    const free = await outcome({
      maxRecordsPerS: Number.POSITIVE_INFINITY,
      maxBytesPerS: Number.POSITIVE_INFINITY,
    });
    const tight = await outcome({ maxRecordsPerS: 20, maxBytesPerS: 1_000_000 });
    expect(free.throttledWaits).toBe(0);
    expect(tight.throttledWaits).toBeGreaterThan(0);
    expect(tight.busiest.records).toBeLessThanOrEqual(20);
    expect(free.busiest.records).toBeGreaterThan(20);
    expect(tight.events).toBe(free.events);
    // Same bytes of events, a fraction of the records.
    expect(tight.records * 3).toBeLessThan(free.records);
    expect(tight.events / tight.records).toBeGreaterThan(3 * (free.events / free.records));
  });

  it("a hot product waits on its own key's budget without holding back the others", async () => {
    const clock = new FakeClock();
    const kinesis = fakeKinesis(clock, 10);
    const producer = new KinesisProducer({
      client: kinesis.client,
      streamName: 'rate',
      lingerMs: 5,
      maxRecordsPerS: 10,
      maxBytesPerS: 4_000,
      shardCount: 8,
      clock,
    });
    // BTC-USD gets 9 events out of 10: ~5x its key's byte budget; together the others stay well within theirs.
    const events = feed(2000, 1, (i) => (i % 10 === 0 ? PRODUCTS[1 + ((i / 10) % 3)]! : 'BTC-USD'));
    await run(clock, producer, events);

    expectEachOnceInOrder(kinesis.delivered, events);
    const hot = kinesis.attempts.filter((a) => a.key === 'BTC-USD');
    expect(busiestSecond(hot).bytes).toBeLessThanOrEqual(4_000);
    expect(busiestSecond(hot).records).toBeLessThanOrEqual(10);
    const lastDelivery = (product: string) =>
      Math.max(...kinesis.delivered.filter((d) => d.event.product === product).map((d) => d.at));
    const feedEnd = Math.max(...events.map((e) => e.atMs));
    for (const cold of PRODUCTS.slice(1)) {
      // Each cold product is delivered soon after the feed ends, the hot one long after (virtual time).
      expect(lastDelivery(cold) - feedEnd).toBeLessThan((lastDelivery('BTC-USD') - feedEnd) / 4);
    }
  });

  it('caps a record at the byte budget and rejects an event that cannot fit it', async () => {
    const clock = new FakeClock();
    const kinesis = fakeKinesis(clock, 1);
    const producer = new KinesisProducer({
      client: kinesis.client,
      streamName: 'rate',
      lingerMs: 0,
      maxBytesPerS: 2_000,
      clock,
    });
    const big = { ...feed(1, 1, () => 'BTC-USD')[0]!.event, tradeId: 'x'.repeat(2_000) };
    await expect(producer.put(big)).rejects.toThrow(/over the \d+-byte record limit/);
    const events = feed(200, 1, () => 'BTC-USD');
    await run(clock, producer, events);
    expectEachOnceInOrder(kinesis.delivered, events);
    expect(Math.max(...kinesis.attempts.map((a) => a.bytes))).toBeLessThanOrEqual(2_000);
  });
});

describe('producer rate limit configuration', () => {
  it('defaults to 90% of a shard and validates the variables', () => {
    const defaults = readIngestConfig({});
    expect(defaults.maxRecordsPerS).toBe(900);
    expect(defaults.maxBytesPerS).toBe(Math.floor(0.9 * 1024 * 1024));
    const set = readIngestConfig({ PRODUCER_MAX_RECORDS_PER_S: '20', PRODUCER_MAX_BYTES_PER_S: '100000' });
    expect(set).toMatchObject({ maxRecordsPerS: 20, maxBytesPerS: 100_000 });
    expect(() => readIngestConfig({ PRODUCER_MAX_RECORDS_PER_S: '1001' })).toThrow(ConfigError);
    expect(() => readIngestConfig({ PRODUCER_MAX_RECORDS_PER_S: 'fast' })).toThrow(
      /PRODUCER_MAX_RECORDS_PER_S/,
    );
    expect(() => readIngestConfig({ PRODUCER_MAX_BYTES_PER_S: String(2 * 1024 * 1024) })).toThrow(
      /PRODUCER_MAX_BYTES_PER_S.*1048576/,
    );
  });
});
