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
  /** τ of a continuous label (vol_spike_60s): a positive is a label value above it. */
  threshold: 'quotewatch.threshold',
} as const;
