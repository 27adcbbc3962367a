/**
 * The worker's per-batch path: stream events -> raw zone + feature pipeline (snapshot_refs fetched from S3) ->
 * ONE batched model call per served model for every row of the batch, all products together -> rolling live
 * quality -> latest snapshots (DynamoDB) and Parquet (raw, features, labels, predictions) in the lake.
 *
 * Recovery: a batch is done only when its closed lake objects are stored; then the shard's recovery state is
 * saved (lake frontiers + the stream position to replay from: the record of the last snapshot of each product
 * old enough to recompute every still-open window, with `lookbackMs` of history for the windowed features and
 * label horizons). On the first batch of a shard after a restart, the worker replays the shard from that
 * position up to the batch: books are rebuilt from their snapshots, rows of already-closed windows are dropped
 * by the lake frontiers, and the open windows are recomputed and later written under the same names.
 */
import { gunzipSync } from 'node:zlib';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { LatestSnapshot } from '../api/types.js';
import { FeatureInputError, FeaturePipeline } from '../features/pipeline.js';
import { assertSpecMatches, FEATURE_NAMES } from '../features/spec.js';
import type { FeatureRow } from '../features/types.js';
import { describeError as describe } from '../ingest/log.js';
import type { BookSnapshotEvent, Level, MarketEvent } from '../marketdata/events.js';
import type { LoadedModel } from '../model/types.js';
import { LakeWriter } from '../storage/lake.js';
import type { PredictionRow, RawRow } from '../storage/parquet.js';
import {
  decodeRecord,
  type FeedStatsEvent,
  feedHealth,
  RecordFormatError,
  type SnapshotRefEvent,
  type StreamEvent,
} from '../stream/record.js';
import { type ConsumedRecord, LruSet, type ShardBatch } from './consumer.js';
import { LiveQuality, qualityEmf } from './quality.js';
import type { ServingModel } from './scoring.js';

export type WorkerLog = (
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export class SnapshotFetchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SnapshotFetchError';
  }
}

export interface WorkerOptions {
  tickMs: number;
  deltaMs: number;
  /** The feature pipeline's data-gap limit (readFeatureConfig().gapLimitMs), the same as offline. */
  gapLimitMs?: number;
  s3: S3Client;
  lakeBucket: string;
  /** Ticks per lake object (default one minute of ticks). */
  objectTicks?: number;
  /** The models to score with, asked once per batch (so a reloaded model takes over); one per target. */
  models?: () => readonly ServingModel[];
  /** Single-model form of `models` (kept for callers that serve one target). */
  model?: () => LoadedModel | undefined;
  writeLatest: (snapshot: Omit<LatestSnapshot, 'pk' | 'sk' | 'expiresAt'>) => Promise<void>;
  /** Called once a latest snapshot is acknowledged: wall ms from the newest exchange time to the ack. */
  onLatestAck?: (product: string, latencyMs: number) => void;
  /** Wall clock, ms: only for the snapshot's latencyMs/updatedAtMs, never for features. */
  now: () => number;
  log: WorkerLog;
  /** Crash recovery (see the module comment); without it a restart starts from the consumer's checkpoint only. */
  recovery?: RecoveryOptions;
  /** Receives the live-quality EMF lines (every `qualityEveryMs` of event time). */
  metrics?: (line: Record<string, unknown>) => void;
  qualityEveryMs?: number;
  /** Rolling live-quality window, in matured labels per (target, version). */
  qualityWindow?: number;
  /** Each batch's new feature rows, for the optional features stream. */
  publishFeatures?: (rows: readonly FeatureRow[]) => Promise<void>;
}

export interface RecoveryOptions {
  kinesis: KinesisClient;
  dynamo: DynamoDBDocumentClient;
  streamName: string;
  /** Where the recovery state lives (the checkpoint table; keys "recovery#<stream>#<shard>"). */
  table: string;
  /** History replayed before the oldest open window (windowed features, label horizons). Default 7 min. */
  lookbackMs?: number;
}

export class RecoveryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RecoveryError';
  }
}

/** Per product of a shard: its first record, and the records of its recent snapshots (replay points). */
interface ProductPositions {
  first: string;
  snapshots: { exchUs: number; record: string }[];
}

