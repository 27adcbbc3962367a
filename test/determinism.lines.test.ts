/**
 * Two ingestors, one result (issue 14): the same seeded market (fast simulator, 90 s that end at the same instant
 * on every connection) through
 * - CLEAN: one ingestor on one clean connection;
 * - PAIR: two ingestors (two sessions, two lines) on two connections of the same simulator, connection 2 packing
 *   up to 7 events per frame (other frame boundaries, other sequence numbers), each connection losing frames in
 *   its own windows of market time (each ingestor sees a gap, resyncs and resubscribes; the other covers it),
 * each through a fresh Kinesis stream -> KinesisConsumer -> Worker (wired as containers/worker/main.ts) -> lake.
 * The PAIR's features and labels objects are byte-identical to CLEAN's (names differ only by the Kinesis sequence
 * numbers they carry), its predictions too but for the one lineage figure measured per connection (the feed's
 * latency), and its raw zone holds every trade once, exactly CLEAN's trades.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditReport, audit } from '../src/audit/audit.js';
import { kinesisClient, s3Client } from '../src/aws/clients.js';
import { Ingestor } from '../src/ingest/ingestor.js';
import { KinesisProducer } from '../src/ingest/producer.js';
import { BUCKETS } from '../src/resources.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { startSimulator } from '../src/simulator/server.js';
import { decodePredictionRows, decodeRawRows } from '../src/storage/parquet.js';
import { SnapshotStore } from '../src/stream/claimCheck.js';
import type { ArbiterCounters } from '../src/worker/arbiter.js';
import { drainInto, liveWorker, servedBaseline } from './support/determinism.js';
import { tempDataDir, withEmulators } from './support/system.js';
import { until } from './support/until.js';
import { createStream } from './worker.consumer.support.js';

const local = withEmulators({ provision: true });
const dir = tempDataDir('qw-lines-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const MARKET_MS = 60_000;
/** Lines drift apart by this process's wall-clock stalls times the speed (at 5x a 400 ms stall is the 2 s of exchange
 * time after which a standby takes over from a primary that looks silent). */
const SPEED = 5;
const ANCHOR_US = Date.UTC(2026, 2, 2, 10, 0, 30) * 1000;
const quiet = () => {};

const served = servedBaseline(local);
let kinesis: KinesisClient;
let s3: S3Client;

beforeAll(() => {
  kinesis = kinesisClient(local.env);
  s3 = s3Client(local.env);
});

interface Line {
  /** Most events per level2 / market_trades frame on this connection. */
  framing: number;
  /** Windows of market time (ms since the anchor) in which this connection's frames are lost. */
  losses: [number, number][];
}

interface Run {
  /** Zone objects by name without the Kinesis sequence numbers: product, date, hour, window (and target). */
  objects: Map<string, Buffer>;
  trades: string[];
  /** Resyncs in the raw zone after the product's first book change: a gap that reached the book. */
  lateResyncs: number;
  ingestors: Ingestor[];
  lines: ArbiterCounters;
}

/** `lines` ingestors on their own connections of one simulator, into one stream, one worker, one lake. */
async function run(name: string, lines: Line[], hostileEveryMs?: number): Promise<Run> {
  const streamName = `qw-lines-${name}`;
  const bucket = `qw-lines-${name}`;
  await createStream(kinesis, streamName, 1);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const sim = await startSimulator({
    port: 0,
    seed: 9,
    // Realtime at several times real time: every connection's market runs on one clock, as the exchange's does
    // (fast mode lets each connection run ahead at its own pace).
    mode: 'realtime',
    speed: SPEED,
    holdUntilSubscribed: true,
    fastStartDelayMs: 100,
    anchorUs: ANCHOR_US,
    durationMs: MARKET_MS,
    products: productSpecs(PRODUCTS, undefined, { levelsPerSide: 200 }),
    framing: (conn) => lines[conn - 1]?.framing ?? 1,
    logPath: join(dir, `${name}.sim.ndjson`),
    losses: (conn) => lines[conn - 1]?.losses ?? [],
    ...(hostileEveryMs ? { hostileEveryMs } : {}),
  });
  // The latest table is not compared here.
  const worker = liveWorker({ env: local.env, kinesis, s3, models: served.models, bucket });
  const consumer = drainInto(worker, { env: local.env, kinesis, streamName });
  const ingestors: Ingestor[] = [];
  try {
    for (const [i] of lines.entries()) {
      const ingestor = new Ingestor({
        feedUrl: sim.url,
        products: PRODUCTS,
        producer: new KinesisProducer({ client: kinesis, streamName, lingerMs: 5 }),
        snapshots: new SnapshotStore(s3, BUCKETS.lake.localName),
        log: quiet,
        session: `${name}${i + 1}`,
        snapshotIntervalMs: 10_000,
        silenceMs: 1000, // a slow-loris socket (hostile mode) is closed after 1 s without a whole frame
      });
      ingestors.push(ingestor);
      ingestor.start();
      // Connection ids follow connection order: ingestor i holds connection i + 1.
      await until(`connection ${i + 1}`, () => sim.connections().length === i + 1);
    }
    await until(
      'every connection at the end of the market, each frame read',
      () => sim.ended() && ingestors.every((g, i) => g.counters.frames === sim.framesSent(i + 1)),
      60_000,
    );
  } finally {
    for (const g of ingestors) await g.stop();
    await sim.close();
    consumer.ingested();
  }
  await consumer.drained;
  await worker.close();
  return { ...(await readLake(bucket)), ingestors, lines: { ...worker.lines } };
}

