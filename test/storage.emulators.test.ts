import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it, vi } from 'vitest';
import { dynamoClient, s3Client } from '../src/aws/clients.js';
import { FEATURE_SPEC } from '../src/features/spec.js';
import type { FeatureRow } from '../src/features/types.js';
import { BUCKETS, TABLES } from '../src/resources.js';
import {
  getHistory,
  type HistoryItem,
  historyKey,
  labelBucketMs,
  putHistory,
  putHistoryLabels,
} from '../src/storage/history.js';
import { LakeWriteError, LakeWriter } from '../src/storage/lake.js';
import { LakeReadError, listLakeObjects, readLakeObjects } from '../src/storage/lakeReader.js';
import { getLatest, listLatest, putLatest } from '../src/storage/latest.js';
import { decodeFeatureRows, decodeLabelRows } from '../src/storage/parquet.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const T0 = 1_786_309_200_000_000; // 2026-08-09T21:00:00Z, an hour boundary
const F = FEATURE_SPEC.features.length;

function row(product: string, tick: number, seq: number): FeatureRow {
  return {
    product,
    tsUs: T0 + tick * 100_000,
    seq,
    bestBid: '100',
    bestAsk: '100.5',
    mid: 100.25,
    spread: 0.5,
    values: Float64Array.from({ length: F }, (_, i) => tick + i / 4),
  };
}

async function getBytes(env: Record<string, string>, bucket: string, key: string): Promise<Uint8Array> {
  const out = await s3Client(env).send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return out.Body!.transformToByteArray();
}

describe('LakeWriter through s3rver', () => {
  it('closes an object when a row of the next window arrives and reads it back intact', async () => {
    const env = local.env;
    const lake = new LakeWriter({
      s3: s3Client(env),
      bucket: BUCKETS.lake.localName,
      shardId: 'shardId-000000000000',
      tickMs: 100,
      objectTicks: 10, // 1 s objects
    });
    const rows = Array.from({ length: 25 }, (_, i) => row('BTC-USD', i, 100 + i));
    lake.addFeatures(rows);
    lake.addLabels(
      rows.slice(0, 12).map((r) => ({
        product: r.product,
        tsUs: r.tsUs,
        target: 'quote_change_500ms',
        value: r.seq % 2,
        seq: r.seq,
      })),
    );
    expect(lake.openObjects).toBe(2); // features window 2 and labels window 1 still collecting
    const written = await lake.settle();
    const prefix = 'features/product=BTC-USD/date=2026-08-09/hour=21/';
    expect(written.sort()).toEqual(
      [
        `${prefix}shardId-000000000000-100-109-${T0 / 1000}.parquet`,
        `${prefix}shardId-000000000000-110-119-${T0 / 1000 + 1000}.parquet`,
        // Labels are one object series per target (targets mature at different times).
        `labels/product=BTC-USD/date=2026-08-09/hour=21/shardId-000000000000-100-109-${T0 / 1000}-quote_change_500ms.parquet`,
      ].sort(),
    );
    const listed = await s3Client(env).send(
      new ListObjectsV2Command({ Bucket: BUCKETS.lake.localName, Prefix: prefix }),
    );
    expect(listed.Contents?.map((c) => c.Key).sort()).toEqual(
      written.filter((k) => k.startsWith(prefix)).sort(),
    );

    const back = await decodeFeatureRows(
      await getBytes(env, BUCKETS.lake.localName, written.find((k) => k.includes('-110-119-'))!),
    );
    expect(back.rows.map((r) => [r.tsUs, r.seq])).toEqual(rows.slice(10, 20).map((r) => [r.tsUs, r.seq]));
    expect(back.rows[3]!.values).toEqual(rows[13]!.values); // quarter steps are exact in float32

    // Shutdown writes the partial windows too.
    const rest = await lake.close();
    expect(rest.map((k) => k.split('/')[0]).sort()).toEqual(['features', 'labels']);
    const labels = await decodeLabelRows(
      await getBytes(env, BUCKETS.lake.localName, rest.find((k) => k.startsWith('labels/'))!),
    );
    expect(labels.map((l) => l.tsUs)).toEqual([rows[10]!.tsUs, rows[11]!.tsUs]);
  });

  it('keeps an object whose put failed and stores it on the next settle', async () => {
    const env = local.env;
    const bucket = 'quotewatch-lake-missing';
    const lake = new LakeWriter({ s3: s3Client(env), bucket, shardId: 's0', tickMs: 100, objectTicks: 10 });
    lake.addFeatures([row('ETH-USD', 0, 1), row('ETH-USD', 10, 2)]);
    await expect(lake.settle()).rejects.toThrow(LakeWriteError); // the bucket does not exist: a real S3 error
    await s3Client(env).send(new CreateBucketCommand({ Bucket: bucket }));
    expect(await lake.settle()).toEqual([
      `features/product=ETH-USD/date=2026-08-09/hour=21/s0-1-1-${T0 / 1000}.parquet`,
    ]);
  });
});

