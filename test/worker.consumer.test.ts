import { gzipSync } from 'node:zlib';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient, s3Client } from '../src/aws/clients.js';
import { FeaturePipeline } from '../src/features/pipeline.js';
import type { Level, MarketEvent } from '../src/marketdata/events.js';
import { loadActive } from '../src/model/source.js';
import { BUCKETS, STREAM, TABLES } from '../src/resources.js';
import { getLatest, putLatest } from '../src/storage/latest.js';
import { decodeFeatureRows, decodePredictionRows } from '../src/storage/parquet.js';
import { encodeRecord, type StreamEvent } from '../src/stream/record.js';
import { KinesisConsumer } from '../src/worker/consumer.js';
import { Worker } from '../src/worker/worker.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const P = 'BTC-USD';
const T0 = 1_786_309_200_000_000; // 2026-08-09T21:00:00Z
const BASELINE = new URL('../models/baseline', import.meta.url).href;

const bids: Level[] = [
  ['65000', '1.5'],
  ['64999.99', '0.2'],
  ['64999.5', '3'],
];
const asks: Level[] = [
  ['65000.01', '0.7'],
  ['65000.5', '2'],
  ['65001', '1'],
];

/** ~2.5 s of a small market: a claim-checked snapshot, then changes and trades every 50 ms. */
function marketEvents(): StreamEvent[] {
  const out: StreamEvent[] = [];
  let seq = 1;
  const base = (ms: number) => ({
    product: P,
    exchUs: T0 + ms * 1000,
    recvUs: T0 + ms * 1000 + 800,
    seq: seq++,
  });
  out.push({
    ...base(10),
    type: 'snapshot_ref',
    bucket: BUCKETS.lake.localName,
    key: 'snapshots/BTC-USD/test.json.gz',
    levels: 6,
    id: 's:1:0',
  });
  for (let ms = 50; ms <= 2500; ms += 50) {
    const b = base(ms);
    const k = ms / 50;
    if (k % 3 === 0) {
      out.push({
        ...b,
        type: 'trade',
        tradeId: `t${k}`,
        price: '65000.01',
        size: '0.01',
        aggressor: k % 2 ? 'buy' : 'sell',
        id: `s:${b.seq}:0`,
      });
    } else {
      const price = k % 4 === 0 ? '65000.005' : '65000'; // the best bid moves now and then
      out.push({
        ...b,
        type: 'book_changes',
        changes: [{ side: 'bid', price, size: k % 4 === 0 ? '0.3' : '1.5' }],
        id: `s:${b.seq}:0`,
      });
      if (k % 4 === 2)
        out.push({
          ...b,
          type: 'book_changes',
          changes: [{ side: 'bid', price: '65000.005', size: '0' }],
          id: `s:${b.seq}:1`,
        });
    }
  }
  return out;
}

