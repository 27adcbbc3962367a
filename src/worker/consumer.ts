/**
 * Kinesis consumer: one reading task per shard this worker owns, handler calls serialized across shards.
 * - Reading: readShard (src/worker/shards.ts) over polling GetRecords (works everywhere, including kinesalite) or
 *   enhanced fan-out SubscribeToShard (src/worker/fanout.ts, deployed latency).
 * - Records are decoded (src/worker/decode.ts); a record that does not decode goes to onBadRecord and is
 *   skipped. Delivery is at-least-once: de-duplication is the handler's (the worker's dedup stage).
 * - Checkpoints per shard in the checkpoint table (src/worker/checkpoints.ts), written after the handler
 *   resolved, so a restart resumes AFTER the last handled record and never skips one; at most once per
 *   `checkpointMs` (the deployed worker: once a second, CHECKPOINT_MS), the newest handled position each time.
 *   The write runs while the next batch is read and handled (in order per shard; awaited before the shard ends
 *   or its lease is released): a checkpoint in series would delay every batch behind it.
 * - Leases (optional, src/worker/leases.ts) split the shards between several workers; without them this
 *   consumer reads every shard.
 * - Resharding: a child shard is read only once its parents were read to their end and marked `ended`.
 * - Start position: a shard with a checkpoint resumes after it; a shard of a brand-new worker group (no checkpoint,
 *   parents without state either) starts where `start` says; a child shard created by resharding while workers
 *   ran always starts at TRIM_HORIZON (its parents have state), so nothing between parent and child is skipped.
 */
import { type KinesisClient, ListShardsCommand, type Shard } from '@aws-sdk/client-kinesis';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { sleep } from '../clock.js';
import type { ConsumerConfig, WorkerConfig } from '../config.js';
import type { Logger } from '../log.js';
import { WORKER } from '../telemetry/catalog.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { CheckpointStore, type ShardState } from './checkpoints.js';
import { type BadRecord, type ConsumedRecord, decodeRecords } from './decode.js';
import { type FanOutOptions, FanOutSource } from './fanout.js';
import { type LeaseOptions, LeaseTable, planLeases, readyShards } from './leases.js';
import {
  describePosition,
  pollingSource,
  type RawRecord,
  type ShardPosition,
  type ShardSource,
  TRIM_HORIZON,
} from './shards.js';
import { type Handler, type Run, ShardTask, type TaskHost } from './shardTask.js';

export type { BadRecord, ConsumedRecord } from './decode.js';

export type { ShardBatch } from './shardTask.js';

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
  /** Least time between two checkpoint writes of a shard (default 0: after every batch; shardTask.ts TaskHost). */
  checkpointMs?: number;
  limit?: number;
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
  log?: Logger;
  /** Where WorkerBadRecords is counted (declared, so it reports 0 while none come). */
  telemetry?: Telemetry;
}

/** The consumer options a ConsumerConfig (src/config.ts) selects: leases always, fan-out when asked. */
export function consumerOptionsFrom(
  config: ConsumerConfig,
): Pick<ConsumerOptions, 'leases' | 'fanOut' | 'idleMs' | 'checkpointMs'> {
  return {
    leases: { workerId: config.workerId, leaseMs: config.leaseMs },
    idleMs: config.pollIdleMs,
    checkpointMs: config.checkpointMs,
    ...(config.mode === 'fanout'
      ? { fanOut: { consumerName: config.consumerName, consumerArn: config.consumerArn } }
      : {}),
  };
}

export class KinesisConsumer implements TaskHost {
  readonly store: CheckpointStore;
  readonly checkpointMs: number;
  private readonly leases: LeaseTable | undefined;
  /** Handler calls are serialized across shards: the handler need not be re-entrant. */
  private chain: Promise<void> = Promise.resolve();
  /** The shards being read, while run() runs. */
  private tasks = new Map<string, ShardTask>();
  /** Start times fixed for fresh shards (StartPosition 'timestamp'), kept across retries and lease handovers. */
  private readonly startTimes = new Map<string, Date>();
  badRecords = 0;

  constructor(private readonly opts: ConsumerOptions) {
    this.store = new CheckpointStore(opts.dynamo, opts.checkpointTable, opts.streamName);
    this.checkpointMs = opts.checkpointMs ?? 0;
    this.leases = opts.leases ? new LeaseTable(this.store, opts.leases) : undefined;
    opts.telemetry?.declare(WORKER.badRecords);
  }

  get owner(): string | undefined {
    return this.leases?.workerId;
  }

  get log(): Logger | undefined {
    return this.opts.log;
  }

