/**
 * Rolling live quality of the served models: each matured label is joined to the prediction made at its tick
 * (same product, same tick time) and judged with what was stored with that prediction: for a vol spike the τ
 * the predicting model has for the product and the tick's trailing level (src/labels/volSpike.ts isSpike, the
 * training rule: forward volatility / trailing level > τ), so a hot swap never scores old predictions with a new
 * τ. A vol prediction for a product its model has no τ for cannot be judged: its label is counted (`unjudged`)
 * and left out of the figures. Windows are by EVENT time (the labels' ticks, `windowMs`, 30 min by default):
 * one per (target, model version) over all products and one per (target, model version, product). Each gives
 * ROC-AUC, PR-AUC, Brier, expected calibration error and base rate (src/model/metrics.ts, the metrics training
 * uses), shown only once the window holds `minLabels` pairs (fewer say too little: null in the snapshot, no
 * metric). A new version starts new windows, so a drifting model shows up as its own series.
 * Published as metrics (QualityPublisher, through the telemetry kit) and in the latest snapshot.
 */
import { isSpike, type SpikeJudge } from '../labels/volSpike.js';
import { brierScore, calibrationError, rankingMetrics } from '../model/metrics.js';
import { THRESHOLD_TARGETS } from '../model/types.js';
import { Queue } from '../queue.js';
import type { LatestSnapshot } from '../storage/latest.js';
import { WORKER } from '../telemetry/catalog.js';
import type { Telemetry } from '../telemetry/telemetry.js';

export interface QualityStats {
  target: string;
  modelVersion: string;
  /** Set for a product's own window; absent for the window over all products. */
  product?: string;
  /** Pairs in the window. */
  n: number;
  /** Whether n reached the minimum count: the figures below are NaN until it does. */
  enough: boolean;
  /** Fraction of positive labels. */
  baseRate: number;
  /** Mean squared error of the probability. */
  brier: number;
  /** Area under the ROC curve; NaN unless both classes are in the window. */
  auc: number;
  /** Average precision (PR-AUC); NaN without a positive. Its chance level is the base rate. */
  prAuc: number;
  /** Expected calibration error (10 bins). */
  ece: number;
  /**
   * Share of the window's matured predictions that did not abstain (src/features/lineage.ts): the figures are
   * over those only, so this says how much of the market they describe. NaN for an empty window.
   */
  coverage: number;
}

interface Pending {
  tsUs: number;
  probability: number;
  /** Its lineage said not to act on it: left out of the figures, counted in coverage. */
  abstained: boolean;
  version: string;
  /**
   * Continuous labels (vol spikes): how the label will be judged, fixed when the prediction was made (the
   * model's τ for the product and the tick's trailing level); undefined when the model has none for the product.
   */
  judge: SpikeJudge | undefined;
}

const isThresholdTarget = (target: string) => (THRESHOLD_TARGETS as readonly string[]).includes(target);

/** (probability, label) pairs of the last `windowUs` of event time, oldest first. */
class EventWindow {
  private readonly pairs = new Queue<{ tsUs: number; p: number; y: 0 | 1; abstained: boolean }>();
  private stats?: QualityStats;
  private computedAtUs = Number.NEGATIVE_INFINITY;
  newestUs = Number.NEGATIVE_INFINITY;

  constructor(
    readonly target: string,
    readonly version: string,
    readonly product: string | undefined,
  ) {}

  push(tsUs: number, p: number, y: 0 | 1, abstained: boolean, windowUs: number, maxPairs: number): void {
    this.pairs.push({ tsUs, p, y, abstained });
    if (tsUs > this.newestUs) this.newestUs = tsUs;
    let old = 0;
    while (old < this.pairs.length && this.pairs.at(old)!.tsUs <= this.newestUs - windowUs) old++;
    if (this.pairs.length - old > maxPairs) old = this.pairs.length - maxPairs;
    this.pairs.drop(old);
  }

  /** The window's figures, recomputed at most once per `everyUs` of event time (sorting 10^4 pairs is not free). */
  figures(minLabels: number, everyUs: number): QualityStats {
    if (this.stats && this.newestUs < this.computedAtUs + everyUs) return this.stats;
    this.computedAtUs = this.newestUs;
    const total = this.pairs.length;
    let n = 0;
    for (let i = 0; i < total; i++) if (!this.pairs.at(i)!.abstained) n++;
    const p = new Float64Array(n);
    const y = new Uint8Array(n);
    let positives = 0;
    for (let i = 0, k = 0; i < total; i++) {
      const pair = this.pairs.at(i)!;
      if (pair.abstained) continue;
      p[k] = pair.p;
      y[k++] = pair.y;
      positives += pair.y;
    }
    const enough = n >= minLabels && n > 0;
    const nan = Number.NaN;
    const ranking = enough ? rankingMetrics(p, y) : { rocAuc: nan, averagePrecision: nan };
    this.stats = {
      target: this.target,
      modelVersion: this.version,
      ...(this.product !== undefined ? { product: this.product } : {}),
      n,
      enough,
      baseRate: enough ? positives / n : nan,
      brier: enough ? brierScore(p, y) : nan,
      auc: ranking.rocAuc,
      prAuc: ranking.averagePrecision,
      ece: enough ? calibrationError(p, y) : nan,
      coverage: total > 0 ? n / total : nan,
    };
    return this.stats;
  }
}

