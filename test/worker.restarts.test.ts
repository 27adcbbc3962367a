/**
 * The worker rides out its stores restarting (issue 14's chaos run found it exiting on the first failed lake PUT):
 * with S3 and DynamoDB killed in the middle of a stream, the batch waits (capped backoff, a warning per retry)
 * until they are back, and then the lake holds every tick once and the latest item is the newest tick's. Real
 * emulators, killed and restarted as processes; nothing mocked.
 */
import { gzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { dynamoClient, s3Client } from '../src/aws/clients.js';
import type { EmulatorName } from '../src/local/emulators.js';
import { BUCKETS, TABLES } from '../src/resources.js';
import { getLatest, LatestWriter } from '../src/storage/latest.js';
import { decodeFeatureRows } from '../src/storage/parquet.js';
import { encodeRecord, type StreamEvent } from '../src/stream/record.js';
import { decodeRecords } from '../src/worker/decode.js';
import { Worker } from '../src/worker/worker.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const P = 'SOL-USD';
const T0 = 1_786_309_200_000_000; // an hour boundary
const SNAPSHOT_KEY = 'snapshots/SOL-USD/restarts.json.gz';

/** A snapshot, then a book change or a trade every 50 ms up to `endMs`. */
function events(endMs: number): StreamEvent[] {
  const out: StreamEvent[] = [];
  let seq = 1;
  const at = (ms: number) => ({
    product: P,
    exchUs: T0 + ms * 1000,
    recvUs: T0 + ms * 1000 + 500,
    seq: seq++,
  });
  out.push({
    ...at(10),
    type: 'snapshot_ref',
    bucket: BUCKETS.lake.localName,
    key: SNAPSHOT_KEY,
    levels: 2,
    id: 'r:snap',
  });
  for (let ms = 50; ms <= endMs; ms += 50) {
    const e = at(ms);
    const k = ms / 50;
    out.push(
      k % 3 === 0
        ? {
            ...e,
            type: 'trade',
            tradeId: `r${k}`,
            price: '150.01',
            size: '1',
            aggressor: 'buy',
            id: `r:t${k}`,
          }
        : {
            ...e,
            type: 'book_changes',
            changes: [{ side: 'bid', price: k % 2 ? '150' : '149.99', size: String(k) }],
            id: `r:c${k}`,
          },
    );
  }
  return out;
}

/** Stream records of `list`, ten events each, numbered from `first` as Kinesis would (increasing). */
function batch(list: StreamEvent[], first: number) {
  const raw = [];
  for (let i = 0; i < list.length; i += 10) {
    raw.push({
      Data: encodeRecord(P, list.slice(i, i + 10)),
      PartitionKey: P,
      SequenceNumber: String(1e20 + first + i),
      ApproximateArrivalTimestamp: new Date(),
    });
  }
  return { shardId: 'shardId-000000000000', records: decodeRecords('shardId-000000000000', raw).records };
}

describe('worker with its stores restarting', () => {
  it('waits out S3 and DynamoDB going down mid-stream: every tick stored once, the newest latest item', async () => {
    const env = local.env;
    const s3 = s3Client(env);
    const dynamo = dynamoClient(env);
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKETS.lake.localName,
        Key: SNAPSHOT_KEY,
        Body: gzipSync(JSON.stringify({ bids: [['150', '2']], asks: [['150.02', '3']] })),
      }),
    );
    const latest = new LatestWriter({ client: dynamo, table: TABLES.latest.localName, latestWriteMs: 300 });
    const warnings: string[] = [];
    const restarted = new Set<EmulatorName>();
    const restarts: Promise<void>[] = [];
    const worker = new Worker({
      tickMs: 100,
      deltaMs: 500,
      s3,
      lakeBucket: BUCKETS.lake.localName,
      objectTicks: 10,
      models: () => [],
      writeLatest: async (snap) => void (await latest.put(snap)),
      now: () => T0 / 1000 + 3000,
      log: (level, msg) => {
        if (level !== 'warn') return;
        warnings.push(msg);
        // The first retry of each store brings it back (a restart takes a second or two: several retries).
        const name: EmulatorName | undefined = msg.startsWith('lake')
          ? 's3'
          : msg.startsWith('latest')
            ? 'dynamodb'
            : undefined;
        if (name && !restarted.has(name)) {
          restarted.add(name);
          restarts.push(local.emulators.restart(name));
        }
      },
    });

    const all = events(2500);
    const cut = all.findIndex((e) => e.exchUs >= T0 + 900_000);
    await worker.handleBatch(batch(all.slice(0, cut), 0));
    await local.emulators.kill('s3');
    await local.emulators.kill('dynamodb');
    // Ticks up to 2.5 s: the [0, 1) s and [1, 2) s objects close, and a latest item is due, while both are down.
    await worker.handleBatch(batch(all.slice(cut), cut));
    await Promise.all(restarts);
    await worker.close();

    expect(warnings).toContain('lake write failed; retrying');
    expect(warnings).toContain('latest write failed; retrying');
    expect([...restarted].sort()).toEqual(['dynamodb', 's3']);

    const listed = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKETS.lake.localName, Prefix: `features/product=${P}/` }),
    );
    const ticks: number[] = [];
    for (const { Key } of listed.Contents ?? []) {
      const out = await s3.send(new GetObjectCommand({ Bucket: BUCKETS.lake.localName, Key: Key! }));
      const { rows } = await decodeFeatureRows(await out.Body!.transformToByteArray());
      ticks.push(...rows.map((r) => (r.tsUs - T0) / 1000));
    }
    expect(ticks.sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => (i + 1) * 100));
    expect(await getLatest(P, { client: dynamo, table: TABLES.latest.localName })).toMatchObject({
      tsUs: T0 + 2_500_000,
    });
  }, 120_000);
});