  onIdle(): void {
    this.opts.onIdle?.();
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

  /** Decodes a page; records that do not decode go to onBadRecord. */
  async decode(shardId: string, raw: RawRecord[]): Promise<ConsumedRecord[]> {
    const { records, bad } = decodeRecords(shardId, raw);
    for (const b of bad) {
      this.badRecords++;
      this.opts.telemetry?.count(WORKER.badRecords);
      this.opts.log?.('warn', 'undecodable record skipped', {
        shardId,
        sequenceNumber: b.sequenceNumber,
        error: b.error.message,
      });
      await this.opts.onBadRecord?.(b);
    }
    return records;
  }

  async serialized(fn: () => Promise<void>): Promise<void> {
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

  async release(shardId: string): Promise<void> {
    await this.leases?.release(shardId).catch((err: unknown) => {
      this.opts.log?.('warn', 'lease release failed (it will expire)', { shardId, error: String(err) });
    });
  }

  /**
   * Where a shard without a checkpoint starts: the configured start position only if neither it nor its parents
   * have any state (a brand-new group); a child of a split or merge seen by workers starts at TRIM_HORIZON.
   */
  private startOf(shard: Shard | undefined, states: Map<string, ShardState>): ShardPosition {
    const id = shard?.ShardId;
    const checkpoint = id === undefined ? undefined : states.get(id)?.sequenceNumber;
    if (checkpoint) return { after: checkpoint };
    const start = this.opts.start;
    if (!shard || !id || start?.at !== 'timestamp') return TRIM_HORIZON;
    const stateless = (shardId: string | undefined) => {
      const st = shardId === undefined ? undefined : states.get(shardId);
      return st === undefined || (st.sequenceNumber === undefined && !st.ended);
    };
    if (!stateless(id) || !stateless(shard.ParentShardId) || !stateless(shard.AdjacentParentShardId)) {
      return TRIM_HORIZON;
    }
    let since = this.startTimes.get(id);
    if (!since) {
      since = new Date((this.opts.now ?? Date.now)() - start.lookbackMs);
      this.startTimes.set(id, since);
    }
    return { since };
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

  private start(run: Run, shard: Shard | undefined, id: string, states: Map<string, ShardState>): void {
    const start = this.startOf(shard, states);
    const closed = shard?.SequenceNumberRange?.EndingSequenceNumber !== undefined;
    this.opts.log?.('info', 'shard started', {
      shardId: id,
      from: describePosition(start),
      worker: this.owner,
    });
    run.tasks.set(id, new ShardTask(this, run, id, start, closed));
  }

  /** Lists the shards and starts, renews, takes and sheds them so this worker reads its share. */
  private async sync(run: Run): Promise<void> {
    const shards = await this.listShards();
    // Parents too: one that aged out of the listing may still have state (then its child is no fresh start).
    const ids = new Set(shards.flatMap((s) => [s.ShardId!, s.ParentShardId, s.AdjacentParentShardId]));
    const states = await this.store.readMany([...ids].filter((id): id is string => id !== undefined));
    const byId = new Map(shards.map((s) => [s.ShardId!, s]));
    const ready = readyShards(shards, states);
    const leases = this.leases;
    if (!leases) {
      for (const id of ready) if (!run.tasks.has(id)) this.start(run, byId.get(id), id, states);
      return;
    }
    const owner = leases.workerId;
    await leases.heartbeat();
    const live = await leases.liveWorkers();
    for (const [id, task] of run.tasks) {
      if (!(await leases.renew(id))) {
        this.opts.log?.('warn', 'lease could not be renewed; stopping the shard', {
          shardId: id,
          worker: owner,
        });
        task.abort.abort();
      }
    }
    const owners = new Map<string, string>();
    for (const id of ready) {
      const task = run.tasks.get(id);
      const st = states.get(id)!;
      if (task?.stopping) owners.set(id, owner);
      else if (!task && st.leaseOwner !== undefined && st.leaseOwner !== owner && !leases.isExpired(st))
        owners.set(id, st.leaseOwner);
    }
    const mine = [...run.tasks].filter(([, t]) => !t.stopping).map(([id]) => id);
    const plan = planLeases({ me: owner, ready, mine, owners, liveWorkers: live });
    for (const id of plan.shed) {
      const task = run.tasks.get(id)!;
      task.stopping = true;
      task.abort.abort();
      this.opts.log?.('info', 'shard given back to balance the workers', {
        shardId: id,
        worker: owner,
        workers: live.length,
      });
    }
    for (const id of plan.take) {
      if (run.signal.aborted) break;
      if (!(await leases.take(states.get(id)!))) continue;
      // Re-read: the previous owner may have checkpointed after our first read, until it released.
      states.set(id, await this.store.read(id));
      this.start(run, byId.get(id), id, states);
    }
  }

  /**
   * Reads until `signal` aborts. Each non-empty batch goes to `handler`; once it resolves the shard's checkpoint
   * moves to the batch's last record. A handler error stops the consumer (rejects) without checkpointing that
   * batch, so a restart reprocesses it. On stop, leases are released after the last checkpoint.
   */
  async run(handler: Handler, signal: AbortSignal): Promise<void> {
    const leases = this.leases;
    const syncMs = this.opts.syncMs ?? Math.min(2000, (leases?.leaseMs ?? 8000) / 4);
    const stopAll = new AbortController();
    let failure: unknown;
    let wake = new AbortController();
    const source: ShardSource = this.opts.fanOut
      ? await FanOutSource.create(this.opts.kinesis, this.opts.streamName, this.opts.fanOut, this.opts.log)
      : pollingSource(this.opts.kinesis, this.opts.streamName, {
          limit: this.opts.limit,
          idleMs: this.opts.idleMs,
        });
    const run: Run = {
      handler,
      source,
      signal: AbortSignal.any([signal, stopAll.signal]),
      tasks: new Map(),
      fail: (err) => {
        failure ??= err;
        stopAll.abort();
      },
      wake: () => wake.abort(),
    };
    this.tasks = run.tasks;
    this.opts.log?.('info', 'consumer started', {
      stream: this.opts.streamName,
      reader: this.opts.fanOut ? 'fanout' : 'polling',
      ...(leases ? { worker: leases.workerId, leaseMs: leases.leaseMs } : {}),
    });
    try {
      while (!run.signal.aborted) {
        try {
          await this.sync(run);
        } catch (err) {
          // A failed sync (throttling, a blip) is retried next period; running shards go on meanwhile.
          this.opts.log?.('warn', 'shard sync failed', { error: String(err) });
        }
        wake = new AbortController();
        await sleep(syncMs, AbortSignal.any([run.signal, wake.signal]));
      }
    } finally {
      stopAll.abort();
      await Promise.all([...run.tasks.values()].map((t) => t.done));
      if (leases) await leases.leave().catch(() => {});
    }
    if (failure) throw failure;
  }
}
