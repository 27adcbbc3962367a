/**
 * Training data from the lake's rows, as pure functions: labels joined to the feature rows of the same
 * (product, tick), put in time order, and split by time into an older training part and a newer held-out part.
 * The S3 reading lives in lakeDataset.ts; everything here is deterministic and needs no I/O.
 */

import { QuoteWatchError } from '../../src/errors.js';
import { FEATURE_NAMES, type FeatureSet, isCompleteRow, MODEL_FEATURES } from '../../src/features/spec.js';
import type { FeatureRow, FeatureSpec, LabelRow } from '../../src/features/types.js';
import type { Matrix } from './gbdt.js';
import { isBinaryTarget } from './targets.js';

export class DatasetError extends QuoteWatchError {}

/**
 * One labelled tick: the features the model sees (spec order) and the label: the 0/1 outcome, or for a
 * thresholded target (vol_spike_60s) the continuous spike value (targets.ts toSpikeValues) until
 * binarizeByProduct applies the product's τ.
 */
export interface Example {
  product: string;
  tsUs: number;
  x: number[];
  y: number;
}

/** Rows' inputs as the trees take them: one row-major float32 matrix, written in place (no interim array). */
export function toMatrix(rows: readonly Example[]): Matrix {
  const features = rows[0]?.x.length ?? 0;
  const values = new Float32Array(rows.length * features);
  rows.forEach((e, r) => {
    values.set(e.x, r * features);
  });
  return { rows: rows.length, features, values };
}

/** Rows' 0/1 outcomes. */
export const labelsOf = (rows: readonly Example[]): Uint8Array => Uint8Array.from(rows, (e) => e.y);

/** The tick range a held-out part covers, inclusive: evaluation re-selects exactly these rows later. */
export interface TimeWindow {
  fromUs: number;
  toUs: number;
}

export interface Split {
  /** Without the purged rows (see splitByTime). */
  train: Example[];
  /** Training rows dropped because their label horizon reached the held-out part. */
  purged: number;
  holdout: Example[];
  holdoutWindow: TimeWindow;
}

const keyOf = (product: string, tsUs: number) => `${product}@${tsUs}`;

/**
 * The feature spec every lake file was written with must be the code's: a model trained on other features
 * could not be served. Throws DatasetError naming the first file that differs.
 */
export function checkSpecs(
  files: readonly { key: string; spec: FeatureSpec }[],
  expected: FeatureSpec,
): void {
  const want = JSON.stringify(expected.features.map((f) => f.name));
  for (const { key, spec } of files) {
    const got = JSON.stringify(spec.features.map((f) => f.name));
    if (spec.version !== expected.version || spec.tickMs !== expected.tickMs || got !== want) {
      throw new DatasetError(
        `${key} was written with feature spec v${spec.version} (tick ${spec.tickMs} ms, ${got}); ` +
          `the code has v${expected.version} (tick ${expected.tickMs} ms, ${want})`,
      );
    }
  }
}

/**
 * Labels of `target` joined to the feature row of the same (product, tsUs), sorted by time then product.
 * Labels without a feature row are dropped (no valid book at that tick). The same row or label seen twice
 * (an object rewritten by a reprocessing) counts once; two different values for one tick are a DatasetError.
 */
export function joinLabels(
  features: readonly FeatureRow[],
  labels: readonly LabelRow[],
  target: string,
): Example[] {
  const x = new Map<string, number[]>();
  for (const row of features) {
    const key = keyOf(row.product, row.tsUs);
    const values = Array.from(row.values);
    const seen = x.get(key);
    if (seen?.some((v, i) => v !== values[i])) {
      throw new DatasetError(`two different feature rows for ${key}`);
    }
    x.set(key, values);
  }
  const y = new Map<string, { product: string; tsUs: number; value: number }>();
  const binary = isBinaryTarget(target);
  for (const label of labels) {
    if (label.target !== target) continue;
    if (binary ? label.value !== 0 && label.value !== 1 : !(label.value >= 0 && label.value < Infinity)) {
      throw new DatasetError(
        `label ${target} for ${keyOf(label.product, label.tsUs)} is ${label.value}, ` +
          (binary ? 'not 0/1' : 'not a finite value >= 0'),
      );
    }
    const key = keyOf(label.product, label.tsUs);
    const seen = y.get(key);
    if (seen && seen.value !== label.value)
      throw new DatasetError(`two different ${target} labels for ${key}`);
    y.set(key, label);
  }
  const out: Example[] = [];
  for (const [key, label] of y) {
    const values = x.get(key);
    if (values) out.push({ product: label.product, tsUs: label.tsUs, x: values, y: label.value });
  }
  return out.sort((a, b) => a.tsUs - b.tsUs || a.product.localeCompare(b.product));
}

