import { gunzipSync } from 'node:zlib';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kinesisClient, s3Client } from '../src/aws/clients.js';
import { OrderBook } from '../src/book/book.js';
import { Ingestor } from '../src/ingest/ingestor.js';
import type { Logger } from '../src/ingest/log.js';
import { KinesisProducer } from '../src/ingest/producer.js';
import { SnapshotStore } from '../src/ingest/snapshots.js';
import { fromUnits, normalizeDecimal } from '../src/marketdata/decimal.js';
import type { Level } from '../src/marketdata/events.js';
import { BUCKETS, STREAM } from '../src/resources.js';
import { type SimulatorServer, startSimulator } from '../src/simulator/server.js';
import type { StreamEvent } from '../src/stream/record.js';
import { readStream } from './ingest.helpers.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const PRODUCTS = ['BTC-USD', 'ETH-USD'];
let sim: SimulatorServer;

beforeAll(async () => {
  sim = await startSimulator({
    port: 0,
    seed: 7,
    mode: 'fast',
    products: [
      { productId: 'BTC-USD', price: 65_000, levelsPerSide: 200 },
      { productId: 'ETH-USD', price: 3_000, levelsPerSide: 200 },
    ],
  });
});
afterAll(async () => {
  await sim?.close();
});

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Ingestor against the exchange simulator, into kinesalite and s3rver', () => {
  it('publishes snapshot refs and changes that rebuild the simulator book, across a sequence gap', async () => {
    const logged: string[] = [];
    const log: Logger = (level, msg) => logged.push(`${level}:${msg}`);
    const producer = new KinesisProducer({ client: kinesisClient(local.env), streamName: STREAM.localName });
    const ingestor = new Ingestor({
      feedUrl: sim.url,
      products: PRODUCTS,
      producer,
      snapshots: new SnapshotStore(s3Client(local.env), BUCKETS.lake.localName),
      log,
      statsIntervalMs: 60_000,
    });
    ingestor.start();
    try {
      await until('some book traffic', () => ingestor.counters.frames >= 300);
      sim.faults.skipSequence(5);
      // Frames already on the wire arrive before the fresh snapshots: wait for those, not a frame count only.
      await until(
        'the resync, its fresh snapshots and more traffic',
        () =>
          ingestor.counters.resyncs >= 2 &&
          ingestor.counters.exchangeSnapshots >= 2 * PRODUCTS.length &&
          ingestor.counters.frames >= 800,
      );
    } finally {
      await ingestor.stop();
    }
    expect(logged).toContain('warn:sequence break: resync');
    expect(ingestor.counters.reconnects).toBe(0);

    const records = await readStream(kinesisClient(local.env), STREAM.localName);
    const s3 = s3Client(local.env);
    const [conn] = sim.connections();
    for (const product of PRODUCTS) {
      const events: StreamEvent[] = records
        .filter((r) => r.partitionKey === product)
        .flatMap((r) => r.events);
      expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
      const types = events.map((e) => e.type);
      expect(types.slice(0, 2)).toEqual(['resync', 'snapshot_ref']);
      // The exchange's: the first and the one after the gap (periodic ones follow the simulator's exchange time).
      const exchangeRefs = events.filter((e) => e.type === 'snapshot_ref' && e.source === 'exchange');
      expect(exchangeRefs).toHaveLength(2);
      expect(types.filter((t) => t === 'book_changes').length).toBeGreaterThan(10);

      // Rebuild the book the way a consumer would; it must match the simulator's own book at the last seq.
      const book = new OrderBook(product);
      let lastSeq = -1;
      let usable = false;
      for (const e of events) {
        if (e.type === 'resync') usable = false;
        if (e.type === 'snapshot_ref') {
          const obj = await s3.send(new GetObjectCommand({ Bucket: e.bucket, Key: e.key }));
          const { bids, asks } = JSON.parse(
            gunzipSync(await obj.Body!.transformToByteArray()).toString('utf8'),
          ) as {
            bids: Level[];
            asks: Level[];
          };
          expect(bids.length + asks.length).toBe(e.levels);
          book.applySnapshot(bids, asks);
          usable = true;
        }
        if (e.type === 'book_changes') {
          expect(usable).toBe(true); // no changes between a resync and its fresh snapshot
          for (const c of e.changes) book.applyChange(c.side, c.price, c.size);
        }
        if (e.type === 'snapshot_ref' || e.type === 'book_changes') lastSeq = e.seq;
      }
      const top = sim.topOfBookAt(product, lastSeq, conn);
      expect(top, `${product} top at seq ${lastSeq}`).toBeDefined();
      expect(fromUnits(book.bestBid())).toBe(normalizeDecimal(top!.bestBid));
      expect(fromUnits(book.bestAsk())).toBe(normalizeDecimal(top!.bestAsk));
    }
  });
});