describe('latest table through dynalite', () => {
  it('writes latest items and history rows (with labels added later) and reads them back for the API', async () => {
    const opts = { client: dynamoClient(local.env), table: TABLES.latest.localName };
    const snap = (product: string, tsUs: number, mid: number) => ({
      product,
      tsUs,
      seq: 7,
      bestBid: '100',
      bestAsk: '101',
      mid,
      spread: 1,
      spreadBps: 99.5,
      bids: [['100', '1']] as [string, string][],
      asks: [['101', '2']] as [string, string][],
      features: { spread_bps: 99.5 },
      predictions: { quote_change_500ms: { probability: 0.3, modelVersion: 'v1' } },
      latencyMs: 12,
      updatedAtMs: 1,
    });
    expect(await getLatest('BTC-USD', opts)).toBeUndefined();
    await putLatest(snap('BTC-USD', T0, 100.5), opts);
    await putLatest(snap('BTC-USD', T0 + 100_000, 100.6), opts);
    await putLatest(snap('ETH-USD', T0, 10.5), opts);

    const latest = await getLatest('BTC-USD', opts);
    expect(latest).toMatchObject({ pk: 'BTC-USD', sk: 'latest', tsUs: T0 + 100_000, mid: 100.6 });
    expect(
      (await listLatest(['ETH-USD', 'SOL-USD', 'BTC-USD'], opts)).map((s) => [s.product, s.mid]),
    ).toEqual([
      ['ETH-USD', 10.5],
      ['BTC-USD', 100.6],
    ]);
    expect(await getHistory('BTC-USD', T0 / 1000, T0 / 1000 + 10_000, 10, opts)).toEqual({ items: [] });

    const row = (tsUs: number, mid: number): HistoryItem => ({
      pk: 'BTC-USD',
      sk: historyKey(tsUs),
      tsUs,
      seq: 7,
      bestBid: '100',
      bestAsk: '101',
      bid: 100,
      ask: 101,
      mid,
      spread: 1,
      source: 'book',
      predictions: { quote_change_500ms: { probability: 0.3, modelVersion: 'v1' } },
      latencyMs: 12,
      expiresAt: tsUs / 1_000_000 + 3600,
    });
    for (let i = 0; i < 5; i++) await putHistory(row(T0 + i * 1_000_000, 100 + i), opts);
    // The labels of a bucket of ten rows, one item; each row gets its own tick's.
    const bucket = labelBucketMs(1000);
    const tick = T0 / 1000 + 1000;
    await putHistoryLabels(
      'BTC-USD',
      Math.floor(tick / bucket) * bucket,
      { [tick]: { quote_change_500ms: 1, vol_spike_60s: 0.91 } },
      T0 / 1_000_000 + 3601,
      opts,
    );
    const first = await getHistory('BTC-USD', T0 / 1000, T0 / 1000 + 3_000, 2, opts);
    expect(first.items.map((h) => h.mid)).toEqual([100, 101]);
    expect(first.items[0]!.labels).toBeUndefined();
    expect(first.items[1]).toMatchObject({
      labels: { quote_change_500ms: 1, vol_spike_60s: 0.91 },
      expiresAt: row(T0 + 1_000_000, 0).expiresAt,
    });
    expect(first.next).toBe(String(T0 / 1000 + 1000));
    const second = await getHistory('BTC-USD', T0 / 1000, T0 / 1000 + 3_000, 2, {
      ...opts,
      afterMs: Number(first.next),
    });
    expect(second.items.map((h) => h.mid)).toEqual([102, 103]); // to is inclusive: the row at +3 s is in range
    expect(second.next).toBeDefined();
    const third = await getHistory('BTC-USD', T0 / 1000, T0 / 1000 + 3_000, 2, {
      ...opts,
      afterMs: Number(second.next),
    });
    expect(third).toEqual({ items: [] });
  });
});

