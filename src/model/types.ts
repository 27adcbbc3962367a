import type { FeatureSpec } from '../features/types.js';
import type { InputDistribution } from './inputs.js';

/** The feature sets a model can take (src/features/spec.ts FEATURE_SETS): one active version per target and set. */
export type FeatureSetName = NonNullable<FeatureSpec['set']>;
export const MODEL_SETS: readonly FeatureSetName[] = ['l2', 'ticker'];

/**
 * A model slot's name: the target for the l2 set (the original, and the API's default), `<target>.<set>`
 * otherwise. The active pointer of a slot is REGISTRY_KEYS.active(target, set); a file:// registry and the
 * shipped baselines keep a slot's files in a folder of this name.
 */
export function slotKey(target: string, set: FeatureSetName = 'l2'): string {
  return set === 'l2' ? target : `${target}.${set}`;
}

/** Prediction targets served by QuoteWatch. */
export type Target = 'quote_change_500ms' | 'vol_spike_60s';
export const TARGETS: readonly Target[] = ['quote_change_500ms', 'vol_spike_60s'];

/** Targets whose label is continuous (forward volatility): a positive is a label above the model's τ. */
export const THRESHOLD_TARGETS: readonly Target[] = ['vol_spike_60s'];

/**
 * A model loaded in onnxruntime-node. ONNX contract: input "features" float32 [N, F] in spec order,
 * output "probability" float32 [N, 1].
 */
export interface LoadedModel {
  target: Target;
  version: string;
  spec: FeatureSpec;
  /** The feature set it takes (its spec's; a spec without one takes the whole row, which needs L2 data). */
  featureSet: FeatureSetName;
  /**
   * vol_spike_60s: τ per product, read from the version's metrics.json `thresholds` (src/model/metadata.ts, the
   * one place). A label whose spike value (src/labels/volSpike.ts volSpikeValue) is above the product's τ is a
   * positive, for live quality and /predict's answer; a product without a τ is scored but cannot be judged
   * (spikeJudgeOf).
   */
  thresholds?: Readonly<Record<string, number>>;
  /**
   * A vol_spike_60s model from before τ per product (metrics.json `threshold` only, e.g. the shipped baselines
   * until regenerated): one τ on the forward volatility itself (bps), for every product, the rule it was
   * trained with.
   */
  pooledThreshold?: number;
  /** The low end of its test ROC-AUC interval, when its metrics.json has one (the live-quality alarm's floor). */
  rocAucLow?: number;
  /** The training distribution of its inputs, when its metrics.json has one (feature drift is measured against it). */
  inputs?: InputDistribution;
  /** Scores N rows packed row-major in `rows` (length N * F); returns N probabilities. */
  predict(rows: Float32Array, n: number): Promise<Float32Array>;
  release(): Promise<void>;
}

/** metrics.json of a model version. */
export interface ModelMetrics {
  target: Target;
  version: string;
  trainedAt: string;
  rows: { train: number; test: number };
  baseRate: number;
  auc: number;
  brier: number;
  logLoss: number;
  [extra: string]: unknown;
}
