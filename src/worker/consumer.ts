/**
 * Kinesis consumer: one reading loop per shard this worker owns, handler calls serialized across shards.
 * - Reading: polling GetRecords (works everywhere, including kinesalite) or enhanced fan-out SubscribeToShard
 *   (src/worker/fanout.ts, deployed latency), behind one ShardReader interface and one handler interface.
 * - Checkpoints per shard in the checkpoint table (src/worker/checkpoints.ts), written after the handler
 *   resolved, so a restart resumes AFTER the last handled record and never skips one. The write runs while the
 *   next batch is read and handled (in order per shard; awaited before the shard ends or its lease is released):
 *   a checkpoint in series would delay every batch behind it.
 * - Records are decoded (src/stream/record.ts); events already seen (by `id`, a bounded LRU set) are dropped:
 *   the producer is at-least-once. A handler that drops duplicates itself may turn this off (`dedup: false`).
 * - Leases (optional, src/worker/leases.ts) split the shards between several workers; without them this
 *   consumer reads every shard.
 * - Resharding: a child shard is read only once its parents were read to their end and marked `ended`.
 * - Start position: a shard with a checkpoint resumes after it; a shard of a brand-new worker group (no checkpoint,
 *   parents without state either) starts where `start` says; a child shard created by resharding while workers
 *   ran always starts at TRIM_HORIZON (its parents have state), so nothing between parent and child is skipped.
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
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { sleep } from '../clock.js';
import type { ConsumerConfig, WorkerConfig } from '../config.js';
import { decodeRecord, RecordFormatError, type StreamEvent } from '../stream/record.js';
import { CheckpointStore, LeaseLostError, type ShardState } from './checkpoints.js';
import { type FanOutOptions, FanOutReader } from './fanout.js';
import { type LeaseOptions, LeaseTable, planLeases, readyShards } from './leases.js';

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
    if (this.map.has(key)) {
      this.map.delete(key);
      this.map.set(key, true);
      return true;
    }
    this.map.set(key, true);
    if (this.map.size > this.capacity) this.evictOldest();
    return false;
  }

  /**
   * One long-lived keys() iterator instead of a new one per eviction: a Map iterator goes on over entries added
   * after it was made, and every entry before its position was evicted, so its next key is always the oldest.
   */
  private oldest: Iterator<string> | undefined;
  private evictOldest(): void {
    let next = this.oldest?.next();
    if (!next || next.done) {
      this.oldest = this.map.keys();
      next = this.oldest.next();
    }
    this.map.delete(next.value!);
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

/**
 * Where a shard without any checkpoint state starts: the whole retention, or the records that arrived at most
 * `lookbackMs` before reading started (fixed once per shard, so a retry or renewal does not move it).
 */
export type StartPosition = { at: 'trim_horizon' } | { at: 'timestamp'; lookbackMs: number };

/** The start position WORKER_START / WORKER_START_LOOKBACK_MS (readWorkerConfig) select. */
export function startPositionFrom(config: Pick<WorkerConfig, 'start' | 'startLookbackMs'>): StartPosition {
  return config.start === 'trim_horizon'
    ? { at: 'trim_horizon' }
    : { at: 'timestamp', lookbackMs: config.startLookbackMs };
}

export interface ConsumerOptions {
  kinesis: KinesisClient;
  dynamo: DynamoDBDocumentClient;
  streamName: string;
  checkpointTable: string;
  /** Polling: sleep of a shard whose GetRecords came back empty. */
  idleMs?: number;
  limit?: number;
  dedupCapacity?: number;
  /** Drop events already seen (default true); false when the handler de-duplicates every event itself. */
  dedup?: boolean;
  /** Split the shards with other workers (absent: this consumer reads every shard). */
  leases?: LeaseOptions;
  /** Read with enhanced fan-out instead of polling. */
  fanOut?: FanOutOptions;
  /** A brand-new worker group's start position (default TRIM_HORIZON); checkpoints always win. */
  start?: StartPosition;
  /** Clock (epoch ms) the start time is taken from; tests may pass their own. */
  now?: () => number;
  /** How often the shard list is re-read and leases renewed/balanced (default: leaseMs / 4, at most 2 s). */
  syncMs?: number;
  /** A record that does not decode: handed over (to keep it) and skipped. */
  onBadRecord?: (bad: BadRecord) => Promise<void> | void;
  /** Called when a shard came back empty while every shard this consumer reads is caught up. */
  onIdle?: () => void;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/** A record as Kinesis hands it over (GetRecords or a SubscribeToShard event). */
export interface RawRecord {
  SequenceNumber?: string;
  Data?: Uint8Array;
}

/**
 * Where a ShardReader delivers; `records` resolves once the batch is handled (its checkpoint follows in the
 * background, in order; a failed checkpoint write rejects a later `records` call).
 */
export interface ShardSink {
  records(records: RawRecord[], millisBehindLatest: number | undefined): Promise<void>;
  /** The shard had nothing new (caught up). */
  empty(): void;
}

/** How a ShardReader starts a shard beyond `from`. */
export interface ShardStart {
  /** What the shard listing said when reading started. */
  closed?: boolean;
  /** With no `from`: the first record that arrived at or after this time instead of TRIM_HORIZON. */
  startAt?: Date;
}

/**
 * Reads one shard from AFTER `from` (when undefined: `shard.startAt`, else TRIM_HORIZON) until the shard is closed
 * and read to its end ('ended') or `signal` aborts ('stopped'). Aborting never interrupts a delivery in progress.
 */
export interface ShardReader {
  read(
    shardId: string,
    from: string | undefined,
    signal: AbortSignal,
    sink: ShardSink,
    shard?: ShardStart,
  ): Promise<'ended' | 'stopped'>;
}

/** GetShardIterator's position: after the last record read, else the start time, else the oldest record. */
export function iteratorPosition(after: string | undefined, startAt: Date | undefined) {
  if (after) return { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after } as const;
  if (startAt) return { ShardIteratorType: 'AT_TIMESTAMP', Timestamp: startAt } as const;
  return { ShardIteratorType: 'TRIM_HORIZON' } as const;
}

/** The polling reader: GetRecords in a loop, a short sleep when the shard came back empty. */
export class PollingReader implements ShardReader {
  constructor(
    private readonly kinesis: KinesisClient,
    private readonly streamName: string,
    private readonly limit = 1000,
    private readonly idleMs = 200,
  ) {}

  private async iterator(
    shardId: string,
    after: string | undefined,
    startAt: Date | undefined,
  ): Promise<string | undefined> {
    const out = await this.kinesis.send(
      new GetShardIteratorCommand({
        StreamName: this.streamName,
        ShardId: shardId,
        ...iteratorPosition(after, startAt),
      }),
    );
    return out.ShardIterator;
  }

  async read(
    shardId: string,
    from: string | undefined,
    signal: AbortSignal,
    sink: ShardSink,
    shard?: ShardStart,
  ) {
    let last = from;
    let iterator = await this.iterator(shardId, last, shard?.startAt);
    while (!signal.aborted) {
      // Kinesis ends a closed shard's iterator chain once every record was returned.
      if (!iterator) return 'ended' as const;
      let out: GetRecordsCommandOutput;
      try {
        out = await this.kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: this.limit }));
      } catch (err) {
        if (err instanceof ExpiredIteratorException) {
          // No record yet: the same start time again, not TRIM_HORIZON.
          iterator = await this.iterator(shardId, last, shard?.startAt);
          continue;
        }
        if (err instanceof ProvisionedThroughputExceededException) {
          await sleep(this.idleMs * 5, signal);
          continue;
        }
        throw new ConsumerError(`GetRecords on ${shardId} failed`, { cause: err });
      }
      const records = out.Records ?? [];
      if (records.length > 0) {
        await sink.records(records, out.MillisBehindLatest);
        last = records[records.length - 1]!.SequenceNumber;
      } else {
        sink.empty();
      }
      iterator = out.NextShardIterator;
      if (records.length === 0 && iterator) await sleep(this.idleMs, signal);
    }
    return 'stopped' as const;
  }
}

