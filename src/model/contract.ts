/**
 * The QuoteWatch model contract, written once for the exporter (models/export/onnx.ts) and the runtime
 * (src/model/runtime.ts): one float32 input [N, F] of the features in feature-spec order, one float32 output
 * [N, 1] of probabilities, and the metadata keys a model carries (readable by any ONNX tool).
 */

export const INPUT_NAME = 'features';
export const OUTPUT_NAME = 'probability';

/** ONNX metadata_props keys. */
export const METADATA_KEYS = {
  featureNames: 'quotewatch.feature_names',
  featureSpecVersion: 'quotewatch.feature_spec_version',
  tickMs: 'quotewatch.tick_ms',
  /** The feature set the model takes (l2, ticker); absent: the whole row. */
  featureSet: 'quotewatch.feature_set',
  target: 'quotewatch.target',
  version: 'quotewatch.model_version',
  /**
   * vol_spike_60s: τ per product, a JSON object {"<product>": τ} (the same as metrics.json `thresholds`): a
   * positive is a spike value (src/labels/volSpike.ts volSpikeValue) above the product's τ.
   */
  thresholds: 'quotewatch.thresholds',
  /**
   * Models from before τ per product (the shipped baselines until regenerated): ONE τ on the forward volatility
   * itself (bps), for every product. Read, never written by the training job.
   */
  threshold: 'quotewatch.threshold',
} as const;