/** The recovery state item of one shard. */
interface RecoveryItem {
  pk: string;
  /** Kinesis sequence number to replay from (AT_SEQUENCE_NUMBER). */
  replayFrom?: string;
  /** The last record processed when this was saved. */
  through: string;
  frontiers: Record<string, number>;
  products: Record<string, ProductPositions>;
}

class ShardState {
  started = false;
  readonly products = new Map<string, ProductPositions>();
  last = '';
  /** Raw rows fed but not yet handed to the lake: they go after the latest snapshots (see emit). */
  raw: RawRow[] = [];
  /** The recovery state last saved, without `through` (a batch that changes nothing else skips the save). */
  saved = '';
  constructor(readonly lake: LakeWriter) {}
}

const seqLess = (a: string, b: string) => BigInt(a) < BigInt(b);

export interface BatchResult {
  rows: number;
  labels: number;
  predictions: number;
  objects: string[];
}

/** Fetches a claim-checked snapshot (gzip or plain JSON `{ bids, asks }`) as the event it stands for. */
export async function resolveSnapshotRef(s3: S3Client, ref: SnapshotRefEvent): Promise<BookSnapshotEvent> {
  let bytes: Uint8Array;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    bytes = await out.Body!.transformToByteArray();
  } catch (cause) {
    throw new SnapshotFetchError(`cannot fetch snapshot s3://${ref.bucket}/${ref.key}`, { cause });
  }
  let book: { bids?: unknown; asks?: unknown };
  try {
    const json = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
    book = JSON.parse(new TextDecoder().decode(json));
  } catch (cause) {
    throw new SnapshotFetchError(`snapshot s3://${ref.bucket}/${ref.key} is not (gzip) JSON`, { cause });
  }
  if (!Array.isArray(book.bids) || !Array.isArray(book.asks)) {
    throw new SnapshotFetchError(`snapshot s3://${ref.bucket}/${ref.key} lacks bids/asks`);
  }
  return {
    type: 'book_snapshot',
    product: ref.product,
    exchUs: ref.exchUs,
    recvUs: ref.recvUs,
    seq: ref.seq,
    bids: book.bids as Level[],
    asks: book.asks as Level[],
  };
}

/** One record of the optional features stream (FEATURES_STREAM): one tick of one product, v1. */
export interface FeaturesRecord {
  v: 1;
  product: string;
  tsUs: number;
  seq: number;
  bestBid: string;
  bestAsk: string;
  /** By feature name (FEATURE_NAMES); a NaN value (undefined feature) is null in the JSON. */
  features: Record<string, number | null>;
}

export function encodeFeaturesRecord(row: FeatureRow): Uint8Array {
  const record: FeaturesRecord = {
    v: 1,
    product: row.product,
    tsUs: row.tsUs,
    seq: row.seq,
    bestBid: row.bestBid,
    bestAsk: row.bestAsk,
    features: Object.fromEntries(
      FEATURE_NAMES.map((name, f) => [name, Number.isFinite(row.values[f]) ? row.values[f]! : null]),
    ),
  };
  return new TextEncoder().encode(JSON.stringify(record));
}

export function decodeFeaturesRecord(data: Uint8Array): FeaturesRecord {
  return JSON.parse(new TextDecoder().decode(data)) as FeaturesRecord;
}

/**
 * publishFeatures for the features stream: PutRecords in chunks of 500 (the API's limit), partitioned by
 * product so one product's ticks stay in order on one shard.
 */
export function kinesisFeaturesPublisher(
  kinesis: KinesisClient,
  streamName: string,
  log: WorkerLog,
): (rows: readonly FeatureRow[]) => Promise<void> {
  return async (rows) => {
    for (let i = 0; i < rows.length; i += 500) {
      const Records = rows
        .slice(i, i + 500)
        .map((r) => ({ PartitionKey: r.product, Data: encodeFeaturesRecord(r) }));
      const out = await kinesis.send(new PutRecordsCommand({ StreamName: streamName, Records }));
      // Best effort: the features stream is a convenience for other consumers, the lake is the record.
      if (out.FailedRecordCount) {
        log('warn', 'features stream: records not accepted', {
          stream: streamName,
          failed: out.FailedRecordCount,
        });
      }
    }
  };
}

