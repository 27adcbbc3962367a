/**
 * Fixtures shared by the ingest tests (simulator -> Ingestor -> kinesalite/s3rver): the two-product exchange
 * simulator, an Ingestor wired to the local emulators, waiting for a condition, and reading back what the
 * ingestor published (a session's events, snapshot refs, the book they rebuild).
 */
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect } from 'vitest';
import { kinesisClient, s3Client } from '../../src/aws/clients.js';
import { OrderBook } from '../../src/book/book.js';
import { Ingestor, type IngestorOptions } from '../../src/ingest/ingestor.js';
import { KinesisProducer, type ProducerOptions } from '../../src/ingest/producer.js';
import { fromUnits, normalizeDecimal } from '../../src/marketdata/decimal.js';
import type { Level } from '../../src/marketdata/events.js';
import { BUCKETS, STREAM } from '../../src/resources.js';
import { productSpecs } from '../../src/simulator/exchange.js';
import { type SimulatorServer, startSimulator } from '../../src/simulator/server.js';
import { SnapshotStore } from '../../src/stream/claimCheck.js';
import type { StreamEvent } from '../../src/stream/record.js';
import { readStream } from '../ingest.helpers.js';

type Env = Record<string, string>;

export const PRODUCTS = ['BTC-USD', 'ETH-USD'];

/** The exchange simulator in fast mode with BTC-USD and ETH-USD, `levelsPerSide` deep, on a free port. */
export function startTwoProductSimulator(seed: number, levelsPerSide: number): Promise<SimulatorServer> {
  return startSimulator({
    port: 0,
    seed,
    mode: 'fast',
    products: productSpecs(PRODUCTS, undefined, { levelsPerSide }),
  });
}

/** startTwoProductSimulator for the calling test file: started in beforeAll, closed in afterAll. */
export function withSimulator(seed: number, levelsPerSide: number): { readonly sim: SimulatorServer } {
  let sim: SimulatorServer | undefined;
  beforeAll(async () => {
    sim = await startTwoProductSimulator(seed, levelsPerSide);
  });
  afterAll(async () => {
    await sim?.close();
  });
  return {
    get sim() {
      if (!sim) throw new Error('the simulator is only available inside tests (after beforeAll)');
      return sim;
    },
  };
}

/** A producer into the local stream; `options` adds to or overrides the client and stream name. */
export function localProducer(env: Env, options: Partial<ProducerOptions> = {}): KinesisProducer {
  return new KinesisProducer({ client: kinesisClient(env), streamName: STREAM.localName, ...options });
}

/**
 * An Ingestor (not started) for PRODUCTS over the local emulators: snapshots into the lake bucket, by default
 * a producer with a 5 ms linger, stats once a minute (so no test sees them mid-run); `options` overrides.
 */
export function localIngestor(
  env: Env,
  options: Omit<IngestorOptions, 'products' | 'producer' | 'snapshots'> & Partial<IngestorOptions>,
): Ingestor {
  return new Ingestor({
    products: PRODUCTS,
    producer: localProducer(env, { lingerMs: 5 }),
    snapshots: new SnapshotStore(s3Client(env), BUCKETS.lake.localName),
    statsIntervalMs: 60_000,
    ...options,
  });
}

/** The events one ingestor (its session: the records' line) published under a partition key, in stream order. */
export async function eventsOf(env: Env, session: string, partitionKey: string): Promise<StreamEvent[]> {
  const records = await readStream(kinesisClient(env), STREAM.localName);
  return records
    .filter((r) => r.partitionKey === partitionKey && r.line === session)
    .flatMap((r) => r.events);
}

/** The book a snapshot_ref points to (gzipped JSON in S3). */
export async function loadRef(
  env: Env,
  ref: { bucket: string; key: string },
): Promise<{ bids: Level[]; asks: Level[] }> {
  const obj = await s3Client(env).send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
  return JSON.parse(gunzipSync(await obj.Body!.transformToByteArray()).toString('utf8'));
}

/** Every level of both sides, for comparing whole books. */
export const fullBook = (b: OrderBook) => ({
  bids: b.top('bid', b.depth('bid')),
  asks: b.top('ask', b.depth('ask')),
});

/**
 * Rebuilds a product's book from its events the way a consumer would (no book changes between a resync and its
 * fresh snapshot; each snapshot holds the levels its ref announces) and expects it to equal the simulator's own
 * book at the last sequence number of connection `conn`.
 */
export async function expectSimulatorBook(
  env: Env,
  sim: SimulatorServer,
  conn: number | undefined,
  product: string,
  events: StreamEvent[],
): Promise<void> {
  const book = new OrderBook(product);
  let lastSeq = -1;
  let usable = false;
  for (const e of events) {
    if (e.type === 'resync') usable = false;
    if (e.type === 'snapshot_ref') {
      const { bids, asks } = await loadRef(env, e);
      expect(bids.length + asks.length).toBe(e.levels);
      book.applySnapshot(bids, asks);
      usable = true;
    }
    if (e.type === 'book_changes') {
      expect(usable).toBe(true);
      for (const c of e.changes) book.applyChange(c.side, c.price, c.size);
    }
    if (e.type === 'snapshot_ref' || e.type === 'book_changes') lastSeq = e.seq;
  }
  const top = sim.topOfBookAt(product, lastSeq, conn);
  expect(top, `${product} top at seq ${lastSeq}`).toBeDefined();
  expect(fromUnits(book.bestBid())).toBe(normalizeDecimal(top!.bestBid));
  expect(fromUnits(book.bestAsk())).toBe(normalizeDecimal(top!.bestAsk));
}
