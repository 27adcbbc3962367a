/**
 * The latest table: per product one "latest" item (what /latest serves), one "status" item (live quality and feed
 * health, which change every few seconds), the dashboard's history rows "t#<epoch ms>" (HistoryItem, one per
 * HISTORY_WRITE_MS) and their matured labels "l#<epoch ms>" (one item per LABEL_BUCKET_ROWS rows), both expiring
 * after HISTORY_TTL_S. The worker writes (LatestWriter at LATEST_WRITE_MS for the latest and status items;
 * worker/sinks/history.ts for the history), the API lambdas read.
 *
 * Items are compact because DynamoDB bills writes per started KB: the features are stored as float64 in spec
 * order (8 bytes each, exact) instead of a name -> decimal map, and quality/feed live in the status item, written
 * only when they change. A latest item stays under 1 KB (one write unit).
 */

import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { BatchGetCommand, type BatchGetCommandOutput, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoClient } from '../aws/clients.js';
import { type LatestWriteConfig, readCoreConfig, readResourceNames } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { FEATURE_NAMES, FEATURE_VERSION } from '../features/spec.js';
import type { FeatureRow } from '../features/types.js';
import type { FeedHealth } from '../stream/record.js';

/**
 * The latest-snapshot item the worker writes per product and the API serves (DynamoDB LatestTable): the tick's
 * feature row (product, tsUs, seq, best bid/ask, mid, spread) with its predictions, quality and feed health.
 */
export interface LatestSnapshot
  extends Pick<FeatureRow, 'product' | 'tsUs' | 'seq' | 'bestBid' | 'bestAsk' | 'mid' | 'spread'> {
  pk: string; // product
  sk: 'latest';
  spreadBps: number;
  /** Top 3 levels as [price, size] normalized decimal strings, best first. */
  bids: [string, string][];
  asks: [string, string][];
  features: Record<string, number>;
  /** Per target: the probability, the model version that gave it and its feature set (what the row's data supports). */
  predictions: Record<
    string,
    { probability: number; modelVersion: string; featureSet?: 'l2' | 'ticker'; drifted?: boolean }
  >;
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
      /** Expected calibration error (10 bins). */
      ece?: number | null;
      /** The window's span of event time and the count below which figures are null. */
      windowS?: number;
      minLabels?: number;
      /** The same figures over this product's own labels. */
      product?: {
        n: number;
        auc: number | null;
        prAuc: number | null;
        brier: number | null;
        baseRate: number | null;
        ece: number | null;
      };
    }
  >;
  /**
   * Per target: how far the inputs of the model serving this product drifted over the last hour from its
   * training distribution (largest population stability index over its features), flagged above the limit.
   */
  drift?: Record<string, { modelVersion: string; psiMax: number; feature: string; flagged: boolean }>;
  /** The ingestor's newest `stats` event for this product (or the feed-wide one): feed health. */
  feed?: FeedHealth;
  /** Wall-clock write time minus the exchange time of the newest event, ms. */
  latencyMs: number;
  updatedAtMs: number;
}

/** What the worker hands over: a snapshot without the table's keys. */
export type LatestSnapshotInput = Omit<LatestSnapshot, 'pk' | 'sk'>;

/** The stored form of a latest item: features packed, quality and feed moved to the status item. */
type StoredSnapshot = Omit<LatestSnapshot, 'features' | 'quality' | 'feed' | 'drift'> & {
  /** FEATURE_NAMES order, float64 little-endian; NaN where a feature is undefined. */
  f: Uint8Array;
  /** Features the spec does not name, by name (none from the worker). */
  fx?: Record<string, number>;
  /** FEATURE_VERSION the packing follows: another version's bytes are not read as this one's features. */
  fv: number;
};

interface StatusItem {
  pk: string;
  sk: 'status';
  quality?: LatestSnapshot['quality'];
  drift?: LatestSnapshot['drift'];
  feed?: FeedHealth;
}

/**
 * Packs features in FEATURE_NAMES order as float64 (absent or non-finite: NaN): 8 bytes a feature instead of its
 * name and a decimal, exact. Features the spec does not name (a model of another spec) go to the `extra` map.
 */
