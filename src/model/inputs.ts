/**
 * A model's training distribution of its inputs, stored with it (metrics.json `inputs`) so serving can tell when
 * the data it scores has left the population it learnt from: per feature, the inner edges of up to INPUT_BINS
 * quantile bins of the training rows and the share of training rows in each bin. One bin rule (binOf) for
 * training and serving.
 */

export const INPUT_BINS = 10;

export interface InputDistribution {
  features: { name: string; edges: number[]; shares: number[] }[];
}

/**
 * The bin of `v`: the number of edges below it (edges ascending), so bin k is (edges[k-1], edges[k]]. The one
 * lower-bound search of sorted numbers: the trainer's tree thresholds and the walk-forward folds' times use it too.
 */
export function binOf(edges: ArrayLike<number>, v: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (edges[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The distribution of `rows` (model inputs, spec order) over quantile bins: edges at the 1/B .. (B-1)/B
 * quantiles, repeated values collapsed (a feature with few distinct values gets fewer bins).
 */
export function fitInputDistribution(
  names: readonly string[],
  rows: readonly ArrayLike<number>[],
  bins = INPUT_BINS,
): InputDistribution {
  return {
    features: names.map((name, j) => {
      const values = Float64Array.from(rows, (r) => r[j]!).sort();
      const edges: number[] = [];
      for (let k = 1; k < bins; k++) {
        const v = values[Math.min(values.length - 1, Math.floor((k * values.length) / bins))]!;
        if (Number.isFinite(v) && (edges.length === 0 || v > edges.at(-1)!)) edges.push(Math.fround(v));
      }
      const counts = new Array<number>(edges.length + 1).fill(0);
      for (const v of values) counts[binOf(edges, v)]!++;
      return { name, edges, shares: counts.map((c) => c / Math.max(1, values.length)) };
    }),
  };
}
