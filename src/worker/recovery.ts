/**
 * Crash recovery of the worker, behind one store. A batch is done only when its closed lake objects are stored;
 * then the shard's recovery state is saved (item "recovery#<stream>#<shard>" of the checkpoint table): the lake
 * frontiers, and the stream position to replay from — the record of the last snapshot of each product old enough
 * to recompute every still-open window, with `lookbackMs` of history for the windowed features and the label
 * horizons. On the first batch of a shard after a restart, the worker replays the shard from that position up to
 * the batch (with the same shard loop as the consumer, src/worker/shards.ts): books are rebuilt from their
 * snapshots, rows of already-closed windows are dropped by the lake frontiers, and the open windows are
 * recomputed and later written under the same names.
 */

import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { QuoteWatchError } from '../errors.js';
import type { LakeWriter } from '../storage/lake.js';
import type { RawRow } from '../storage/parquet.js';
import { type ConsumedRecord, decodeRecords } from './decode.js';
import { pollingSource, readShard, seqLess } from './shards.js';

export interface RecoveryOptions {
  kinesis: KinesisClient;
  dynamo: DynamoDBDocumentClient;
  streamName: string;
  /** Where the recovery state lives (the checkpoint table). */
  table: string;
  /** History replayed before the oldest open window (windowed features, label horizons). Default 7 min. */
  lookbackMs?: number;
}

export class RecoveryError extends QuoteWatchError {}

/** Per product of a shard: its first record, and the records of its recent snapshots (replay points). */
export interface ProductPositions {
  first: string;
  snapshots: { exchUs: number; record: string }[];
}

/** What a restart needs of a shard. */
export interface RecoveryState {
  frontiers: Record<string, number>;
  products: Record<string, ProductPositions>;
  /** Kinesis sequence number to replay from (AT_SEQUENCE_NUMBER). */
  replayFrom?: string;
}

/**
 * The record to replay from so that every open window of every product of the shard is recomputed; drops
 * snapshot positions that can never be needed again (frontiers only move forward).
 */
export function replayPoint(
  products: Map<string, ProductPositions>,
  lake: LakeWriter,
  lookbackMs: number,
): string | undefined {
  const lookbackUs = lookbackMs * 1000;
  const frontiers = lake.frontiers();
  let from: string | undefined;
  const earlier = (seq: string) => {
    if (from === undefined || seqLess(seq, from)) from = seq;
  };
  for (const [product, pos] of products) {
    let oldest = Number.POSITIVE_INFINITY;
    for (const [id, start] of Object.entries(frontiers)) {
      const [kind, p] = id.split('|');
      if (p === product && kind !== 'raw') oldest = Math.min(oldest, start);
    }
    const raw = lake.openFirst('raw', product) as RawRow | undefined;
    if (raw) earlier(raw.record);
    if (oldest === Number.POSITIVE_INFINITY) {
      earlier(pos.first); // no rows yet: everything of this product may still matter
      continue;
    }
    let k = -1;
    for (let i = 0; i < pos.snapshots.length; i++) if (pos.snapshots[i]!.exchUs <= oldest - lookbackUs) k = i;
    if (k < 0) {
      earlier(pos.first);
      continue;
    }
    pos.snapshots.splice(0, k);
    earlier(pos.snapshots[0]!.record);
  }
  return from;
}

export class RecoveryStore {
  readonly lookbackMs: number;

  constructor(private readonly opts: RecoveryOptions) {
    this.lookbackMs = opts.lookbackMs ?? 420_000;
  }

  private key(shardId: string): string {
    return `recovery#${this.opts.streamName}#${shardId}`;
  }

  async load(shardId: string): Promise<RecoveryState | undefined> {
    try {
      const out = await this.opts.dynamo.send(
        new GetCommand({ TableName: this.opts.table, Key: { pk: this.key(shardId) }, ConsistentRead: true }),
      );
      const item = out.Item as (RecoveryState & { pk: string }) | undefined;
      if (!item) return undefined;
      return {
        frontiers: item.frontiers ?? {},
        products: item.products ?? {},
        ...(item.replayFrom ? { replayFrom: item.replayFrom } : {}),
      };
    } catch (cause) {
      throw new RecoveryError(`reading the recovery state of ${shardId} failed`, { cause });
    }
  }

  /** `through`: the last record processed when this was saved (for operators; recovery does not read it). */
  async save(shardId: string, state: RecoveryState, through: string): Promise<void> {
    try {
      await this.opts.dynamo.send(
        new PutCommand({ TableName: this.opts.table, Item: { pk: this.key(shardId), through, ...state } }),
      );
    } catch (cause) {
      throw new RecoveryError(`saving the recovery state of ${shardId} failed`, { cause });
    }
  }

  /**
   * Replays `shardId` from record `from` up to `before` (exclusive), handing each page's records to `handle`;
   * resolves with the number of records replayed. Undecodable records were kept when first read: skipped here.
   */
  async replay(
    shardId: string,
    from: string,
    before: string,
    handle: (records: ConsumedRecord[]) => Promise<void>,
  ): Promise<number> {
    let replayed = 0;
    // No pause on an empty page: a replay reads what is already there as fast as it can.
    const source = pollingSource(this.opts.kinesis, this.opts.streamName, { idleMs: 0 });
    try {
      await readShard(
        source,
        shardId,
        { at: from },
        new AbortController().signal,
        {
          records: async (raw) => {
            const { records } = decodeRecords(shardId, raw);
            replayed += records.length;
            await handle(records);
          },
          empty: () => {},
        },
        { until: before },
      );
    } catch (cause) {
      throw new RecoveryError(`replaying ${shardId} from ${from} failed`, { cause });
    }
    return replayed;
  }
}
