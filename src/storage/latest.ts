/**
 * The latest table: one "latest" item per product (what /latest serves) plus the dashboard's history rows
 * "t#<epoch ms>" (HistoryItem, one per HISTORY_WRITE_MS, expiring after HISTORY_TTL_S). The worker writes, the
 * API lambdas read.
 */

import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
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
    {
      modelVersion: string;
      n: number;
      auc: number | null;
      prAuc?: number | null;
      brier: number | null;
      baseRate: number | null;
    }
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

/** Writes the snapshot as the product's "latest" item (what /latest serves). */
export async function putLatest(
  snapshot: Omit<LatestSnapshot, 'pk' | 'sk' | 'expiresAt'>,
  opts: LatestStoreOptions = {},
): Promise<void> {
  const { client, table } = resolve(opts);
  const latest: LatestSnapshot = { ...snapshot, pk: snapshot.product, sk: 'latest' };
  try {
    await client.send(new PutCommand({ TableName: table, Item: latest }));
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

/**
 * One row of the dashboard's history: a tick every HISTORY_WRITE_MS of exchange time (readHistoryConfig), what
 * the charts draw — quote, probabilities with their model, matured labels (added when they mature), live quality,
 * feed health and latency. Compact on purpose: a product writes one a second.
 */
export interface HistoryItem {
  pk: string; // product
  sk: `t#${string}`;
  tsUs: number;
  seq: number;
  bestBid: string;
  bestAsk: string;
  bid: number;
  ask: number;
  mid: number;
  spread: number;
  /** Where the quote came from: the L2 book, or the ticker before the first snapshot (no L2 data). */
  source: 'book' | 'ticker';
  predictions: Record<string, { probability: number; modelVersion: string; threshold?: number }>;
  /** Matured labels of this tick, one attribute per target (labelAttribute): the vol label is the forward
   * volatility in bps, a spike is above the row's τ. */
  [label: `label_${string}`]: number;
  quality?: LatestSnapshot['quality'];
  feed?: { messagesPerS: number; reconnects: number; resyncs: number; heartbeatAgeMs: number | null };
  latencyMs: number;
  /** Epoch seconds: DynamoDB's TTL attribute. */
  expiresAt: number;
}

/** Writes a history row. */
export async function putHistory(item: HistoryItem, opts: LatestStoreOptions = {}): Promise<void> {
  const { client, table } = resolve(opts);
  try {
    await client.send(new PutCommand({ TableName: table, Item: item }));
  } catch (cause) {
    throw new LatestStoreError(`writing history of ${item.pk} to ${table} failed`, { cause });
  }
}

/** The attribute a matured label of `target` is stored under in its tick's history row. */
export const labelAttribute = (target: string) => `label_${target}` as const;

/**
 * Adds a matured label to the history row of its tick: one attribute per target, so it is a single write (a
 * row not written yet gets just the label and its expiry).
 */
export async function putHistoryLabel(
  product: string,
  tsUs: number,
  target: string,
  value: number,
  expiresAt: number,
  opts: LatestStoreOptions = {},
): Promise<void> {
  const { client, table } = resolve(opts);
  try {
    await client.send(
      new UpdateCommand({
        TableName: table,
        Key: { pk: product, sk: historyKey(tsUs) },
        UpdateExpression: 'SET #label = :value, expiresAt = if_not_exists(expiresAt, :exp)',
        ExpressionAttributeNames: { '#label': labelAttribute(target) },
        ExpressionAttributeValues: { ':value': value, ':exp': expiresAt },
      }),
    );
  } catch (cause) {
    throw new LatestStoreError(`writing a label of ${product} to ${table} failed`, { cause });
  }
}

export interface HistoryPageResult {
  items: HistoryItem[];
  /** The sort key to continue after, when more rows are in range. */
  next?: string;
}

/**
 * History rows of `product` with tick time in [fromMs, toMs], oldest first, at most `limit`, after the row whose
 * tick is `afterMs` when given (paging).
 */
export async function getHistory(
  product: string,
  fromMs: number,
  toMs: number,
  limit = 600,
  opts: LatestStoreOptions & { afterMs?: number } = {},
): Promise<HistoryPageResult> {
  const { client, table } = resolve(opts);
  const startMs = opts.afterMs !== undefined ? opts.afterMs + 1 : fromMs;
  if (startMs > toMs) return { items: [] };
  const from = historyKey(startMs * 1000);
  try {
    const out = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :p AND sk BETWEEN :from AND :to',
        ExpressionAttributeValues: { ':p': product, ':from': from, ':to': historyKey(toMs * 1000) },
        Limit: limit,
      }),
    );
    const items = (out.Items ?? []) as HistoryItem[];
    const last = out.LastEvaluatedKey?.sk;
    return { items, ...(typeof last === 'string' ? { next: String(Number(last.slice(2))) } : {}) };
  } catch (cause) {
    throw new LatestStoreError(`reading history of ${product} from ${table} failed`, { cause });
  }
}
