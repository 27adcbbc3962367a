/**
 * Book & features stage: applies each new stream event to the one feature pipeline (src/features/: books,
 * features on the event-time clock, labels) after resolving claim-checked snapshots, keeps the feed's health from
 * the ingestor's stats events, and gives each event its raw-zone row (stamped with its product's stream time,
 * the newest exchange time seen, as the raw zone orders by it).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { logRetries, retryTransient } from '../aws/retry.js';
import { FeatureInputError, FeaturePipeline } from '../features/pipeline.js';
import type { FeatureRow, LabelRow } from '../features/types.js';
import { describeError, type Logger } from '../log.js';
import type { MarketEvent } from '../marketdata/events.js';
import type { LatestSnapshot } from '../storage/latest.js';
import type { RawRow } from '../storage/parquet.js';
import { resolveSnapshotRef } from '../stream/claimCheck.js';
import { type FeedHealth, type FeedStatsEvent, feedHealth, type StreamEvent } from '../stream/record.js';
import { BookVerifier, DEFAULT_SKEW_MS } from './verification.js';

export interface MarketStageOptions {
  tickMs: number;
  deltaMs: number;
  /** The feature pipeline's data-gap limit (readFeatureConfig().gapLimitMs), the same as offline. */
  gapLimitMs?: number;
  /** The book check's in-flight window (BOOK_CHECK_SKEW_MS; verification.ts). */
  bookCheckSkewMs?: number;
  s3: Pick<S3Client, 'send'>;
  log: Logger;
}

/** What applying one event produced besides the pipeline's state. */
export interface Applied {
  /** Its raw-zone row (absent when its time cannot be stored exactly). */
  raw?: RawRow;
  /** It was a book snapshot: a point a replay can rebuild the book from. */
  snapshotUs?: number;
}

export class MarketStage {
  readonly pipeline: FeaturePipeline;
  /** The exchange's REST books against ours (book_check events). */
  readonly verifier: BookVerifier;
  /** Per product: the newest exchange time seen (the raw zone's stream time). */
  private readonly streamTime = new Map<string, number>();
  private readonly feed = new Map<string, FeedStatsEvent>();

  constructor(private readonly opts: MarketStageOptions) {
    this.pipeline = new FeaturePipeline({
      tickMs: opts.tickMs,
      deltaMs: opts.deltaMs,
      topLevels: 3,
      gapLimitMs: opts.gapLimitMs,
      lineage: {
        // The verifier's state object itself: it is replaced, never changed, so a row may keep it.
        verification: (p, tsUs) => this.verifier.state(p, tsUs),
      },
    });
    this.verifier = new BookVerifier({ skewMs: opts.bookCheckSkewMs ?? DEFAULT_SKEW_MS });
  }

  /** Applies one event of `record` (its sequence number) at `index`; problems with one event never stop a batch. */
  async apply(e: StreamEvent, record: string, index: number): Promise<Applied> {
    const applied: Applied = {};
    const t = Math.max(this.streamTime.get(e.product) ?? Number.NEGATIVE_INFINITY, e.exchUs);
    if (Number.isSafeInteger(t)) {
      this.streamTime.set(e.product, t);
      applied.raw = {
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
      };
    }
    if (e.type === 'stats') {
      this.feed.set(e.product, e);
      return applied;
    }
    if (e.type === 'book_check') {
      this.verifier.check(e, this.pipeline.watermarkUs(e.product));
      return applied;
    }
    if (e.type === 'watermark') {
      this.pipeline.watermark(e.product, e.exchUs);
      return applied;
    }
    const event = e.type === 'snapshot_ref' ? await this.resolve(e) : e;
    if (event.type === 'book_snapshot') applied.snapshotUs = event.exchUs;
    const p = event.product;
    this.verifier.beforeApply(
      event,
      this.pipeline.book(p),
      this.pipeline.bookState(p) === 'synced',
      this.pipeline.watermarkUs(p),
    );
    try {
      this.pipeline.push(event);
    } catch (err) {
      if (!(err instanceof FeatureInputError)) throw err;
      this.opts.log('warn', 'event rejected', {
        product: event.product,
        type: event.type,
        id: e.id,
        error: describeError(err),
      });
    }
    return applied;
  }

  /**
   * A claim-checked snapshot. S3 failing for a moment (restarting, throttling) is waited out (src/aws/retry.ts):
   * the next snapshot may be many seconds away. Without it the book is unknown, so it resyncs instead of going on
   * stale.
   */
  private async resolve(ref: Extract<StreamEvent, { type: 'snapshot_ref' }>): Promise<MarketEvent> {
    try {
      return await retryTransient(() => resolveSnapshotRef(this.opts.s3, ref), {
        onRetry: logRetries(this.opts.log, 'snapshot read failed; retrying', {
          product: ref.product,
          key: ref.key,
        }),
      });
    } catch (err) {
      this.opts.log('error', 'snapshot unavailable, book resyncs', {
        product: ref.product,
        key: ref.key,
        error: String(err),
      });
      const { product, exchUs, recvUs, seq } = ref;
      return { type: 'resync', product, exchUs, recvUs, seq, reason: 'snapshot unavailable' };
    }
  }

  /** The ticks and matured labels computed since the last drain. */
  drain(): { rows: FeatureRow[]; labels: LabelRow[] } {
    return this.pipeline.drain();
  }

  watermarkUs(product: string): number | undefined {
    return this.pipeline.watermarkUs(product);
  }

  /** The product's book state and last verification, as the latest snapshot carries them. */
  bookStatus(product: string): Pick<LatestSnapshot, 'book' | 'verification'> {
    const book = this.pipeline.bookState(product);
    return book ? { book, verification: this.verifier.state(product) } : {};
  }

  /** The ingestor's newest stats for `product` (or feed-wide), as the latest snapshot carries them. */
  feedHealth(product: string): FeedHealth | undefined {
    const stats = this.feed.get(product) ?? this.feed.get('_feed');
    return stats ? feedHealth(stats) : undefined;
  }
}
