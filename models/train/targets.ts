/**
 * What differs between the targets when training, shared by the training job (main.ts), the walk-forward
 * evaluation (models/eval/walkForward.ts) and the shipped baselines (models/baseline.ts) so all follow one rule:
 *   quote_change_500ms  labels are already 0/1; horizon DELTA_MS.
 *   vol_spike_60s       the lake's labels are the continuous forward 60 s realized volatility (bps); a row's y
 *                       becomes its spike value, that volatility over the row's trailing level
 *                       (toSpikeValues: src/labels/volSpike.ts volSpikeValue, the one rule), and the 0/1 outcome
 *                       is "spike value > τ", τ per product = nearest-rank VOL_SPIKE_QUANTILE of that product's
 *                       TRAINING rows (fitThresholdsByProduct), fixed at training and stored with the model
 *                       (metrics.json `thresholds`, ONNX metadata METADATA_KEYS.thresholds). Horizon
 *                       VOL_HORIZON_S + 1 s (the window starts at the next whole second).
 */

import { FEATURE_NAMES } from '../../src/features/spec.js';
import {
  isSpikeValue,
  VOL_HORIZON_S,
  VOL_SPIKE_LEVEL_FEATURE,
  VOL_SPIKE_LEVEL_FLOOR_BPS,
  VOL_SPIKE_TARGET,
  volSpikeValue,
} from '../../src/labels/volSpike.js';
import { MessageWriter } from '../export/protobuf.js';

/** vol_spike_60s: τ is this quantile of the training part's forward volatility. */
export const VOL_SPIKE_QUANTILE = 0.9;

/** metrics.json `thresholdDefinition` of a vol_spike_60s model of the training job (τ per product, `thresholds`). */
export const THRESHOLDS_DEFINITION =
  `forward 60 s realized volatility (bps) / max(${VOL_SPIKE_LEVEL_FEATURE} at the tick, ${VOL_SPIKE_LEVEL_FLOOR_BPS} bps) > τ, ` +
  `τ per product = nearest-rank ${VOL_SPIKE_QUANTILE} quantile of that product's training rows`;

/** Whether the lake's labels of `target` are 0/1 already (else continuous, thresholded at training). */
export const isBinaryTarget = (target: string): boolean => target !== VOL_SPIKE_TARGET;

/**
 * How far past its tick a label of `target` looks: training rows closer than this to the held-out part
 * are purged (splitByTime), or their labels would be computed from held-out data.
 */
export function labelHorizonUs(target: string, deltaMs: number): number {
  return target === VOL_SPIKE_TARGET ? (VOL_HORIZON_S + 1) * 1e6 : deltaMs * 1000;
}

/** The q-quantile of values by nearest rank (a value of the sample, so τ is exact in metrics.json). */
export function nearestRankQuantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

/** Appends metadata_props entries (ModelProto field 14) to ONNX bytes: fields of a message may come in any order. */
export function withOnnxMetadata(onnx: Uint8Array, entries: Record<string, string>): Uint8Array {
  const extra = new MessageWriter();
  for (const [key, value] of Object.entries(entries)) {
    extra.message(14, new MessageWriter().string(1, key).string(2, value));
  }
  const tail = extra.finish();
  const out = new Uint8Array(onnx.length + tail.length);
  out.set(onnx, 0);
  out.set(tail, onnx.length);
  return out;
}

const LEVEL_COLUMN = FEATURE_NAMES.indexOf(VOL_SPIKE_LEVEL_FEATURE);

/**
 * vol_spike_60s: each row's y (the lake's forward volatility, bps) replaced by its spike value, the forward
 * volatility over the row's trailing level (volSpikeValue, src/labels/volSpike.ts). The rows must be whole lake
 * rows (FEATURE_NAMES order; modelRows cuts them to a feature set afterwards). Rows of a 0/1 target pass
 * through unchanged. A row whose level is NaN gets NaN, which modelRows refuses (a NaN feature).
 */
export function toSpikeValues<T extends { x: readonly number[]; y: number }>(
  examples: readonly T[],
  target: string = VOL_SPIKE_TARGET,
): T[] {
  if (isBinaryTarget(target)) return [...examples];
  return examples.map((e) => {
    if (e.x.length !== FEATURE_NAMES.length) {
      throw new RangeError(
        `toSpikeValues needs whole lake rows (${FEATURE_NAMES.length} values), got ${e.x.length}`,
      );
    }
    return { ...e, y: volSpikeValue(e.y, e.x[LEVEL_COLUMN]!) };
  });
}

/**
 * vol_spike_60s, τ per product: the same quantile of each product's own training values (spike values, after
 * toSpikeValues). A pooled τ mostly encodes which product a row is (measured on the simulated market's forward
 * volatility: 0.807 bps pooled, 0.166 BTC, 1.043 ETH); per product the label means "a spike for this product".
 * Undefined for a target whose labels are 0/1.
 */
export function fitThresholdsByProduct(
  target: string,
  train: readonly { product: string; y: number }[],
): Record<string, number> | undefined {
  if (isBinaryTarget(target)) return undefined;
  const byProduct = new Map<string, number[]>();
  for (const e of train) {
    const list = byProduct.get(e.product);
    if (list) list.push(e.y);
    else byProduct.set(e.product, [e.y]);
  }
  return Object.fromEntries(
    [...byProduct]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([p, ys]) => [p, nearestRankQuantile(ys, VOL_SPIKE_QUANTILE)]),
  );
}

/**
 * The 0/1 outcome with a τ per product (rows of a product without one are dropped: the model has no τ for it),
 * or the rows unchanged without thresholds.
 */
export function binarizeByProduct<T extends { product: string; y: number }>(
  rows: readonly T[],
  thresholds: Readonly<Record<string, number>> | undefined,
): T[] {
  if (thresholds === undefined) return [...rows];
  const out: T[] = [];
  for (const e of rows) {
    const tau = thresholds[e.product];
    if (tau !== undefined) out.push({ ...e, y: isSpikeValue(e.y, tau) ? 1 : 0 });
  }
  return out;
}
