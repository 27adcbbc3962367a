/**
 * The promotion rule: a candidate replaces the active model only when it is better beyond the noise of the test
 * rows, never because it was luckier on one split. On the SAME test rows (pooled over folds):
 *
 *   1. every fold has both classes, at least `minPositives` positives and at least `minHorizons` independent
 *      label horizons (its test time span / the horizon): fewer and no interval means anything;
 *   2. the paired block bootstrap (bootstrap.ts) of candidate minus active in the target's main metric (PR-AUC
 *      for vol spikes, log loss for quote change; oriented so that positive = candidate better) has its lower
 *      bound above `margin`;
 *   3. the candidate's Brier score is not worse than the active model's;
 *   4. the candidate's expected calibration error is at most `maxCalibrationError`.
 *
 * With no active model the reference is the no-skill forecast (the training base rate on every row): a first
 * model must still show skill. The decision carries every figure and, when it keeps the active model, why.
 */
import type { PromotionConfig } from '../../src/config.js';
import {
  HIGHER_IS_BETTER,
  type Interval,
  type MetricName,
  pairedDifferences,
  ScoredRows,
} from './bootstrap.js';

export interface GateInput {
  target: string;
  mainMetric: MetricName;
  horizonUs: number;
  /** Test rows, in time order: event time, fold index, 0/1 outcome. */
  tsUs: Float64Array;
  fold: Uint8Array;
  /**
   * How many folds there are, numbered 1..folds (timeFolds): a fold without a row is then a reason too. Absent:
   * the folds are the indices `fold` holds.
   */
  folds?: number;
  y: Uint8Array;
  candidate: Float64Array;
  /** The active model's probabilities on the same rows; absent when no model is active. */
  active?: Float64Array;
  /** The candidate's training base rate: Brier skill's reference and the no-skill forecast. */
  trainRate: number;
}

export interface FoldCheck {
  index: number;
  rows: number;
  positives: number;
  /** Test time span / label horizon. */
  horizons: number;
  ok: boolean;
}

export interface GateDecision {
  promote: boolean;
  /** Why the active model is kept (empty when promoting). */
  reasons: string[];
  /** What the candidate was compared with. */
  reference: 'active' | 'base_rate';
  mainMetric: MetricName;
  /** Candidate minus reference in the main metric, positive = candidate better, paired block bootstrap. */
  gain: Interval;
  brier: { candidate: number; reference: number };
  calibrationError: number;
  folds: FoldCheck[];
  config: PromotionConfig;
  blockUs: number;
}

/**
 * The promotion's folds of a held-out window (models/train/evaluate.ts): its rows, in time order, cut into `folds`
 * consecutive stretches of about equal numbers of rows, fold 1 the oldest; rows of one tick share a fold. Equal
 * shares of the rows, not of the time span: a gap in the data (an outage; a lake holding simulated days and the
 * running system's hours, weeks apart) would otherwise leave a stretch with no row, and a fold without rows can
 * never pass. Each fold is then the same amount of evidence, wherever it lies in time. A fold can still be empty
 * when the window has fewer ticks than folds (decidePromotion names it when told the fold count, GateInput.folds).
 */
export function timeFolds(tsUs: ArrayLike<number>, folds: number): Uint8Array {
  if (!(Number.isInteger(folds) && folds >= 1 && folds <= 255)) {
    throw new RangeError(`folds must be a whole number in [1, 255], got ${folds}`);
  }
  const n = tsUs.length;
  const out = new Uint8Array(n);
  let fold = 1;
  for (let i = 0; i < n; i++) {
    if (i > 0 && tsUs[i]! < tsUs[i - 1]!) throw new RangeError('timeFolds needs rows in time order');
    // The next fold starts at the first new tick at or past its share of the rows.
    if (i > 0 && tsUs[i]! !== tsUs[i - 1]! && fold < folds && i >= (fold * n) / folds) fold++;
    out[i] = fold;
  }
  return out;
}