/**
 * Time-ordered split, never shuffled: the oldest `trainFraction` of the rows train, the rest is held out.
 * The cut moves forward to a tick boundary so one tick's rows (several products) are never on both sides.
 * Training rows whose label horizon (`horizonUs`, labelHorizonUs) ends at or after the first held-out tick
 * are purged: their labels were computed from held-out data. `examples` must be sorted by time (joinLabels).
 */
export function splitByTime(examples: readonly Example[], trainFraction: number, horizonUs = 0): Split {
  if (!(trainFraction > 0 && trainFraction < 1)) {
    throw new RangeError(`trainFraction must be in (0, 1), got ${trainFraction}`);
  }
  for (let i = 1; i < examples.length; i++) {
    if (examples[i]!.tsUs < examples[i - 1]!.tsUs) throw new DatasetError('examples are not in time order');
  }
  let cut = Math.floor(examples.length * trainFraction);
  while (cut > 0 && cut < examples.length && examples[cut]!.tsUs === examples[cut - 1]!.tsUs) cut++;
  const holdout = examples.slice(cut);
  const firstHeldOutUs = holdout[0]?.tsUs ?? Number.POSITIVE_INFINITY;
  const train = examples.slice(0, cut).filter((e) => e.tsUs + horizonUs < firstHeldOutUs);
  if (train.length === 0 || holdout.length === 0) {
    throw new DatasetError(
      `${examples.length} rows cannot be split ${trainFraction}/${1 - trainFraction} by time: ` +
        `${train.length} would train (${cut - train.length} purged by the ${horizonUs / 1e6} s label horizon), ` +
        `${holdout.length} would be held out`,
    );
  }
  return {
    train,
    purged: cut - train.length,
    holdout,
    holdoutWindow: { fromUs: holdout[0]!.tsUs, toUs: holdout.at(-1)!.tsUs },
  };
}

/** The rows inside a window (inclusive), in their order: the held-out part a candidate was trained beside. */
export function selectWindow(examples: readonly Example[], window: TimeWindow): Example[] {
  return examples.filter((e) => e.tsUs >= window.fromUs && e.tsUs <= window.toUs);
}

/** Both label classes must be present, or neither training nor AUC means anything. */
export function assertBothClasses(examples: readonly Example[], what: string): void {
  const positives = examples.reduce((n, e) => n + e.y, 0);
  if (positives === 0 || positives === examples.length) {
    throw new DatasetError(
      `${what}: all ${examples.length} labels are ${positives === 0 ? 0 : 1}; need both classes`,
    );
  }
}

/**
 * The rows a model of feature set `set` learns from and is evaluated on: complete rows only (fresh state,
 * full trailing windows: isCompleteRow), each cut to the set's inputs in spec order. A complete row with a
 * value that is not a finite number among them, or a label that is not one (a NaN spike value), is bad data: a
 * DatasetError naming the row and the feature (the feature code never produces one; NaN would train as
 * "missing" and mean something else live).
 */
export function modelRows(examples: readonly Example[], set: FeatureSet): Example[] {
  const columns = MODEL_FEATURES[set].map((name) => FEATURE_NAMES.indexOf(name));
  const out: Example[] = [];
  for (const e of examples) {
    if (e.x.length !== FEATURE_NAMES.length) {
      throw new DatasetError(
        `a row of ${e.product} has ${e.x.length} values; the spec has ${FEATURE_NAMES.length}`,
      );
    }
    if (!isCompleteRow(e.x)) continue;
    const x = columns.map((c) => e.x[c]!);
    const bad = x.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0 || !Number.isFinite(e.y)) {
      const what = bad >= 0 ? `feature ${MODEL_FEATURES[set][bad]} is ${x[bad]}` : `its label is ${e.y}`;
      throw new DatasetError(`the row of ${e.product} at ${e.tsUs} µs: ${what}, not a finite number`);
    }
    out.push({ ...e, x });
  }
  return out;
}

/**
 * The complete rows of `examples`, whole (evaluate scores them with models of different inputs, each cutting
 * its own: inputsOf): the same rows modelRows keeps, with the same check of their values.
 */
export function completeRows(examples: readonly Example[], set: FeatureSet): Example[] {
  modelRows(examples, set);
  return examples.filter((e) => isCompleteRow(e.x));
}

/** A model's inputs from a lake row: its feature set's columns (spec.set), or the whole row for a set-less spec. */
export function inputsOf(spec: FeatureSpec): (x: readonly number[]) => number[] {
  if (spec.set === undefined) return (x) => [...x];
  const columns = MODEL_FEATURES[spec.set].map((name) => FEATURE_NAMES.indexOf(name));
  return (x) => columns.map((c) => x[c]!);
}
