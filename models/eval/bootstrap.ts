/**
 * Block-bootstrap intervals of classifier metrics on time-ordered rows.
 *
 * Rows close in time share most of their label window (a 60 s forward volatility every 100 ms), so they are not
 * independent: resampling rows would make the intervals far too narrow. Rows are grouped into time blocks of
 * `blockUs` (≥ the label horizon; all products of one block together, as they move together) and whole blocks are
 * drawn with replacement. A resample is then a weight per block (how often it was drawn), the same for all its rows.
 * So each model's rows are sorted by score once and reduced to per-block sums once (ScoredRows.byBlock); a resample
 * costs O(blocks) for the additive metrics plus one sequential pass in score order for PR-AUC and ROC-AUC, with no
 * per-row weight array, logarithm or random access. (The pooled benchmark, ~1.8M rows × 5 models × 500 resamples,
 * did not finish in 40 min with a per-row pass; see bootstrap.test.ts for the reference it must equal.)
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
// A row's kind packs what the additive metrics need besides its weight: bin << 2 | correct << 1 | y.
const KIND_Y = 1;
const KIND_CORRECT = 2;
const KINDS = ECE_BINS << 2;
// Flags of a ranked entry (a row, or rows of one tie group, block and class) in descending score order.
const RANKED_POS = 1;
const RANKED_GROUP_END = 2;
const ONE = Float64Array.of(1);

function identity(n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

/**
 * Additive terms summed over units (a row, or the rows of one block sharing a kind), weighted per resample by
 * `w[unit]`. Rows of one kind differ only in p, Brier and log loss, so a block reduces to a few units.
 */
interface Units {
  unit: Uint32Array;
  kind: Uint8Array;
  n: Uint32Array;
  p: Float64Array;
  brier: Float64Array;
  /** The reference's Brier terms, summed like `brier` so a model that always says `reference` has skill 0 exactly. */
  refBrier: Float64Array;
  loss: Float64Array;
}

/** Entries in descending score order for the ranked pass: `n` rows of class `flags & RANKED_POS`, weight `w[unit]`. */
interface Ranked {
  flags: Uint8Array;
  unit: Uint32Array;
  n: Uint32Array;
}

/**
 * Scores of one model on fixed rows. Everything but the weights is fixed, so the constructor computes each row's
 * terms once (Brier, reference Brier, log loss, calibration bin, decision outcome) and lays out the labels in
 * descending score order with the tie groups marked: a weighting then costs one sequential pass for PR-AUC and
 * ROC-AUC and a pass over units for the rest. `reference` is the no-skill probability Brier skill compares with (the training base
 * rate); `decision` the probability at or above which balanced accuracy says 1.
 */
export class ScoredRows {
  /** Row indices by descending score (ties by index). */
  readonly order: Uint32Array;
  /** Per row in score order: RANKED_POS if y = 1, RANKED_GROUP_END on the last row of a tied-score group. */
  private readonly ranked: Uint8Array;
  /** The rows' terms, in row order. */
  private readonly rows: Omit<Units, 'unit'>;
  /** 1 per row. */
  private readonly ones: Uint32Array;

