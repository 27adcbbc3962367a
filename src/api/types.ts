/** The latest-snapshot item the worker writes per product and the API serves (DynamoDB LatestTable). */
export interface LatestSnapshot {
  pk: string; // product
  sk: 'latest' | `t#${string}`;
  product: string;
  /** Tick time, epoch µs. */
  tsUs: number;
  /** Feed sequence number of the last event applied to the book before this tick. */
  seq: number;
  bestBid: string;
  bestAsk: string;
  mid: number;
  spread: number;
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
  feed?: {
    exchUs: number;
    messagesPerS: number;
    bytesPerS: number;
    lastHeartbeatUs: number;
    reconnects: number;
    resyncs: number;
    producerRetries: number;
    bufferDepth: number;
  };
  /** Wall-clock write time minus the exchange time of the newest event, ms. */
  latencyMs: number;
  updatedAtMs: number;
  /** Epoch seconds; TTL attribute for history rows when deployed. */
  expiresAt?: number;
}
