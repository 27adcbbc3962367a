/**
 * The market stream's record format (owned by ingestion; the worker only decodes).
 * Version 1: UTF-8 JSON `{ v: 1, product, line?, events: [...] }`, one Kinesis record per product batch,
 * partition key = product so order is kept per product. `line` names the ingestor that published the record (its
 * session): with several ingestors on the feed (a hot-standby pair, a rolling deploy) the worker tells their
 * copies apart by it (src/worker/arbiter.ts). Full-depth book snapshots travel by claim-check: the book goes to S3
 * and the stream carries a `snapshot_ref` in sequence.
 *
 * Every event carries `id`, its idempotency key, derived from what the EXCHANGE sent (eventKey below), never from
 * the ingestor's session: any number of ingestors on the same feed, any retry and any restart produce the same key
 * for the same exchange event, so the worker keeps one copy. Events that are facts about one connection (a
 * resync, the ingestor's stats, the snapshot an exchange sends in answer to a subscribe) carry the line in their
 * key. A replay gets its own namespace (`<namespace>/<key>`), so replaying an archive into a worker that saw the
 * live run is applied, not dropped as a repeat.
 *
 * decodeRecord validates every record with the zod schemas below: a record that is not exactly this shape (a
 * NaN or negative price, a missing field, an unknown event type) is a RecordFormatError, set aside by the worker.
 */
import * as z from 'zod';
import { QuoteWatchError } from '../errors.js';
import type { LevelChange, MarketEvent } from '../marketdata/events.js';

export const RECORD_VERSION = 1;

/** Pointer to a full-depth book snapshot stored in S3 (JSON `{ bids, asks }` as in BookSnapshotEvent). */
export interface SnapshotRefEvent {
  type: 'snapshot_ref';
  product: string;
  exchUs: number;
  recvUs: number;
  seq: number;
  bucket: string;
  key: string;
  levels: number;
  /**
   * 'exchange': the feed's own snapshot; 'periodic': the ingestor's copy of its book, written every
   * SNAPSHOT_INTERVAL_MS so a consumer starting mid-stream can rebuild the book. Absent in older records.
   */
  source?: 'exchange' | 'periodic';
}

/** The ingestor's own health, published through the stream. */
export interface FeedStatsEvent {
  type: 'stats';
  product: string;
  exchUs: number;
  recvUs: number;
  seq: number;
  messagesPerS: number;
  bytesPerS: number;
  lastHeartbeatUs: number;
  reconnects: number;
  resyncs: number;
  producerRetries: number;
  bufferDepth: number;
  /**
   * The ingestor's metrics since it started, by "Name{dim=value}" (src/telemetry/catalog.ts FEED: transitions,
   * closes and resyncs by reason, ...). Absent in older records.
   */
  metrics?: Record<string, number>;
}

/** The stats fields the latest snapshot carries as the feed's health (the counters stay in the stream). */
export const FEED_HEALTH_FIELDS = [
  'exchUs',
  'messagesPerS',
  'bytesPerS',
  'lastHeartbeatUs',
  'reconnects',
  'resyncs',
  'producerRetries',
  'bufferDepth',
] as const;

export type FeedHealth = Pick<FeedStatsEvent, (typeof FEED_HEALTH_FIELDS)[number]>;

export function feedHealth(stats: FeedStatsEvent): FeedHealth {
  return Object.fromEntries(FEED_HEALTH_FIELDS.map((k) => [k, stats[k]])) as FeedHealth;
}

/**
 * The exchange's own book of one product, fetched over REST by the ingestor and put into the stream where it
 * arrived (#17): the worker compares its book with it at that point of the stream (src/book/verify.ts). `exchUs`
 * is the REST book's own time (Advanced Trade `pricebook.time`, Exchange `time`); `seq` the Exchange book's
 * `sequence` (-1 on Advanced Trade, whose REST book has none). `depth` is the number of levels asked per side:
 * a side with fewer levels is the whole side. A fetch that failed (an error, a timeout, 429, a malformed answer)
 * is still published, with `unavailable` saying why and no levels, so the worker's verification state says so.
 */
export interface BookCheckEvent {
  type: 'book_check';
  product: string;
  exchUs: number;
  recvUs: number;
  seq: number;
  /** Which REST endpoint answered. */
  source: 'advanced_trade' | 'exchange';
  depth: number;
  bids: [string, string][];
  asks: [string, string][];
  /** Why there is no book to compare (absent when there is one). */
  unavailable?: string;
}

/**
 * The ingestor's word that, as far as one connection can tell, the exchange has sent every event of `product` up to
 * `exchUs` (a tick boundary): the feature pipeline may close the ticks before it without waiting for the next event
 * (#16: a quiet product's tick would otherwise wait for it). Published only for a product quiet past that boundary,
 * at the exchange time extrapolated from the connection's newest book update or heartbeat less an allowed lateness
 * (WATERMARK_LATENESS_MS). It travels in the stream, so a replay of the stream or of the lake closes the same ticks
 * at the same places; an event arriving after a watermark it precedes is late (applied at the watermark, counted).
 */