describe('lake reader through s3rver', () => {
  const bucket = 'qw-test-lake-reader';
  const zone = (hour: string, name: string) =>
    `features/product=BTC-USD/date=2026-08-09/hour=${hour}/${name}`;
  const objects = [
    zone('21', 'shardId-000000000000-5-9-1786309260000.parquet'),
    zone('20', 'shardId-000000000000-1-4-1786305600000.parquet'),
    zone('21', 'shardId-000000000000-10-12-1786309320000.parquet'),
    zone('21', 'notes.txt'), // not Parquet: not listed
    'labels/product=BTC-USD/date=2026-08-09/hour=21/shardId-000000000000-1-4-1786309200000-x.parquet',
    'features-old/product=BTC-USD/x.parquet', // another zone that shares the prefix's spelling
  ];

  it('lists one zone across pages, sorted, Parquet only, and reads objects back in key order', async () => {
    const s3 = s3Client(local.env);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    for (const key of objects) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));

    const send = vi.spyOn(s3, 'send'); // counts the requests, and makes them
    const keys = await listLakeObjects(s3, bucket, 'features', { pageSize: 2 });
    expect(keys).toEqual([objects[1], objects[2], objects[0]]);
    expect(send.mock.calls.length).toBe(2); // 4 objects under features/ (one not Parquet), 2 a page
    send.mockRestore();
    expect(await listLakeObjects(s3, bucket, 'labels')).toEqual([objects[4]]);
    expect(await listLakeObjects(s3, bucket, 'predictions')).toEqual([]);

    const decoded = await readLakeObjects(s3, bucket, keys, (bytes, key) => ({
      key,
      body: new TextDecoder().decode(bytes),
    }));
    expect(decoded).toEqual(keys.map((key) => ({ key, body: key })));
  });

  it('names the object or zone it cannot read; a decode error passes through as thrown', async () => {
    const s3 = s3Client(local.env);
    const missing = zone('22', 'gone.parquet');
    const read = readLakeObjects(s3, bucket, [objects[1]!, missing], (b) => b.length);
    await expect(read).rejects.toThrow(LakeReadError);
    await expect(read).rejects.toThrow(`cannot read s3://${bucket}/${missing}`);
    await expect(read).rejects.toHaveProperty('cause.name', 'NoSuchKey');

    const badDecode = readLakeObjects(s3, bucket, [objects[1]!], () => {
      throw new RangeError('not Parquet');
    });
    await expect(badDecode).rejects.toThrow(RangeError);

    const noBucket = listLakeObjects(s3, 'qw-test-no-such-bucket', 'features');
    await expect(noBucket).rejects.toThrow(LakeReadError);
    await expect(noBucket).rejects.toThrow('cannot list s3://qw-test-no-such-bucket/features/');
  });
});