interface ShardTask {
  abort: AbortController;
  caughtUp: boolean;
  /** Being given back (shed) to another worker: still ours until it stops and releases. */
  stopping: boolean;
  done: Promise<void>;
  /** The shard's checkpoint writes, chained in batch order; never rejects (see checkpointError). */
  checkpoint: Promise<void>;
  checkpointError?: unknown;
}

/** The consumer options a ConsumerConfig (src/config.ts) selects: leases always, fan-out when asked. */
export function consumerOptionsFrom(
  config: ConsumerConfig,
): Pick<ConsumerOptions, 'leases' | 'fanOut' | 'idleMs'> {
  return {
    leases: { workerId: config.workerId, leaseMs: config.leaseMs },
    idleMs: config.pollIdleMs,
    ...(config.mode === 'fanout' ? { fanOut: { consumerName: config.consumerName } } : {}),
  };
}

export class KinesisConsumer {
  private readonly dedup: LruSet;
  private readonly store: CheckpointStore;
  private readonly leases: LeaseTable | undefined;
  /** Handler calls are serialized across shards: the handler need not be re-entrant. */
  private chain: Promise<void> = Promise.resolve();
  /** The shards being read, while run() runs. */
  private tasks = new Map<string, ShardTask>();
  /** Start times fixed for fresh shards (StartPosition 'timestamp'), kept across retries and lease handovers. */
  private readonly startTimes = new Map<string, Date>();
  duplicatesDropped = 0;
  badRecords = 0;