export function packFeatures(features: Readonly<Record<string, number>>): {
  packed: Uint8Array;
  extra: Record<string, number>;
} {
  const values = new Float64Array(FEATURE_NAMES.length).fill(Number.NaN);
  const index = featureIndex();
  const extra: Record<string, number> = {};
  for (const [name, v] of Object.entries(features)) {
    if (!Number.isFinite(v)) continue;
    const i = index.get(name);
    if (i === undefined) extra[name] = v;
    else values[i] = v;
  }
  return { packed: new Uint8Array(values.buffer), extra };
}

/** The features of packFeatures' bytes (NaN left out), with the extra ones. */
export function unpackFeatures(
  bytes: Uint8Array,
  extra: Readonly<Record<string, number>> = {},
): Record<string, number> {
  const copy = new Uint8Array(bytes); // aligned, whatever the SDK handed us
  const values = new Float64Array(copy.buffer, 0, Math.floor(copy.byteLength / 8));
  const features: Record<string, number> = {};
  FEATURE_NAMES.forEach((name, i) => {
    const v = values[i];
    if (v !== undefined && Number.isFinite(v)) features[name] = v;
  });
  return { ...features, ...extra };
}

let indexCache: Map<string, number> | undefined;
function featureIndex(): Map<string, number> {
  indexCache ??= new Map(FEATURE_NAMES.map((name, i) => [name, i]));
  return indexCache;
}

function toStored(snapshot: LatestSnapshotInput, sk: LatestSnapshot['sk']): StoredSnapshot {
  const { features, quality: _q, feed: _f, drift: _d, ...rest } = snapshot;
  const { packed, extra } = packFeatures(features);
  return {
    ...rest,
    pk: snapshot.product,
    sk,
    f: packed,
    ...(Object.keys(extra).length ? { fx: extra } : {}),
    fv: FEATURE_VERSION,
  };
}

function fromStored(item: Record<string, unknown>, status?: Record<string, unknown>): LatestSnapshot {
  const { f, fx, fv, ...rest } = item as StoredSnapshot;
  const snapshot = {
    ...rest,
    // Another feature version's bytes mean other features: serve none rather than mislabelled ones.
    features: fv === FEATURE_VERSION && f instanceof Uint8Array ? unpackFeatures(f, fx) : {},
  } as LatestSnapshot;
  if (status?.quality) snapshot.quality = status.quality as LatestSnapshot['quality'];
  if (status?.feed) snapshot.feed = status.feed as FeedHealth;
  if (status?.drift) snapshot.drift = status.drift as LatestSnapshot['drift'];
  return snapshot;
}

export interface LatestStoreOptions {
  client?: DynamoDBDocumentClient;
  table?: string;
}

/**
 * The status item (live quality, feed health) is written at most once per this much event time, when it
 * changed: quality moves with every matured label, but is published every QUALITY_EVERY_MS (10 s) anyway.
 */
export const STATUS_WRITE_MS = 5000;

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

const LATEST = 'latest';
const STATUS = 'status';

async function put(client: DynamoDBDocumentClient, table: string, item: object, what: string): Promise<void> {
  try {
    await client.send(new PutCommand({ TableName: table, Item: item as Record<string, unknown> }));
  } catch (cause) {
    throw new LatestStoreError(`writing ${what} to ${table} failed`, { cause });
  }
}

function statusOf(snapshot: LatestSnapshotInput): StatusItem {
  const status: StatusItem = { pk: snapshot.product, sk: STATUS };
  if (snapshot.quality) status.quality = snapshot.quality;
  if (snapshot.feed) status.feed = snapshot.feed;
  if (snapshot.drift) status.drift = snapshot.drift;
  return status;
}

/** Writes the snapshot as the product's "latest" item and its status item: both, every call. */
export async function putLatest(snapshot: LatestSnapshotInput, opts: LatestStoreOptions = {}): Promise<void> {
  const { client, table } = resolve(opts);
  const what = `latest snapshot of ${snapshot.product}`;
  await Promise.all([
    put(client, table, toStored(snapshot, LATEST), what),
    put(client, table, statusOf(snapshot), what),
  ]);
}

/**
 * The worker's writer: per product the latest item at most once per `latestWriteMs` of event time (0: every
 * call), the status item when quality or feed changed, at most once per STATUS_WRITE_MS.
 * Event time, not the wall clock: a replay writes the same rows, and a worker catching up writes no more
 * than a live one.
 */
export class LatestWriter {
  private readonly products = new Map<
    string,
    { latestSlot: number; statusSlot: number; status: string | undefined }
  >();

