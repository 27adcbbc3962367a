/**
 * The connections table of the WebSocket API (src/resources.ts TABLES.connections): one item per open connection
 * and two kinds of counters $connect checks against MAX_CONNECTIONS and MAX_CONNECTIONS_PER_IP (conditional
 * updates: no Scan per connect). The route handlers (lambdas/ws/) write it; the worker's publisher
 * (src/worker/sinks/push.ts) reads it every PUSH_REFRESH_MS and removes connections API Gateway calls gone.
 *
 * Items: `c#<connectionId>` {ip, products (a string set), connectedAtMs, expiresAt}; `n#all` {n}; `n#ip#<ip>`
 * {n, expiresAt}. A connection expires a little after API Gateway's 2-hour limit (TTL deletes within days, so
 * readers skip expired items); whoever deletes a connection item (its $disconnect, the publisher on 410 Gone or
 * on expiry) takes its counts back, and only the delete that found the item does, so a count is returned once.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { WEBSOCKET_LIMITS } from '../config.js';
import { QuoteWatchError } from '../errors.js';

/** A connection item outlives API Gateway's maximum connection duration by this much. */
export const CONNECTION_TTL_S = WEBSOCKET_LIMITS.maxConnectionMs / 1000 + 600;

const CONNECTION = 'c#';
const ALL = 'n#all';
const ipKey = (ip: string) => `n#ip#${ip}`;

export class ConnectionsError extends QuoteWatchError {}

export interface Connection {
  id: string;
  ip: string;
  products: string[];
  connectedAtMs: number;
  /** Epoch seconds. */
  expiresAt: number;
}

export type OpenResult = { ok: true } | { ok: false; reason: 'per_ip' | 'full' };

export interface ConnectionsStoreOptions {
  client: DynamoDBDocumentClient;
  table: string;
  now?: () => number;
}

function isConditionFailure(err: unknown): err is ConditionalCheckFailedException {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string })?.name === 'ConditionalCheckFailedException'
  );
}

