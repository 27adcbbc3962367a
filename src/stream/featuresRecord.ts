/**
 * The optional features stream's record (FEATURES_STREAM): one tick of one product, v1, UTF-8 JSON, partition
 * key = product. The worker encodes (src/worker/sinks/featuresStream.ts); other consumers decode.
 */
import { FEATURE_NAMES } from '../features/spec.js';
import type { FeatureRow } from '../features/types.js';

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
