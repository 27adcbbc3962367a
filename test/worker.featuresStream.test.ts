/**
 * The optional features stream against kinesalite: provisioned only when FEATURES_STREAM enables it, and the
 * worker's publisher puts one record per tick that decodes to that tick's features.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
  ListStreamsCommand,
} from '@aws-sdk/client-kinesis';
import { beforeAll, describe, expect, it } from 'vitest';
import { kinesisClient, s3Client } from '../src/aws/clients.js';
import { FEATURE_NAMES } from '../src/features/spec.js';
import type { FeatureRow } from '../src/features/types.js';
import { provision } from '../src/local/provision.js';
import { BUCKETS, FEATURES_STREAM } from '../src/resources.js';
import { decodeFeaturesRecord } from '../src/stream/featuresRecord.js';
import { simStream } from '../src/worker/simStream.js';
import { kinesisFeaturesPublisher } from '../src/worker/sinks/featuresStream.js';
import { Worker } from '../src/worker/worker.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const NAME = FEATURES_STREAM.localName;

async function streamNames(kinesis: KinesisClient): Promise<string[]> {
  return (await kinesis.send(new ListStreamsCommand({}))).StreamNames ?? [];
}

async function readAll(kinesis: KinesisClient, stream: string) {
  const shards = (await kinesis.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  const out = [];
  for (const shard of shards) {
    let iterator = (
      await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: stream,
          ShardId: shard.ShardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    while (iterator) {
      const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
      for (const r of page.Records ?? []) out.push(decodeFeaturesRecord(r.Data!));
      if ((page.Records ?? []).length === 0) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}

let kinesis: KinesisClient;
beforeAll(() => {
  kinesis = kinesisClient(local.env);
});

describe('features stream', () => {
  it('is provisioned locally only when FEATURES_STREAM is set', async () => {
    expect(await streamNames(kinesis)).not.toContain(NAME); // provisioned without the flag
    const result = await provision({ ...local.env, [FEATURES_STREAM.env]: NAME }, { seed: false });
    expect(result.created).toContain(`stream ${NAME}`);
    expect(await streamNames(kinesis)).toContain(NAME);
  });

  it('gets one record per tick from the worker, decoding to that tick’s features', async () => {
    const published: FeatureRow[] = [];
    const publish = kinesisFeaturesPublisher(kinesis, NAME, () => {});
    const worker = new Worker({
      tickMs: 100,
      deltaMs: 500,
      s3: s3Client(local.env),
      lakeBucket: BUCKETS.lake.localName,
      writeLatest: async () => {},
      now: () => 0,
      log: () => {},
      publishFeatures: async (rows) => {
        published.push(...rows);
        await publish(rows);
      },
    });
    for (const b of simStream({ seed: 3, products: ['BTC-USD', 'ETH-USD'], seconds: 8 })) {
      await worker.handleBatch(b);
    }
    expect(published.length).toBeGreaterThan(100); // ~8 s of 100 ms ticks, two products

    const records = await readAll(kinesis, NAME);
    const key = (r: { product: string; tsUs: number }) => `${r.product}@${r.tsUs}`;
    expect(records.map(key).sort()).toEqual(published.map(key).sort());
    const byKey = new Map(records.map((r) => [key(r), r]));
    for (const row of published) {
      const r = byKey.get(key(row))!;
      expect(r).toMatchObject({ v: 1, seq: row.seq, bestBid: row.bestBid, bestAsk: row.bestAsk });
      const values = FEATURE_NAMES.map((n) => r.features[n] ?? Number.NaN);
      expect(values).toEqual([...row.values]);
    }
  });
});
