/**
 * History sink: the dashboard's time series (GET /history). Every tick on a HISTORY_WRITE_MS boundary of
 * exchange time becomes a compact row in the latest table (src/storage/latest.ts HistoryItem): its quote, each
 * model's probability (with τ for the vol target), live quality, feed health and latency. A label matures later
 * (500 ms, or 61 s for the vol target): it is written into its tick's row then, so the row tells whether the
 * prediction was right. Rows expire after HISTORY_TTL_S (DynamoDB TTL).
 */
import { FEATURE_NAMES } from '../../features/spec.js';
import type { FeatureRow, LabelRow } from '../../features/types.js';
import { type HistoryItem, historyKey } from '../../storage/latest.js';
import type { Scored } from '../score.js';
import type { LatestContext } from './latest.js';

export interface HistorySinkOptions {
  /** One row per product every this much exchange time; 0 = off. */
  writeMs: number;
  ttlS: number;
  put: (item: HistoryItem) => Promise<void>;
  label: (product: string, tsUs: number, target: string, value: number, expiresAt: number) => Promise<void>;
  /** Wall clock, ms: latency and heartbeat age, never the rows' times. */
  now: () => number;
}

const SOURCE_IS_TICKER = FEATURE_NAMES.indexOf('source_is_ticker');

export class HistorySink {
  private readonly everyUs: number;

  constructor(private readonly opts: HistorySinkOptions) {
    this.everyUs = opts.writeMs * 1000;
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
    await Promise.all(
      labels
        .filter((l) => this.onBoundary(l.tsUs))
        .map((l) => this.opts.label(l.product, l.tsUs, l.target, l.value, this.expiresAt(l.tsUs))),
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
    for (const s of scored) {
      predictions[s.model.target] = {
        probability: s.probabilities[i]!,
        modelVersion: s.model.version,
        ...(s.model.threshold !== undefined ? { threshold: s.model.threshold } : {}),
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
    if (ctx.quality) item.quality = ctx.quality;
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
