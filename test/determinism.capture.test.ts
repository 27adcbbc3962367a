/**
 * Two connections, one result, on the real market (issue 14, "Done when"): the 25 s Advanced Trade capture replayed
 * by two replay servers (src/replay/server.ts) to two ingestors — connection 2 on other frame boundaries (the
 * simulator's Repacker: up to 5 level2 / market_trades events per frame, its own sequence numbers), connection 1
 * losing 3 frames a third of the way in (it resyncs; a recording sends no fresh snapshot, so it stays without the
 * book and connection 2 carries the rest) — into one stream, one worker, one lake. The claim: the book of every tick
 * equals one clean connection's, and so does the lake (features and labels byte for byte, predictions but for the
 * feed latency, which is the receiving connection's). It holds since a ticker of a product with a book no longer moves
 * the event-time clock (its frame's time and its place among the book's events are one connection's), and a line
 * starting while no line has the book no longer passes a second resync (it cleared the ticker quote one connection
 * would have kept). The ingestors publish no watermarks here: a watermark closes the ticks after a stream's last
 * event, so where each run's lake ends would depend on when its ingestors stopped (what watermarks change, and do not,
 * is proven in test/features.watermark.test.ts and test/worker.arbiter.test.ts).
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { beforeAll, expect, it } from 'vitest';
import { kinesisClient, s3Client } from '../src/aws/clients.js';
import type { ArchivedFrame } from '../src/ingest/archive.js';
import { Ingestor } from '../src/ingest/ingestor.js';
import { KinesisProducer } from '../src/ingest/producer.js';
import { startReplayServer } from '../src/replay/server.js';
import { BUCKETS } from '../src/resources.js';
import { Repacker } from '../src/simulator/framing.js';
import { decodeFeatureRows, decodePredictionRows } from '../src/storage/parquet.js';
import { SnapshotStore } from '../src/stream/claimCheck.js';
import { describeCapture, receivedFrames } from './support/captures.js';
import { drainInto, liveWorker, servedBaseline } from './support/determinism.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';
import { createStream } from './worker.consumer.support.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const quiet = () => {};

interface Line {
  /** Most events per level2 / market_trades frame (1: as recorded). */
  pack: number;
  /** Frames [from, from + count) of the recording are lost on the way. */
  drop?: [number, number];
}

/** The recording as one connection receives it: repacked (in runs of 50 frames) and with its losses. */
async function* connection(frames: readonly ArchivedFrame[], line: Line): AsyncIterable<ArchivedFrame> {
  const kept = frames.filter((_, i) => !line.drop || i < line.drop[0] || i >= line.drop[0] + line.drop[1]);
  if (line.pack <= 1) {
    yield* kept;
    return;
  }
  const packer = new Repacker(line.pack);
  for (let i = 0; i < kept.length; i += 50) {
    const chunk = kept.slice(i, i + 50);
    const out = packer.pack(
      chunk.map((f) => {
        const seq = (JSON.parse(f.frame) as { sequence_num?: unknown }).sequence_num;
        return { text: f.frame, seq: typeof seq === 'number' ? seq : null };
      }),
    );
    const recvUs = chunk[chunk.length - 1]!.recvUs;
    for (const f of out) yield { recvUs, conn: 'replay', frame: f.text };
  }
}

describeCapture('advancedTrade', 'two connections replaying the Advanced Trade capture', (c) => {
  const local = withEmulators({ provision: true });
  const served = servedBaseline(local);
  let kinesis: KinesisClient;
  let s3: S3Client;
  let frames: ArchivedFrame[];

  beforeAll(async () => {
    kinesis = kinesisClient(local.env);
    s3 = s3Client(local.env);
    frames = await receivedFrames(c);
  });

  /** The lake's per-tick zones, by name without the stream's sequence numbers. */
  async function run(name: string, lines: Line[]): Promise<Map<string, Buffer>> {
    const streamName = `qw-capture-${name}`;
    const bucket = `qw-capture-${name}`;
    await createStream(kinesis, streamName, 1);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const worker = liveWorker({ env: local.env, kinesis, s3, models: served.models, bucket });
    const consumer = drainInto(worker, { env: local.env, kinesis, streamName });
    const servers = await Promise.all(
      lines.map((line) => startReplayServer({ frames: connection(frames, line), speed: 5 })),
    );
    const ingestors = servers.map(
      (server, i) =>
        new Ingestor({
          feedUrl: server.url,
          products: PRODUCTS,
          producer: new KinesisProducer({ client: kinesis, streamName, lingerMs: 5 }),
          snapshots: new SnapshotStore(s3, BUCKETS.lake.localName),
          log: quiet,
          session: `${name}${i + 1}`,
          snapshotIntervalMs: 5_000,
        }),
    );
    try {
      for (const g of ingestors) g.start();
      const sent = await Promise.all(servers.map((s) => s.done));
      await until('every frame read', () => ingestors.every((g, i) => g.counters.frames >= sent[i]!), 30_000);
    } finally {
      for (const g of ingestors) await g.stop();
      for (const s of servers) await s.close();
      consumer.ingested();
    }
    await consumer.drained;
    await worker.close();
    const objects = new Map<string, Buffer>();
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    for (const o of out.Contents ?? []) {
      if (o.Key!.startsWith('raw/')) continue;
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      objects.set(
        o.Key!.replace(/\/shardId-\d+-\d+-\d+-/, '/'),
        Buffer.from(await got.Body!.transformToByteArray()),
      );
    }
    return objects;
  }

  it('the book of every tick equals the clean connection’s; features and labels byte for byte, predictions but for feed latency', async () => {
    const clean = await run('clean', [{ pack: 1 }]);
    const pair = await run('pair', [{ pack: 1, drop: [Math.floor(frames.length / 3), 3] }, { pack: 5 }]);
    const books = async (objects: Map<string, Buffer>) => {
      const out = new Map<string, unknown>();
      for (const [key, bytes] of objects) {
        if (!key.startsWith('features/')) continue;
        for (const r of (await decodeFeatureRows(bytes)).rows) {
          out.set(`${r.product} ${r.tsUs}`, [r.bestBid, r.bestAsk, r.mid, r.spread]);
        }
      }
      return out;
    };
    const [a, b] = [await books(clean), await books(pair)];
    expect(a.size).toBeGreaterThan(300);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [k, v] of a) expect(b.get(k), k).toEqual(v);
    // The whole lake: the same objects; features and labels byte for byte; predictions the same rows but for the
    // one lineage figure measured per connection (exchange -> ingest latency).
    expect([...pair.keys()].sort()).toEqual([...clean.keys()].sort());
    let predictions = 0;
    for (const [key, bytes] of clean) {
      if (!key.startsWith('predictions/')) {
        expect(pair.get(key)?.equals(bytes), key).toBe(true);
        continue;
      }
      const rows = async (x: Buffer | undefined) =>
        (await decodePredictionRows(x ?? Buffer.alloc(0))).map(({ feedLatencyMs: _, ...rest }) => rest);
      const got = await rows(pair.get(key));
      expect(got, key).toEqual(await rows(bytes));
      predictions += got.length;
    }
    expect(predictions).toBeGreaterThan(600);
  }, 120_000);
});