export class Worker {
  readonly pipeline: FeaturePipeline;
  readonly quality: LiveQuality;
  private readonly shards = new Map<string, ShardState>();
  /** Model versions whose spec was checked: true = servable. */
  private readonly specChecked = new Map<LoadedModel, boolean>();
  /** Event ids already applied: the producer is at-least-once, and a replay must not double-apply. */
  private readonly seen = new LruSet(200_000);
  /** Per product: the newest exchange time seen (the raw zone's stream time). */
  private readonly streamTime = new Map<string, number>();
  private readonly feed = new Map<string, FeedStatsEvent>();
  private nextQualityUs = Number.NEGATIVE_INFINITY;
  /** Rows recomputed by replays after a restart (those of closed windows are dropped by the lake). */
  replayedRecords = 0;
  /** Events dropped because their id was already applied (producer retries, overlapping replays). */
  duplicatesDropped = 0;

  constructor(private readonly opts: WorkerOptions) {
    // One pipeline serves live batches and recovery replays alike, so both use the same gap limit.
    this.pipeline = new FeaturePipeline({
      tickMs: opts.tickMs,
      deltaMs: opts.deltaMs,
      topLevels: 3,
      gapLimitMs: opts.gapLimitMs,
    });
    this.quality = new LiveQuality(opts.qualityWindow ?? 2000);
  }

  private shard(shardId: string): ShardState {
    let shard = this.shards.get(shardId);
    if (!shard) {
      shard = new ShardState(
        new LakeWriter({
          s3: this.opts.s3,
          bucket: this.opts.lakeBucket,
          shardId,
          tickMs: this.opts.tickMs,
          objectTicks: this.opts.objectTicks,
        }),
      );
      this.shards.set(shardId, shard);
    }
    return shard;
  }

  /** Feeds one stream event; problems with one event are logged and do not stop the batch. */
  private async feedEvent(shard: ShardState, record: string, index: number, e: StreamEvent): Promise<void> {
    if (this.seen.seen(e.id)) {
      this.duplicatesDropped++;
      return;
    }
    let pos = shard.products.get(e.product);
    if (!pos) {
      pos = { first: record, snapshots: [] };
      shard.products.set(e.product, pos);
    }
    const t = Math.max(this.streamTime.get(e.product) ?? Number.NEGATIVE_INFINITY, e.exchUs);
    if (Number.isSafeInteger(t)) {
      this.streamTime.set(e.product, t);
      shard.raw.push({
        product: e.product,
        tsUs: t,
        exchUs: e.exchUs,
        recvUs: Number.isSafeInteger(e.recvUs) ? e.recvUs : e.exchUs,
        seq: e.seq,
        type: e.type,
        eventId: e.id,
        record,
        index,
        event: JSON.stringify(e),
      });
    }
    if (e.type === 'stats') {
      this.feed.set(e.product, e);
      return;
    }
    let event: MarketEvent;
    if (e.type === 'snapshot_ref') {
      try {
        event = await resolveSnapshotRef(this.opts.s3, e);
      } catch (err) {
        // Without the snapshot the book is unknown: resync so later changes are not applied to a stale book.
        this.opts.log('error', 'snapshot unavailable, book resyncs', {
          product: e.product,
          key: e.key,
          error: String(err),
        });
        event = {
          type: 'resync',
          product: e.product,
          exchUs: e.exchUs,
          recvUs: e.recvUs,
          seq: e.seq,
          reason: 'snapshot unavailable',
        };
      }
    } else {
      event = e;
    }
    if (event.type === 'book_snapshot') pos.snapshots.push({ exchUs: event.exchUs, record });
    try {
      this.pipeline.push(event);
    } catch (err) {
      if (!(err instanceof FeatureInputError)) throw err;
      this.opts.log('warn', 'event rejected', {
        product: event.product,
        type: event.type,
        id: e.id,
        error: describe(err),
      });
    }
  }

  private async feedRecords(shard: ShardState, records: readonly ConsumedRecord[]): Promise<void> {
    for (const record of records) {
      for (let i = 0; i < record.events.length; i++) {
        await this.feedEvent(shard, record.sequenceNumber, i, record.events[i]!);
      }
      shard.last = record.sequenceNumber;
    }
  }

