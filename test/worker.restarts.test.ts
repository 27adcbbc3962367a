/**
 * The worker rides out its stores restarting (issue 14's chaos run found it exiting on the first failed lake PUT):
 * with S3 and DynamoDB killed in the middle of a stream, the batch waits (capped backoff, a warning per retry)
 * until they are back, and then the lake holds every tick once and the latest item is the newest tick's. Real
 * emulators, killed and restarted as processes; nothing mocked.
 */
import { gzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
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
const T0 = 1_786_309_200_000_000; // an hour boundary
const snapshotKey = (product: string) => `snapshots/${product}/restarts.json.gz`;

/** A snapshot of `P`, then a book change or a trade every 50 ms up to `endMs`. */
function events(P: string, endMs: number): StreamEvent[] {
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
    key: snapshotKey(P),
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
function batch(P: string, list: StreamEvent[], first: number) {
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

/** The feature rows' ticks (ms after T0) of `P` in the lake, sorted. */
async function storedTicks(s3: S3Client, P: string): Promise<number[]> {
  const listed = await s3.send(
    new ListObjectsV2Command({ Bucket: BUCKETS.lake.localName, Prefix: `features/product=${P}/` }),
  );
  const ticks: number[] = [];
  for (const { Key } of listed.Contents ?? []) {
    const out = await s3.send(new GetObjectCommand({ Bucket: BUCKETS.lake.localName, Key: Key! }));
    const { rows } = await decodeFeatureRows(await out.Body!.transformToByteArray());
    ticks.push(...rows.map((r) => (r.tsUs - T0) / 1000));
  }
  return ticks.sort((a, b) => a - b);
}

/**
 * A worker over the emulators whose warnings are kept; the first retry warning of each store restarts that store
 * (a restart takes a second or two: several retries).
 */
async function setUp(P: string) {
  const env = local.env;
  const s3 = s3Client(env);
  const dynamo = dynamoClient(env);
  await s3.send(
    new PutObjectCommand({
      Bucket: BUCKETS.lake.localName,
      Key: snapshotKey(P),
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
      const name: EmulatorName | undefined =
        msg.startsWith('lake') || msg.startsWith('snapshot')
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
  return { s3, dynamo, worker, warnings, restarted, restarts };
}

const EVERY_TICK = Array.from({ length: 25 }, (_, i) => (i + 1) * 100);

describe('worker with its stores restarting', () => {
  it('waits out S3 and DynamoDB going down mid-stream: every tick stored once, the newest latest item', async () => {
    const P = 'SOL-USD';
    const { s3, dynamo, worker, warnings, restarted, restarts } = await setUp(P);
    const all = events(P, 2500);
    const cut = all.findIndex((e) => e.exchUs >= T0 + 900_000);
    await worker.handleBatch(batch(P, all.slice(0, cut), 0));
    await local.emulators.kill('s3');
    await local.emulators.kill('dynamodb');
    // Ticks up to 2.5 s: the [0, 1) s and [1, 2) s objects close, and a latest item is due, while both are down.
    await worker.handleBatch(batch(P, all.slice(cut), cut));
    await Promise.all(restarts);
    await worker.close();

    expect(warnings).toContain('lake write failed; retrying');
    expect(warnings).toContain('latest write failed; retrying');
    expect([...restarted].sort()).toEqual(['dynamodb', 's3']);
    expect(await storedTicks(s3, P)).toEqual(EVERY_TICK);
    expect(await getLatest(P, { client: dynamo, table: TABLES.latest.localName })).toMatchObject({
      tsUs: T0 + 2_500_000,
    });
  }, 120_000);

  it('waits for a claim-checked snapshot while S3 restarts, instead of resyncing and losing rows', async () => {
    const P = 'ADA-USD';
    const { s3, worker, warnings, restarts } = await setUp(P);
    await local.emulators.kill('s3');
    await worker.handleBatch(batch(P, events(P, 2500), 0)); // opens with the snapshot's reference
    await Promise.all(restarts);
    await worker.close();
    expect(warnings).toContain('snapshot read failed; retrying');
    expect(await storedTicks(s3, P)).toEqual(EVERY_TICK);
  }, 120_000);
});
