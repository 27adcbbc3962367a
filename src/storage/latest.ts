/**
 * The latest table: per product one "latest" item (what /latest serves) and one "status" item (live quality and
 * feed health, which change every few seconds); the dashboard's history lives in the same table (history.ts).
 * The worker writes (LatestWriter at LATEST_WRITE_MS), the API lambdas read.
 *
 * Items are compact because DynamoDB bills writes per started KB: the features are stored as float64 in spec
 * order (8 bytes each, exact) instead of a name -> decimal map, and quality/feed live in the status item, written
 * only when they change. A latest item stays under 1 KB (one write unit).
 */

import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { BatchGetCommand, type BatchGetCommandOutput, PutCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoClient } from '../aws/clients.js';
import { type LatestWriteConfig, readCoreConfig, readResourceNames } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { abstainCause, abstainReason, type PredictionLineage } from '../features/lineage.js';
import { FEATURE_NAMES, FEATURE_VERSION } from '../features/spec.js';
import type { FeatureRow } from '../features/types.js';
import type { FeedHealth } from '../stream/record.js';

/** The last check of a product's book against the exchange's REST book (src/worker/verification.ts). */
export interface Verification {
  result: 'match' | 'mismatch' | 'unavailable' | 'pending';
  /** The REST book's time of the check that gave it (epoch µs); null before any check was judged. */
  atUs: number | null;
  reason?: string;
}

/**
 * The latest-snapshot item the worker writes per product and the API serves (DynamoDB LatestTable): the tick's
 * feature row (product, tsUs, seq, best bid/ask, mid, spread) with its predictions, quality, feed health, and the
 * state of the book it came from.
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
    {
      probability: number;
      modelVersion: string;
      featureSet?: 'l2' | 'ticker';
      drifted?: boolean;
      /** What the data it was made from went through (src/features/lineage.ts). */
      lineage?: PredictionLineage;
      /** Why it should not be acted on (its probability stays); absent when it can. */
      abstain?: string;
      /**
       * vol_spike_60s: the model's τ for this product (a spike: forward volatility / trailing level above it,
       * src/labels/volSpike.ts); null when the model has none for the product, so its prediction cannot be judged.
       */
      threshold?: number | null;
    }
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
      /** Share of the window's matured predictions that did not abstain (the figures are over those). */
      coverage?: number | null;
      /** The window's span of event time and the count below which figures are null. */
      windowS?: number;
      minLabels?: number;
      /** This product's matured labels the version could not judge: it has no τ for the product. */
      unjudged?: number;
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
  /**
   * The worker's L2 book of this product: 'synced', or 'resyncing' from a resync until the next snapshot (the
   * API adds 'stale' when the item is older than HEALTH_STALE_MS). Absent for a ticker-only product.
   */
  book?: 'synced' | 'resyncing';
  /** The last check of that book against the exchange's own (src/worker/verification.ts). */
  verification?: Verification;
  /** Wall-clock write time minus the time the product's stream has reached (its newest event or watermark), ms. */
  latencyMs: number;
  updatedAtMs: number;
}

/** What the worker hands over: a snapshot without the table's keys. */
export type LatestSnapshotInput = Omit<LatestSnapshot, 'pk' | 'sk'>;

/** The stored form of a latest item: features packed, quality and feed moved to the status item. */
type StoredSnapshot = Omit<
  LatestSnapshot,
  'features' | 'quality' | 'feed' | 'drift' | 'book' | 'verification'
> & {
  /** FEATURE_NAMES order, float32 little-endian; NaN where a feature is undefined. */
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
  book?: LatestSnapshot['book'];
  verification?: Verification;
}

/**
 * Packs features in FEATURE_NAMES order as float32 (absent or non-finite: NaN): 4 bytes a feature instead of its
 * name and a decimal, so a latest item stays one write unit with the 62 features of feature version 5. float32 is
 * what the lake's FLOAT columns and the models' inputs hold: /latest shows, and /predict scores, the values a model
 * sees. Features the spec does not name (a model of another spec) go to the `extra` map.
 */
