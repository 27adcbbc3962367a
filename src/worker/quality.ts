/**
 * Rolling live quality of the served models: each matured label is joined to the prediction made at its tick
 * (same product, same tick time), and the last `window` pairs per (target, model version) give ROC-AUC, PR-AUC,
 * Brier score and base rate. A new version starts a new window, so a drifting model shows up as its own series.
 * Continuous labels (vol_spike_60s: forward realized volatility) are made binary with the model's τ, by the
 * same strict rule as training (isSpike).
 * Published as metrics (QualityPublisher, through the telemetry kit) and in the latest snapshot.
 */
import { averagePrecision, rocAuc } from '../model/metrics.js';
import type { LatestSnapshot } from '../storage/latest.js';
import { WORKER } from '../telemetry/catalog.js';
import type { Telemetry } from '../telemetry/telemetry.js';

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
  /** Average precision (PR-AUC); NaN without a positive. Its chance level is the base rate. */
  prAuc: number;
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

export class LiveQuality {
  /** Predictions awaiting their label, per "target|product", in tick order. */
  private readonly pending = new Map<string, PendingQueue>();
  private readonly windows = new Map<
    string,
    { target: string; version: string; w: PairWindow; stats?: QualityStats }
  >();
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
    win.stats = undefined;
    return true;
  }

  /** Stats of every (target, version) window, in first-seen order (kept until the window changes). */
  stats(): QualityStats[] {
    return [...this.windows.values()].map((win) => {
      win.stats ??= this.windowStats(win.target, win.version, win.w);
      return win.stats;
    });
  }

  private windowStats(target: string, version: string, w: PairWindow): QualityStats {
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
      auc: w.n ? rocAuc(w.p, w.y, w.n) : Number.NaN,
      prAuc: w.n ? averagePrecision(w.p, w.y, w.n) : Number.NaN,
    };
  }

  /** The window of the version currently served for each target. */
  current(versions: ReadonlyMap<string, string>): QualityStats[] {
    return this.stats().filter((s) => versions.get(s.target) === s.modelVersion);
  }
}

/** The latest snapshot's `quality`: the current window per target, null where a figure is undefined. */
export function qualityRecord(stats: readonly QualityStats[]): LatestSnapshot['quality'] | undefined {
  if (stats.length === 0) return undefined;
  const finite = (v: number) => (Number.isFinite(v) ? v : null);
  return Object.fromEntries(
    stats.map((s) => [
      s.target,
      {
        modelVersion: s.modelVersion,
        n: s.n,
        auc: finite(s.auc),
        prAuc: finite(s.prAuc),
        brier: finite(s.brier),
        baseRate: finite(s.baseRate),
      },
    ]),
  );
}

/**
 * Records the quality of the served versions (LiveAUC, LivePRAUC, LiveBrier, LiveBaseRate, LiveLabels by Target and
 * ModelVersion) once every `everyMs` of event time. Undefined figures (an AUC with one class in the window) are
 * left out.
 */
/** Fewer matured labels than this say too little to alarm on. */
export const MIN_LABELS_FOR_ALARM = 200;

export class QualityPublisher {
  private nextUs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly everyMs: number,
    private readonly telemetry: Telemetry,
  ) {}

  /**
   * `tUs`: the event time reached (the newest row's tick); `floors`: per target, the low end of the served
   * model's test ROC-AUC interval (LiveAUCShortfall is how far below it the live AUC is, once enough labels).
   */
  publish(
    tUs: number,
    stats: readonly QualityStats[],
    floors: ReadonlyMap<string, number> = new Map(),
  ): void {
    if (tUs < this.nextUs) return;
    const every = this.everyMs * 1000;
    this.nextUs = Math.floor(tUs / every) * every + every;
    for (const s of stats) {
      if (s.n === 0) continue;
      const dims = { Target: s.target, ModelVersion: s.modelVersion };
      this.telemetry.gauge(WORKER.liveAuc, s.auc, dims);
      this.telemetry.gauge(WORKER.livePrAuc, s.prAuc, dims);
      this.telemetry.gauge(WORKER.liveBrier, s.brier, dims);
      this.telemetry.gauge(WORKER.liveBaseRate, s.baseRate, dims);
      this.telemetry.gauge(WORKER.liveLabels, s.n, dims);
      const floor = floors.get(s.target);
      if (floor !== undefined && s.n >= MIN_LABELS_FOR_ALARM && Number.isFinite(s.auc)) {
        this.telemetry.gauge(WORKER.liveAucShortfall, Math.max(0, floor - s.auc), { Target: s.target });
      }
    }
  }
}