  async handleBatch(batch: ShardBatch): Promise<BatchResult> {
    const shard = this.shard(batch.shardId);
    if (!shard.started) {
      shard.started = true;
      const first = batch.records[0]?.sequenceNumber;
      if (this.opts.recovery && first) await this.recover(batch.shardId, shard, first);
    }
    await this.feedRecords(shard, batch.records);
    const result = await this.emit(shard);
    result.objects = await shard.lake.settle();
    if (this.opts.recovery && shard.last) await this.saveState(batch.shardId, shard);
    return result;
  }

  /**
   * Scores, joins labels, writes the latest snapshots and queues the lake rows of what was fed so far. The
   * latest snapshots go first: they are what users see (and what the exchange -> DynamoDB latency measures),
   * while closing a lake window encodes Parquet, which can wait a few milliseconds.
   */
  private async emit(shard: ShardState): Promise<BatchResult> {
    const { rows: all, labels } = this.pipeline.drain();
    // Rows of windows already stored (a replay after a restart) are not scored or shown again.
    const rows = all.filter((r) => shard.lake.accepts('features', r.product, r.tsUs));
    const scored = await this.score(rows);
    // Row by row (all targets of a tick together): lake rows of one product must come in tick order.
    const predictions = rows.flatMap((_, i) => scored.map((s) => s.predictions[i]!));
    for (const p of predictions) {
      this.quality.addPrediction(p.target, p.product, p.tsUs, p.probability, p.modelVersion);
    }
    const thresholds = new Map(this.models().map((m) => [m.model.target as string, m.threshold]));
    for (const l of labels) {
      if (!shard.lake.accepts('labels', l.product, l.tsUs, l.target)) continue;
      this.quality.addLabel(l.target, l.product, l.tsUs, l.value, thresholds.get(l.target));
    }
    await this.writeLatest(rows, scored);
    shard.lake.addRaw(shard.raw);
    shard.raw = [];
    shard.lake.addFeatures(rows);
    shard.lake.addLabels(labels);
    shard.lake.addPredictions(predictions);
    await this.opts.publishFeatures?.(rows);
    this.publishQuality(rows);
    return { rows: rows.length, labels: labels.length, predictions: predictions.length, objects: [] };
  }

  private models(): ServingModel[] {
    if (this.opts.models) return [...this.opts.models()];
    const m = this.opts.model?.();
    return m ? [{ model: m }] : [];
  }

  /** ONE model call per served model for all rows of the batch (every product). */
  private async score(rows: FeatureRow[]): Promise<Scored[]> {
    if (rows.length === 0) return [];
    const F = FEATURE_NAMES.length;
    let input: Float32Array | undefined;
    const out: Scored[] = [];
    for (const { model } of this.models()) {
      if (!this.servable(model)) continue;
      if (!input) {
        input = new Float32Array(rows.length * F);
        for (let i = 0; i < rows.length; i++) input.set(rows[i]!.values, i * F);
      }
      let probabilities: Float32Array;
      try {
        probabilities = await model.predict(input, rows.length);
      } catch (err) {
        this.opts.log('error', 'model scoring failed; rows kept without its predictions', {
          target: model.target,
          version: model.version,
          error: describe(err),
        });
        continue;
      }
      const predictions = rows.map((r, i) => ({
        product: r.product,
        tsUs: r.tsUs,
        seq: r.seq,
        target: model.target,
        modelVersion: model.version,
        probability: probabilities[i]!,
      }));
      out.push({ model, probabilities, predictions });
    }
    return out;
  }

  private servable(model: LoadedModel): boolean {
    let ok = this.specChecked.get(model);
    if (ok === undefined) {
      try {
        assertSpecMatches(model.spec, this.opts.tickMs);
        ok = true;
      } catch (err) {
        this.opts.log('error', 'model not served: feature spec mismatch', {
          version: model.version,
          error: describe(err),
        });
        ok = false;
      }
      this.specChecked.set(model, ok);
    }
    return ok;
  }