export interface LiveQualityOptions {
  /** Event time a window covers (default 30 min: enough independent 60 s horizons for the vol target). */
  windowMs?: number;
  /** Fewer pairs than this in a window: its figures are not shown (default 200). */
  minLabels?: number;
  /** A window's figures are recomputed at most this often, in event time (default 5 s). */
  recomputeMs?: number;
  /** Most predictions kept waiting per target and product (labels of a target may never come). */
  maxPending?: number;
  /** Most pairs a window keeps, whatever its span. */
  maxPairs?: number;
}

export class LiveQuality {
  readonly windowUs: number;
  readonly minLabels: number;
  private readonly recomputeUs: number;
  private readonly maxPending: number;
  private readonly maxPairs: number;
  /** Predictions awaiting their label, per "target|product", in tick order. */
  private readonly pending = new Map<string, Queue<Pending>>();
  /** "target|version" (all products) and "target|version|product" windows, in first-seen order. */
  private readonly windows = new Map<string, EventWindow>();
  /** Labels that found no prediction of their tick (e.g. no model was served then). */
  unmatched = 0;
  /**
   * Vol labels whose prediction could not be judged (its model had no τ for the product), per
   * "target|version|product", since the version was first served.
   */
  private readonly unjudgedCounts = new Map<string, number>();

  constructor(opts: LiveQualityOptions = {}) {
    this.windowUs = (opts.windowMs ?? 30 * 60_000) * 1000;
    this.minLabels = opts.minLabels ?? 200;
    this.recomputeUs = (opts.recomputeMs ?? 5000) * 1000;
    this.maxPending = opts.maxPending ?? 20_000;
    this.maxPairs = opts.maxPairs ?? 200_000;
  }

  addPrediction(
    target: string,
    product: string,
    tsUs: number,
    probability: number,
    version: string,
    judge?: SpikeJudge,
    abstained = false,
  ): void {
    const key = `${target}|${product}`;
    let q = this.pending.get(key);
    if (!q) {
      q = new Queue<Pending>();
      this.pending.set(key, q);
    }
    q.push({ tsUs, probability, version, judge, abstained });
    if (q.length > this.maxPending) q.drop(q.length - this.maxPending);
  }

  /**
   * Joins a matured label to the prediction of its tick. A vol label is made 0/1 by the judge stored with that
   * prediction (isSpike); without one it cannot be judged and is counted in `unjudged`. Other labels must be 0
   * or 1. Returns whether a pair was added.
   */
  addLabel(target: string, product: string, tsUs: number, value: number): boolean {
    const q = this.pending.get(`${target}|${product}`);
    // Labels come in tick order per product: predictions older than this label will never be joined.
    let i = 0;
    while (q && i < q.length && q.at(i)!.tsUs < tsUs) i++;
    const hit = q && i < q.length && q.at(i)!.tsUs === tsUs ? q.at(i) : undefined;
    q?.drop(hit ? i + 1 : i);
    if (!hit) {
      this.unmatched++;
      return false;
    }
    let y: 0 | 1;
    if (isThresholdTarget(target)) {
      if (hit.judge === undefined) {
        const key = `${target}|${hit.version}|${product}`;
        this.unjudgedCounts.set(key, (this.unjudgedCounts.get(key) ?? 0) + 1);
        return false;
      }
      y = isSpike(value, hit.judge) ? 1 : 0;
    } else if (value === 0 || value === 1) y = value;
    else return false;
    for (const p of [undefined, product]) {
      this.window(target, hit.version, p).push(
        tsUs,
        hit.probability,
        y,
        hit.abstained,
        this.windowUs,
        this.maxPairs,
      );
    }
    return true;
  }

  private window(target: string, version: string, product: string | undefined): EventWindow {
    const id = product === undefined ? `${target}|${version}` : `${target}|${version}|${product}`;
    let w = this.windows.get(id);
    if (!w) {
      w = new EventWindow(target, version, product);
      this.windows.set(id, w);
    }
    return w;
  }

  /** Figures of every (target, version) window over all products, in first-seen order. */
  stats(): QualityStats[] {
    return [...this.windows.values()]
      .filter((w) => w.product === undefined)
      .map((w) => w.figures(this.minLabels, this.recomputeUs));
  }

  /** The all-products window of each of `versions` (the served ones). */
  current(versions: ReadonlySet<string>): QualityStats[] {
    return this.stats().filter((s) => versions.has(s.modelVersion));
  }

