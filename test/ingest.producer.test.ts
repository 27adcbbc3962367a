import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateStreamCommand,
  type KinesisClient,
  type PutRecordsCommand,
  waitUntilStreamExists,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import {
  KinesisProducer,
  ProducerError,
  type PutRecordsClient,
  RecordTooLargeError,
} from '../src/ingest/producer.js';
import { type Emulators, startEmulators } from '../src/local/emulators.js';
import type { StreamEvent } from '../src/stream/record.js';
import { readStream } from './ingest.helpers.js';

let emulators: Emulators;
let client: KinesisClient;
let dataDir: string;
let streamCount = 0;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'qw-producer-'));
  // The SDK reads region and credentials from the process environment (the emulators accept these).
  process.env.AWS_REGION ??= 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
  emulators = await startEmulators({ dataDir });
  client = kinesisClient(emulators.env);
});

afterAll(async () => {
  await emulators?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A fresh 2-shard stream per test, so each test reads back only its own records. */
async function newStream(): Promise<string> {
  const name = `producer-test-${++streamCount}`;
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: 2 }));
  // kinesalite creates streams asynchronously even with --createStreamMs 0: wait until ACTIVE.
  await waitUntilStreamExists({ client, maxWaitTime: 30, minDelay: 1 }, { StreamName: name });
  return name;
}

const PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD'];

/** n book_changes events spread over the products, with a payload of `pad` levels to control sizes. */
function makeEvents(n: number, pad = 3): StreamEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    type: 'book_changes' as const,
    id: `test:${i}`,
    product: PRODUCTS[(i * 7) % PRODUCTS.length]!,
    exchUs: 1_786_309_548_000_000 + i,
    recvUs: 1_786_309_548_000_000 + i,
    seq: i,
    changes: Array.from({ length: pad }, (_, k) => ({
      side: 'bid' as const,
      price: `${100 + k}.5`,
      size: `${i}`,
    })),
  }));
}