export function packFeatures(features: Readonly<Record<string, number>>): {
  packed: Uint8Array;
  extra: Record<string, number>;
} {
  const values = new Float32Array(FEATURE_NAMES.length).fill(Number.NaN);
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
  const values = new Float32Array(copy.buffer, 0, Math.floor(copy.byteLength / 4));
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

const RESULTS = ['pending', 'match', 'mismatch', 'unavailable'] as const;

/**
 * A prediction's lineage in the item: seven numbers instead of named fields (a latest item must stay under one write
 * unit); the abstain reason is not stored, it follows from the lineage (abstainCause). An item from before the feed
 * latency has six.
 */
type StoredLineage = [
  windowS: number,
  sinceResyncS: number | null,
  resyncs: number,
  gap: 0 | 1,
  result: number,
  /** Negative when a tick before the check's time was emitted after its verdict (a quiet product). */
  ageS: number | null,
  feedLatencyMs?: number | null,
];

function packLineage(l: PredictionLineage): StoredLineage {
  return [
    l.windowS,
    l.sinceResyncS,
    l.resyncs,
    l.gap ? 1 : 0,
    RESULTS.indexOf(l.verification.result),
    l.verification.ageS,
    l.feedLatencyMs,
  ];
}

function unpackLineage(p: StoredLineage, book: PredictionLineage['book']): PredictionLineage {
  const [windowS, sinceResyncS, resyncs, gap, result, ageS, feedLatencyMs = null] = p;
  return {
    book,
    windowS,
    sinceResyncS,
    resyncs,
    gap: gap === 1,
    feedLatencyMs,
    verification: { result: RESULTS[result] ?? 'pending', ageS },
  };
}

function toStored(snapshot: LatestSnapshotInput, sk: LatestSnapshot['sk']): StoredSnapshot {
  const { features, quality: _q, feed: _f, drift: _d, book: _b, verification: _v, ...rest } = snapshot;
  const { packed, extra } = packFeatures(features);
  const predictions: Record<string, unknown> = {};
  for (const [target, p] of Object.entries(rest.predictions)) {
    const { lineage, abstain: _a, ...kept } = p;
    predictions[target] = lineage
      ? { ...kept, ln: packLineage(lineage), ...(lineage.book === 'ticker' ? { lt: 1 } : {}) }
      : kept;
  }
  return {
    ...rest,
    predictions: predictions as LatestSnapshot['predictions'],
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
  for (const [target, stored] of Object.entries(snapshot.predictions ?? {})) {
    const { ln, lt, ...p } = stored as typeof stored & { ln?: StoredLineage; lt?: 1 };
    if (ln) {
      const lineage = unpackLineage(ln, lt ? 'ticker' : 'synced');
      const cause = abstainCause(lineage);
      snapshot.predictions[target] = {
        ...p,
        lineage,
        ...(cause ? { abstain: abstainReason(cause, lineage) } : {}),
      };
    }
  }
  if (status?.quality) snapshot.quality = status.quality as LatestSnapshot['quality'];
  if (status?.feed) snapshot.feed = status.feed as FeedHealth;
  if (status?.drift) snapshot.drift = status.drift as LatestSnapshot['drift'];
  if (status?.book) snapshot.book = status.book as LatestSnapshot['book'];
  if (status?.verification) snapshot.verification = status.verification as Verification;
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
/** The client and table name of the latest table (the options', else this process's). */
export function latestTable(opts: LatestStoreOptions): { client: DynamoDBDocumentClient; table: string } {
  if (opts.client) return { client: opts.client, table: opts.table ?? readResourceNames().latestTable };
  defaultClient ??= dynamoClient();
  return { client: defaultClient, table: opts.table ?? readResourceNames().latestTable };
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
  if (snapshot.book) status.book = snapshot.book;
  if (snapshot.verification) status.verification = snapshot.verification;
  return status;
}

/** The part of the status item written as soon as it changes: the book's state and its last verification. */
function urgentOf(status: StatusItem): string {
  return JSON.stringify([status.book, status.verification]);
}

/** Writes the snapshot as the product's "latest" item and its status item: both, every call. */
export async function putLatest(snapshot: LatestSnapshotInput, opts: LatestStoreOptions = {}): Promise<void> {
  const { client, table } = latestTable(opts);
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
    { latestSlot: number; statusSlot: number; status: string | undefined; urgent: string | undefined }
  >();

  constructor(private readonly opts: LatestStoreOptions & LatestWriteConfig) {}

  /** Writes what is due for this snapshot; resolves true when the latest item was written. */
  async put(snapshot: LatestSnapshotInput): Promise<boolean> {
    const { client, table } = latestTable(this.opts);
    const { latestWriteMs } = this.opts;
    let state = this.products.get(snapshot.product);
    if (!state) {
      state = { latestSlot: -1, statusSlot: -1, status: undefined, urgent: undefined };
      this.products.set(snapshot.product, state);
    }
    const tsMs = Math.floor(snapshot.tsUs / 1000);
    const writes: Promise<void>[] = [];
    const what = `latest snapshot of ${snapshot.product}`;
    const latestSlot = latestWriteMs > 0 ? Math.floor(tsMs / latestWriteMs) : tsMs;
    const latestDue = latestWriteMs === 0 || latestSlot > state.latestSlot;
    if (latestDue) {
      const previous = state.latestSlot;
      state.latestSlot = latestSlot;
      writes.push(
        put(client, table, toStored(snapshot, LATEST), what).catch((err: unknown) => {
          // Not written: due again, so a retry of this snapshot writes it.
          if (state.latestSlot === latestSlot) state.latestSlot = previous;
          throw err;
        }),
      );
    }
    const status = statusOf(snapshot);
    const statusJson = JSON.stringify(status);
    const statusSlot = Math.floor(tsMs / STATUS_WRITE_MS);
    // Quality and feed figures wait for their slot; a book that stopped being synced, or a verdict on it, is
    // written at once: /health degrades on it.
    const urgent = urgentOf(status);
    if (
      (statusSlot > state.statusSlot || urgent !== state.urgent) &&
      statusJson !== state.status &&
      (status.quality || status.feed || status.drift || status.book || status.verification)
    ) {
      state.statusSlot = Math.max(state.statusSlot, statusSlot);
      state.status = statusJson;
      state.urgent = urgent;
      writes.push(
        put(client, table, status, `status of ${snapshot.product}`).catch((err: unknown) => {
          state.status = undefined; // written again with the next snapshot
          state.urgent = undefined;
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
  const { client, table } = latestTable(opts);
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
