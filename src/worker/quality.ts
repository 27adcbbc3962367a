/**
 * Rolling live quality of the served models: each matured label is joined to the prediction made at its tick
 * (same product, same tick time), and the last `window` pairs per (target, model version) give AUC, Brier
 * score and base rate. A new version starts a new window, so a drifting model shows up as its own series.
 * Continuous labels (vol_spike_60s: forward realized volatility) are made binary with the model's τ, by the
 * same strict rule as training (isSpike).
 * Published as CloudWatch Embedded Metric Format log lines and in the latest snapshot.
 */

export interface QualityStats {
  target: string;
  modelVersion: string;
  /** Pairs in the window. */
  n: number;
  /** Fraction of positive labels; NaN when n = 0. */
  baseRate: number;
  /** Mean squared error of the probability; NaN when n = 0. */
  brier: number;
  /** Area under the ROC curve; NaN unless both classes are in the window. */
  auc: number;
}

interface Pending {
  tsUs: number;
  probability: number;
  version: string;
}

/**
 * Predictions of one (target, product) awaiting labels, oldest first. Consumed from the head by an index
 * (compacted now and then) rather than shifted on every label: a 60 s horizon keeps ~600 ticks waiting.
 */
class PendingQueue {
  items: Pending[] = [];
  head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  at(i: number): Pending | undefined {
    return this.items[this.head + i];
  }

  push(p: Pending): void {
    this.items.push(p);
  }

  drop(n: number): void {
    this.head += n;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * A vol spike is a value strictly above τ, as training defines it (models/baseline.ts: `y > threshold`):
 * a label equal to τ is negative, live as in training.
 */
export function isSpike(value: number, tau: number): boolean {
  return value > tau;
}

/** Fixed-size ring of (probability, label) pairs. */
class PairWindow {
  readonly p: Float64Array;
  readonly y: Uint8Array;
  n = 0;
  private next = 0;

  constructor(size: number) {
    this.p = new Float64Array(size);
    this.y = new Uint8Array(size);
  }

  push(p: number, y: 0 | 1): void {
    this.p[this.next] = p;
    this.y[this.next] = y;
    this.next = (this.next + 1) % this.p.length;
    if (this.n < this.p.length) this.n++;
  }
}

/** AUC by the rank-sum (Mann-Whitney) formula, ties given their average rank. */
export function auc(p: ArrayLike<number>, y: ArrayLike<number>, n = p.length): number {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[a]! - p[b]!);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && p[order[j + 1]!] === p[order[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (y[order[k]!]) {
        positives++;
        rankSum += rank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

export class LiveQuality {
  /** Predictions awaiting their label, per "target|product", in tick order. */
  private readonly pending = new Map<string, PendingQueue>();
  private readonly windows = new Map<string, { target: string; version: string; w: PairWindow }>();
  /** Labels that found no prediction of their tick (e.g. no model was served then). */
  unmatched = 0;

  constructor(
    private readonly window = 2000,
    /** Most predictions kept waiting per target and product (labels of a target may never come). */
    private readonly maxPending = 20_000,
  ) {}

  addPrediction(target: string, product: string, tsUs: number, probability: number, version: string): void {
    const key = `${target}|${product}`;
    let q = this.pending.get(key);
    if (!q) {
      q = new PendingQueue();
      this.pending.set(key, q);
    }
    q.push({ tsUs, probability, version });
    if (q.length > this.maxPending) q.drop(q.length - this.maxPending);
  }

  /**
   * Joins a matured label to the prediction of its tick. `threshold` turns a continuous label into 0/1
   * (isSpike: value > τ); without one the value must already be 0 or 1. Returns whether a pair was added.
   */
  addLabel(target: string, product: string, tsUs: number, value: number, threshold?: number): boolean {
    const q = this.pending.get(`${target}|${product}`);
    // Labels come in tick order per product: predictions older than this label will never be joined.
    let i = 0;
    while (q && i < q.length && q.at(i)!.tsUs < tsUs) i++;
    const hit = q && i < q.length && q.at(i)!.tsUs === tsUs ? q.at(i) : undefined;
    q?.drop(hit ? i + 1 : i);
    let y: 0 | 1;
    if (threshold !== undefined) y = isSpike(value, threshold) ? 1 : 0;
    else if (value === 0 || value === 1) y = value;
    else return false; // continuous label and no τ: cannot be scored
    if (!hit) {
      this.unmatched++;
      return false;
    }
    const id = `${target}|${hit.version}`;
    let win = this.windows.get(id);
    if (!win) {
      win = { target, version: hit.version, w: new PairWindow(this.window) };
      this.windows.set(id, win);
    }
    win.w.push(hit.probability, y);
    return true;
  }

  /** Stats of every (target, version) window, in first-seen order. */
  stats(): QualityStats[] {
    return [...this.windows.values()].map(({ target, version, w }) => {
      let positives = 0;
      let sq = 0;
      for (let i = 0; i < w.n; i++) {
        positives += w.y[i]!;
        sq += (w.p[i]! - w.y[i]!) ** 2;
      }
      return {
        target,
        modelVersion: version,
        n: w.n,
        baseRate: w.n ? positives / w.n : Number.NaN,
        brier: w.n ? sq / w.n : Number.NaN,
        auc: auc(w.p, w.y, w.n),
      };
    });
  }

  /** The window of the version currently served for each target. */
  current(versions: ReadonlyMap<string, string>): QualityStats[] {
    return this.stats().filter((s) => versions.get(s.target) === s.modelVersion);
  }
}

/**
 * One CloudWatch Embedded Metric Format line (namespace QuoteWatch, dimensions Target x ModelVersion):
 * CloudWatch Logs extracts LiveAUC / LiveBrier / LiveBaseRate / LiveLabels from it. Non-finite values are
 * left out (JSON has no NaN, and an AUC with one class in the window is undefined).
 */
export function qualityEmf(s: QualityStats, timestampMs: number): Record<string, unknown> {
  const values: Record<string, number> = {
    LiveAUC: s.auc,
    LiveBrier: s.brier,
    LiveBaseRate: s.baseRate,
    LiveLabels: s.n,
  };
  const metrics = Object.entries(values)
    .filter(([, v]) => Number.isFinite(v))
    .map(([name]) => ({ Name: name, Unit: name === 'LiveLabels' ? 'Count' : 'None' }));
  return {
    level: 'info',
    msg: 'live quality',
    _aws: {
      Timestamp: timestampMs,
      CloudWatchMetrics: [
        { Namespace: 'QuoteWatch', Dimensions: [['Target', 'ModelVersion']], Metrics: metrics },
      ],
    },
    Target: s.target,
    ModelVersion: s.modelVersion,
    ...Object.fromEntries(Object.entries(values).filter(([, v]) => Number.isFinite(v))),
  };
}
