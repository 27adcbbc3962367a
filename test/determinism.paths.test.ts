/**
 * Cross-path determinism (issue 4, "Done when"): the same fast-simulator seed gives the same feature and
 * prediction rows in the Parquet lake
 * - A and A': twice through the whole live path — simulator (fast mode) -> real Ingestor (raw file archive)
 *   -> kinesalite -> KinesisConsumer -> Worker (wired as containers/worker/main.ts, shipped baseline models
 *   from the registry) -> s3rver — each with its own stream, lake bucket and ingestor session;
 * - B: straight from A's raw archive, no Kinesis: readRecording -> the ingestor's mapper -> stream records
 *   built in memory (encodeRecord/decodeRecord, exchange snapshots claim-checked to S3 by the SnapshotStore)
 *   -> Worker.handleBatch -> its own lake bucket.
 * Rows are compared, not objects: each live run stops at a wall-clock moment, so at a different point of the
 * feed, and object names derive from the shard and Kinesis sequence numbers, which differ by path (and so do the
 * first/last object boundaries of a run). Every row whose tick lies in the event-time range all runs cover must
 * be there in every run and equal field by field. Event ids carry the ingestor session, but no row column does;
 * `seq` is the frame's sequence_num, which restarts on every connection, so it is the same in A and A' (one
 * connection each).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient, s3Client } from '../src/aws/clients.js';
import type { FeatureRow } from '../src/features/types.js';
import { FileArchive } from '../src/ingest/archive.js';
import { Ingestor } from '../src/ingest/ingestor.js';
import { KinesisProducer } from '../src/ingest/producer.js';
import {
  MalformedFrameError,
  type MappedFrame,
  mapAdvancedTradeFrameAsync,
} from '../src/marketdata/advancedTrade.js';
import { TARGETS } from '../src/model/types.js';
import { readRecording } from '../src/replay/readers.js';
import { BUCKETS, TABLES } from '../src/resources.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { startSimulator } from '../src/simulator/server.js';
import { putLatest } from '../src/storage/latest.js';
import { decodeFeatureRows, decodePredictionRows, type PredictionRow } from '../src/storage/parquet.js';
import { SnapshotStore } from '../src/stream/claimCheck.js';
import { decodeRecord, encodeRecord, eventKey, type StreamEvent } from '../src/stream/record.js';
import type { ConsumedRecord } from '../src/worker/consumer.js';
import type { Worker } from '../src/worker/worker.js';
import { drainInto, liveWorker, servedBaseline } from './support/determinism.js';
import { tempDataDir, withEmulators } from './support/system.js';
import { until } from './support/until.js';
import { createStream } from './worker.consumer.support.js';

const local = withEmulators({ provision: true });
const dir = tempDataDir('qw-determinism-paths-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SEED = 5;
const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const SNAPSHOT_INTERVAL_MS = 10_000;
/** Simulated time per live run, counted in periodic snapshot rounds (exchange time). */
const ROUNDS = 18;
const quiet = () => {};

const served = servedBaseline(local);
let kinesis: KinesisClient;
let s3: S3Client;

beforeAll(() => {
  kinesis = kinesisClient(local.env);
  s3 = s3Client(local.env);
});

/** A worker as containers/worker/main.ts builds it, writing its lake to `bucket` and the latest table. */
function newWorker(bucket: string, recovery?: { streamName: string }): Worker {
  return liveWorker({
    env: local.env,
    kinesis,
    s3,
    models: served.models,
    bucket,
    writeLatest: (snap) =>
      putLatest(snap, { client: dynamoClient(local.env), table: TABLES.latest.localName }),
    ...(recovery ? { recovery } : {}),
  });
}

interface Lake {
  features: FeatureRow[];
  predictions: PredictionRow[];
}

async function readLake(bucket: string): Promise<Lake> {
  const lake: Lake = { features: [], predictions: [] };
  let token: string | undefined;
  do {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of out.Contents ?? []) {
      const isFeatures = o.Key!.startsWith('features/');
      if (!isFeatures && !o.Key!.startsWith('predictions/')) continue;
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      const bytes = await got.Body!.transformToByteArray();
      if (isFeatures) lake.features.push(...(await decodeFeatureRows(bytes)).rows);
      else lake.predictions.push(...(await decodePredictionRows(bytes)));
    }
    token = out.NextContinuationToken;
  } while (token);
  return lake;
}

