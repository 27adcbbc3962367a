import type { FeatureRow } from '../features/types.js';
import type { FeedHealth } from '../stream/record.js';

/**
 * The latest-snapshot item the worker writes per product and the API serves (DynamoDB LatestTable): the tick's
 * feature row (product, tsUs, seq, best bid/ask, mid, spread) with its predictions, quality and feed health.
 */
export interface LatestSnapshot
  extends Pick<FeatureRow, 'product' | 'tsUs' | 'seq' | 'bestBid' | 'bestAsk' | 'mid' | 'spread'> {
  pk: string; // product
  sk: 'latest' | `t#${string}`;
  spreadBps: number;
  /** Top 3 levels as [price, size] normalized decimal strings, best first. */
  bids: [string, string][];
  asks: [string, string][];
  features: Record<string, number>;
  predictions: Record<string, { probability: number; modelVersion: string }>;
  /**
   * Rolling live quality per target of the served version (matured labels joined to the predictions of
   * their tick); null where undefined (AUC with one class in the window). Absent until labels matured.
   */
  quality?: Record<
    string,
    { modelVersion: string; n: number; auc: number | null; brier: number | null; baseRate: number | null }
  >;
  /** The ingestor's newest `stats` event for this product (or the feed-wide one): feed health. */
  feed?: FeedHealth;
  /** Wall-clock write time minus the exchange time of the newest event, ms. */
  latencyMs: number;
  updatedAtMs: number;
  /** Epoch seconds; TTL attribute for history rows when deployed. */
  expiresAt?: number;
}
