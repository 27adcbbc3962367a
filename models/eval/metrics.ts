/**
 * Evaluation metrics for binary probabilistic classifiers. Labels must be 0 or 1; lengths must match.
 */

function check(scores: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (scores.length !== labels.length) {
    throw new RangeError(`got ${scores.length} scores but ${labels.length} labels`);
  }
  if (labels.length === 0) throw new RangeError('no rows to evaluate');
  for (let i = 0; i < labels.length; i++) {
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

/**
 * Area under the ROC curve via the Mann-Whitney rank statistic; tied scores share their average rank
 * (so a constant scorer gets exactly 0.5). NaN when only one class is present: AUC is undefined then.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  check(scores, labels);
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positiveRankSum = 0;
  let positives = 0;
  for (let start = 0; start < n; ) {
    let end = start;
    while (end + 1 < n && scores[order[end + 1]!] === scores[order[start]!]) end++;
    const averageRank = (start + end) / 2 + 1; // ranks are 1-based
    for (let k = start; k <= end; k++) {
      if (labels[order[k]!] === 1) {
        positiveRankSum += averageRank;
        positives++;
      }
    }
    start = end + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
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
