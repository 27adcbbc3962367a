/**
 * A worker that starts late on a running stream (real processes: ingestor and worker under the supervisor,
 * kinesalite, dynalite, s3rver; the simulator in this process so its book can be asked about any sequence).
 * The worker is a brand-new one (no checkpoint) with its real start position, WORKER_START=lookback and
 * WORKER_START_LOOKBACK_MS=0: it starts at AT_TIMESTAMP "now" (it logs the time), so the stream's first snapshots
 * are behind it and its books can only come from the ingestor's periodic snapshot_refs (SNAPSHOT_INTERVAL_MS). Asserted: every tick served equals the simulator's book at its
 * sequence; until the first periodic snapshot_ref of its product the quote comes from the ticker (flagged
 * source_is_ticker), and from the very next tick on from the full book.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { DeleteCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient } from '../src/aws/clients.js';
import { STREAM, TABLES } from '../src/resources.js';
import { getHistory } from '../src/storage/history.js';
import { getLatest } from '../src/storage/latest.js';
import { decodeRecord, type SnapshotRefEvent } from '../src/stream/record.js';
import { expectSimulatorTop, withSimulatedSystem } from './support/system.js';
import { until } from './support/until.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const SNAPSHOT_INTERVAL_MS = 2000;
const fixture = await withSimulatedSystem({
  simulator: { seed: 5, products: PRODUCTS },
  components: ['ingestor', 'worker'],
  seed: false,
  env: {
    SNAPSHOT_INTERVAL_MS: String(SNAPSHOT_INTERVAL_MS),
    WORKER_START: 'lookback',
    WORKER_START_LOOKBACK_MS: '0',
  },
});

/** Every record of a shard after `after` (from the start when undefined), decoded. */
async function readShard(kinesis: KinesisClient, shardId: string, after?: string) {
  let iterator = (
    await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: STREAM.localName,
        ShardId: shardId,
        ...(after
          ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }
          : { ShardIteratorType: 'TRIM_HORIZON' }),
      }),
    )
  ).ShardIterator;
  const out: {
    sequenceNumber: string;
    arrivedAt: Date;
    events: ReturnType<typeof decodeRecord>['events'];
  }[] = [];
  while (iterator) {
    const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
    for (const r of page.Records ?? []) {
      out.push({
        sequenceNumber: r.SequenceNumber!,
        arrivedAt: r.ApproximateArrivalTimestamp!,
        events: decodeRecord(r.Data!).events,
      });
    }
    if ((page.Records ?? []).length === 0) break;
    iterator = page.NextShardIterator;
  }
  return out;
}

async function clearTable(table: string): Promise<void> {
  const dynamo = dynamoClient(fixture.system.env);
  const { Items = [] } = await dynamo.send(new ScanCommand({ TableName: table }));
  const keys = TABLES.latest.localName === table ? ['pk', 'sk'] : ['pk'];
  for (const item of Items) {
    await dynamo.send(
      new DeleteCommand({ TableName: table, Key: Object.fromEntries(keys.map((k) => [k, item[k]])) }),
    );
  }
}

describe('a worker starting late on a running stream', () => {
  it('serves the ticker’s quote until its first periodic snapshot, the simulator’s full book from the next tick on, within one interval', async () => {
    const env = fixture.system.env;
    const kinesis = kinesisClient(env);
    // The worker must not have read anything: stop it and forget whatever it did before the stream ran a while.
    await fixture.system.kill('worker');
    await clearTable(TABLES.checkpoints.localName);
    await clearTable(TABLES.latest.localName);

    const shards = (
      (await kinesis.send(new ListShardsCommand({ StreamName: STREAM.localName }))).Shards ?? []
    ).map((s) => s.ShardId!);
    const periodic = (records: Awaited<ReturnType<typeof readShard>>) =>
      records.flatMap((r) =>
        r.events.filter(
          (e): e is SnapshotRefEvent & { id: string } => e.type === 'snapshot_ref' && e.source === 'periodic',
        ),
      );
    // Let the stream run until the ingestor has published a periodic snapshot: the worker comes late.
    await until('a periodic snapshot_ref in the stream', async () => {
      for (const id of shards) if (periodic(await readShard(kinesis, id)).length > 0) return true;
      return undefined;
    });

    // A brand-new worker: it starts every shard at its start time, which it logs ("AT_TIMESTAMP <iso>").
    const startedAt = new Map<string, Date>();
    const allStarted = fixture.system.waitForLog('worker', (line) => {
      const parsed = line.startsWith('{')
        ? (JSON.parse(line) as { message?: string; shardId?: string; from?: string })
        : {};
      if (parsed.message === 'shard started') {
        expect(parsed.from).toMatch(/^AT_TIMESTAMP /);
        startedAt.set(parsed.shardId!, new Date(parsed.from!.slice('AT_TIMESTAMP '.length)));
      }
      return shards.every((id) => startedAt.has(id));
    });
    await fixture.system.restart('worker');
    await allStarted;

    // The first book of each product the worker reads (records that arrived at or after its start time, the
    // AT_TIMESTAMP rule): it must be a periodic snapshot_ref.
    const firstRef = await until('a snapshot of every product after the start', async () => {
      const found = new Map<string, { exchUs: number; type: string; source?: string }>();
      for (const id of shards) {
        const records = await readShard(kinesis, id);
        for (const r of records.filter((rec) => rec.arrivedAt >= startedAt.get(id)!)) {
          for (const e of r.events) {
            if ((e.type === 'snapshot_ref' || e.type === 'book_snapshot') && !found.has(e.product)) {
              found.set(e.product, e);
            }
          }
        }
      }
      return PRODUCTS.every((p) => found.has(p)) ? found : undefined;
    });
    for (const ref of firstRef.values())
      expect(ref).toMatchObject({ type: 'snapshot_ref', source: 'periodic' });

    const store = { client: dynamoClient(env), table: TABLES.latest.localName };
    for (const product of PRODUCTS) {
      const ref = firstRef.get(product)!;
      // Ticks up to the snapshot's exchange time do not include it (an event at t belongs to the next tick).
      const fromBook = (tsUs: number) => tsUs > ref.exchUs;
      const latest = await until(
        `${product}: a tick from the book of its first periodic snapshot`,
        async () => {
          const l = await getLatest(product, store);
          return l && fromBook(l.tsUs) ? l : undefined;
        },
      );
      // From the snapshot on the quote is the full book (three levels a side).
      expect(latest.bids).toHaveLength(3);
      expect(latest.asks).toHaveLength(3);
      // The history rows (one a second of exchange time) tell where each tick's quote came from.
      // The latest item is written every tick, a history row once a second: wait for the first row from the book.
      const history = await until(`${product}: a history row from the book`, async () => {
        const { items } = await getHistory(product, 0, Date.now() + 3_600_000, 1000, store);
        return items.some((h) => fromBook(h.tsUs)) ? items : undefined;
      });
      for (const snap of history) {
        expectSimulatorTop(fixture.sim, product, snap.seq, snap.bestBid, snap.bestAsk);
        // Before its first snapshot the worker has no book: the quote comes from the ticker, flagged as such.
        expect(snap.source, `source at ${snap.tsUs}`).toBe(fromBook(snap.tsUs) ? 'book' : 'ticker');
      }
      // Served within one snapshot interval of event time (history rows come once a second of exchange time).
      const firstFromBook = history.find((h) => fromBook(h.tsUs))!;
      expect(firstFromBook.tsUs - ref.exchUs).toBeLessThan(SNAPSHOT_INTERVAL_MS * 1000);
    }
  });
});