describe('worker over kinesalite, s3rver and dynalite', () => {
  it('consumes, de-duplicates, scores, writes latest + lake, checkpoints, and matches an offline replay', async () => {
    const env = local.env;
    const s3 = s3Client(env);
    const dynamo = dynamoClient(env);
    const kinesis = kinesisClient(env);
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKETS.lake.localName,
        Key: 'snapshots/BTC-USD/test.json.gz',
        Body: gzipSync(JSON.stringify({ bids, asks })),
      }),
    );

    const events = marketEvents();
    const chunks: StreamEvent[][] = [];
    for (let i = 0; i < events.length; i += 10) chunks.push(events.slice(i, i + 10));
    const data = chunks.map((c) => encodeRecord(P, c));
    data.splice(3, 0, data[2]!); // a producer retry: the same record twice
    data.splice(5, 0, new TextEncoder().encode('{"v":9}')); // a record nobody can decode
    await kinesis.send(
      new PutRecordsCommand({
        StreamName: STREAM.localName,
        Records: data.map((Data) => ({ Data, PartitionKey: P })),
      }),
    );

    const model = await loadActive('quote_change_500ms', { ...env, MODEL_URI: BASELINE });
    const logs: { level: string; msg: string }[] = [];
    const worker = new Worker({
      tickMs: 100,
      deltaMs: 500,
      s3,
      lakeBucket: BUCKETS.lake.localName,
      objectTicks: 10,
      models: () => [model],
      writeLatest: (snap) => putLatest(snap, { client: dynamo, table: TABLES.latest.localName }),
      now: () => T0 / 1000 + 3000,
      log: (level, msg) => logs.push({ level, msg }),
    });
    const bad: string[] = [];
    const consumerOpts = {
      kinesis,
      dynamo,
      streamName: STREAM.localName,
      checkpointTable: TABLES.checkpoints.localName,
      idleMs: 20,
      onBadRecord: (b: { sequenceNumber: string }) => void bad.push(b.sequenceNumber),
    };
    const consumer = new KinesisConsumer(consumerOpts);
    const last = events[events.length - 1]!.exchUs;
    const abort = new AbortController();
    let shardId = '';
    let batchesScored = 0;
    await consumer.run(async (batch) => {
      const r = await worker.handleBatch(batch);
      shardId = batch.shardId;
      if (r.predictions > 0) batchesScored++;
      if (worker.pipeline.watermarkUs(P) === last) abort.abort();
    }, abort.signal);
    await worker.close();
    await model.release();

    // Delivery is at-least-once; the worker's dedup stage drops the retried record's events.
    expect(worker.duplicatesDropped).toBe(chunks[2]!.length);
    expect(bad).toHaveLength(1);
    expect(batchesScored).toBeGreaterThan(0);
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);

    // The lake holds what an offline replay of the same events computes (float32 as stored).
    const replay = new FeaturePipeline({ tickMs: 100, deltaMs: 500, topLevels: 0 });
    for (const e of events) {
      const ev: MarketEvent =
        e.type === 'snapshot_ref'
          ? { type: 'book_snapshot', product: P, exchUs: e.exchUs, recvUs: e.recvUs, seq: e.seq, bids, asks }
          : (e as MarketEvent);
      replay.push(ev);
    }
    const expected = replay.drain().rows;
    expect(expected.length).toBe(25); // ticks 100 .. 2500 ms

    const listed = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKETS.lake.localName, Prefix: `features/product=${P}/` }),
    );
    const keys = (listed.Contents ?? []).map((c) => c.Key!).sort();
    expect(keys).toHaveLength(3); // 1 s objects: [0,1) s, [1,2) s, and the partial [2,3) s written on close
    const stored = [];
    for (const key of keys) {
      const out = await s3.send(new GetObjectCommand({ Bucket: BUCKETS.lake.localName, Key: key }));
      stored.push(...(await decodeFeatureRows(await out.Body!.transformToByteArray())).rows);
    }
    expect(stored.map((r) => [r.tsUs, r.seq, r.bestBid, r.bestAsk])).toEqual(
      expected.map((r) => [r.tsUs, r.seq, r.bestBid, r.bestAsk]),
    );
    for (let i = 0; i < stored.length; i++) {
      expect(stored[i]!.values).toEqual(Float64Array.from(Float32Array.from(expected[i]!.values)));
    }

    const predKeys = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKETS.lake.localName, Prefix: `predictions/product=${P}/` }),
    );
    const firstPreds = await s3.send(
      new GetObjectCommand({ Bucket: BUCKETS.lake.localName, Key: predKeys.Contents![0]!.Key! }),
    );
    const preds = await decodePredictionRows(await firstPreds.Body!.transformToByteArray());
    expect(
      preds.every((p) => p.probability > 0 && p.probability < 1 && p.modelVersion === model.version),
    ).toBe(true);

    const latest = await getLatest(P, { client: dynamo, table: TABLES.latest.localName });
    expect(latest).toMatchObject({ tsUs: T0 + 2_500_000, bestBid: expected[24]!.bestBid, latencyMs: 500 });
    expect(latest?.bids).toHaveLength(3);
    expect(latest?.predictions.quote_change_500ms?.modelVersion).toBe(model.version);

    // A restarted consumer resumes after the checkpoint: nothing is handed over again.
    expect(await consumer.readCheckpoint(shardId)).toBeDefined();
    const stop = new AbortController();
    const again = new KinesisConsumer({ ...consumerOpts, onIdle: () => stop.abort() });
    let handed = 0;
    await again.run(async (b) => {
      handed += b.records.length;
    }, stop.signal);
    expect(handed).toBe(0);
  });
});