  constructor(private readonly opts: ConsumerOptions) {
    this.dedup = new LruSet(opts.dedupCapacity ?? 200_000);
    this.store = new CheckpointStore(opts.dynamo, opts.checkpointTable, opts.streamName);
    this.leases = opts.leases ? new LeaseTable(this.store, opts.leases) : undefined;
  }

  /** Shards this consumer reads right now (leased ones, or all ready ones without leases). */
  readingShards(): string[] {
    return [...this.tasks]
      .filter(([, t]) => !t.stopping)
      .map(([id]) => id)
      .sort();
  }

  async readCheckpoint(shardId: string): Promise<string | undefined> {
    return (await this.store.read(shardId)).sequenceNumber;
  }

  /** Unconditional (not fenced by a lease): for tools and tests; the consumer itself fences its writes. */
  async writeCheckpoint(shardId: string, sequenceNumber: string): Promise<void> {
    await this.store.write(shardId, sequenceNumber);
  }

  /**
   * Where a shard without a checkpoint starts: the configured start position only if neither it nor its parents
   * have any state (a brand-new group); a child of a split or merge seen by workers starts at TRIM_HORIZON.
   */
  private startTime(shard: Shard | undefined, states: Map<string, ShardState>): Date | undefined {
    const start = this.opts.start;
    if (!shard || start?.at !== 'timestamp') return undefined;
    const stateless = (id: string | undefined) => {
      const st = id === undefined ? undefined : states.get(id);
      return st === undefined || (st.sequenceNumber === undefined && !st.ended);
    };
    const id = shard.ShardId!;
    if (!stateless(id) || !stateless(shard.ParentShardId) || !stateless(shard.AdjacentParentShardId)) {
      return undefined;
    }
    let at = this.startTimes.get(id);
    if (!at) {
      at = new Date((this.opts.now ?? Date.now)() - start.lookbackMs);
      this.startTimes.set(id, at);
    }
    return at;
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

  /** Decodes and de-duplicates; bad records go to onBadRecord. */
  private async decode(shardId: string, records: RawRecord[]) {
    const out: ConsumedRecord[] = [];
    for (const r of records) {
      const sequenceNumber = r.SequenceNumber ?? '';
      const data = r.Data ?? new Uint8Array();
      try {
        const rec = decodeRecord(data);
        const events =
          this.opts.dedup === false
            ? rec.events
            : rec.events.filter((e) => {
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

  private async serialized(fn: () => Promise<void>): Promise<void> {
    const previous = this.chain;
    let done!: () => void;
    this.chain = new Promise((resolve) => {
      done = resolve;
    });
    await previous;
    try {
      await fn();
    } finally {
      done();
    }
  }

  /**
   * Reads until `signal` aborts. Each non-empty batch goes to `handler`; once it resolves the shard's checkpoint
   * moves to the batch's last record. A handler error stops the consumer (rejects) without checkpointing that
   * batch, so a restart reprocesses it. On stop, leases are released after the last checkpoint.
   */
  async run(handler: (batch: ShardBatch) => Promise<void>, signal: AbortSignal): Promise<void> {
    const { log, leases: leaseOptions } = this.opts;
    const leases = this.leases;
    const owner = leases?.workerId;
    const syncMs = this.opts.syncMs ?? Math.min(2000, (leases?.leaseMs ?? 8000) / 4);
    const stopAll = new AbortController();
    const running = AbortSignal.any([signal, stopAll.signal]);
    const tasks = new Map<string, ShardTask>();
    this.tasks = tasks;
    let failure: unknown;
    let wake = new AbortController();

    const reader: ShardReader = this.opts.fanOut
      ? await FanOutReader.create(this.opts.kinesis, this.opts.streamName, this.opts.fanOut, log)
      : new PollingReader(this.opts.kinesis, this.opts.streamName, this.opts.limit, this.opts.idleMs);

    const closed = new Set<string>();
    const start = (shardId: string, from: string | undefined, startAt: Date | undefined) => {
      const abort = new AbortController();
      const taskSignal = AbortSignal.any([running, abort.signal]);
      const task: ShardTask = {
        abort,
        caughtUp: false,
        stopping: false,
        done: Promise.resolve(),
        checkpoint: Promise.resolve(),
      };
      /** Waits for the checkpoint writes queued so far; throws the first one that failed. */
      const flush = async () => {
        await task.checkpoint;
        if (task.checkpointError !== undefined) throw task.checkpointError;
      };
      tasks.set(shardId, task);
      const position = from ?? (startAt ? `AT_TIMESTAMP ${startAt.toISOString()}` : 'TRIM_HORIZON');
      log?.('info', 'shard started', { shardId, from: position, worker: owner });
      const sink: ShardSink = {
        records: async (records, millisBehindLatest) => {
          if (task.checkpointError !== undefined) throw task.checkpointError;
          task.caughtUp = false;
          await this.serialized(async () => {
            const decoded = await this.decode(shardId, records);
            await handler({ shardId, records: decoded, millisBehindLatest });
          });
          // Only after the handler resolved; the next batch need not wait for it (module comment).
          const sequenceNumber = records[records.length - 1]!.SequenceNumber!;
          task.checkpoint = task.checkpoint.then(async () => {
            if (task.checkpointError !== undefined) return;
            try {
              await this.store.write(shardId, sequenceNumber, { owner });
            } catch (err) {
              task.checkpointError = err;
            }
          });
        },
        empty: () => {
          task.caughtUp = true;
          const active = [...tasks.values()].filter((t) => !t.stopping);
          if (active.every((t) => t.caughtUp)) this.opts.onIdle?.();
        },
      };
      task.done = (async () => {
        let lost = false;
        try {
          const how = await reader.read(shardId, from, taskSignal, sink, {
            closed: closed.has(shardId),
            startAt: from === undefined ? startAt : undefined,
          });
          await flush(); // every handled batch checkpointed before 'ended' or a release
          if (how === 'ended') {
            await this.store.write(shardId, undefined, { owner, ended: true });
            log?.('info', 'shard ended (read to its end; children may start)', { shardId });
            wake.abort(); // re-list now so the children start without waiting a sync period
          }
        } catch (err) {
          if (err instanceof LeaseLostError) {
            lost = true;
            log?.('warn', 'lease lost; shard left to its new owner', { shardId, worker: owner });
          } else {
            failure ??= err;
            stopAll.abort();
          }
        } finally {
          // A failed read still waits for its queued checkpoints: they must land while the lease is ours.
          await task.checkpoint;
          tasks.delete(shardId);
          if (leases && !lost) {
            await leases.release(shardId).catch((err: unknown) => {
              log?.('warn', 'lease release failed (it will expire)', { shardId, error: String(err) });
            });
          }
        }
      })();
    };

    const sync = async () => {
      const shards = await this.listShards();
      for (const s of shards) if (s.SequenceNumberRange?.EndingSequenceNumber) closed.add(s.ShardId!);
      // Parents too: one that aged out of the listing may still have state (then its child is no fresh start).
      const ids = new Set(shards.flatMap((s) => [s.ShardId!, s.ParentShardId, s.AdjacentParentShardId]));
      const states = await this.store.readMany([...ids].filter((id): id is string => id !== undefined));
      const byId = new Map(shards.map((s) => [s.ShardId!, s]));
      const ready = readyShards(shards, states);
      if (!leases) {
        for (const id of ready) {
          if (!tasks.has(id)) start(id, states.get(id)?.sequenceNumber, this.startTime(byId.get(id), states));
        }
        return;
      }
      await leases.heartbeat();
      const live = await leases.liveWorkers();
      for (const [id, task] of tasks) {
        if (!(await leases.renew(id))) {
          log?.('warn', 'lease could not be renewed; stopping the shard', { shardId: id, worker: owner });
          task.abort.abort();
        }
      }
      const owners = new Map<string, string>();
      for (const id of ready) {
        const task = tasks.get(id);
        const st = states.get(id)!;
        if (task?.stopping) owners.set(id, owner!);
        else if (!task && st.leaseOwner !== undefined && st.leaseOwner !== owner && !leases.isExpired(st))
          owners.set(id, st.leaseOwner);
      }
      const mine = [...tasks].filter(([, t]) => !t.stopping).map(([id]) => id);
      const plan = planLeases({ me: owner!, ready, mine, owners, liveWorkers: live });
      for (const id of plan.shed) {
        const task = tasks.get(id)!;
        task.stopping = true;
        task.abort.abort();
        log?.('info', 'shard given back to balance the workers', {
          shardId: id,
          worker: owner,
          workers: live.length,
        });
      }
      for (const id of plan.take) {
        if (running.aborted) break;
        if (!(await leases.take(states.get(id)!))) continue;
        // Re-read: the previous owner may have checkpointed after our first read, until it released.
        const now = await this.store.read(id);
        states.set(id, now);
        start(id, now.sequenceNumber, this.startTime(byId.get(id), states));
      }
    };

    log?.('info', 'consumer started', {
      stream: this.opts.streamName,
      reader: this.opts.fanOut ? 'fanout' : 'polling',
      ...(leaseOptions ? { worker: owner, leaseMs: leases?.leaseMs } : {}),
    });
    try {
      while (!running.aborted) {
        try {
          await sync();
        } catch (err) {
          // A failed sync (throttling, a blip) is retried next period; running shards go on meanwhile.
          log?.('warn', 'shard sync failed', { error: String(err) });
        }
        wake = new AbortController();
        await sleep(syncMs, AbortSignal.any([running, wake.signal]));
      }
    } finally {
      stopAll.abort();
      await Promise.all([...tasks.values()].map((t) => t.done));
      if (leases) await leases.leave().catch(() => {});
    }
    if (failure) throw failure;
  }
}
