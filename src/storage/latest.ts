/**
 * The latest table: one "latest" item per product (what /latest serves) plus short-lived history rows
 * "t#<epoch ms>" for the dashboard chart. The worker writes, the API lambdas read.
 */

import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { dynamoClient } from '../aws/clients.js';
import { readCoreConfig, readResourceNames } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import type { FeatureRow } from '../features/types.js';
import type { FeedHealth } from '../stream/record.js';

/**
 * The latest-snapshot item the worker writes per product and the API serves (DynamoDB LatestTable): the tick's
 * feature row (product, tsUs, seq, best bid/ask, mid, spread) with its predictions, quality and feed health.
 */
export interface LatestSnapshot
  extends Pick<FeatureRow, 'product' | 'tsUs' | 'seq' | 'bestBid' | 'bestAsk' | 'mid' | 'spread'> {
  pk: string; // product
  sk: 'latest' | `t#${string}`;
  spreadBps: number;
  /** Top 3 levels as [price, size] normalized decimal strings, best first. */
  bids: [string, string][];
  asks: [string, string][];
  features: Record<string, number>;
  predictions: Record<string, { probability: number; modelVersion: string }>;
  /**
   * Rolling live quality per target of the served version (matured labels joined to the predictions of
   * their tick); null where undefined (AUC with one class in the window). Absent until labels matured.
   */
  quality?: Record<
    string,
    { modelVersion: string; n: number; auc: number | null; brier: number | null; baseRate: number | null }
  >;
  /** The ingestor's newest `stats` event for this product (or the feed-wide one): feed health. */
  feed?: FeedHealth;
  /** Wall-clock write time minus the exchange time of the newest event, ms. */
  latencyMs: number;
  updatedAtMs: number;
  /** Epoch seconds; TTL attribute for history rows when deployed. */
  expiresAt?: number;
}

export interface LatestStoreOptions {
  client?: DynamoDBDocumentClient;
  table?: string;
}

/** How long a history row lives (TTL when deployed; locally nothing expires them). */
export const HISTORY_TTL_S = 3600;

export class LatestStoreError extends QuoteWatchError {}

let defaultClient: DynamoDBDocumentClient | undefined;
function resolve(opts: LatestStoreOptions): { client: DynamoDBDocumentClient; table: string } {
  if (opts.client) return { client: opts.client, table: opts.table ?? readResourceNames().latestTable };
  defaultClient ??= dynamoClient();
  return { client: defaultClient, table: opts.table ?? readResourceNames().latestTable };
}

/** History sort key for a tick: zero-padded ms so lexical order is time order. */
export function historyKey(tsUs: number): `t#${string}` {
  return `t#${String(Math.floor(tsUs / 1000)).padStart(14, '0')}`;
}

/**
 * Writes the snapshot as the product's "latest" item and as a history row with expiresAt.
 * `snapshot` may carry any sk; both keys are set here.
 */
export async function putLatest(
  snapshot: Omit<LatestSnapshot, 'pk' | 'sk' | 'expiresAt'>,
  opts: LatestStoreOptions = {},
): Promise<void> {
  const { client, table } = resolve(opts);
  const latest: LatestSnapshot = { ...snapshot, pk: snapshot.product, sk: 'latest' };
  const history: LatestSnapshot = {
    ...latest,
    sk: historyKey(snapshot.tsUs),
    expiresAt: Math.floor(snapshot.tsUs / 1_000_000) + HISTORY_TTL_S,
  };
  try {
    await Promise.all([
      client.send(new PutCommand({ TableName: table, Item: latest })),
      client.send(new PutCommand({ TableName: table, Item: history })),
    ]);
  } catch (cause) {
    throw new LatestStoreError(`writing latest snapshot of ${snapshot.product} to ${table} failed`, {
      cause,
    });
  }
}

/** The newest snapshot of `product`, or undefined when the worker has not written one yet. */
export async function getLatest(
  product: string,
  opts: LatestStoreOptions = {},
): Promise<LatestSnapshot | undefined> {
  const { client, table } = resolve(opts);
  try {
    const out = await client.send(new GetCommand({ TableName: table, Key: { pk: product, sk: 'latest' } }));
    return out.Item as LatestSnapshot | undefined;
  } catch (cause) {
    throw new LatestStoreError(`reading latest snapshot of ${product} from ${table} failed`, { cause });
  }
}

/** The newest snapshot of every product (SYMBOLS by default) that has one, in the order asked. */
export async function listLatest(
  products: readonly string[] = readCoreConfig().symbols,
  opts: LatestStoreOptions = {},
): Promise<LatestSnapshot[]> {
  const { client, table } = resolve(opts);
  if (products.length === 0) return [];
  const found = new Map<string, LatestSnapshot>();
  // BatchGet takes at most 100 keys and may return some unprocessed: loop until none are left.
  for (let i = 0; i < products.length; i += 100) {
    let keys: Record<string, unknown>[] | undefined = products
      .slice(i, i + 100)
      .map((p) => ({ pk: p, sk: 'latest' }));
    for (let attempt = 0; keys && keys.length > 0; attempt++) {
      if (attempt > 5)
        throw new LatestStoreError(`reading latest snapshots from ${table}: keys left unprocessed`);
      try {
        const out: BatchGetCommandOutput = await client.send(
          new BatchGetCommand({ RequestItems: { [table]: { Keys: keys } } }),
        );
        for (const item of out.Responses?.[table] ?? [])
          found.set(item.product as string, item as LatestSnapshot);
        keys = out.UnprocessedKeys?.[table]?.Keys;
      } catch (cause) {
        throw new LatestStoreError(`reading latest snapshots from ${table} failed`, { cause });
      }
    }
  }
  return products.flatMap((p) => found.get(p) ?? []);
}

/** History rows of `product` with tick time >= sinceMs, oldest first (at most `limit`). */
export async function getHistory(
  product: string,
  sinceMs: number,
  limit = 600,
  opts: LatestStoreOptions = {},
): Promise<LatestSnapshot[]> {
  const { client, table } = resolve(opts);
  try {
    const out = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :p AND sk BETWEEN :from AND :to',
        ExpressionAttributeValues: { ':p': product, ':from': historyKey(sinceMs * 1000), ':to': 't#~' },
        Limit: limit,
      }),
    );
    return (out.Items ?? []) as LatestSnapshot[];
  } catch (cause) {
    throw new LatestStoreError(`reading history of ${product} from ${table} failed`, { cause });
  }
}
