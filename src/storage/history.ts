/**
 * The dashboard's history, in the latest table: per product a row "t#<epoch ms>" every HISTORY_WRITE_MS of
 * exchange time (HistoryItem) and the matured labels of LABEL_BUCKET_ROWS rows in one "l#<epoch ms>" item, both
 * expiring after HISTORY_TTL_S. The worker's history sink writes them (src/worker/sinks/history.ts); GET /history
 * reads them joined.
 */
import { PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { type LatestSnapshot, LatestStoreError, type LatestStoreOptions, latestTable } from './latest.js';

/** History sort key for a tick: zero-padded ms so lexical order is time order. */
export function historyKey(tsUs: number): `t#${string}` {
  return `t#${String(Math.floor(tsUs / 1000)).padStart(14, '0')}`;
}

/**
 * One row of the dashboard's history: a tick every HISTORY_WRITE_MS of exchange time (readHistoryConfig), what
 * the charts draw — quote, probabilities with their model, live quality, feed health and latency; getHistory adds
 * its matured labels. Compact on purpose: a product writes one a second.
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
  /**
   * Per target: the probability and the model. vol_spike_60s: `threshold`, the model's τ for this product (null:
   * it has none, the prediction cannot be judged), and `levelBps`, the tick's trailing level a spike is measured
   * against (absent for a model from before τ per product, whose τ is on the forward volatility itself):
   * src/labels/volSpike.ts isSpike judges the matured label with both.
   */
  predictions: Record<
    string,
    { probability: number; modelVersion: string; threshold?: number | null; levelBps?: number }
  >;
  quality?: LatestSnapshot['quality'];
  feed?: { messagesPerS: number; reconnects: number; resyncs: number; heartbeatAgeMs: number | null };
  latencyMs: number;
  /** Epoch seconds: DynamoDB's TTL attribute. */
  expiresAt: number;
}

/** A history row as read: with the matured labels of its tick, by target (the vol label is the forward
 * volatility in bps; a spike: isSpike with the row's τ and level). */
export type HistoryRowItem = HistoryItem & { labels?: Record<string, number> };

/** Writes a history row. */
export async function putHistory(item: HistoryItem, opts: LatestStoreOptions = {}): Promise<void> {
  const { client, table } = latestTable(opts);
  try {
    await client.send(new PutCommand({ TableName: table, Item: item }));
  } catch (cause) {
    throw new LatestStoreError(`writing history of ${item.pk} to ${table} failed`, { cause });
  }
}

/**
 * Matured labels are stored for this many history rows together, one item per bucket: a label matures up to a
 * minute after its row, and an update per row would double the history's writes (DynamoDB bills each by the KB).
 * Ten rows' labels are ~0.5 KB: one write unit.
 */
export const LABEL_BUCKET_ROWS = 10;

/** The span of exchange time one labels item covers, for history rows every `writeMs`. */
export const labelBucketMs = (writeMs: number) => writeMs * LABEL_BUCKET_ROWS;

/** Sort key of the labels item whose bucket starts at `startMs`. */
export function labelsKey(startMs: number): `l#${string}` {
  return `l#${String(Math.floor(startMs)).padStart(14, '0')}`;
}

/** Matured labels by tick (epoch ms, as a string key) and target. */
export type BucketLabels = Record<string, Record<string, number>>;

/** Writes the labels of one bucket of history rows (a bucket is written once, when its labels have matured). */
export async function putHistoryLabels(
  product: string,
  bucketStartMs: number,
  labels: BucketLabels,
  expiresAt: number,
  opts: LatestStoreOptions = {},
): Promise<void> {
  if (Object.keys(labels).length === 0) return;
  const { client, table } = latestTable(opts);
  try {
    await client.send(
      new PutCommand({
        TableName: table,
        Item: { pk: product, sk: labelsKey(bucketStartMs), labels, expiresAt },
      }),
    );
  } catch (cause) {
    throw new LatestStoreError(`writing labels of ${product} to ${table} failed`, { cause });
  }
}

export interface HistoryPageResult {
  items: HistoryRowItem[];
  /** The sort key to continue after, when more rows are in range. */
  next?: string;
}

/**
 * History rows of `product` with tick time in [fromMs, toMs], oldest first, at most `limit`, after the row whose
 * tick is `afterMs` when given (paging), each with its matured labels (from the labels items of buckets of
 * `bucketMs`, labelBucketMs of the history cadence).
 */
export async function getHistory(
  product: string,
  fromMs: number,
  toMs: number,
  limit = 600,
  opts: LatestStoreOptions & { afterMs?: number; bucketMs?: number } = {},
): Promise<HistoryPageResult> {
  const { client, table } = latestTable(opts);
  const startMs = opts.afterMs !== undefined ? opts.afterMs + 1 : fromMs;
  if (startMs > toMs) return { items: [] };
  const query = (from: string, to: string, max?: number) =>
    client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :p AND sk BETWEEN :from AND :to',
        ExpressionAttributeValues: { ':p': product, ':from': from, ':to': to },
        ...(max ? { Limit: max } : {}),
      }),
    );
  try {
    const out = await query(historyKey(startMs * 1000), historyKey(toMs * 1000), limit);
    const items = (out.Items ?? []) as HistoryRowItem[];
    if (items.length > 0) {
      const firstMs = Math.floor(items[0]!.tsUs / 1000);
      const lastMs = Math.floor(items.at(-1)!.tsUs / 1000);
      const span = opts.bucketMs ?? labelBucketMs(1000);
      const buckets = await query(labelsKey(firstMs - span + 1), labelsKey(lastMs));
      const byTick = new Map<string, Record<string, number>>();
      for (const b of buckets.Items ?? [])
        for (const [tick, labels] of Object.entries(b.labels as BucketLabels)) byTick.set(tick, labels);
      for (const item of items) {
        const labels = byTick.get(String(Math.floor(item.tsUs / 1000)));
        if (labels) item.labels = labels;
      }
    }
    const last = out.LastEvaluatedKey?.sk;
    return { items, ...(typeof last === 'string' ? { next: String(Number(last.slice(2))) } : {}) };
  } catch (cause) {
    throw new LatestStoreError(`reading history of ${product} from ${table} failed`, { cause });
  }
}
