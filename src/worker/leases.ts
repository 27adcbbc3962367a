/**
 * Shard leases, so several workers split the shards of one stream (the idea of the KCL, kept small):
 * - a lease is three attributes of the shard's checkpoint item (src/worker/checkpoints.ts): leaseOwner,
 *   leaseExpiresAt (epoch ms) and leaseCounter (bumped by every take and renew);
 * - a worker takes a lease that is free, expired, or already its own, with a conditional update that also
 *   requires the counter it saw: of two workers racing for one lease exactly one wins;
 * - it renews its leases well before they expire and releases them (after its last checkpoint) when it stops;
 *   a worker that dies stops renewing, and the others take its shards once the leases expired;
 * - live workers announce themselves with a heartbeat item (pk "worker#<stream>#<workerId>") so that a new
 *   worker is seen before it holds anything; a worker holding more than its share gives the surplus back
 *   (cooperatively, at a batch boundary after its checkpoint) and the others take it. Nothing is stolen while
 *   its owner is alive, so a handover never has two readers of one shard.
 * Expiry compares epoch-ms clocks of different hosts: they must agree to well within the lease duration (NTP).
 */
import type { Shard } from '@aws-sdk/client-kinesis';
import { DeleteCommand, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/errors.js';
import type { CheckpointStore, ShardState } from './checkpoints.js';

export interface LeaseOptions {
  /** Unique per live worker; a worker restarted with the same id gets its own leases back at once. */
  workerId: string;
  /** A lease not renewed for this long is free to take (default 10 s). */
  leaseMs?: number;
  /** Clock (epoch ms); tests may pass their own. */
  now?: () => number;
}

export class LeaseTable {
  readonly workerId: string;
  readonly leaseMs: number;
  private readonly now: () => number;

  constructor(
    private readonly store: CheckpointStore,
    options: LeaseOptions,
  ) {
    this.workerId = options.workerId;
    this.leaseMs = options.leaseMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  private heartbeatKey(workerId: string) {
    return { pk: `worker#${this.store.streamName}#${workerId}` };
  }

  /** Takes the lease if it is free, expired or ours and unchanged since `seen` was read. */
  async take(seen: ShardState): Promise<boolean> {
    const now = this.now();
    try {
      await this.store.dynamo.send(
        new UpdateCommand({
          TableName: this.store.table,
          Key: this.store.key(seen.shardId),
          UpdateExpression:
            'SET leaseOwner = :me, leaseExpiresAt = :exp, shardId = :shard ADD leaseCounter :one',
          ConditionExpression:
            '(attribute_not_exists(leaseCounter) OR leaseCounter = :seen) AND ' +
            '(attribute_not_exists(leaseOwner) OR leaseOwner = :me OR leaseExpiresAt < :now)',
          ExpressionAttributeValues: {
            ':me': this.workerId,
            ':exp': now + this.leaseMs,
            ':shard': seen.shardId,
            ':one': 1,
            ':seen': seen.leaseCounter,
            ':now': now,
          },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Extends our lease; false when it is no longer ours (expired and taken by another worker). */
  async renew(shardId: string): Promise<boolean> {
    try {
      await this.store.dynamo.send(
        new UpdateCommand({
          TableName: this.store.table,
          Key: this.store.key(shardId),
          UpdateExpression: 'SET leaseExpiresAt = :exp ADD leaseCounter :one',
          ConditionExpression: 'leaseOwner = :me',
          ExpressionAttributeValues: { ':me': this.workerId, ':exp': this.now() + this.leaseMs, ':one': 1 },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Gives the lease back (no-op if it is not ours any more). */
  async release(shardId: string): Promise<void> {
    try {
      await this.store.dynamo.send(
        new UpdateCommand({
          TableName: this.store.table,
          Key: this.store.key(shardId),
          UpdateExpression: 'REMOVE leaseOwner, leaseExpiresAt ADD leaseCounter :one',
          ConditionExpression: 'leaseOwner = :me',
          ExpressionAttributeValues: { ':me': this.workerId, ':one': 1 },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  async heartbeat(): Promise<void> {
    await this.store.dynamo.send(
      new PutCommand({
        TableName: this.store.table,
        Item: {
          ...this.heartbeatKey(this.workerId),
          workerId: this.workerId,
          stream: this.store.streamName,
          expiresAt: this.now() + this.leaseMs,
        },
      }),
    );
  }

  async leave(): Promise<void> {
    await this.store.dynamo.send(
      new DeleteCommand({ TableName: this.store.table, Key: this.heartbeatKey(this.workerId) }),
    );
  }

  /** Ids of the workers whose heartbeat has not expired (a scan: the table holds a handful of items per shard). */
  async liveWorkers(): Promise<string[]> {
    const ids: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.store.dynamo.send(
        new ScanCommand({
          TableName: this.store.table,
          ConsistentRead: true,
          FilterExpression: 'begins_with(pk, :prefix) AND expiresAt > :now',
          ExpressionAttributeValues: { ':prefix': `worker#${this.store.streamName}#`, ':now': this.now() },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) ids.push(item.workerId as string);
      start = out.LastEvaluatedKey;
    } while (start);
    return ids;
  }

  isExpired(state: ShardState): boolean {
    return state.leaseOwner === undefined || (state.leaseExpiresAt ?? 0) < this.now();
  }
}

/**
 * Shards that may be read now: not ended, and every parent still listed has ended (a child shard waits until
 * its parents were read to their end, so a product's records stay in order across a split or merge). A parent
 * no longer listed has aged out of the stream's retention and holds nothing to wait for.
 */
export function readyShards(shards: Shard[], states: Map<string, ShardState>): string[] {
  const listed = new Set(shards.map((s) => s.ShardId!));
  const done = (id: string | undefined) => !id || !listed.has(id) || states.get(id)?.ended === true;
  return shards
    .filter((s) => !states.get(s.ShardId!)?.ended && done(s.ParentShardId) && done(s.AdjacentParentShardId))
    .map((s) => s.ShardId!);
}

export interface LeasePlan {
  take: string[];
  shed: string[];
}

/**
 * What this worker should take and give back so that the ready shards end up spread evenly (counts differ by at
 * most one) over the live workers. `mine`: the shards this worker reads now; `owners`: the live, unexpired
 * owner of each ready shard not in `mine` (absent = free to take).
 */
export function planLeases(input: {
  me: string;
  ready: string[];
  mine: string[];
  owners: Map<string, string>;
  liveWorkers: string[];
}): LeasePlan {
  const workers = new Set([...input.liveWorkers, input.me]);
  const ready = [...input.ready].sort();
  const mine = new Set(input.mine.filter((s) => ready.includes(s)));
  const ceil = Math.ceil(ready.length / workers.size);
  const floor = Math.floor(ready.length / workers.size);
  const free = ready.filter((s) => !mine.has(s) && !input.owners.has(s));
  const held = new Map<string, number>([...workers].map((w) => [w, 0]));
  for (const s of ready) {
    const owner = mine.has(s) ? input.me : input.owners.get(s);
    if (owner !== undefined) held.set(owner, (held.get(owner) ?? 0) + 1);
  }
  const mineSorted = [...mine].sort();
  if (mine.size < ceil) return { take: free.slice(0, ceil - mine.size), shed: [] };
  if (mine.size > ceil) return { take: [], shed: mineSorted.slice(ceil) };
  // At our share's upper bound while a live worker is below the lower one and nothing is free for it: give one.
  const starving = [...held].some(([w, n]) => w !== input.me && workers.has(w) && n < floor);
  if (starving && free.length === 0 && mine.size > floor) return { take: [], shed: mineSorted.slice(-1) };
  return { take: [], shed: [] };
}
