/**
 * History sink: the dashboard's time series (GET /history). Every tick on a HISTORY_WRITE_MS boundary of
 * exchange time becomes a compact row in the latest table (src/storage/latest.ts HistoryItem): its quote, each
 * model's probability (with τ and the trailing level for the vol target), live quality, feed health and latency. Labels mature later
 * (500 ms, or 61 s for the vol target); so that a row tells whether its prediction was right, they are gathered
 * per bucket of LABEL_BUCKET_ROWS rows and written as one item once the bucket's last labels are due (`holdMs` of
 * the product's event time after the bucket): a tenth of a write per row instead of one per label.
 * Rows and labels expire after HISTORY_TTL_S (DynamoDB TTL).
 */
import { FEATURE_NAMES } from '../../features/spec.js';
import type { FeatureRow, LabelRow } from '../../features/types.js';
import { VOL_HORIZON_S } from '../../labels/volSpike.js';
import { SPIKE_LEVEL_COLUMN, spikeJudgeOf, thresholdFor } from '../../model/metadata.js';
import { type BucketLabels, type HistoryItem, historyKey, labelBucketMs } from '../../storage/history.js';
import type { Scored } from '../score.js';
import type { LatestContext } from './latest.js';

export interface HistorySinkOptions {
  /** One row per product every this much exchange time; 0 = off. */
  writeMs: number;
  ttlS: number;
  put: (item: HistoryItem) => Promise<void>;
  /** Writes the matured labels of a bucket of rows (putHistoryLabels). */
  labels: (product: string, bucketStartMs: number, labels: BucketLabels, expiresAt: number) => Promise<void>;
  /** Event time after a bucket's end when its labels are written: the longest label horizon and a margin. */
  holdMs?: number;
  /** Wall clock, ms: latency and heartbeat age, never the rows' times. */
  now: () => number;
}

const SOURCE_IS_TICKER = FEATURE_NAMES.indexOf('source_is_ticker');

interface PendingBucket {
  product: string;
  startUs: number;
  labels: BucketLabels;
}

export class HistorySink {
  private readonly everyUs: number;
  private readonly bucketUs: number;
  private readonly holdUs: number;
  /** Labels gathered per "product|bucket start", until the bucket is due. */
  private readonly pending = new Map<string, PendingBucket>();

  constructor(private readonly opts: HistorySinkOptions) {
    this.everyUs = opts.writeMs * 1000;
    this.bucketUs = labelBucketMs(opts.writeMs) * 1000;
    this.holdUs = (opts.holdMs ?? (VOL_HORIZON_S + 5) * 1000) * 1000;
  }

  /** Buckets of labels not written yet. */
  get heldBuckets(): number {
    return this.pending.size;
  }

  /** Whether a tick gets a history row. */
  onBoundary(tsUs: number): boolean {
    return this.everyUs > 0 && tsUs % this.everyUs === 0;
  }

  private expiresAt(tsUs: number): number {
    return Math.floor(tsUs / 1_000_000) + this.opts.ttlS;
  }

  /** Rows of the batch on a boundary (all products together), then the matured labels of boundary ticks. */
  async write(
    rows: readonly FeatureRow[],
    scored: readonly Scored[],
    ctx: LatestContext,
    labels: readonly LabelRow[],
  ): Promise<void> {
    if (this.everyUs === 0) return;
    const now = this.opts.now();
    const puts: Promise<void>[] = [];
    rows.forEach((row, i) => {
      if (this.onBoundary(row.tsUs)) puts.push(this.opts.put(this.item(row, i, scored, ctx, now)));
    });
    await Promise.all(puts);
    for (const l of labels) {
      if (!this.onBoundary(l.tsUs)) continue;
      const startUs = Math.floor(l.tsUs / this.bucketUs) * this.bucketUs;
      const key = `${l.product}|${startUs}`;
      let bucket = this.pending.get(key);
      if (!bucket) {
        bucket = { product: l.product, startUs, labels: {} };
        this.pending.set(key, bucket);
      }
      const tick = String(Math.floor(l.tsUs / 1000));
      bucket.labels[tick] = { ...bucket.labels[tick], [l.target]: l.value };
    }
    // A bucket is due once the product's event time is past its end and every horizon (a label that never
    // comes, after a gap, holds nothing up).
    const newestUs = new Map<string, number>();
    for (const r of rows) newestUs.set(r.product, Math.max(newestUs.get(r.product) ?? r.tsUs, r.tsUs));
    const due: PendingBucket[] = [];
    for (const [key, bucket] of this.pending) {
      const newest = newestUs.get(bucket.product) ?? Number.NEGATIVE_INFINITY;
      if (bucket.startUs + this.bucketUs + this.holdUs <= newest) {
        this.pending.delete(key);
        due.push(bucket);
      }
    }
    await Promise.all(
      due.map((b) =>
        this.opts.labels(b.product, b.startUs / 1000, b.labels, this.expiresAt(b.startUs + this.bucketUs)),
      ),
    );
  }

  private item(
    row: FeatureRow,
    i: number,
    scored: readonly Scored[],
    ctx: LatestContext,
    now: number,
  ): HistoryItem {
    const predictions: HistoryItem['predictions'] = {};
    const versions = new Map<string, string>();
    for (const s of scored) {
      const model = s.models[i];
      if (!model) continue;
      versions.set(s.target, model.version);
      const threshold = thresholdFor(model, row.product);
      const levelBps = spikeJudgeOf(model, row.product, row.values[SPIKE_LEVEL_COLUMN]!)?.levelBps;
      predictions[s.target] = {
        probability: s.probabilities[i]!,
        modelVersion: model.version,
        ...(threshold !== undefined ? { threshold } : {}),
        ...(levelBps !== undefined ? { levelBps } : {}),
      };
    }
    const feed = ctx.feed(row.product);
    const watermarkUs = ctx.watermarkUs(row.product) ?? row.tsUs;
    const item: HistoryItem = {
      pk: row.product,
      sk: historyKey(row.tsUs),
      tsUs: row.tsUs,
      seq: row.seq,
      bestBid: row.bestBid,
      bestAsk: row.bestAsk,
      bid: Number(row.bestBid),
      ask: Number(row.bestAsk),
      mid: row.mid,
      spread: row.spread,
      source: row.values[SOURCE_IS_TICKER] === 1 ? 'ticker' : 'book',
      predictions,
      latencyMs: Math.max(0, now - watermarkUs / 1000),
      expiresAt: this.expiresAt(row.tsUs),
    };
    const quality = ctx.quality(row.product, versions);
    if (quality) {
      // The all-products figures only: a history row stays one write unit.
      item.quality = Object.fromEntries(
        Object.entries(quality).map(([t, { product: _p, windowS: _w, minLabels: _m, ...q }]) => [t, q]),
      );
    }
    if (feed) {
      item.feed = {
        messagesPerS: feed.messagesPerS,
        reconnects: feed.reconnects,
        resyncs: feed.resyncs,
        heartbeatAgeMs: feed.lastHeartbeatUs ? Math.max(0, now - feed.lastHeartbeatUs / 1000) : null,
      };
    }
    return item;
  }
}