async function readLake(bucket: string): Promise<Omit<Run, 'ingestors' | 'lines'>> {
  const objects = new Map<string, Buffer>();
  const trades: string[] = [];
  const booked = new Set<string>();
  let lateResyncs = 0;
  let token: string | undefined;
  do {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of out.Contents ?? []) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      if (o.Key!.startsWith('raw/')) {
        for (const row of await decodeRawRows(bytes)) {
          if (row.type === 'trade') trades.push(`${row.product} ${JSON.parse(row.event).tradeId}`);
          if (row.type === 'book_changes') booked.add(row.product);
          if (row.type === 'resync' && booked.has(row.product)) lateResyncs++;
        }
        continue;
      }
      // <shardId>-<firstSeq>-<lastSeq>-<windowStartMs>[-<target>].parquet: the sequence numbers are the stream's.
      objects.set(o.Key!.replace(/\/shardId-\d+-\d+-\d+-/, '/'), bytes);
    }
    token = out.NextContinuationToken;
  } while (token);
  return { objects, trades: trades.sort(), lateResyncs };
}

let clean: Run;
let pair: Run;

describe('two ingestors on separate connections give the lake of one clean connection', () => {
  beforeAll(async () => {
    clean = await run('clean', [{ framing: 1, losses: [] }]);
    pair = await run('pair', [
      {
        framing: 1,
        losses: [
          [12_000, 13_000],
          [40_000, 41_000],
        ],
      },
      { framing: 7, losses: [[26_000, 27_000]] },
    ]);
  }, 180_000);

  it('each connection of the pair lost frames and resynced, the clean one never did', () => {
    // The connect resync only; then at least one per gap (of every product of that connection).
    const why = JSON.stringify({ pair: pair.lines, ingestors: pair.ingestors.map((g) => g.counters) });
    expect(clean.ingestors[0]!.counters.resyncs).toBe(1);
    // (A loss window can pass between two frames of a stalled process: at least one gap on each connection.)
    const gaps = pair.ingestors.map((g) => g.counters.resyncs - 1);
    expect(Math.min(...gaps), why).toBeGreaterThanOrEqual(1);
    // Each gap was covered by the other line (the primary's by a takeover, a standby's needs none): none reached
    // the book.
    expect(pair.lines.absorbedResyncs, why).toBeGreaterThanOrEqual((gaps[0]! + gaps[1]!) * PRODUCTS.length);
    expect(pair.lines.failovers, why).toBeGreaterThan(0);
    // About 1,000 copies on a quiet machine; fewer when one line lags far behind on a loaded one (732 seen).
    expect(pair.lines.duplicates, why).toBeGreaterThan(300);
    expect([clean.lateResyncs, pair.lateResyncs]).toEqual([0, 0]);
  });

  it('features and labels: the same objects, byte for byte; predictions: the same rows but for the feed latency', async () => {
    const zones = (r: Run) => [...r.objects.keys()].sort();
    expect(zones(pair)).toEqual(zones(clean));
    for (const zone of ['features/', 'labels/', 'predictions/']) {
      expect(zones(clean).filter((k) => k.startsWith(zone)).length, zone).toBeGreaterThanOrEqual(2);
    }
    let latencies = 0;
    for (const [key, bytes] of clean.objects) {
      if (!key.startsWith('predictions/')) {
        expect(pair.objects.get(key)?.equals(bytes), key).toBe(true);
        continue;
      }
      // Exchange -> ingest latency is the receiving connection's: the one lineage figure a second line changes.
      const rows = async (b: Buffer | undefined) =>
        (await decodePredictionRows(b ?? Buffer.alloc(0))).map(({ feedLatencyMs, ...rest }) => {
          if (Number.isFinite(feedLatencyMs)) latencies++;
          return rest;
        });
      expect(await rows(pair.objects.get(key)), key).toEqual(await rows(bytes));
    }
    expect(latencies).toBeGreaterThan(1000);
  });

  it("the raw zone holds every trade once: the clean connection's trades", () => {
    expect(clean.trades.length).toBeGreaterThan(100);
    expect(new Set(pair.trades).size).toBe(pair.trades.length);
    expect(pair.trades).toEqual(clean.trades);
  });
});