  /** Matured vol labels of `product` that `version` could not judge (no τ for the product). */
  unjudged(target: string, version: string, product: string): number {
    return this.unjudgedCounts.get(`${target}|${version}|${product}`) ?? 0;
  }

  /** The windows of one target and version: over all products, and of `product` (undefined when none yet). */
  of(target: string, version: string, product: string): { all?: QualityStats; product?: QualityStats } {
    const all = this.windows.get(`${target}|${version}`);
    const mine = this.windows.get(`${target}|${version}|${product}`);
    return {
      ...(all ? { all: all.figures(this.minLabels, this.recomputeUs) } : {}),
      ...(mine ? { product: mine.figures(this.minLabels, this.recomputeUs) } : {}),
    };
  }
}

const finite = (v: number) => (Number.isFinite(v) ? v : null);

type QualityFigures = Pick<QualityStats, 'n' | 'auc' | 'prAuc' | 'brier' | 'baseRate' | 'ece'>;
const figures = (s: QualityFigures) => ({
  n: s.n,
  auc: finite(s.auc),
  prAuc: finite(s.prAuc),
  brier: finite(s.brier),
  baseRate: finite(s.baseRate),
  ece: finite(s.ece),
});

/**
 * A product's latest snapshot `quality`: per target, the window over all products of the version that scored
 * the product's row, with the product's own window beside it; null where a figure is undefined or the window
 * holds fewer than the minimum count. `unjudged`: this product's matured labels the version could not judge
 * (it has no τ for the product), when there are any.
 */
export function qualityRecord(
  quality: LiveQuality,
  product: string,
  versions: ReadonlyMap<string, string>,
): LatestSnapshot['quality'] | undefined {
  const out: NonNullable<LatestSnapshot['quality']> = {};
  for (const [target, version] of versions) {
    const { all, product: mine } = quality.of(target, version, product);
    const unjudged = quality.unjudged(target, version, product);
    if (!all && unjudged === 0) continue;
    const none = { n: 0, auc: null, prAuc: null, brier: null, baseRate: null, ece: null };
    out[target] = {
      modelVersion: version,
      ...(all ? figures(all) : none),
      coverage: all ? finite(all.coverage) : null,
      windowS: quality.windowUs / 1e6,
      minLabels: quality.minLabels,
      ...(mine ? { product: figures(mine) } : {}),
      ...(unjudged > 0 ? { unjudged } : {}),
    };
  }
  return Object.keys(out).length ? out : undefined;
}

/** Fewer matured labels than this say too little to alarm on. */
export const MIN_LABELS_FOR_ALARM = 200;

/**
 * Records the quality of the served versions (LiveAUC, LivePRAUC, LiveBrier, LiveCalibrationError,
 * LiveBaseRate, LiveLabels by Target and ModelVersion) once every `everyMs` of event time. Only windows with
 * enough labels are recorded (LiveLabels always), and undefined figures (an AUC with one class) are left out.
 */
export class QualityPublisher {
  private nextUs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly everyMs: number,
    private readonly telemetry: Telemetry,
  ) {}

  /**
   * `tUs`: the event time reached (the newest row's tick); `floors`: per model version, the low end of its test
   * ROC-AUC interval (LiveAUCShortfall is how far below it the live AUC is, once enough labels); `drift`: per
   * target, the largest input PSI of its served models across products (FeatureDriftPSI).
   */
  publish(
    tUs: number,
    stats: readonly QualityStats[],
    floors: ReadonlyMap<string, number> = new Map(),
    drift: ReadonlyMap<string, number> = new Map(),
  ): void {
    if (tUs < this.nextUs) return;
    const every = this.everyMs * 1000;
    this.nextUs = Math.floor(tUs / every) * every + every;
    for (const [target, psi] of drift) this.telemetry.gauge(WORKER.featureDrift, psi, { Target: target });
    for (const s of stats) {
      if (s.n === 0) continue;
      const dims = { Target: s.target, ModelVersion: s.modelVersion };
      this.telemetry.gauge(WORKER.liveLabels, s.n, dims);
      if (!s.enough) continue;
      this.telemetry.gauge(WORKER.liveAuc, s.auc, dims);
      this.telemetry.gauge(WORKER.livePrAuc, s.prAuc, dims);
      this.telemetry.gauge(WORKER.liveBrier, s.brier, dims);
      this.telemetry.gauge(WORKER.liveCalibrationError, s.ece, dims);
      this.telemetry.gauge(WORKER.liveBaseRate, s.baseRate, dims);
      const floor = floors.get(s.modelVersion);
      if (floor !== undefined && s.n >= MIN_LABELS_FOR_ALARM && Number.isFinite(s.auc)) {
        this.telemetry.gauge(WORKER.liveAucShortfall, Math.max(0, floor - s.auc), { Target: s.target });
      }
    }
  }
}
