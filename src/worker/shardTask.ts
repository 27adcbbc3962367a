/**
 * Reading one shard for the consumer (consumer.ts): the delivery sink readShard calls, the shard's checkpoint
 * chain (written after handled batches, in order, off the batch path, at most once per `checkpointMs`), its end
 * (marked so children may start) and the release of its lease. A checkpoint write that fails transiently (DynamoDB
 * restarting or throttling) is waited out (src/aws/retry.ts) without holding up the batches: only a lost lease or a
 * failure that outlasts the retries ends the shard.
 */
import { logRetries, retryTransient } from '../aws/retry.js';
import type { Logger } from '../log.js';
import type { CheckpointStore } from './checkpoints.js';
import { LeaseLostError } from './checkpoints.js';
import type { ConsumedRecord } from './decode.js';
import { type RawRecord, readShard, type ShardPosition, type ShardSink, type ShardSource } from './shards.js';

export interface ShardBatch {
  shardId: string;
  records: ConsumedRecord[];
  /** How far this batch is behind the shard's tip, per Kinesis (ms). */
  millisBehindLatest?: number;
}

/** What a task needs of its consumer. */
export interface TaskHost {
  readonly store: CheckpointStore;
  /**
   * Least time between two checkpoint writes of a shard (0: after every batch). Batches handled in between move
   * the pending position only; it is written when the interval is up, and always before the shard ends or its
   * lease goes. A crash re-reads at most this much more, which the worker's dedup stage drops.
   */
  readonly checkpointMs: number;
  readonly owner: string | undefined;
  readonly log: Logger | undefined;
  /** Runs `fn` after every earlier handler call (handler calls are serialized across shards). */
  serialized(fn: () => Promise<void>): Promise<void>;
  decode(shardId: string, raw: RawRecord[]): Promise<ConsumedRecord[]>;
  onIdle(): void;
  release(shardId: string): Promise<void>;
}

export type Handler = (batch: ShardBatch) => Promise<void>;

/** What one run() shares with its shard tasks. */
export interface Run {
  handler: Handler;
  source: ShardSource;
  /** Aborts when the consumer stops (signal, or a failure). */
  signal: AbortSignal;
  tasks: Map<string, ShardTask>;
  /** A task failed: remember the first error and stop everything. */
  fail(err: unknown): void;
  /** Re-list the shards now (a parent ended: its children may start). */
  wake(): void;
}

/** Reading one shard: its delivery sink, its checkpoint chain, its end and its lease release. */
export class ShardTask {
  readonly abort = new AbortController();
  caughtUp = false;
  /** Being given back (shed) to another worker: still ours until it stops and releases. */
  stopping = false;
  readonly done: Promise<void>;
  /** The shard's checkpoint writes, chained in batch order; never rejects (see checkpointError). */
  private checkpoint: Promise<void> = Promise.resolve();
  private checkpointError: unknown;
  /** The last handled record not yet queued for writing, the time the last write was queued, its timer. */
  private pending: string | undefined;
  private queuedAt = Number.NEGATIVE_INFINITY;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly consumer: TaskHost,
    private readonly run: Run,
    readonly shardId: string,
    start: ShardPosition,
    closed: boolean,
  ) {
    this.done = this.read(start, closed);
  }

  private readonly sink: ShardSink = {
    records: async (raw, millisBehindLatest) => {
      if (this.checkpointError !== undefined) throw this.checkpointError;
      this.caughtUp = false;
      await this.consumer.serialized(async () => {
        const records = await this.consumer.decode(this.shardId, raw);
        await this.run.handler({ shardId: this.shardId, records, millisBehindLatest });
      });
      // Only after the handler resolved; the next batch need not wait for it (module comment).
      this.pending = raw[raw.length - 1]!.SequenceNumber!;
      const wait = this.queuedAt + this.consumer.checkpointMs - performance.now();
      if (wait <= 0) this.queuePending();
      else
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.queuePending();
        }, wait);
    },
    empty: () => {
      this.caughtUp = true;
      const active = [...this.run.tasks.values()].filter((t) => !t.stopping);
      if (active.every((t) => t.caughtUp)) this.consumer.onIdle();
    },
  };

  /** Queues the write of the pending position, if any, behind the writes queued before it. */
  private queuePending(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const sequenceNumber = this.pending;
    if (sequenceNumber === undefined) return;
    this.pending = undefined;
    this.queuedAt = performance.now();
    this.checkpoint = this.checkpoint.then(async () => {
      if (this.checkpointError !== undefined) return;
      try {
        await this.write(sequenceNumber);
      } catch (err) {
        this.checkpointError = err;
      }
    });
  }

  private write(sequenceNumber: string | undefined, ended = false): Promise<void> {
    const { store, owner, log } = this.consumer;
    const options = ended ? { owner, ended } : { owner };
    return retryTransient(() => store.write(this.shardId, sequenceNumber, options), {
      ...(log
        ? { onRetry: logRetries(log, 'checkpoint write failed; retrying', { shardId: this.shardId }) }
        : {}),
    });
  }

  /** Writes the pending position and waits for every write queued; throws the first one that failed. */
  private async flush(): Promise<void> {
    this.queuePending();
    await this.checkpoint;
    if (this.checkpointError !== undefined) throw this.checkpointError;
  }

  private async read(start: ShardPosition, closed: boolean): Promise<void> {
    const { shardId } = this;
    const signal = AbortSignal.any([this.run.signal, this.abort.signal]);
    const log = this.consumer.log;
    let lost = false;
    try {
      const how = await readShard(this.run.source, shardId, start, signal, this.sink, { closed });
      await this.flush(); // every handled batch checkpointed before 'ended' or a release
      if (how === 'ended') {
        await this.write(undefined, true);
        log?.('info', 'shard ended (read to its end; children may start)', { shardId });
        this.run.wake();
      }
    } catch (err) {
      if (err instanceof LeaseLostError) {
        lost = true;
        log?.('warn', 'lease lost; shard left to its new owner', { shardId, worker: this.consumer.owner });
      } else {
        this.run.fail(err);
      }
    } finally {
      // A failed read still checkpoints what was handled: the writes must land while the lease is ours.
      if (lost) clearTimeout(this.timer);
      else this.queuePending();
      await this.checkpoint;
      this.run.tasks.delete(shardId);
      if (!lost) await this.consumer.release(shardId);
    }
  }
}
