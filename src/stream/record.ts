/**
 * The market stream's record format (owned by ingestion; the worker only decodes).
 * Version 1: UTF-8 JSON `{ v: 1, product, events: [...] }`, one Kinesis record per product batch,
 * partition key = product so order is kept per product. Every event carries `id`, an idempotency key
 * stable across producer retries, so the consumer can drop at-least-once duplicates.
 * Full-depth book snapshots travel by claim-check: the book goes to S3 and the stream carries a
 * `snapshot_ref` in sequence.
 */
import { QuoteWatchError } from '../errors.js';
import type { MarketEvent } from '../marketdata/events.js';

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

export type StreamEvent = (MarketEvent | SnapshotRefEvent | FeedStatsEvent) & { id: string };

export interface StreamRecord {
  v: typeof RECORD_VERSION;
  product: string;
  events: StreamEvent[];
}

export class RecordFormatError extends QuoteWatchError {}

/** Idempotency key: ingestor session + feed sequence + position within the frame. */
export function eventId(session: string, seq: number, index: number): string {
  return `${session}:${seq}:${index}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeRecord(product: string, events: StreamEvent[]): Uint8Array {
  const record: StreamRecord = { v: RECORD_VERSION, product, events };
  return encoder.encode(JSON.stringify(record));
}

export function decodeRecord(data: Uint8Array): StreamRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (cause) {
    throw new RecordFormatError('record is not UTF-8 JSON', { cause });
  }
  const r = parsed as Partial<StreamRecord> | null;
  if (!r || typeof r !== 'object') throw new RecordFormatError('record is not an object');
  if (r.v !== RECORD_VERSION) throw new RecordFormatError(`unsupported record version ${String(r.v)}`);
  if (typeof r.product !== 'string' || !Array.isArray(r.events)) {
    throw new RecordFormatError('record lacks product or events');
  }
  for (const e of r.events) {
    if (!e || typeof e.id !== 'string' || typeof e.type !== 'string') {
      throw new RecordFormatError('event lacks id or type');
    }
  }
  return r as StreamRecord;
}
