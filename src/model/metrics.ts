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

/**
 * Area under the ROC curve: the Mann-Whitney U statistic, ties counting one half. Each class's scores are sorted
 * on their own as typed arrays (a native numeric sort, no comparator calls), then one merge counts, for each
 * positive, the negatives below it and tied with it. U is a sum of halves, exact in a double. NaN when only one
 * class is present: AUC is undefined then. `n` evaluates the first n rows (a ring buffer's filled part).
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>, n = scores.length): number {
  check(scores, labels, n);
  let positives = 0;
  for (let i = 0; i < n; i++) positives += labels[i]!;
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  const pos = new Float64Array(positives);
  const neg = new Float64Array(negatives);
  for (let i = 0, a = 0, b = 0; i < n; i++) {
    if (labels[i]) pos[a++] = scores[i]!;
    else neg[b++] = scores[i]!;
  }
  pos.sort();
  neg.sort();
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
  check(scores, labels, n);
  let positives = 0;
  for (let i = 0; i < n; i++) positives += labels[i]!;
  if (positives === 0) return Number.NaN;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => scores[b]! - scores[a]!);
  let ap = 0;
  let truePositives = 0;
  for (let start = 0; start < n; ) {
    let end = start;
    let hits = labels[order[start]!]!;
    while (end + 1 < n && scores[order[end + 1]!] === scores[order[start]!]) hits += labels[order[++end]!]!;
    truePositives += hits;
    ap += (hits / positives) * (truePositives / (end + 1));
    start = end + 1;
  }
  return ap;
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