  constructor(private readonly opts: LatestStoreOptions & LatestWriteConfig) {}

  /** Writes what is due for this snapshot; resolves true when the latest item was written. */
  async put(snapshot: LatestSnapshotInput): Promise<boolean> {
    const { client, table } = resolve(this.opts);
    const { latestWriteMs } = this.opts;
    let state = this.products.get(snapshot.product);
    if (!state) {
      state = { latestSlot: -1, statusSlot: -1, status: undefined };
      this.products.set(snapshot.product, state);
    }
    const tsMs = Math.floor(snapshot.tsUs / 1000);
    const writes: Promise<void>[] = [];
    const what = `latest snapshot of ${snapshot.product}`;
    const latestSlot = latestWriteMs > 0 ? Math.floor(tsMs / latestWriteMs) : tsMs;
    const latestDue = latestWriteMs === 0 || latestSlot > state.latestSlot;
    if (latestDue) {
      state.latestSlot = latestSlot;
      writes.push(put(client, table, toStored(snapshot, LATEST), what));
    }
    const status = statusOf(snapshot);
    const statusJson = JSON.stringify(status);
    const statusSlot = Math.floor(tsMs / STATUS_WRITE_MS);
    if (
      statusSlot > state.statusSlot &&
      statusJson !== state.status &&
      (status.quality || status.feed || status.drift)
    ) {
      state.statusSlot = statusSlot;
      state.status = statusJson;
      writes.push(
        put(client, table, status, `status of ${snapshot.product}`).catch((err: unknown) => {
          state.status = undefined; // written again with the next snapshot
          throw err;
        }),
      );
    }
    await Promise.all(writes);
    return latestDue;
  }
}

/** The newest snapshot of `product`, or undefined when the worker has not written one yet. */
export async function getLatest(
  product: string,
  opts: LatestStoreOptions = {},
): Promise<LatestSnapshot | undefined> {
  const [snapshot] = await listLatest([product], opts);
  return snapshot;
}

/** The newest snapshot of every product (SYMBOLS by default) that has one, in the order asked. */
export async function listLatest(
  products: readonly string[] = readCoreConfig().symbols,
  opts: LatestStoreOptions = {},
): Promise<LatestSnapshot[]> {
  const { client, table } = resolve(opts);
  if (products.length === 0) return [];
  const found = new Map<string, Record<string, unknown>>();
  // Two items per product (latest, status); BatchGet takes at most 100 keys and may return some unprocessed.
  for (let i = 0; i < products.length; i += 50) {
    let keys: Record<string, unknown>[] | undefined = products.slice(i, i + 50).flatMap((p) => [
      { pk: p, sk: LATEST },
      { pk: p, sk: STATUS },
    ]);
    for (let attempt = 0; keys && keys.length > 0; attempt++) {
      if (attempt > 5)
        throw new LatestStoreError(`reading latest snapshots from ${table}: keys left unprocessed`);
      try {
        const out: BatchGetCommandOutput = await client.send(
          new BatchGetCommand({ RequestItems: { [table]: { Keys: keys } } }),
        );
        for (const item of out.Responses?.[table] ?? []) found.set(`${item.pk}#${item.sk}`, item);
        keys = out.UnprocessedKeys?.[table]?.Keys;
      } catch (cause) {
        throw new LatestStoreError(`reading latest snapshots from ${table} failed`, { cause });
      }
    }
  }
  return products.flatMap((p) => {
    const latest = found.get(`${p}#${LATEST}`);
    return latest ? [fromStored(latest, found.get(`${p}#${STATUS}`))] : [];
  });
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
  predictions: Record<string, { probability: number; modelVersion: string; threshold?: number }>;
  quality?: LatestSnapshot['quality'];
  feed?: { messagesPerS: number; reconnects: number; resyncs: number; heartbeatAgeMs: number | null };
  latencyMs: number;
  /** Epoch seconds: DynamoDB's TTL attribute. */
  expiresAt: number;
}

/** A history row as read: with the matured labels of its tick, by target (the vol label is the forward
 * volatility in bps; a spike is above the row's τ). */
export type HistoryRowItem = HistoryItem & { labels?: Record<string, number> };

/** Writes a history row. */
export async function putHistory(item: HistoryItem, opts: LatestStoreOptions = {}): Promise<void> {
  const { client, table } = resolve(opts);
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
  const { client, table } = resolve(opts);
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
  const { client, table } = resolve(opts);
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