interface LiveRun extends Lake {
  archive: string;
  session: string;
}

/** Path A: simulator -> ingestor -> Kinesis -> consumer -> worker -> lake, all fresh (stream, bucket, session). */
async function live(name: string): Promise<LiveRun> {
  const streamName = `qw-det-${name}`;
  const bucket = `qw-det-${name}`;
  await createStream(kinesis, streamName, 2);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));

  const sim = await startSimulator({
    port: 0,
    seed: SEED,
    mode: 'fast',
    products: productSpecs(['BTC-USD', 'ETH-USD'], undefined, { levelsPerSide: 200 }),
  });
  const archive = join(dir, `${name}.ndjson.gz`);
  const session = `det${name}`;
  const ingestor = new Ingestor({
    feedUrl: sim.url,
    products: PRODUCTS,
    producer: new KinesisProducer({ client: kinesis, streamName, lingerMs: 5 }),
    snapshots: new SnapshotStore(s3, BUCKETS.lake.localName),
    log: quiet,
    session,
    archive: new FileArchive(archive),
    snapshotIntervalMs: SNAPSHOT_INTERVAL_MS,
  });

  const worker = newWorker(bucket, { streamName });
  const consumer = drainInto(worker, { env: local.env, kinesis, streamName });
  try {
    ingestor.start();
    await until('simulated minutes', () => ingestor.counters.periodicSnapshots >= ROUNDS);
    await ingestor.stop();
  } finally {
    await ingestor.stop();
    await sim.close();
    consumer.ingested();
  }
  await consumer.drained;
  // The stream has ended for good: write the open windows too (rows are compared, not objects).
  await worker.close();
  return { ...(await readLake(bucket)), archive, session };
}

/**
 * Path B: the archive of a live run, mapped as the ingestor maps it, into the worker without Kinesis. Only
 * market data goes in: the ingestor's own stream-maintenance events (the connect resync, periodic copies of its
 * book, feed stats) are left out, so equal rows also show that features do not depend on them.
 */