export class ConnectionsStore {
  private readonly now: () => number;
  constructor(private readonly opts: ConnectionsStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Counts the connection in (per address, then overall) and stores it; refused when a cap is reached. */
  async open(id: string, ip: string, limits: { max: number; perIp: number }): Promise<OpenResult> {
    const nowMs = this.now();
    const expiresAt = Math.floor(nowMs / 1000) + CONNECTION_TTL_S;
    if (!(await this.increment(ipKey(ip), limits.perIp, expiresAt))) return { ok: false, reason: 'per_ip' };
    if (!(await this.increment(ALL, limits.max))) {
      await this.decrement(ipKey(ip));
      return { ok: false, reason: 'full' };
    }
    await this.call(() =>
      this.opts.client.send(
        new PutCommand({
          TableName: this.opts.table,
          Item: { pk: `${CONNECTION}${id}`, ip, connectedAtMs: nowMs, expiresAt },
        }),
      ),
    );
    return { ok: true };
  }

  /** Removes the connection and gives its counts back; false when it was not there (already removed). */
  async close(id: string): Promise<boolean> {
    const out = await this.call(() =>
      this.opts.client.send(
        new DeleteCommand({
          TableName: this.opts.table,
          Key: { pk: `${CONNECTION}${id}` },
          ReturnValues: 'ALL_OLD',
        }),
      ),
    );
    const old = out.Attributes as { ip?: string } | undefined;
    if (!old) return false;
    await this.decrement(ALL);
    if (old.ip) await this.decrement(ipKey(old.ip));
    return true;
  }

  /** Adds products to the connection's subscription; the full set after it, undefined when the connection is gone. */
  async subscribe(id: string, products: readonly string[]): Promise<string[] | undefined> {
    return this.changeProducts(id, 'ADD', products);
  }

  /** Removes products (all of them when none are named); the set left, undefined when the connection is gone. */
  async unsubscribe(id: string, products?: readonly string[]): Promise<string[] | undefined> {
    if (products === undefined) {
      try {
        await this.call(() =>
          this.opts.client.send(
            new UpdateCommand({
              TableName: this.opts.table,
              Key: { pk: `${CONNECTION}${id}` },
              UpdateExpression: 'REMOVE products',
              ConditionExpression: 'attribute_exists(pk)',
            }),
          ),
        );
        return [];
      } catch (err) {
        if (isConditionFailure(err)) return undefined;
        throw err;
      }
    }
    return this.changeProducts(id, 'DELETE', products);
  }

  /**
   * Every connection item (a paginated Scan: the publisher's periodic refresh, never per message), split into the
   * live ones and those past their expiry (TTL has not deleted them yet).
   */
  async list(): Promise<{ live: Connection[]; expired: string[] }> {
    const live: Connection[] = [];
    const expired: string[] = [];
    const nowS = this.now() / 1000;
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.call(() =>
        this.opts.client.send(
          new ScanCommand({
            TableName: this.opts.table,
            ExclusiveStartKey: start,
            FilterExpression: 'begins_with(pk, :c)',
            ExpressionAttributeValues: { ':c': CONNECTION },
          }),
        ),
      );
      for (const item of page.Items ?? []) {
        const id = String(item.pk).slice(CONNECTION.length);
        if (Number(item.expiresAt) <= nowS) {
          expired.push(id);
          continue;
        }
        live.push({
          id,
          ip: String(item.ip ?? ''),
          products: item.products instanceof Set ? [...(item.products as Set<string>)].sort() : [],
          connectedAtMs: Number(item.connectedAtMs),
          expiresAt: Number(item.expiresAt),
        });
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return { live, expired };
  }

  /** The overall open-connection count $connect checks (0 when none was ever counted). */
  async count(key: 'all' | { ip: string } = 'all'): Promise<number> {
    const out = await this.call(() =>
      this.opts.client.send(
        new UpdateCommand({
          TableName: this.opts.table,
          Key: { pk: key === 'all' ? ALL : ipKey(key.ip) },
          UpdateExpression: 'ADD n :zero',
          ExpressionAttributeValues: { ':zero': 0 },
          ReturnValues: 'ALL_NEW',
        }),
      ),
    );
    return Number(out.Attributes?.n ?? 0);
  }

  private async changeProducts(
    id: string,
    op: 'ADD' | 'DELETE',
    products: readonly string[],
  ): Promise<string[] | undefined> {
    if (products.length === 0) return this.unsubscribe(id, undefined).then(() => undefined);
    try {
      const out = await this.call(() =>
        this.opts.client.send(
          new UpdateCommand({
            TableName: this.opts.table,
            Key: { pk: `${CONNECTION}${id}` },
            UpdateExpression: `${op} products :p`,
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeValues: { ':p': new Set(products) },
            ReturnValues: 'ALL_NEW',
          }),
        ),
      );
      const set = out.Attributes?.products;
      return set instanceof Set ? [...(set as Set<string>)].sort() : [];
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  private async increment(pk: string, cap: number, expiresAt?: number): Promise<boolean> {
    try {
      await this.call(() =>
        this.opts.client.send(
          new UpdateCommand({
            TableName: this.opts.table,
            Key: { pk },
            UpdateExpression: expiresAt === undefined ? 'ADD n :one' : 'ADD n :one SET expiresAt = :exp',
            ConditionExpression: 'attribute_not_exists(n) OR n < :cap',
            ExpressionAttributeValues: {
              ':one': 1,
              ':cap': cap,
              ...(expiresAt === undefined ? {} : { ':exp': expiresAt }),
            },
          }),
        ),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  private async decrement(pk: string): Promise<void> {
    // Never below zero: a count taken back twice (it cannot be, see close) must not free a slot that is in use.
    try {
      await this.call(() =>
        this.opts.client.send(
          new UpdateCommand({
            TableName: this.opts.table,
            Key: { pk },
            UpdateExpression: 'ADD n :minus',
            ConditionExpression: 'n > :zero',
            ExpressionAttributeValues: { ':minus': -1, ':zero': 0 },
          }),
        ),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  private async call<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      if (isConditionFailure(err)) throw err;
      throw new ConnectionsError(`connections table ${this.opts.table}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