export interface WatermarkEvent {
  type: 'watermark';
  product: string;
  exchUs: number;
  recvUs: number;
  seq: number;
}

export type StreamEvent = (
  | MarketEvent
  | SnapshotRefEvent
  | FeedStatsEvent
  | BookCheckEvent
  | WatermarkEvent
) & {
  id: string;
};

/** A market event, not one of the stream's own kinds (claim-check, stats, book check, watermark). */
export function isMarketEvent(e: StreamEvent): e is MarketEvent & { id: string } {
  return e.type !== 'snapshot_ref' && e.type !== 'stats' && e.type !== 'book_check' && e.type !== 'watermark';
}

export interface StreamRecord {
  v: typeof RECORD_VERSION;
  product: string;
  /** The publishing ingestor (its session); absent in older records and from single-source producers. */
  line?: string;
  events: StreamEvent[];
}

export class RecordFormatError extends QuoteWatchError {}

// --- idempotency keys -------------------------------------------------------------------------------------

/**
 * The idempotency key of an event, from what the exchange sent, per type:
 * - `trade`: `t:<product>:<trade id>` (the exchange numbers trades per product);
 * - `book_changes`: `b:<product>:<exchange µs>:<hash of the changes (side, price, size) in order>`; the worker
 *   also keys each level change on its own (levelKey), because two connections may batch the same changes
 *   differently;
 * - `ticker`: `k:<product>:<exchange µs>:<hash of price, best bid, best ask and their sizes>`;
 * - `heartbeat`: `h:<product>:<counter>`;
 * - `snapshot_ref` / `book_snapshot` from the ingestor's own book (`periodic`): `p:<product>:<exchange µs of the
 *   last book event it holds>` — two ingestors with complete books write the same book there;
 * - `book_check` (the exchange's REST book): `v:<product>:<its time>:<hash of its levels>`; a failed fetch is a
 *   fact about one ingestor: `v:<line>:<product>:<n>`;
 * - `watermark`: `w:<product>:<exchange µs>` (a tick boundary: two ingestors' watermarks of one boundary are one);
 * - an exchange snapshot (the answer to one connection's subscribe), `resync` and `stats` are facts about one
 *   connection: `x:<line>:<product>:<exchange µs>:<n>`, `r:<line>:<n>:<product>`, `s:<line>:<n>`, with `n` the
 *   line's own counter of them.
 * `line` is the ingestor's session; `n` is only read for the per-line kinds.
 */
export function eventKey(
  e: MarketEvent | SnapshotRefEvent | FeedStatsEvent | BookCheckEvent | WatermarkEvent,
  line: string,
  n = 0,
): string {
  switch (e.type) {
    case 'trade':
      return `t:${e.product}:${e.tradeId}`;
    case 'book_changes':
      return `b:${e.product}:${e.exchUs}:${hashChanges(e.changes)}`;
    case 'ticker':
      return `k:${e.product}:${e.exchUs}:${fnv1a(`${e.price} ${e.bestBid} ${e.bestAsk} ${e.bestBidSize ?? ''} ${e.bestAskSize ?? ''}`)}`;
    case 'heartbeat':
      return `h:${e.product}:${e.counter}`;
    case 'snapshot_ref':
      return e.source === 'periodic'
        ? `p:${e.product}:${e.exchUs}`
        : `x:${line}:${e.product}:${e.exchUs}:${n}`;
    case 'book_snapshot':
      return `x:${line}:${e.product}:${e.exchUs}:${n}`;
    case 'resync':
      return `r:${line}:${n}:${e.product}`;
    case 'stats':
      return `s:${line}:${n}`;
    case 'watermark':
      return `w:${e.product}:${e.exchUs}`;
    case 'book_check':
      return e.unavailable === undefined
        ? `v:${e.product}:${e.exchUs}:${fnv1a(JSON.stringify([e.bids, e.asks]))}`
        : `v:${line}:${e.product}:${n}`;
  }
}

/** The key of one level change: product, side, price, size and exchange time, as the exchange sent it. */
export function levelKey(product: string, c: LevelChange, exchUs: number): string {
  return `${product}|${c.side}|${c.price}|${c.size}|${exchUs}`;
}

/** An id in a namespace: `<namespace>/<key>` (the live feed's namespace is empty: the key itself). */
export function namespacedId(key: string, namespace = ''): string {
  return namespace ? `${namespace}/${key}` : key;
}

/** The namespace of an id ('' for the live feed). */
export function namespaceOf(id: string): string {
  const slash = id.indexOf('/');
  return slash < 0 ? '' : id.slice(0, slash);
}