  /** Quality of the served versions, as EMF lines, every qualityEveryMs of event time. */
  private publishQuality(rows: FeatureRow[]): void {
    if (!this.opts.metrics || rows.length === 0) return;
    const every = (this.opts.qualityEveryMs ?? 10_000) * 1000;
    const t = rows[rows.length - 1]!.tsUs;
    if (t < this.nextQualityUs) return;
    this.nextQualityUs = Math.floor(t / every) * every + every;
    for (const s of this.quality.current(this.servedVersions())) {
      if (s.n > 0) this.opts.metrics(qualityEmf(s, Math.floor(t / 1000)));
    }
  }

  private servedVersions(): Map<string, string> {
    return new Map(this.models().map((m) => [m.model.target as string, m.model.version]));
  }

  private qualityRecord(): LatestSnapshot['quality'] | undefined {
    const stats = this.quality.current(this.servedVersions());
    if (stats.length === 0) return undefined;
    const finite = (v: number) => (Number.isFinite(v) ? v : null);
    return Object.fromEntries(
      stats.map((s) => [
        s.target,
        {
          modelVersion: s.modelVersion,
          n: s.n,
          auc: finite(s.auc),
          brier: finite(s.brier),
          baseRate: finite(s.baseRate),
        },
      ]),
    );
  }

  /** The newest row of each product becomes its latest snapshot. */
  private async writeLatest(rows: FeatureRow[], scored: Scored[]): Promise<void> {
    const newest = new Map<string, number>();
    for (let i = 0; i < rows.length; i++) newest.set(rows[i]!.product, i);
    if (newest.size === 0) return;
    const now = this.opts.now();
    const quality = this.qualityRecord();
    await Promise.all(
      [...newest.values()].map(async (i) => {
        const r = rows[i]!;
        const features: Record<string, number> = {};
        FEATURE_NAMES.forEach((name, f) => {
          const v = r.values[f]!;
          if (Number.isFinite(v)) features[name] = v;
        });
        const predictions: LatestSnapshot['predictions'] = {};
        for (const s of scored) {
          predictions[s.model.target] = { probability: s.probabilities[i]!, modelVersion: s.model.version };
        }
        const watermarkUs = this.pipeline.watermarkUs(r.product) ?? r.tsUs;
        const snapshot: Omit<LatestSnapshot, 'pk' | 'sk' | 'expiresAt'> = {
          product: r.product,
          tsUs: r.tsUs,
          seq: r.seq,
          bestBid: r.bestBid,
          bestAsk: r.bestAsk,
          mid: r.mid,
          spread: r.spread,
          spreadBps: (r.spread / r.mid) * 1e4,
          bids: r.top?.bids ?? [],
          asks: r.top?.asks ?? [],
          features,
          predictions,
          latencyMs: Math.max(0, now - watermarkUs / 1000),
          updatedAtMs: now,
        };
        if (quality) snapshot.quality = quality;
        const stats = this.feed.get(r.product) ?? this.feed.get('_feed');
        if (stats) snapshot.feed = feedHealth(stats);
        await this.opts.writeLatest(snapshot);
        this.opts.onLatestAck?.(r.product, this.opts.now() - watermarkUs / 1000);
      }),
    );
  }

  private stateKey(shardId: string): string {
    return `recovery#${this.opts.recovery!.streamName}#${shardId}`;
  }

  /** The record to replay from so that every open window of every product of the shard is recomputed. */
  private replayPoint(shard: ShardState): string | undefined {
    const lookbackUs = (this.opts.recovery?.lookbackMs ?? 420_000) * 1000;
    const frontiers = shard.lake.frontiers();
    let from: string | undefined;
    const earlier = (seq: string) => {
      if (from === undefined || seqLess(seq, from)) from = seq;
    };
    for (const [product, pos] of shard.products) {
      let oldest = Number.POSITIVE_INFINITY;
      for (const [id, start] of Object.entries(frontiers)) {
        const [kind, p] = id.split('|');
        if (p === product && kind !== 'raw') oldest = Math.min(oldest, start);
      }
      const raw = shard.lake.openFirst('raw', product) as RawRow | undefined;
      if (raw) earlier(raw.record);
      if (oldest === Number.POSITIVE_INFINITY) {
        earlier(pos.first); // no rows yet: everything of this product may still matter
        continue;
      }
      let k = -1;
      for (let i = 0; i < pos.snapshots.length; i++)
        if (pos.snapshots[i]!.exchUs <= oldest - lookbackUs) k = i;
      if (k < 0) {
        earlier(pos.first);
        continue;
      }
      // Older snapshots will never be needed again (frontiers only move forward).
      pos.snapshots.splice(0, k);
      earlier(pos.snapshots[0]!.record);
    }
    return from;
  }