/** The bootstrap block of a target: at least its horizon and the configured block. */
export const gateBlockUs = (horizonUs: number, config: PromotionConfig) =>
  Math.max(horizonUs, config.blockS * 1e6);

export function decidePromotion(input: GateInput, config: PromotionConfig): GateDecision {
  const n = input.y.length;
  if (input.candidate.length !== n || input.tsUs.length !== n || input.fold.length !== n) {
    throw new RangeError('gate input arrays must have one entry per test row');
  }
  if (input.active && input.active.length !== n)
    throw new RangeError('active scores must cover the same rows');
  const reasons: string[] = [];
  const folds: FoldCheck[] = [];
  const indices =
    input.folds === undefined
      ? [...new Set(input.fold)].sort((a, b) => a - b)
      : Array.from({ length: input.folds }, (_, i) => i + 1);
  for (const index of indices) {
    let rows = 0;
    let positives = 0;
    let from = Number.POSITIVE_INFINITY;
    let to = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      if (input.fold[i] !== index) continue;
      rows++;
      positives += input.y[i]!;
      from = Math.min(from, input.tsUs[i]!);
      to = Math.max(to, input.tsUs[i]!);
    }
    const horizons = rows === 0 ? 0 : Math.floor((to - from + 1) / input.horizonUs);
    const check = { index, rows, positives, horizons, ok: true };
    if (rows === 0) {
      reasons.push(`fold ${index}: no test rows`);
      check.ok = false;
      folds.push(check);
      continue;
    }
    if (positives === 0 || positives === rows) {
      reasons.push(`fold ${index}: all ${rows} test labels are ${positives === 0 ? 0 : 1}`);
      check.ok = false;
    } else if (positives < config.minPositives) {
      reasons.push(`fold ${index}: ${positives} positives, fewer than ${config.minPositives}`);
      check.ok = false;
    }
    if (horizons < config.minHorizons) {
      reasons.push(`fold ${index}: ${horizons} independent horizons, fewer than ${config.minHorizons}`);
      check.ok = false;
    }
    folds.push(check);
  }
  const blockUs = gateBlockUs(input.horizonUs, config);
  const reference = input.active ?? new Float64Array(n).fill(input.trainRate);
  const candidateRows = new ScoredRows(input.candidate, input.y, input.trainRate, input.trainRate);
  const referenceRows = new ScoredRows(reference, input.y, input.trainRate, input.trainRate);
  const d = pairedDifferences(candidateRows, referenceRows, input.tsUs, {
    blockUs,
    resamples: config.resamples,
    seed: 1,
  })[input.mainMetric];
  const gain = HIGHER_IS_BETTER[input.mainMetric] ? d : { value: -d.value, lo: -d.hi, hi: -d.lo };
  const what = input.active ? 'the active model' : 'the base rate';
  if (!(gain.lo > config.margin)) {
    reasons.push(
      `${input.mainMetric} gain over ${what} ${fmt(gain.value)} [${fmt(gain.lo)}, ${fmt(gain.hi)}]: ` +
        `lower bound not above the margin ${config.margin}`,
    );
  }
  const c = candidateRows.metrics();
  const r = referenceRows.metrics();
  if (c.brier > r.brier) reasons.push(`Brier ${fmt(c.brier)} worse than ${what}'s ${fmt(r.brier)}`);
  if (!(c.calibrationError <= config.maxCalibrationError)) {
    reasons.push(`calibration error ${fmt(c.calibrationError)} above ${config.maxCalibrationError}`);
  }
  return {
    promote: reasons.length === 0,
    reasons,
    reference: input.active ? 'active' : 'base_rate',
    mainMetric: input.mainMetric,
    gain,
    brier: { candidate: c.brier, reference: r.brier },
    calibrationError: c.calibrationError,
    folds,
    config,
    blockUs,
  };
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toPrecision(4) : String(v));
