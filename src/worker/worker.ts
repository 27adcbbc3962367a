/**
 * The worker's per-batch path: stream events -> feature pipeline (snapshot_refs fetched from S3) -> one
 * batched model call for every row of the batch, all products together -> latest snapshots (DynamoDB) and
 * Parquet (features, labels, predictions) in the lake. The batch is done only when its closed lake objects are
 * stored, so the consumer's checkpoint never passes rows that exist only in memory... except the rows of the
 * still-open lake windows (written on shutdown; crash recovery comes with the leases/recovery work).
 */
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { LatestSnapshot } from '../api/types.js';
import { FeatureInputError, FeaturePipeline } from '../features/pipeline.js';
import { assertSpecMatches, FEATURE_NAMES } from '../features/spec.js';
import type { FeatureRow } from '../features/types.js';
import { describeError as describe } from '../ingest/log.js';
import { QUOTE_CHANGE_TARGET } from '../labels/quoteChange.js';
import type { BookSnapshotEvent, Level, MarketEvent } from '../marketdata/events.js';
import type { LoadedModel } from '../model/types.js';
import { LakeWriter } from '../storage/lake.js';
import type { PredictionRow } from '../storage/parquet.js';
import type { SnapshotRefEvent, StreamEvent } from '../stream/record.js';
import type { ShardBatch } from './consumer.js';

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
  s3: S3Client;
  lakeBucket: string;
  /** Ticks per lake object (default one minute of ticks). */
  objectTicks?: number;
  /** The model to score with, asked once per batch (so a reloaded model takes over); undefined = none yet. */
  model: () => LoadedModel | undefined;
  writeLatest: (snapshot: Omit<LatestSnapshot, 'pk' | 'sk' | 'expiresAt'>) => Promise<void>;
  /** Wall clock, ms: only for the snapshot's latencyMs/updatedAtMs, never for features. */
  now: () => number;
  log: WorkerLog;
}

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

export class Worker {
  readonly pipeline: FeaturePipeline;
  private readonly lakes = new Map<string, LakeWriter>();
  /** Model versions whose spec was checked: true = servable. */
  private readonly specChecked = new Map<LoadedModel, boolean>();

  constructor(private readonly opts: WorkerOptions) {
    this.pipeline = new FeaturePipeline({ tickMs: opts.tickMs, deltaMs: opts.deltaMs, topLevels: 3 });
  }

  private lake(shardId: string): LakeWriter {
    let lake = this.lakes.get(shardId);
    if (!lake) {
      lake = new LakeWriter({
        s3: this.opts.s3,
        bucket: this.opts.lakeBucket,
        shardId,
        tickMs: this.opts.tickMs,
        objectTicks: this.opts.objectTicks,
      });
      this.lakes.set(shardId, lake);
    }
    return lake;
  }

  /** Feeds one stream event; problems with one event are logged and do not stop the batch. */
  private async feed(e: StreamEvent): Promise<void> {
    if (e.type === 'stats') return; // feed health: read by the health work, not a market event
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

  async handleBatch(batch: ShardBatch): Promise<BatchResult> {
    for (const record of batch.records) for (const e of record.events) await this.feed(e);
    const { rows, labels } = this.pipeline.drain();
    const scored = await this.score(rows);
    const lake = this.lake(batch.shardId);
    lake.addFeatures(rows);
    lake.addLabels(labels);
    lake.addPredictions(scored?.predictions ?? []);
    await this.writeLatest(rows, scored);
    const objects = await lake.settle();
    return {
      rows: rows.length,
      labels: labels.length,
      predictions: scored?.predictions.length ?? 0,
      objects,
    };
  }

  /** ONE model call for all rows of the batch (every product); undefined when there is no servable model. */
  private async score(
    rows: FeatureRow[],
  ): Promise<{ probabilities: Float32Array; model: LoadedModel; predictions: PredictionRow[] } | undefined> {
    const model = this.opts.model();
    if (!model || rows.length === 0 || !this.servable(model)) return undefined;
    const F = FEATURE_NAMES.length;
    const input = new Float32Array(rows.length * F);
    for (let i = 0; i < rows.length; i++) input.set(rows[i]!.values, i * F);
    let probabilities: Float32Array;
    try {
      probabilities = await model.predict(input, rows.length);
    } catch (err) {
      this.opts.log('error', 'model scoring failed; rows kept without predictions', {
        version: model.version,
        error: describe(err),
      });
      return undefined;
    }
    const predictions = rows.map((r, i) => ({
      product: r.product,
      tsUs: r.tsUs,
      seq: r.seq,
      target: model.target,
      modelVersion: model.version,
      probability: probabilities[i]!,
    }));
    return { probabilities, model, predictions };
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

  /** The newest row of each product becomes its latest snapshot. */
  private async writeLatest(
    rows: FeatureRow[],
    scored: { probabilities: Float32Array; model: LoadedModel } | undefined,
  ): Promise<void> {
    const newest = new Map<string, number>();
    for (let i = 0; i < rows.length; i++) newest.set(rows[i]!.product, i);
    const now = this.opts.now();
    await Promise.all(
      [...newest.values()].map((i) => {
        const r = rows[i]!;
        const features: Record<string, number> = {};
        FEATURE_NAMES.forEach((name, f) => {
          const v = r.values[f]!;
          if (Number.isFinite(v)) features[name] = v;
        });
        const predictions: LatestSnapshot['predictions'] = {};
        if (scored) {
          predictions[QUOTE_CHANGE_TARGET] = {
            probability: scored.probabilities[i]!,
            modelVersion: scored.model.version,
          };
        }
        const watermarkUs = this.pipeline.watermarkUs(r.product) ?? r.tsUs;
        return this.opts.writeLatest({
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
        });
      }),
    );
  }

  /** Writes every open lake object (partial windows too); call on shutdown. */
  async close(): Promise<string[]> {
    const keys: string[] = [];
    for (const lake of this.lakes.values()) keys.push(...(await lake.close()));
    return keys;
  }
}
