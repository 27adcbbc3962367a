/**
 * Polling Kinesis consumer: ListShards, one iterator per shard (TRIM_HORIZON, or AFTER the checkpoint kept per
 * shard in the checkpoint table), GetRecords in a loop with a short sleep when every shard came back empty.
 * Records are decoded (src/stream/record.ts) and events already seen (by `id`, a bounded LRU set) are dropped:
 * the producer is at-least-once. The handler's batch is checkpointed only after the handler resolved.
 * (Leases between several workers, enhanced fan-out and resharding come later.)
 */
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
  ProvisionedThroughputExceededException,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { decodeRecord, RecordFormatError, type StreamEvent } from '../stream/record.js';

export class ConsumerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConsumerError';
  }
}

/** Insertion-ordered set that forgets its oldest entries past `capacity`; a hit refreshes the entry. */
export class LruSet {
  private readonly map = new Map<string, true>();
  constructor(readonly capacity: number) {}

  /** True if `key` was already present; records it either way. */
  seen(key: string): boolean {
    const had = this.map.delete(key);
    this.map.set(key, true);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
    return had;
  }

  get size(): number {
    return this.map.size;
  }
}

export interface ConsumedRecord {
  sequenceNumber: string;
  product: string;
  /** Events not seen before (duplicates removed). */
  events: StreamEvent[];
}

export interface ShardBatch {
  shardId: string;
  records: ConsumedRecord[];
  /** How far this batch is behind the shard's tip, per Kinesis (ms). */
  millisBehindLatest?: number;
}

export interface BadRecord {
  shardId: string;
  sequenceNumber: string;
  data: Uint8Array;
  error: RecordFormatError;
}

export interface ConsumerOptions {
  kinesis: KinesisClient;
  dynamo: DynamoDBDocumentClient;
  streamName: string;
  checkpointTable: string;
  /** Sleep when a round over all shards returned nothing. */
  idleMs?: number;
  limit?: number;
  dedupCapacity?: number;
  /** A record that does not decode: handed over (to keep it) and skipped. */
  onBadRecord?: (bad: BadRecord) => Promise<void> | void;
  /** Called after a round over all shards that returned no records (caught up). */
  onIdle?: () => void;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

interface ShardCursor {
  shardId: string;
  iterator: string | undefined;
  /** Last sequence number handed to the handler and checkpointed. */
  checkpoint: string | undefined;
}

export class KinesisConsumer {
  private readonly dedup: LruSet;
  duplicatesDropped = 0;
  badRecords = 0;

  constructor(private readonly opts: ConsumerOptions) {
    this.dedup = new LruSet(opts.dedupCapacity ?? 200_000);
  }

  private checkpointKey(shardId: string): string {
    return `${this.opts.streamName}#${shardId}`;
  }

  async readCheckpoint(shardId: string): Promise<string | undefined> {
    const out = await this.opts.dynamo.send(
      new GetCommand({
        TableName: this.opts.checkpointTable,
        Key: { pk: this.checkpointKey(shardId) },
        ConsistentRead: true,
      }),
    );
    return out.Item?.sequenceNumber as string | undefined;
  }

  async writeCheckpoint(shardId: string, sequenceNumber: string): Promise<void> {
    await this.opts.dynamo.send(
      new PutCommand({
        TableName: this.opts.checkpointTable,
        Item: { pk: this.checkpointKey(shardId), sequenceNumber, shardId, stream: this.opts.streamName },
      }),
    );
  }

  private async listShards(): Promise<Shard[]> {
    const shards: Shard[] = [];
    let token: string | undefined;
    do {
      const out = await this.opts.kinesis.send(
        token
          ? new ListShardsCommand({ NextToken: token })
          : new ListShardsCommand({ StreamName: this.opts.streamName }),
      );
      shards.push(...(out.Shards ?? []));
      token = out.NextToken;
    } while (token);
    return shards;
  }

  private async iterator(shardId: string, after: string | undefined): Promise<string | undefined> {
    const out = await this.opts.kinesis.send(
      new GetShardIteratorCommand({
        StreamName: this.opts.streamName,
        ShardId: shardId,
        ...(after
          ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }
          : { ShardIteratorType: 'TRIM_HORIZON' }),
      }),
    );
    return out.ShardIterator;
  }

  /** Decodes and de-duplicates; bad records go to onBadRecord. */
  private async decode(shardId: string, records: { SequenceNumber?: string; Data?: Uint8Array }[]) {
    const out: ConsumedRecord[] = [];
    for (const r of records) {
      const sequenceNumber = r.SequenceNumber ?? '';
      const data = r.Data ?? new Uint8Array();
      try {
        const rec = decodeRecord(data);
        const events = rec.events.filter((e) => {
          if (!this.dedup.seen(e.id)) return true;
          this.duplicatesDropped++;
          return false;
        });
        out.push({ sequenceNumber, product: rec.product, events });
      } catch (error) {
        if (!(error instanceof RecordFormatError)) throw error;
        this.badRecords++;
        this.opts.log?.('warn', 'undecodable record skipped', {
          shardId,
          sequenceNumber,
          error: error.message,
        });
        await this.opts.onBadRecord?.({ shardId, sequenceNumber, data, error });
      }
    }
    return out;
  }

  /**
   * Polls until `signal` aborts. Each non-empty GetRecords result goes to `handler`; once it resolves the
   * shard's checkpoint moves to the batch's last record. A handler error stops the consumer (rejects) without
   * checkpointing that batch, so a restart reprocesses it.
   */
  async run(handler: (batch: ShardBatch) => Promise<void>, signal: AbortSignal): Promise<void> {
    const { idleMs = 200, limit = 1000, log } = this.opts;
    const shards = await this.listShards();
    const cursors: ShardCursor[] = [];
    for (const s of shards) {
      const shardId = s.ShardId!;
      const checkpoint = await this.readCheckpoint(shardId);
      cursors.push({ shardId, checkpoint, iterator: await this.iterator(shardId, checkpoint) });
    }
    log?.('info', 'consumer started', {
      stream: this.opts.streamName,
      shards: cursors.map((c) => ({ shardId: c.shardId, from: c.checkpoint ?? 'TRIM_HORIZON' })),
    });

    while (!signal.aborted) {
      let got = 0;
      for (const c of cursors) {
        if (signal.aborted) break;
        if (!c.iterator) continue; // closed shard, fully read
        let out: GetRecordsCommandOutput;
        try {
          out = await this.opts.kinesis.send(
            new GetRecordsCommand({ ShardIterator: c.iterator, Limit: limit }),
          );
        } catch (err) {
          if (err instanceof ExpiredIteratorException) {
            c.iterator = await this.iterator(c.shardId, c.checkpoint);
            continue;
          }
          if (err instanceof ProvisionedThroughputExceededException) {
            await sleep(idleMs * 5, signal);
            continue;
          }
          throw new ConsumerError(`GetRecords on ${c.shardId} failed`, { cause: err });
        }
        const records = out.Records ?? [];
        if (records.length > 0) {
          got += records.length;
          const decoded = await this.decode(c.shardId, records);
          await handler({ shardId: c.shardId, records: decoded, millisBehindLatest: out.MillisBehindLatest });
          const last = records[records.length - 1]!.SequenceNumber!;
          await this.writeCheckpoint(c.shardId, last);
          c.checkpoint = last;
        }
        c.iterator = out.NextShardIterator;
      }
      if (got === 0) {
        this.opts.onIdle?.();
        await sleep(idleMs, signal);
      }
    }
  }
}
