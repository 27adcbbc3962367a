/**
 * Block-bootstrap intervals of classifier metrics on time-ordered rows.
 *
 * Rows close in time share most of their label window (a 60 s forward volatility every 100 ms), so they are not
 * independent: resampling rows would make the intervals far too narrow. Rows are grouped into time blocks of
 * `blockUs` (≥ the label horizon; all products of one block together, as they move together) and whole blocks are
 * drawn with replacement. A resample is then a weight per row (how often its block was drawn), and every metric is
 * a weighted sum over rows sorted by score ONCE — O(rows) per resample instead of a sort.
 *
 * At unit weights these are exactly src/model/metrics.ts's definitions (average precision with tied scores entering
 * together, ROC-AUC with ties counting one half, Brier, log loss, ECE over 10 equal bins, balanced accuracy); the
 * tests check that they agree. Paired intervals (candidate minus reference on the same resamples) are what the
 * promotion gate reads.
 */
import { Rng } from '../../src/simulator/rng.js';

export const METRICS = [
  'prAuc',
  'rocAuc',
  'brier',
  'brierSkill',
  'logLoss',
  'balancedAccuracy',
  'calibrationError',
] as const;
export type MetricName = (typeof METRICS)[number];
export type MetricValues = Record<MetricName, number>;

/** Whether a larger value of the metric is better. */
export const HIGHER_IS_BETTER: Readonly<Record<MetricName, boolean>> = {
  prAuc: true,
  rocAuc: true,
  brier: false,
  brierSkill: true,
  logLoss: false,
  balancedAccuracy: true,
  calibrationError: false,
};

export interface Interval {
  value: number;
  lo: number;
  hi: number;
}
export type MetricIntervals = Record<MetricName, Interval>;

export interface BootstrapOptions {
  /** Block length, µs: at least the label horizon. */
  blockUs: number;
  resamples: number;
  /** Two-sided coverage of the percentile interval. */
  confidence: number;
  seed: number;
}

export const DEFAULT_BOOTSTRAP: Omit<BootstrapOptions, 'blockUs'> = {
  resamples: 500,
  confidence: 0.95,
  seed: 1,
};

const EPS = 1e-15;
const ECE_BINS = 10;

/**
 * Scores of one model on fixed rows, sorted once (descending score) so each weighting is a linear pass.
 * `reference` is the no-skill probability Brier skill compares with (the training base rate);
 * `decision` the probability at or above which balanced accuracy says 1.
 */
export class ScoredRows {
  readonly order: Uint32Array;

