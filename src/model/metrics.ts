/**
 * Metrics of binary probabilistic classifiers: the one implementation training, evaluation and the worker's live
 * quality share. Labels must be 0 or 1; lengths must match.
 */

function check(scores: ArrayLike<number>, labels: ArrayLike<number>, n = scores.length): void {
  if (n === scores.length && scores.length !== labels.length) {
    throw new RangeError(`got ${scores.length} scores but ${labels.length} labels`);
  }
  if (n > scores.length || n > labels.length) {
    throw new RangeError(`asked for ${n} rows of ${scores.length} scores and ${labels.length} labels`);
  }
  if (n === 0) throw new RangeError('no rows to evaluate');
  for (let i = 0; i < n; i++) {
    if (labels[i] !== 0 && labels[i] !== 1)
      throw new RangeError(`label ${i} must be 0 or 1, got ${labels[i]}`);
    if (Number.isNaN(scores[i])) throw new RangeError(`score ${i} is NaN`);
  }
}

/** Fraction of positive labels. */
export function baseRate(labels: ArrayLike<number>): number {
  check(labels, labels);
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i]!;
  return positives / labels.length;
}

/** Each class's scores, sorted ascending as typed arrays (a native numeric sort, no comparator calls). */
function classScores(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  n: number,
): { pos: Float64Array; neg: Float64Array } {
  check(scores, labels, n);
  let positives = 0;
  for (let i = 0; i < n; i++) positives += labels[i]!;
  const pos = new Float64Array(positives);
  const neg = new Float64Array(n - positives);
  for (let i = 0, a = 0, b = 0; i < n; i++) {
    if (labels[i]) pos[a++] = scores[i]!;
    else neg[b++] = scores[i]!;
  }
  return { pos: pos.sort(), neg: neg.sort() };
}

/**
 * Area under the ROC curve: the Mann-Whitney U statistic, ties counting one half. One merge of the sorted classes
 * counts, for each positive, the negatives below it and tied with it. U is a sum of halves, exact in a double. NaN
 * when only one class is present: AUC is undefined then. `n` evaluates the first n rows (a ring buffer's filled part).
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>, n = scores.length): number {
  return aucOf(classScores(scores, labels, n));
}

function aucOf({ pos, neg }: { pos: Float64Array; neg: Float64Array }): number {
  const positives = pos.length;
  const negatives = neg.length;
  if (positives === 0 || negatives === 0) return Number.NaN;
  let u = 0;
  let below = 0; // negatives strictly below the current positive score
  for (let i = 0; i < positives; ) {
    const v = pos[i]!;
    let k = i;
    while (k < positives && pos[k] === v) k++;
    while (below < negatives && neg[below]! < v) below++;
    let tied = below;
    while (tied < negatives && neg[tied] === v) tied++;
    u += (k - i) * (below + (tied - below) / 2);
    i = k;
  }
  return u / (positives * negatives);
}

/**
 * PR-AUC as average precision: the precision at each distinct score threshold, weighted by the recall it adds
 * (scikit-learn's definition; tied scores enter together, so the result does not depend on their order). NaN with
 * no positive; its chance level is the base rate, not 0.5.
 */
export function averagePrecision(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  n = scores.length,
): number {
  return apOf(classScores(scores, labels, n));
}

/** Thresholds from the highest score down, by one merge of the sorted classes. */
function apOf({ pos, neg }: { pos: Float64Array; neg: Float64Array }): number {
  const positives = pos.length;
  if (positives === 0) return Number.NaN;
  let ap = 0;
  let truePositives = 0;
  let above = 0; // rows scored at or above the current threshold
  let i = positives - 1;
  let j = neg.length - 1;
  while (i >= 0) {
    const v = j >= 0 && neg[j]! > pos[i]! ? neg[j]! : pos[i]!;
    let hits = 0;
    for (; i >= 0 && pos[i] === v; i--) hits++;
    for (; j >= 0 && neg[j] === v; j--) above++;
    above += hits;
    truePositives += hits;
    if (hits > 0) ap += (hits / positives) * (truePositives / above);
  }
  return ap;
}

/** ROC-AUC and average precision from one sort (live quality computes both over the same window). */
export function rankingMetrics(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  n = scores.length,
): { rocAuc: number; averagePrecision: number } {
  const classes = classScores(scores, labels, n);
  return { rocAuc: aucOf(classes), averagePrecision: apOf(classes) };
}

/** Mean squared error between probabilities and 0/1 outcomes. */
export function brierScore(probabilities: ArrayLike<number>, labels: ArrayLike<number>): number {
  check(probabilities, labels);
  let total = 0;
  for (let i = 0; i < labels.length; i++) total += (probabilities[i]! - labels[i]!) ** 2;
  return total / labels.length;
}