  constructor(
    readonly p: Float64Array,
    readonly y: Uint8Array,
    readonly reference: number,
    readonly decision: number,
  ) {
    const n = p.length;
    if (n !== y.length) throw new RangeError(`${n} scores but ${y.length} labels`);
    const kind = new Uint8Array(n);
    const brier = new Float64Array(n);
    const refBrier = new Float64Array(n);
    const loss = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const pi = p[i]!;
      const yi = y[i]!;
      if (!(pi >= 0 && pi <= 1)) throw new RangeError(`probability ${i} is ${pi}, not in [0, 1]`);
      const bin = Math.min(ECE_BINS - 1, Math.max(0, Math.floor(pi * ECE_BINS)));
      const correct = pi >= this.decision ? yi === 1 : yi === 0;
      kind[i] = (bin << 2) | (correct ? KIND_CORRECT : 0) | (yi === 1 ? KIND_Y : 0);
      brier[i] = (pi - yi) ** 2;
      refBrier[i] = (this.reference - yi) ** 2;
      const clipped = Math.min(1 - EPS, Math.max(EPS, pi));
      loss[i] = -(yi === 1 ? Math.log(clipped) : Math.log(1 - clipped));
    }
    this.ones = new Uint32Array(n).fill(1);
    this.rows = { kind, n: this.ones, p, brier, refBrier, loss };
    this.order = identity(n).sort((a, b) => p[b]! - p[a]! || a - b);
    this.ranked = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const i = this.order[k]!;
      const last = k + 1 === n || p[this.order[k + 1]!] !== p[i];
      this.ranked[k] = (y[i] === 1 ? RANKED_POS : 0) | (last ? RANKED_GROUP_END : 0);
    }
  }

  /** Every metric under row weights `w` (undefined = 1 each). NaN where the weighted rows lack a class. */
  metrics(w?: ArrayLike<number>): MetricValues {
    const { ranked: flags, ones: n } = this;
    if (w)
      return this.evaluate({ ...this.rows, unit: identity(n.length) }, { flags, unit: this.order, n }, w);
    // All rows in one unit of weight 1: the same sums in the same order, with sequential reads only.
    const zero = new Uint32Array(n.length);
    return this.evaluate({ ...this.rows, unit: zero }, { flags, unit: zero, n }, ONE);
  }

  /**
   * The metrics of a resample given the weight of each block (`block[i]`: row i's block), for many resamples:
   * the rows are reduced to per-block units once here, so a resample costs O(blocks) plus the ranked pass.
   * The results equal metrics() with each row weighted by its block's weight, exactly for PR-AUC, ROC-AUC and
   * balanced accuracy when the weights are integers (draw counts: their sums are exact in any order).
   */
  byBlock(block: Uint32Array): (blockWeight: ArrayLike<number>) => MetricValues {
    if (block.length !== this.p.length)
      throw new RangeError(`${block.length} blocks for ${this.p.length} rows`);
    const units = unitsByBlock(this.rows, block);
    const ranked = rankedByBlock(this.ranked, this.order, block);
    return (blockWeight) => this.evaluate(units, ranked, blockWeight);
  }

  /**
   * The one implementation of the metrics: `w[unit]` weights each unit and ranked entry. For row units and
   * entries this adds the same terms in the same order as a plain per-row loop would.
   */
  private evaluate(units: Units, ranked: Ranked, w: ArrayLike<number>): MetricValues {
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
    for (let u = 0; u < units.kind.length; u++) {
      const wu = w[units.unit[u]!]!;
      if (wu === 0) continue;
      const kind = units.kind[u]!;
      const yu = kind & KIND_Y;
      const nw = wu * units.n[u]!;
      if (yu === 1) posW += nw;
      else negW += nw;
      if (kind & KIND_CORRECT) {
        if (yu === 1) tp += nw;
        else tn += nw;
      }
      brier += wu * units.brier[u]!;
      refBrier += wu * units.refBrier[u]!;
      loss += wu * units.loss[u]!;
      const b = kind >> 2;
      binN[b]! += nw;
      binP[b]! += wu * units.p[u]!;
      if (yu === 1) binY[b]! += nw;
    }
    const total = posW + negW;
    const { ap, u } = rankedPass(ranked, w, posW, negW);
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

/** The rows' terms summed per (block, kind): the units of a block-weighted evaluate. */
function unitsByBlock(rows: Omit<Units, 'unit'>, block: Uint32Array): Units {
  const index = new Map<number, number>();
  const at = new Uint32Array(block.length);
  for (let i = 0; i < block.length; i++) {
    const key = block[i]! * KINDS + rows.kind[i]!;
    if (!index.has(key)) index.set(key, index.size);
    at[i] = index.get(key)!;
  }
  const m = index.size;
  const units: Units = {
    unit: new Uint32Array(m),
    kind: new Uint8Array(m),
    n: new Uint32Array(m),
    p: new Float64Array(m),
    brier: new Float64Array(m),
    refBrier: new Float64Array(m),
    loss: new Float64Array(m),
  };
  for (let i = 0; i < block.length; i++) {
    const u = at[i]!;
    units.unit[u] = block[i]!;
    units.kind[u] = rows.kind[i]!;
    units.n[u]!++;
    units.p[u]! += rows.p[i]!;
    units.brier[u]! += rows.brier[i]!;
    units.refBrier[u]! += rows.refBrier[i]!;
    units.loss[u]! += rows.loss[i]!;
  }
  return units;
}

/**
 * The ranked entries of a block-weighted evaluate. Rows of one tie group in the same block and class add the same
 * weight, so they merge into one entry (weight × count): the heavily tied scores of simple baselines (a base
 * rate, a persistence rule) then cost ~nothing per resample. Unique scores merge nothing.
 */
function rankedByBlock(rowFlags: Uint8Array, order: Uint32Array, block: Uint32Array): Ranked {
  let blocks = 0;
  for (let i = 0; i < block.length; i++) blocks = Math.max(blocks, block[i]! + 1);
  const count = new Uint32Array(2 * blocks);
  const touched: number[] = [];
  const out: Ranked = {
    flags: new Uint8Array(order.length),
    unit: new Uint32Array(order.length),
    n: new Uint32Array(order.length),
  };
  let e = 0;
  for (let k = 0; k < order.length; k++) {
    const flags = rowFlags[k]!;
    const key = 2 * block[order[k]!]! + (flags & RANKED_POS);
    if (count[key]!++ === 0) touched.push(key);
    if (flags & RANKED_GROUP_END) {
      for (const t of touched) {
        out.flags[e] = t & RANKED_POS;
        out.unit[e] = t >>> 1;
        out.n[e++] = count[t]!;
        count[t] = 0;
      }
      out.flags[e - 1]! |= RANKED_GROUP_END;
      touched.length = 0;
    }
  }
  return { flags: out.flags.slice(0, e), unit: out.unit.slice(0, e), n: out.n.slice(0, e) };
}

/**
 * One descending pass: average precision and the Mann-Whitney U, tied scores as one group. Sequential reads of
 * `ranked`; `w` is small (one per block) when resampling. The labels in score order are random to the branch
 * predictor, so the class split and the AP term are computed without branching on them: a negative entry adds
 * exactly 0 to gPos, a group without positives exactly 0 to ap (the same sums as skipping them).
 */
function rankedPass(
  ranked: Ranked,
  w: ArrayLike<number>,
  posW: number,
  negW: number,
): { ap: number; u: number } {
  const { flags: rankedFlags, unit, n } = ranked;
  let ap = 0;
  let u = 0;
  let truePos = 0;
  let seen = 0;
  let negAbove = 0;
  let gPos = 0;
  let gNeg = 0;
  for (let k = 0; k < rankedFlags.length; k++) {
    const flags = rankedFlags[k]!;
    const wk = w[unit[k]!]! * n[k]!;
    const pos = wk * (flags & RANKED_POS);
    gPos += pos;
    gNeg += wk - pos;
    if (flags & RANKED_GROUP_END) {
      truePos += gPos;
      seen += gPos + gNeg;
      ap += (gPos / posW) * (truePos / (seen || 1)); // seen = 0 only before the first weighted row, where gPos = 0
      u += gPos * (negW - negAbove - gNeg + gNeg / 2);
      negAbove += gNeg;
      gPos = 0;
      gNeg = 0;
    }
  }
  return { ap, u };
}

/** Block ids of time-ordered rows: floor((tsUs - first) / blockUs), renumbered 0..blocks-1. */
export function timeBlocks(tsUs: ArrayLike<number>, blockUs: number): { block: Uint32Array; blocks: number } {
  if (!(blockUs > 0)) throw new RangeError(`blockUs must be > 0, got ${blockUs}`);
  let first = Number.POSITIVE_INFINITY;
  for (let i = 0; i < tsUs.length; i++) first = Math.min(first, tsUs[i]!);
  // Plain loops and a typed sort: this runs on millions of rows per interval.
  const raw = new Float64Array(tsUs.length);
  for (let i = 0; i < raw.length; i++) raw[i] = Math.floor((tsUs[i]! - first) / blockUs);
  const ids = new Map<number, number>();
  for (const r of raw.slice().sort()) if (!ids.has(r)) ids.set(r, ids.size);
  const block = new Uint32Array(raw.length);
  for (let i = 0; i < raw.length; i++) block[i] = ids.get(raw[i]!)!;
  return { block, blocks: ids.size };
}

/** The weight of each block in each resample: blocks drawn with replacement, as many as there are. */
function* resampleBlockWeights(blocks: number, o: BootstrapOptions): Generator<Float64Array> {
  const rng = new Rng(o.seed);
  const drawn = new Float64Array(blocks);
  for (let r = 0; r < o.resamples; r++) {
    drawn.fill(0);
    for (let k = 0; k < blocks; k++) drawn[rng.int(blocks)]!++;
    yield drawn;
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
  const resampled = models.map((m) => m.byBlock(block));
  const draws: MetricValues[][] = models.map(() => []);
  for (const w of resampleBlockWeights(blocks, o)) {
    for (const [k, metrics] of resampled.entries()) draws[k]!.push(metrics(w));
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
  const c = candidate.byBlock(block);
  const r = reference.byBlock(block);
  const draws: MetricValues[] = [];
  for (const w of resampleBlockWeights(blocks, o)) draws.push(diff(c(w), r(w)));
  return intervals(diff(candidate.metrics(), reference.metrics()), draws, o.confidence);
}