  private async saveState(shardId: string, shard: ShardState): Promise<void> {
    const r = this.opts.recovery!;
    const replayFrom = this.replayPoint(shard);
    const state = {
      frontiers: shard.lake.frontiers(),
      products: Object.fromEntries(shard.products),
      ...(replayFrom ? { replayFrom } : {}),
    };
    // Most batches move no frontier and see no snapshot: the saved state is then still exact (recover() does
    // not read `through`), and skipping the put keeps a DynamoDB round trip off every batch.
    const key = JSON.stringify(state);
    if (key === shard.saved) return;
    const item: RecoveryItem = { pk: this.stateKey(shardId), through: shard.last, ...state };
    try {
      await r.dynamo.send(new PutCommand({ TableName: r.table, Item: item }));
    } catch (cause) {
      throw new RecoveryError(`saving the recovery state of ${shardId} failed`, { cause });
    }
    shard.saved = key;
  }

  /** After a restart: restores the lake frontiers and replays the shard from the saved point up to `before`. */
  private async recover(shardId: string, shard: ShardState, before: string): Promise<void> {
    const r = this.opts.recovery!;
    let item: RecoveryItem | undefined;
    try {
      const out = await r.dynamo.send(
        new GetCommand({ TableName: r.table, Key: { pk: this.stateKey(shardId) }, ConsistentRead: true }),
      );
      item = out.Item as RecoveryItem | undefined;
    } catch (cause) {
      throw new RecoveryError(`reading the recovery state of ${shardId} failed`, { cause });
    }
    if (!item) return;
    shard.lake.restore(item.frontiers ?? {});
    for (const [product, pos] of Object.entries(item.products ?? {})) shard.products.set(product, pos);
    if (!item.replayFrom || !seqLess(item.replayFrom, before)) return;
    this.opts.log('info', 'replaying the shard to rebuild books and open lake windows', {
      shardId,
      from: item.replayFrom,
      before,
    });
    let iterator: string | undefined;
    try {
      const out = await r.kinesis.send(
        new GetShardIteratorCommand({
          StreamName: r.streamName,
          ShardId: shardId,
          ShardIteratorType: 'AT_SEQUENCE_NUMBER',
          StartingSequenceNumber: item.replayFrom,
        }),
      );
      iterator = out.ShardIterator;
      let done = false;
      while (iterator && !done) {
        const page = await r.kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
        const records: ConsumedRecord[] = [];
        for (const rec of page.Records ?? []) {
          const sequenceNumber = rec.SequenceNumber!;
          if (!seqLess(sequenceNumber, before)) {
            done = true;
            break;
          }
          try {
            const decoded = decodeRecord(rec.Data ?? new Uint8Array());
            records.push({ sequenceNumber, product: decoded.product, events: decoded.events });
          } catch (err) {
            if (!(err instanceof RecordFormatError)) throw err; // kept by the consumer when first read
          }
        }
        this.replayedRecords += records.length;
        await this.feedRecords(shard, records);
        await this.emit(shard);
        if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
        iterator = page.NextShardIterator;
      }
    } catch (cause) {
      throw new RecoveryError(`replaying ${shardId} from ${item.replayFrom} failed`, { cause });
    }
    this.opts.log('info', 'replay done', { shardId, records: this.replayedRecords });
  }

  /** Writes every open lake object (partial windows too): for a stream that has ended for good (offline). */
  async close(): Promise<string[]> {
    const keys: string[] = [];
    for (const shard of this.shards.values()) keys.push(...(await shard.lake.close()));
    return keys;
  }
}

interface Scored {
  model: LoadedModel;
  probabilities: Float32Array;
  predictions: PredictionRow[];
}
