/**
 * Per-shard state in the checkpoint table, one item per shard at pk = "<stream>#<shardId>":
 *   sequenceNumber  the last record handed to the handler and fully handled (the checkpoint)
 *   ended           the shard is closed (resharding) and every record of it was handled: its children may start
 *   leaseOwner / leaseExpiresAt / leaseCounter   who reads the shard (src/worker/leases.ts)
 * Checkpoint and lease live in the SAME item so a checkpoint write can be fenced by the lease (a condition on
 * leaseOwner): a worker that lost its lease cannot move a checkpoint the new owner relies on.
 */

import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  GetCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/errors.js';
import { QuoteWatchError } from '../errors.js';

export class LeaseLostError extends QuoteWatchError {
  constructor(
    readonly shardId: string,
    readonly workerId: string,
    options?: { cause?: unknown },
  ) {
    super(`lease on ${shardId} is no longer held by ${workerId}`, options);
  }
}

export interface ShardState {
  shardId: string;
  sequenceNumber?: string;
  ended: boolean;
  leaseOwner?: string;
  /** Epoch ms; a lease past it is free to take. */
  leaseExpiresAt?: number;
  leaseCounter: number;
}

export class CheckpointStore {
  constructor(
    readonly dynamo: DynamoDBDocumentClient,
    readonly table: string,
    readonly streamName: string,
  ) {}

  key(shardId: string): { pk: string } {
    return { pk: `${this.streamName}#${shardId}` };
  }

  private toState(shardId: string, item: Record<string, unknown> | undefined): ShardState {
    return {
      shardId,
      sequenceNumber: item?.sequenceNumber as string | undefined,
      ended: item?.ended === true,
      leaseOwner: item?.leaseOwner as string | undefined,
      leaseExpiresAt: item?.leaseExpiresAt as number | undefined,
      leaseCounter: (item?.leaseCounter as number | undefined) ?? 0,
    };
  }

  async read(shardId: string): Promise<ShardState> {
    const out = await this.dynamo.send(
      new GetCommand({ TableName: this.table, Key: this.key(shardId), ConsistentRead: true }),
    );
    return this.toState(shardId, out.Item);
  }

  /** The state of many shards (absent items read as fresh shards). */
  async readMany(shardIds: string[]): Promise<Map<string, ShardState>> {
    const states = new Map<string, ShardState>();
    for (let i = 0; i < shardIds.length; i += 100) {
      let keys: Record<string, unknown>[] | undefined = shardIds.slice(i, i + 100).map((s) => this.key(s));
      // BatchGet may hand back unprocessed keys under load: ask again for those.
      while (keys && keys.length > 0) {
        const out: BatchGetCommandOutput = await this.dynamo.send(
          new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } }),
        );
        for (const item of out.Responses?.[this.table] ?? []) {
          const shardId = (item.pk as string).slice(this.streamName.length + 1);
          states.set(shardId, this.toState(shardId, item));
        }
        keys = out.UnprocessedKeys?.[this.table]?.Keys;
      }
    }
    for (const s of shardIds) if (!states.has(s)) states.set(s, this.toState(s, undefined));
    return states;
  }

  /**
   * Moves the checkpoint (and marks the shard ended when `ended`). With `owner` the write only happens while
   * `owner` holds the lease, else LeaseLostError; without it (a single consumer, no leases) it always happens.
   */
  async write(
    shardId: string,
    sequenceNumber: string | undefined,
    options: { owner?: string; ended?: boolean } = {},
  ) {
    const sets = ['shardId = :shard', '#stream = :stream']; // STREAM is a DynamoDB reserved word
    const values: Record<string, unknown> = { ':shard': shardId, ':stream': this.streamName };
    if (sequenceNumber !== undefined) {
      sets.push('sequenceNumber = :seq');
      values[':seq'] = sequenceNumber;
    }
    if (options.ended) {
      sets.push('ended = :ended');
      values[':ended'] = true;
    }
    if (options.owner !== undefined) values[':owner'] = options.owner;
    try {
      await this.dynamo.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(shardId),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ExpressionAttributeNames: { '#stream': 'stream' },
          ...(options.owner !== undefined ? { ConditionExpression: 'leaseOwner = :owner' } : {}),
          ExpressionAttributeValues: values,
        }),
      );
    } catch (err) {
      if (options.owner !== undefined && isConditionFailure(err)) {
        throw new LeaseLostError(shardId, options.owner, { cause: err });
      }
      throw err;
    }
  }
}