/** The namespace of a replay run: its events are new to a worker that saw the live run. */
export function replayNamespace(run: string): string {
  return `replay-${run}`;
}

function hashChanges(changes: readonly LevelChange[]): string {
  let s = '';
  for (const c of changes) s += `${c.side === 'bid' ? 'b' : 'a'}${c.price}=${c.size};`;
  return `${changes.length}.${fnv1a(s)}`;
}

/** 32-bit FNV-1a of the UTF-16 code units, as 8 hex digits: short keys, no crypto needed. */
export function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

// --- schemas ----------------------------------------------------------------------------------------------

/** A normalized non-negative decimal string ("8442.65", "0"): what src/marketdata/decimal.ts produces. */
const Decimal = z.string().regex(/^(0|[1-9]\d*)(\.\d*[1-9])?$/, 'not a normalized decimal');
const Micros = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const Id = z.string().min(1).max(512);
const Product = z.string().min(1).max(64);
const base = {
  id: Id,
  product: Product,
  exchUs: Micros,
  recvUs: Micros,
  seq: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
};
const Level = z.tuple([Decimal, Decimal]);
const Count = z.number().finite();

const EventSchema = z.discriminatedUnion('type', [
  z.looseObject({ ...base, type: z.literal('book_snapshot'), bids: z.array(Level), asks: z.array(Level) }),
  z.looseObject({
    ...base,
    type: z.literal('book_changes'),
    changes: z.array(z.looseObject({ side: z.enum(['bid', 'ask']), price: Decimal, size: Decimal })),
  }),
  z.looseObject({
    ...base,
    type: z.literal('trade'),
    tradeId: z.string().min(1).max(64),
    price: Decimal,
    size: Decimal,
    aggressor: z.enum(['buy', 'sell']),
  }),
  z.looseObject({
    ...base,
    type: z.literal('ticker'),
    price: Decimal,
    bestBid: Decimal,
    bestAsk: Decimal,
    bestBidSize: Decimal.optional(),
    bestAskSize: Decimal.optional(),
  }),
  z.looseObject({ ...base, type: z.literal('heartbeat'), counter: z.number().int() }),
  z.looseObject({ ...base, type: z.literal('resync'), reason: z.string().max(1000) }),
  z.looseObject({
    ...base,
    type: z.literal('snapshot_ref'),
    bucket: z.string().min(1),
    key: z.string().min(1),
    levels: z.number().int().nonnegative(),
    source: z.enum(['exchange', 'periodic']).optional(),
  }),
  z.looseObject({
    ...base,
    type: z.literal('stats'),
    messagesPerS: Count,
    bytesPerS: Count,
    lastHeartbeatUs: Count,
    reconnects: Count,
    resyncs: Count,
    producerRetries: Count,
    bufferDepth: Count,
    metrics: z.record(z.string(), Count).optional(),
  }),
  z.looseObject({
    ...base,
    type: z.literal('book_check'),
    source: z.enum(['advanced_trade', 'exchange']),
    depth: z.number().int().positive().max(100_000),
    bids: z.array(Level),
    asks: z.array(Level),
    unavailable: z.string().max(1000).optional(),
  }),
  z.looseObject({ ...base, type: z.literal('watermark') }),
]);

const RecordSchema = z.looseObject({
  v: z.literal(RECORD_VERSION),
  product: Product,
  line: z.string().min(1).max(128).optional(),
  events: z.array(EventSchema),
});

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeRecord(product: string, events: StreamEvent[], line?: string): Uint8Array {
  const record: StreamRecord = line
    ? { v: RECORD_VERSION, product, line, events }
    : { v: RECORD_VERSION, product, events };
  return encoder.encode(JSON.stringify(record));
}

/** The bytes a record adds around its events (for the producer's size accounting). */
export function recordEnvelopeBytes(product: string, line?: string): number {
  return encodeRecord(product, [], line).byteLength;
}

export function decodeRecord(data: Uint8Array): StreamRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (cause) {
    throw new RecordFormatError('record is not UTF-8 JSON', { cause });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new RecordFormatError('record is not an object');
  }
  const v = (parsed as { v?: unknown }).v;
  if (v !== RECORD_VERSION) throw new RecordFormatError(`unsupported record version ${String(v)}`);
  const checked = RecordSchema.safeParse(parsed);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new RecordFormatError(
      `record does not match format v1: ${issue.path.join('.') || '(record)'}: ${issue.message}`,
      {
        cause: checked.error,
      },
    );
  }
  const record = checked.data as StreamRecord;
  for (const e of record.events) {
    // A record is one product's batch (the producer groups events by product).
    if (e.product !== record.product) {
      throw new RecordFormatError(`event ${e.id} of ${e.product} in a record of ${record.product}`);
    }
  }
  return record;
}
