/**
 * A worker killed in the middle of two ingestor lines with faults and recovered from its recovery state (issue 14:
 * the chaos run's lost events were put down to the restart). A stream of one product from three ingestor sessions
 * (src/stream/record.ts records, each naming its line) goes into kinesalite: A and B from the start, B killed
 * (no resync), A losing frames twice within LINE_FAILOVER_MS of exchange time, A killed, a new session C that
 * loses frames before it held LINE_FAILOVER_MS of events. One worker reads it all; others are killed after page k
 * and a new worker carries on from the checkpoint (at page k, or two pages earlier: the checkpoint lags), first
 * replaying the shard from its recovery state. The lake of every restarted run is the uninterrupted run's, object
 * for object and byte for byte, and it holds every trade and book change a line delivered, once.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient, s3Client } from '../src/aws/clients.js';
import { TABLES } from '../src/resources.js';
import { decodeRawRows } from '../src/storage/parquet.js';
import { encodeRecord, levelKey, type StreamEvent } from '../src/stream/record.js';
import { type ConsumedRecord, decodeRecords } from '../src/worker/decode.js';
import { Worker } from '../src/worker/worker.js';
import { interleave, market, P, publish } from './support/lines.js';
import { withEmulators } from './support/system.js';
import { createStream } from './worker.consumer.support.js';

const local = withEmulators({ provision: true });
const STREAM = 'qw-recovery-lines';
const SHARD = 'shardId-000000000000';
const quiet = () => {};

const events = market(31, 700);
const lines = [
  {
    name: 'A',
    events: publish(events, {
      name: 'A',
      start: 0,
      gaps: [
        [150, 4, 20],
        [330, 2, 6],
        [350, 2, 6],
      ],
      killedAt: 420,
    }),
  },
  { name: 'B', events: publish(events, { name: 'B', start: 5, gaps: [], killedAt: 260 }) },
  { name: 'C', events: publish(events, { name: 'C', start: 470, gaps: [[500, 2, 6]] }) },
];
/** What reached the stream: each line's events in its order, B 50 ms behind A, at most 3 events per record. */
function records(): { line: string; events: StreamEvent[] }[] {
  const out: { line: string; events: StreamEvent[] }[] = [];
  for (const [line, event] of interleave(lines, (i) => (i === 1 ? 50_000 : 0))) {
    const last = out.at(-1);
    if (last && last.line === line && last.events.length < 3) last.events.push(event);
    else out.push({ line, events: [event] });
  }
  return out;
}

let kinesis: KinesisClient;
let s3: S3Client;
/** The stream read back in pages of 15 records, as a consumer hands them to the worker. */
let pages: ConsumedRecord[][];

beforeAll(async () => {
  kinesis = kinesisClient(local.env);
  s3 = s3Client(local.env);
  await createStream(kinesis, STREAM, 1);
  const all = records();
  for (let i = 0; i < all.length; i += 100) {
    const out = await kinesis.send(
      new PutRecordsCommand({
        StreamName: STREAM,
        Records: all
          .slice(i, i + 100)
          .map((r) => ({ Data: encodeRecord(P, r.events, r.line), PartitionKey: P })),
      }),
    );
    expect(out.FailedRecordCount ?? 0).toBe(0);
  }
  pages = [];
  let it = (
    await kinesis.send(
      new GetShardIteratorCommand({ StreamName: STREAM, ShardId: SHARD, ShardIteratorType: 'TRIM_HORIZON' }),
    )
  ).ShardIterator;
  let read = 0;
  while (it && read < all.length) {
    const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: 15 }));
    const raw = page.Records ?? [];
    if (raw.length > 0) pages.push(decodeRecords(SHARD, raw).records);
    read += raw.length;
    it = page.NextShardIterator;
  }
  expect(read).toBe(all.length);
});

function worker(bucket: string, recovery: boolean): Worker {
  return new Worker({
    tickMs: 100,
    deltaMs: 500,
    s3,
    lakeBucket: bucket,
    objectTicks: 10, // 1 s objects: several close before and after every crash point
    models: () => [],
    writeLatest: async () => {},
    now: () => 0,
    log: quiet,
    ...(recovery
      ? {
          recovery: {
            kinesis,
            dynamo: dynamoClient(local.env),
            streamName: STREAM,
            table: TABLES.checkpoints.localName,
          },
        }
      : {}),
  });
}

async function lake(bucket: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  for (const { Key } of listed.Contents ?? []) {
    const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: Key! }));
    out.set(Key!, Buffer.from(await body.Body!.transformToByteArray()));
  }
  return out;
}

async function run(
  bucket: string,
  crash?: { afterPage: number; resumeAt: number },
): Promise<Map<string, Buffer>> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  if (!crash) {
    const w = worker(bucket, false);
    for (const records of pages) await w.handleBatch({ shardId: SHARD, records });
    await w.close();
    return lake(bucket);
  }
  // The recovery state is per stream and shard: each crash run starts without one.
  await dynamoClient(local.env).send(
    new DeleteCommand({
      TableName: TABLES.checkpoints.localName,
      Key: { pk: `recovery#${STREAM}#${SHARD}` },
    }),
  );
  const first = worker(bucket, true);
  for (const records of pages.slice(0, crash.afterPage)) await first.handleBatch({ shardId: SHARD, records });
  // Killed: its open windows are gone. The next worker starts at the checkpoint and replays before it.
  const second = worker(bucket, true);
  for (const records of pages.slice(crash.resumeAt)) await second.handleBatch({ shardId: SHARD, records });
  expect(second.replayedRecords).toBeGreaterThan(0);
  await second.close();
  return lake(bucket);
}

describe('worker recovery with two lines', () => {
  it('a restart anywhere gives the uninterrupted lake, which holds every event a line delivered', async () => {
    const reference = await run('qw-recovery-lines-ref');
    // Every trade and book change any line delivered is in the raw zone, once.
    const stored: string[] = [];
    for (const [key, body] of reference) {
      if (!key.startsWith('raw/')) continue;
      for (const r of await decodeRawRows(body)) {
        const e = JSON.parse(r.event) as StreamEvent;
        if (e.type === 'trade') stored.push(`t ${e.tradeId}`);
        if (e.type === 'book_changes') for (const c of e.changes) stored.push(levelKey(P, c, e.exchUs));
      }
    }
    const delivered = new Set<string>();
    for (const l of lines)
      for (const e of l.events) {
        if (e.type === 'trade') delivered.add(`t ${e.tradeId}`);
        if (e.type === 'book_changes') for (const c of e.changes) delivered.add(levelKey(P, c, e.exchUs));
      }
    expect(stored.length).toBe(new Set(stored).size);
    expect([...delivered].filter((k) => !stored.includes(k))).toEqual([]);
    expect(reference.size).toBeGreaterThan(40);

    const n = pages.length;
    for (const [i, crash] of [
      { afterPage: Math.floor(n / 4), resumeAt: Math.floor(n / 4) },
      { afterPage: Math.floor(n / 2), resumeAt: Math.floor(n / 2) - 2 },
      { afterPage: Math.floor((3 * n) / 4), resumeAt: Math.floor((3 * n) / 4) },
      { afterPage: n - 3, resumeAt: n - 5 },
    ].entries()) {
      const restarted = await run(`qw-recovery-lines-${i}`, crash);
      expect([...restarted.keys()].sort(), JSON.stringify(crash)).toEqual([...reference.keys()].sort());
      for (const [key, body] of reference) expect(restarted.get(key)?.equals(body), key).toBe(true);
    }
  }, 120_000);
});
