import type { FeatureSpec } from '../features/types.js';

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
  /**
   * τ of a target with a continuous label (vol_spike_60s): a label above it is a positive, for live quality and
   * for /predict's answer. Read from the version's metrics.json (src/model/metadata.ts), the one place.
   */
  threshold?: number;
  /** The low end of its test ROC-AUC interval, when its metrics.json has one (the live-quality alarm's floor). */
  rocAucLow?: number;
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