/** Asserts each event arrived exactly once, under its product's partition key, in put order per product. */
async function expectDeliveredInOrder(stream: string, events: StreamEvent[]): Promise<void> {
  const records = await readStream(client, stream);
  const seen = records.flatMap((r) => {
    for (const e of r.events) expect(e.product).toBe(r.partitionKey);
    return r.events;
  });
  expect(seen.map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
  for (const product of PRODUCTS) {
    expect(seen.filter((e) => e.product === product).map((e) => e.seq)).toEqual(
      events.filter((e) => e.product === product).map((e) => e.seq),
    );
  }
}

describe('KinesisProducer against kinesalite', () => {
  it('aggregates events into per-product records and delivers each once, in order per product', async () => {
    const stream = await newStream();
    const producer = new KinesisProducer({ client, streamName: stream, lingerMs: 5, maxRecordBytes: 4096 });
    const events = makeEvents(600);
    for (const e of events) await producer.put(e);
    await producer.close();
    await expectDeliveredInOrder(stream, events);
    const stats = producer.stats();
    expect(stats.events).toBe(events.length);
    expect(stats.bufferDepth).toBe(0);
    // Aggregation: far fewer records than events, each within the record limit.
    expect(stats.records).toBeGreaterThan(PRODUCTS.length);
    expect(stats.records).toBeLessThan(events.length / 5);
    expect(stats.bytes / stats.records).toBeLessThanOrEqual(4096);
    expect(stats.retries).toBe(0);
  });

  it('keeps the buffer bounded: put() waits for room instead of growing it', async () => {
    const stream = await newStream();
    const maxBufferBytes = 8 * 1024;
    const producer = new KinesisProducer({
      client,
      streamName: stream,
      lingerMs: 5,
      maxBufferBytes,
      maxRecordBytes: 2048,
      maxBatchRecords: 2,
    });
    const events = makeEvents(400, 10);
    let peak = 0;
    let waited = 0;
    for (const e of events) {
      const before = producer.stats().records;
      await producer.put(e);
      if (producer.stats().records > before) waited++; // this put could only go in after an acknowledgement
      peak = Math.max(peak, producer.stats().bufferBytes);
    }
    await producer.close();
    expect(peak).toBeLessThanOrEqual(maxBufferBytes);
    expect(waited).toBeGreaterThan(0);
    await expectDeliveredInOrder(stream, events);
  });

  it('retries only the failed entries of a partial failure, keeping order', async () => {
    // kinesalite never throttles, so a partial failure cannot be produced by the emulator itself: this client
    // forwards each request to kinesalite with some entries held back and reports those as throttled.
    const stream = await newStream();
    const sentEntries: number[] = [];
    let injected = 0;
    let call = 0;
    const flaky: PutRecordsClient = {
      async send(command: PutRecordsCommand) {
        const records = command.input.Records ?? [];
        sentEntries.push(records.length);
        call++;
        const fail = (i: number) => call % 2 === 1 && i % 2 === 0 && records.length > 1;
        const passed = records.filter((_, i) => !fail(i));
        const real = await client.send(
          new (command.constructor as typeof PutRecordsCommand)({ ...command.input, Records: passed }),
        );
        let j = 0;
        const results = records.map((_, i) => {
          if (!fail(i)) return real.Records![j++]!;
          return { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'injected' };
        });
        const failed = records.length - passed.length;
        injected += failed;
        return { ...real, FailedRecordCount: failed, Records: results };
      },
    };
    const producer = new KinesisProducer({
      client: flaky,
      streamName: stream,
      lingerMs: 5,
      maxRecordBytes: 1024,
      backoffBaseMs: 1,
      backoffCapMs: 5,
    });
    const events = makeEvents(300);
    for (const e of events) await producer.put(e);
    await producer.close();
    expect(injected).toBeGreaterThan(0);
    expect(producer.stats().retries).toBe(injected);
    // Retry requests carried only the failed entries: sent = acknowledged + injected failures.
    expect(sentEntries.reduce((a, b) => a + b, 0)).toBe(producer.stats().records + injected);
    await expectDeliveredInOrder(stream, events);
  });

  it('under a tiny rate budget still delivers every event once, aggregated into fewer records', async () => {
    // The same paced feed twice: without a limit, and at 20 records/s per key and in total. Compared by counts.
    const events = makeEvents(600);
    const outcome = async (limits: { maxRecordsPerS?: number }) => {
      const stream = await newStream();
      const producer = new KinesisProducer({ client, streamName: stream, lingerMs: 5, ...limits });
      for (const [i, e] of events.entries()) {
        await producer.put(e);
        if (i % 3 === 2) await new Promise((resolve) => setTimeout(resolve, 2)); // a live feed, not a burst
      }
      await producer.close();
      await expectDeliveredInOrder(stream, events);
      expect((await readStream(client, stream)).length).toBe(producer.stats().records);
      return producer.stats();
    };
    const free = await outcome({ maxRecordsPerS: Number.POSITIVE_INFINITY });
    const tight = await outcome({ maxRecordsPerS: 20 });
    expect(free.throttledWaits).toBe(0);
    expect(tight.throttledWaits).toBeGreaterThan(0);
    expect(tight.events).toBe(free.events);
    expect(tight.records * 2).toBeLessThan(free.records);
    expect(tight.events / tight.records).toBeGreaterThan(2 * (free.events / free.records));
  });

  it('fails clearly on a missing stream instead of retrying forever', async () => {
    const producer = new KinesisProducer({ client, streamName: 'no-such-stream', lingerMs: 1 });
    await producer.put(makeEvents(1)[0]!);
    const err = await producer.flush().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProducerError);
    expect((err as Error).message).toContain('no-such-stream');
    expect(((err as Error).cause as Error).name).toBe('ResourceNotFoundException');
    await expect(producer.put(makeEvents(1)[0]!)).rejects.toBe(err);
  });

  it('rejects a single event larger than a record with RecordTooLargeError', async () => {
    const producer = new KinesisProducer({ client, streamName: 'unused', maxRecordBytes: 1024 });
    await expect(producer.put(makeEvents(1, 200)[0]!)).rejects.toBeInstanceOf(RecordTooLargeError);
    expect(producer.stats().bufferDepth).toBe(0);
  });
});
