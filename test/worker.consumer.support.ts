/**
 * Helpers of the consumer tests (worker.consumer*, worker.leases*, worker.fanout*): a fresh stream per test,
 * trade events whose order per product is checkable, a consumer over the local emulators, and a handler that
 * records what it was handed.
 */
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { dynamoClient, kinesisClient } from '../src/aws/clients.js';
import { TABLES } from '../src/resources.js';
import { encodeRecord, type StreamEvent } from '../src/stream/record.js';
import { type ConsumerOptions, KinesisConsumer, type ShardBatch } from '../src/worker/consumer.js';
import { until } from './support/until.js';

/** The provisioned checkpoint (and lease) table. */
export const TABLE = TABLES.checkpoints.localName;

export async function createStream(kinesis: KinesisClient, name: string, shards: number): Promise<Shard[]> {
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  for (;;) {
    const out = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (out.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return listShards(kinesis, name);
}

/** Waits for a stream to be ACTIVE again (after a split or merge). */
export async function whenActive(kinesis: KinesisClient, stream: string): Promise<void> {
  await until('stream ACTIVE', async () => {
    const out = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
    return out.StreamDescriptionSummary?.StreamStatus === 'ACTIVE';
  });
}

export async function listShards(kinesis: KinesisClient, name: string): Promise<Shard[]> {
  return (await kinesis.send(new ListShardsCommand({ StreamName: name }))).Shards ?? [];
}

let tradeCounter = 0;
/** One trade of `product` whose `seq` orders it within the product; its id is unique in the test run. */
export function trade(product: string, seq: number): StreamEvent {
  const n = ++tradeCounter;
  return {
    type: 'trade',
    product,
    exchUs: 1_786_309_200_000_000 + seq * 1000,
    recvUs: 1_786_309_200_000_000 + seq * 1000 + 500,
    seq,
    tradeId: `t${n}`,
    price: '100',
    size: '1',
    aggressor: 'buy',
    id: `${product}:${seq}`,
  } as StreamEvent;
}

/**
 * Puts one record per (product, seq), products[i] routed to `hashKeys[i]` when given (explicit hash keys pin a
 * product to a shard) else by partition key = product. Returns the event ids in put order.
 */
export async function putTrades(
  kinesis: KinesisClient,
  stream: string,
  products: string[],
  seqs: number[],
  hashKeys?: string[],
  /** Updated with the sequence number of the newest record put in each shard. */
  lastSeq?: Map<string, string>,
): Promise<string[]> {
  const ids: string[] = [];
  for (const seq of seqs) {
    const records = products.map((p, i) => {
      const e = trade(p, seq);
      ids.push(e.id);
      return {
        Data: encodeRecord(p, [e]),
        PartitionKey: p,
        ...(hashKeys ? { ExplicitHashKey: hashKeys[i] } : {}),
      };
    });
    const out = await kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: records }));
    if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records not put`);
    for (const r of out.Records ?? []) lastSeq?.set(r.ShardId!, r.SequenceNumber!);
  }
  return ids;
}

/**
 * A polling consumer of `streamName` over the emulators in `env` with the checkpoint table, quick to notice an
 * empty shard (20 ms) and shard or lease changes (100 ms); `options` adds to or overrides that.
 */
export function localConsumer(
  env: Record<string, string>,
  streamName: string,
  options: Partial<ConsumerOptions> = {},
): KinesisConsumer {
  return new KinesisConsumer({
    kinesis: kinesisClient(env),
    dynamo: dynamoClient(env),
    streamName,
    checkpointTable: TABLE,
    idleMs: 20,
    syncMs: 100,
    ...options,
  });
}

export interface Handled {
  who: string;
  shardId: string;
  id: string;
  product: string;
  seq: number;
}

/** A handler that appends every event it is handed to `log`, tagged with `who`. */
export function recorder(log: Handled[], who: string) {
  return async (batch: ShardBatch) => {
    for (const r of batch.records)
      for (const e of r.events)
        log.push({ who, shardId: batch.shardId, id: e.id, product: r.product, seq: e.seq });
  };
}

/** Runs `consumer` with a recorder of `log` tagged `who`; `stop()` aborts it and waits until it returned. */
export function runRecorded(
  consumer: KinesisConsumer,
  log: Handled[],
  who: string,
): { stop(): Promise<void> } {
  const abort = new AbortController();
  const running = consumer.run(recorder(log, who), abort.signal);
  return {
    stop: async () => {
      abort.abort();
      await running;
    },
  };
}

/** Ids handled more than once, and ids never handled. */
export function exactlyOnce(log: Handled[], ids: string[]) {
  const counts = new Map<string, number>();
  for (const h of log) counts.set(h.id, (counts.get(h.id) ?? 0) + 1);
  return {
    duplicated: [...counts].filter(([, n]) => n > 1).map(([id]) => id),
    missing: ids.filter((id) => !counts.has(id)),
  };
}

/** Products whose events were handed over out of `seq` order (the order handed, across consumers). */
export function outOfOrder(log: Handled[]): string[] {
  const last = new Map<string, number>();
  const bad = new Set<string>();
  for (const h of log) {
    if ((last.get(h.product) ?? -1) >= h.seq) bad.add(h.product);
    last.set(h.product, h.seq);
  }
  return [...bad];
}