describe('the audit (src/audit/audit.ts) of both runs', () => {
  const env = (name: string) => ({
    ...local.env,
    STREAM_NAME: `qw-lines-${name}`,
    LAKE_BUCKET: `qw-lines-${name}`,
    SYMBOLS: PRODUCTS.join(','),
  });
  // The targets served (each has an l2 and a ticker model; a row is scored once per target).
  const targets = () => [...new Set(served.models.served().map((m) => m.target))];
  const run = (name: string) =>
    audit({ simLog: join(dir, `${name}.sim.ndjson`), env: env(name), targets: targets() });

  it('finds both clean: every trade and level change sent is stored once, every tick scored, the books equal', async () => {
    for (const name of ['clean', 'pair']) {
      const r: AuditReport = await run(name);
      expect(r.problems, name).toEqual([]);
      expect(r.clean).toBe(true);
      for (const p of r.products) {
        expect(p.trades.sent, name).toBeGreaterThan(100);
        expect(p.trades).toMatchObject({ stored: p.trades.sent, lost: 0, duplicated: 0, invented: 0 });
        expect(p.levelChanges).toMatchObject({ lostAccepted: 0, unexplained: 0 });
        expect(p.levelChanges.sent).toBeGreaterThan(1000);
        expect(p.levelChanges.lost).toBe(0);
        expect(p.book.checked).toBeGreaterThan(500);
        expect(p.predictions.written).toBe(p.predictions.expected);
      }
    }
  });

  it('catches a duplicated raw object and a lost predictions object', async () => {
    const bucket = 'qw-lines-clean';
    const keys = (prefix: string) =>
      s3
        .send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))
        .then((o) => (o.Contents ?? []).map((c) => c.Key!).sort());
    const [rawKey] = await keys('raw/product=BTC-USD/');
    const [predictionsKey] = await keys('predictions/product=ETH-USD/');
    await s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        CopySource: `${bucket}/${rawKey}`,
        Key: rawKey!.replace('.parquet', '-copy.parquet'),
      }),
    );
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: predictionsKey! }));
    const r = await run('clean');
    expect(r.clean).toBe(false);
    const [btc, eth] = r.products;
    expect(btc!.trades.duplicated).toBeGreaterThan(0);
    expect(btc!.levelChanges.duplicated).toBeGreaterThan(0);
    expect(eth!.predictions.missing).toBeGreaterThan(100);
    expect(r.problems.filter((m) => m.startsWith('BTC-USD')).join()).toMatch(/duplicated in the lake/);
    expect(r.problems.filter((m) => m.startsWith('ETH-USD')).join()).toMatch(/predictions \d+ missing/);
  });
});

describe('hostile mode (src/simulator/hostile.ts): one ingestor against an exchange sending garbage', () => {
  it('no crash, no hang: every hostile frame refused, nothing accepted lost, nothing duplicated, gaps explained', async () => {
    const hostile = await run('hostile', [{ framing: 1, losses: [] }], 7_000);
    const r = await audit({
      simLog: join(dir, 'hostile.sim.ndjson'),
      env: {
        ...local.env,
        STREAM_NAME: 'qw-lines-hostile',
        LAKE_BUCKET: 'qw-lines-hostile',
        SYMBOLS: PRODUCTS.join(','),
      },
      targets: [...new Set(served.models.served().map((m) => m.target))],
    });
    const g = hostile.ingestors[0]!.counters;
    // Hostile frames came (one every 7 s of market) and were refused or skipped; the connection carried on.
    expect(g.malformed + g.reconnects, JSON.stringify(g)).toBeGreaterThanOrEqual(5);
    for (const p of r.products) {
      expect(p.trades.stored, p.product).toBeGreaterThan(100);
      expect([p.trades.lostAccepted, p.levelChanges.lostAccepted], p.product).toEqual([0, 0]);
      expect([p.trades.unexplained, p.levelChanges.unexplained], p.product).toEqual([0, 0]);
      expect([p.trades.duplicated, p.levelChanges.duplicated, p.trades.invented], p.product).toEqual([
        0, 0, 0,
      ]);
      expect(p.book.mismatches, p.book.firstMismatch).toBe(0);
    }
  }, 120_000);
});