/** Mean negative log-likelihood; probabilities are clipped to [eps, 1-eps] so a confident miss is finite. */
export function logLoss(probabilities: ArrayLike<number>, labels: ArrayLike<number>, eps = 1e-15): number {
  check(probabilities, labels);
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(1 - eps, Math.max(eps, probabilities[i]!));
    total -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return total / labels.length;
}

/** One bin of a reliability curve: the mean probability and the observed rate of its rows. */
export interface ReliabilityBin {
  /** The bin's range of probabilities [lo, hi). */
  lo: number;
  hi: number;
  n: number;
  meanProbability: number;
  observedRate: number;
}

/**
 * Reliability curve over `bins` equal-width probability bins (the last one includes 1); empty bins are left out.
 * `n` evaluates the first n rows.
 */
export function reliabilityCurve(
  probabilities: ArrayLike<number>,
  labels: ArrayLike<number>,
  bins = 10,
  n = probabilities.length,
): ReliabilityBin[] {
  check(probabilities, labels, n);
  const count = new Float64Array(bins);
  const sumP = new Float64Array(bins);
  const sumY = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    const p = probabilities[i]!;
    const b = Math.min(bins - 1, Math.max(0, Math.floor(p * bins)));
    count[b]!++;
    sumP[b]! += p;
    sumY[b]! += labels[i]!;
  }
  const out: ReliabilityBin[] = [];
  for (let b = 0; b < bins; b++) {
    if (count[b] === 0) continue;
    out.push({
      lo: b / bins,
      hi: (b + 1) / bins,
      n: count[b]!,
      meanProbability: sumP[b]! / count[b]!,
      observedRate: sumY[b]! / count[b]!,
    });
  }
  return out;
}

/**
 * Expected calibration error: the row-weighted mean |mean probability - observed rate| over the reliability
 * curve's bins (10 equal-width bins). 0 for a perfectly calibrated model.
 */
export function calibrationError(
  probabilities: ArrayLike<number>,
  labels: ArrayLike<number>,
  bins = 10,
  n = probabilities.length,
): number {
  let total = 0;
  for (const b of reliabilityCurve(probabilities, labels, bins, n)) {
    total += b.n * Math.abs(b.meanProbability - b.observedRate);
  }
  return total / n;
}

/**
 * Brier skill score against always predicting `reference` (a base rate; by default the rows' own): 1 - Brier /
 * Brier of the reference. Positive when the model beats the no-skill forecast, NaN when the reference is exact.
 */
export function brierSkill(
  probabilities: ArrayLike<number>,
  labels: ArrayLike<number>,
  reference = baseRate(labels),
): number {
  const ref = brierScore(
    Array.from({ length: labels.length }, () => reference),
    labels,
  );
  return ref === 0 ? Number.NaN : 1 - brierScore(probabilities, labels) / ref;
}

/**
 * Balanced accuracy at a decision threshold (a probability >= it says 1): the mean of the true-positive and
 * true-negative rates, 0.5 for a constant guess. NaN with one class.
 */
export function balancedAccuracy(
  probabilities: ArrayLike<number>,
  labels: ArrayLike<number>,
  threshold = 0.5,
): number {
  check(probabilities, labels);
  let tp = 0;
  let pos = 0;
  let tn = 0;
  let neg = 0;
  for (let i = 0; i < labels.length; i++) {
    const yes = probabilities[i]! >= threshold;
    if (labels[i] === 1) {
      pos++;
      if (yes) tp++;
    } else {
      neg++;
      if (!yes) tn++;
    }
  }
  return pos === 0 || neg === 0 ? Number.NaN : (tp / pos + tn / neg) / 2;
}

/**
 * Population stability index of an observed distribution against an expected one, both as counts (or shares)
 * over the same bins: Σ (a - e) ln(a / e) over the bins' shares, each share floored at `floor` so an empty bin
 * is finite. Under 0.1: stable; 0.1-0.25: shifting; above 0.25: a different population.
 */
export function populationStability(
  expected: ArrayLike<number>,
  observed: ArrayLike<number>,
  floor = 1e-4,
): number {
  if (expected.length !== observed.length || expected.length === 0) {
    throw new RangeError(
      `PSI needs two distributions over the same bins, got ${expected.length} and ${observed.length}`,
    );
  }
  let e = 0;
  let o = 0;
  for (let i = 0; i < expected.length; i++) {
    e += expected[i]!;
    o += observed[i]!;
  }
  if (!(e > 0 && o > 0)) return Number.NaN;
  let psi = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = Math.max(floor, observed[i]! / o);
    const b = Math.max(floor, expected[i]! / e);
    psi += (a - b) * Math.log(a / b);
  }
  return psi;
}
