/**
 * Contracts between the feature pipeline, the models and the outputs.
 * The feature spec is generated from the code (src/features/) and travels with every model.
 */

export interface FeatureDef {
  name: string;
  type: 'float32';
  description: string;
}

export interface FeatureSpec {
  /** Bumped whenever a feature's definition changes; a model's spec must equal the code's to be served. */
  version: number;
  tickMs: number;
  /**
   * A model's feature set (src/features/spec.ts FEATURE_SETS: which of the row's features it takes); absent in
   * the lake's row spec, which lists every column.
   */
  set?: 'l2' | 'ticker';
  features: FeatureDef[];
}

/** One feature tick of one product, values in spec order. */
export interface FeatureRow {
  product: string;
  /** Tick time on the event-time clock, epoch µs (a multiple of tickMs). */
  tsUs: number;
  /**
   * Position of the tick in the stream: the exchange time (epoch µs) of the newest event applied before it (-1 when
   * none). Not the feed's sequence number, which is one connection's: any connection delivering the same exchange
   * events gives the same rows (src/worker/arbiter.ts).
   */
  seq: number;
  bestBid: string;
  bestAsk: string;
  mid: number;
  spread: number;
  values: Float64Array;
  /** Top levels at the tick as [price, size] strings, best first (live snapshots; absent when not asked for). */
  top?: { bids: [string, string][]; asks: [string, string][] };
  /** What the tick's data went through (PipelineOptions.lineage; absent when not asked for). */
  lineage?: TickLineage;
}

/** The state of a product's data at a tick, as of the events before it (a prediction's lineage is made from it). */
export interface TickLineage {
  /** The product's first event (µs): windows reaching before it are filling, not broken. */
  startUs: number;
  /** Event times (µs) of the resyncs that reached the book in the last MAX_LOOKBACK_S before the tick, oldest first. */
  resyncsUs: readonly number[];
  /**
   * Exchange → ingest latency of the product's newest event before the tick that tells the exchange's time now
   * (tellsExchangeNow; a ticker for a product without level2): its receive time less its exchange time, µs; null
   * before any event with an exchange time of its own. The one lineage figure that is measured, not
   * derived from what the exchange sent: another connection, or a capture replayed today, gives another value.
   */
  feedLatencyUs: number | null;
  /** The last check of the book against the exchange's, as it stood at the tick (src/worker/verification.ts). */
  verification?: { result: 'match' | 'mismatch' | 'unavailable' | 'pending'; atUs: number | null };
}

/** A label, emitted once its horizon has passed, for the feature row at the same (product, tsUs). */
export interface LabelRow {
  product: string;
  tsUs: number;
  target: 'quote_change_500ms' | 'vol_spike_60s';
  /** quote_change_500ms: 0 or 1; vol_spike_60s: the continuous forward volatility in bps (τ is the model's). */
  value: number;
  /** seq of the feature row at the same tick (names lake objects); absent when not known. */
  seq?: number;
}