async function fromArchive(path: string, name: string): Promise<Lake> {
  const bucket = `qw-det-${name}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const snapshots = new SnapshotStore(s3, BUCKETS.lake.localName);
  const worker = newWorker(bucket);
  let records: ConsumedRecord[] = [];
  let n = 0;
  let exchangeSnapshots = 0;
  const flush = async () => {
    if (records.length > 0) await worker.handleBatch({ shardId: 'archive', records });
    records = [];
  };
  for await (const frame of readRecording(path)) {
    let mapped: MappedFrame;
    try {
      mapped = await mapAdvancedTradeFrameAsync(frame.frame, frame.recvUs);
    } catch (err) {
      if (err instanceof MalformedFrameError) continue;
      throw err;
    }
    const byProduct = new Map<string, StreamEvent[]>();
    for (const event of mapped.events) {
      if (event.type === 'heartbeat') continue; // the ingestor does not publish them either
      // The ingestor's event id (the archive's connection id is `<line>.<connection>`); the claim-checked book
      // goes under a key of B's own, so B reads back only snapshots it stored.
      const line = frame.conn.slice(0, frame.conn.lastIndexOf('.'));
      const e: StreamEvent =
        event.type === 'book_snapshot'
          ? await (async () => {
              const ref = { ...(await snapshots.put(event, `${frame.conn}.b`)), source: 'exchange' as const };
              return { ...ref, id: eventKey(ref, line, exchangeSnapshots++) };
            })()
          : { ...event, id: eventKey(event, line) };
      byProduct.set(e.product, [...(byProduct.get(e.product) ?? []), e]);
    }
    for (const [product, events] of byProduct) {
      // Through the stream's own encoding, as a Kinesis record would be.
      const decoded = decodeRecord(encodeRecord(product, events));
      records.push({ sequenceNumber: String(++n), product, events: decoded.events });
    }
    if (records.length >= 500) await flush();
  }
  await flush();
  await worker.close();
  return readLake(bucket);
}

type Ranges = Map<string, { from: number; to: number }>;

/** Per product, the ticks every run has rows for: from the latest first tick to the earliest last tick. */
function commonRanges(runs: Lake[]): Ranges {
  const ranges: Ranges = new Map();
  for (const product of PRODUCTS) {
    let from = Number.NEGATIVE_INFINITY;
    let to = Number.POSITIVE_INFINITY;
    for (const run of runs) {
      const ts = run.features.filter((r) => r.product === product).map((r) => r.tsUs);
      from = Math.max(from, Math.min(...ts));
      to = Math.min(to, Math.max(...ts));
    }
    ranges.set(product, { from, to });
  }
  return ranges;
}

const within = (ranges: Ranges, r: { product: string; tsUs: number }) => {
  const range = ranges.get(r.product);
  return range !== undefined && r.tsUs >= range.from && r.tsUs <= range.to;
};
const order = <T extends { product: string; tsUs: number }>(a: T, b: T) =>
  a.product === b.product ? a.tsUs - b.tsUs : a.product < b.product ? -1 : 1;

/** The feature rows of a run inside `ranges`, in (product, tick) order, as plain comparable objects. */
function features(run: Lake, ranges: Ranges) {
  return run.features
    .filter((r) => within(ranges, r))
    .sort(order)
    .map((r) => ({
      product: r.product,
      tsUs: r.tsUs,
      seq: r.seq,
      bestBid: r.bestBid,
      bestAsk: r.bestAsk,
      mid: r.mid,
      spread: r.spread,
      values: [...r.values],
    }));
}

function predictions(run: Lake, ranges: Ranges) {
  return run.predictions
    .filter((p) => within(ranges, p))
    .sort((a, b) => order(a, b) || (a.target < b.target ? -1 : a.target > b.target ? 1 : 0))
    .map((p) => ({
      product: p.product,
      tsUs: p.tsUs,
      target: p.target,
      modelVersion: p.modelVersion,
      probability: p.probability,
    }));
}

/** Equal row lists; a failure names the first differing row instead of diffing thousands. */
function expectSameRows<T>(got: T[], want: T[], what: string): void {
  const k = want.findIndex((w, i) => !isDeepStrictEqual(got[i], w));
  if (k >= 0) expect(got[k], `${what}: first differing row (#${k} of ${want.length})`).toEqual(want[k]);
  expect(got.length, `${what}: rows`).toBe(want.length);
}

let a: LiveRun;
let a2: LiveRun;
let b: Lake;
let ranges: Ranges;

describe('cross-path determinism of the lake (same simulator seed)', () => {
  beforeAll(async () => {
    a = await live('a');
    a2 = await live('a2');
    b = await fromArchive(a.archive, 'b');
    ranges = commonRanges([a, a2, b]);
  }, 120_000);

  it('covers minutes of event time, every row scored by the shipped baseline of each target', () => {
    // Every shipped slot is served; an L2 row is scored by its target's l2 model (the best set its data supports).
    const served_ = served.models.served();
    expect([...new Set(served_.map((m) => m.target))]).toEqual(TARGETS);
    const scoring = served_.filter((m) => m.featureSet === 'l2');
    expect(scoring.map((m) => m.target)).toEqual(TARGETS);
    for (const product of PRODUCTS) {
      const { from, to } = ranges.get(product)!;
      // ROUNDS periodic snapshot rounds of exchange time ran; the common range is most of it.
      expect(to - from, product).toBeGreaterThan((ROUNDS - 3) * SNAPSHOT_INTERVAL_MS * 1000);
    }
    for (const run of [a, a2, b]) {
      const rows = features(run, ranges);
      expect(rows.length).toBeGreaterThan(PRODUCTS.length * 1000);
      expect(predictions(run, ranges)).toHaveLength(rows.length * scoring.length);
      for (const m of scoring) {
        expect(run.predictions.some((p) => p.target === m.target && p.modelVersion === m.version)).toBe(true);
      }
    }
    // Two sessions of the ingestor: the same product, the same ticks, other event ids (nothing of them in rows).
    expect(a.session).not.toBe(a2.session);
  });

  it("A and A' (the seed twice through Kinesis) hold identical feature and prediction rows", () => {
    expectSameRows(features(a2, ranges), features(a, ranges), 'features');
    expectSameRows(predictions(a2, ranges), predictions(a, ranges), 'predictions');
  });

  it('B (straight from the archive, no Kinesis) holds the same rows as A', () => {
    // Including `seq` (the furthest sequence_num applied to the product): path A's periodic snapshots, which B
    // lacks, must not move it.
    expectSameRows(features(b, ranges), features(a, ranges), 'features');
    expectSameRows(predictions(b, ranges), predictions(a, ranges), 'predictions');
  });
});