  constructor(
    readonly p: Float64Array,
    readonly y: Uint8Array,
    readonly reference: number,
    readonly decision: number,
  ) {
    if (p.length !== y.length) throw new RangeError(`${p.length} scores but ${y.length} labels`);
    for (let i = 0; i < p.length; i++) {
      if (!(p[i]! >= 0 && p[i]! <= 1)) throw new RangeError(`probability ${i} is ${p[i]}, not in [0, 1]`);
    }
    const order = new Uint32Array(p.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    this.order = order.sort((a, b) => p[b]! - p[a]! || a - b);
  }

  /** Every metric under row weights `w` (undefined = 1 each). NaN where the weighted rows lack a class. */
  metrics(w?: ArrayLike<number>): MetricValues {
    const { p, y, order } = this;
    const weight = (i: number) => (w ? w[i]! : 1);
    let posW = 0;
    let negW = 0;
    let brier = 0;
    let refBrier = 0;
    let loss = 0;
    let tp = 0;
    let tn = 0;
    const binN = new Float64Array(ECE_BINS);
    const binP = new Float64Array(ECE_BINS);
    const binY = new Float64Array(ECE_BINS);
    for (let i = 0; i < p.length; i++) {
      const wi = weight(i);
      if (wi === 0) continue;
      const pi = p[i]!;
      const yi = y[i]!;
      if (yi === 1) posW += wi;
      else negW += wi;
      brier += wi * (pi - yi) ** 2;
      refBrier += wi * (this.reference - yi) ** 2;
      const clipped = Math.min(1 - EPS, Math.max(EPS, pi));
      loss -= wi * (yi === 1 ? Math.log(clipped) : Math.log(1 - clipped));
      if (pi >= this.decision) {
        if (yi === 1) tp += wi;
      } else if (yi === 0) tn += wi;
      const b = Math.min(ECE_BINS - 1, Math.max(0, Math.floor(pi * ECE_BINS)));
      binN[b]! += wi;
      binP[b]! += wi * pi;
      binY[b]! += wi * yi;
    }
    const total = posW + negW;
    // One descending pass: average precision and the Mann-Whitney U, tied scores as one group.
    let ap = 0;
    let u = 0;
    let truePos = 0;
    let seen = 0;
    let negAbove = 0;
    for (let start = 0; start < order.length; ) {
      const v = p[order[start]!]!;
      let gPos = 0;
      let gNeg = 0;
      let end = start;
      for (; end < order.length && p[order[end]!] === v; end++) {
        const i = order[end]!;
        if (y[i] === 1) gPos += weight(i);
        else gNeg += weight(i);
      }
      truePos += gPos;
      seen += gPos + gNeg;
      if (gPos > 0) ap += (gPos / posW) * (truePos / seen);
      u += gPos * (negW - negAbove - gNeg + gNeg / 2);
      negAbove += gNeg;
      start = end;
    }
    let ece = 0;
    for (let b = 0; b < ECE_BINS; b++) {
      if (binN[b]! > 0) ece += Math.abs(binP[b]! - binY[b]!);
    }
    const both = posW > 0 && negW > 0;
    return {
      prAuc: posW > 0 ? ap : Number.NaN,
      rocAuc: both ? u / (posW * negW) : Number.NaN,
      brier: brier / total,
      brierSkill: refBrier > 0 ? 1 - brier / refBrier : Number.NaN,
      logLoss: loss / total,
      balancedAccuracy: both ? (tp / posW + tn / negW) / 2 : Number.NaN,
      calibrationError: ece / total,
    };
  }
}

/** Block ids of time-ordered rows: floor((tsUs - first) / blockUs), renumbered 0..blocks-1. */
export function timeBlocks(tsUs: ArrayLike<number>, blockUs: number): { block: Uint32Array; blocks: number } {
  if (!(blockUs > 0)) throw new RangeError(`blockUs must be > 0, got ${blockUs}`);
  let first = Number.POSITIVE_INFINITY;
  for (let i = 0; i < tsUs.length; i++) first = Math.min(first, tsUs[i]!);
  const ids = new Map<number, number>();
  const raw = Array.from(tsUs, (t) => Math.floor((t - first) / blockUs));
  for (const r of [...new Set(raw)].sort((a, b) => a - b)) ids.set(r, ids.size);
  return { block: Uint32Array.from(raw, (r) => ids.get(r)!), blocks: ids.size };
}

/** The row weights of each resample: blocks drawn with replacement, as many as there are. */
function* resampleWeights(block: Uint32Array, blocks: number, o: BootstrapOptions): Generator<Float64Array> {
  const rng = new Rng(o.seed);
  const drawn = new Float64Array(blocks);
  const w = new Float64Array(block.length);
  for (let r = 0; r < o.resamples; r++) {
    drawn.fill(0);
    for (let k = 0; k < blocks; k++) drawn[rng.int(blocks)]!++;
    for (let i = 0; i < block.length; i++) w[i] = drawn[block[i]!]!;
    yield w;
  }
}

/** The percentile interval of finite values (NaN when none). */
function percentile(values: number[], confidence: number): { lo: number; hi: number } {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return { lo: Number.NaN, hi: Number.NaN };
  const at = (q: number) => finite[Math.min(finite.length - 1, Math.max(0, Math.floor(q * finite.length)))]!;
  const tail = (1 - confidence) / 2;
  return { lo: at(tail), hi: at(1 - tail) };
}

function intervals(point: MetricValues, draws: MetricValues[], confidence: number): MetricIntervals {
  const out = {} as MetricIntervals;
  for (const m of METRICS) {
    out[m] = {
      value: point[m],
      ...percentile(
        draws.map((d) => d[m]),
        confidence,
      ),
    };
  }
  return out;
}

/**
 * Each metric of each model on the same rows with its block-bootstrap interval. All models see the same
 * resamples, so their intervals are comparable; `tsUs` gives the rows' blocks.
 */
export function bootstrapMetrics(
  models: readonly ScoredRows[],
  tsUs: ArrayLike<number>,
  options: Partial<BootstrapOptions> & Pick<BootstrapOptions, 'blockUs'>,
): MetricIntervals[] {
  const o = { ...DEFAULT_BOOTSTRAP, ...options };
  const { block, blocks } = timeBlocks(tsUs, o.blockUs);
  const draws: MetricValues[][] = models.map(() => []);
  for (const w of resampleWeights(block, blocks, o)) {
    for (const [k, m] of models.entries()) draws[k]!.push(m.metrics(w));
  }
  return models.map((m, k) => intervals(m.metrics(), draws[k]!, o.confidence));
}

/**
 * Paired differences `candidate - reference` of each metric on the same resamples (positive: the candidate's
 * value is larger — better for PR-AUC, worse for log loss; see HIGHER_IS_BETTER).
 */
export function pairedDifferences(
  candidate: ScoredRows,
  reference: ScoredRows,
  tsUs: ArrayLike<number>,
  options: Partial<BootstrapOptions> & Pick<BootstrapOptions, 'blockUs'>,
): MetricIntervals {
  const o = { ...DEFAULT_BOOTSTRAP, ...options };
  const { block, blocks } = timeBlocks(tsUs, o.blockUs);
  const diff = (a: MetricValues, b: MetricValues) => {
    const out = {} as MetricValues;
    for (const m of METRICS) out[m] = a[m] - b[m];
    return out;
  };
  const draws: MetricValues[] = [];
  for (const w of resampleWeights(block, blocks, o))
    draws.push(diff(candidate.metrics(w), reference.metrics(w)));
  return intervals(diff(candidate.metrics(), reference.metrics()), draws, o.confidence);
}
