/**
 * Walk-forward evaluation of one target and feature set: the gradient-boosted trees (the candidate learner)
 * against the baselines, each trained per fold on the same rows and scored on the same test rows.
 *
 *   base_rate    always the training part's positive rate (no skill: PR-AUC = base rate, ROC-AUC = 0.5)
 *   persistence  the design's one-feature rule, calibrated by a one-feature logistic regression on the training
 *                part: −time_since_quote_change_s for quote_change_500ms, for vol_spike_60s the last 30 s's
 *                volatility over the trailing level (persistenceInput)
 *   logistic     the logistic regression on the whole feature set, its L2 penalty chosen on the validation part
 *   gbdt         histogram gradient-boosted trees, early-stopped on the validation part
 *   focused      the focused regression (models/train/focused.ts): the target's own inputs, rates and volatilities
 *                on a log scale, its L2 penalty chosen on the validation part; a target without a focus list
 *                (quote_change_500ms) has none, and this column repeats the logistic regression's
 *   chosen       the candidate: per fold, whichever of logistic, gbdt and focused does better in the main metric on
 *                the validation part (ties: the earlier), as the training job chooses (TRAIN_ALGORITHM=auto).
 *                On the simulated market neither learner is better on every fold and target, so the choice
 *                is part of the learner and is judged out of sample like the rest.
 *
 * Per fold (folds.ts): τ of vol_spike_60s per product from the training part only (targets.ts), each model
 * trained on the training part, settings chosen on the validation part, scored on the test part. The test rows of
 * all folds (each predicted by a model that never saw anything at or after its fold's embargo) are pooled; every
 * metric gets a block-bootstrap interval (bootstrap.ts; blocks ≥ the horizon) overall and per product, and the
 * chosen model's gain over each baseline in the target's main metric a paired interval.
 */
import { WINDOWS_S } from '../../src/features/seconds.js';
import { type FeatureSet, MODEL_FEATURES } from '../../src/features/spec.js';
import { VOL_SPIKE_LEVEL_FEATURE, VOL_SPIKE_TARGET, volSpikeValue } from '../../src/labels/volSpike.js';
import { DatasetError, type Example, labelsOf, modelRows, toMatrix } from '../train/dataset.js';
import { focusOf, trainFocusedRegression } from '../train/focused.js';
import { type GbdtOptions, predictGbdt, trainGbdtOnLogistic } from '../train/gbdt.js';
import { type LogisticModel, predictLogistic, trainLogisticRegression } from '../train/logreg.js';
import { binarizeByProduct, fitThresholdsByProduct, labelHorizonUs } from '../train/targets.js';
import {
  type BootstrapOptions,
  bootstrapMetrics,
  DEFAULT_BOOTSTRAP,
  HIGHER_IS_BETTER,
  type Interval,
  type MetricIntervals,
  type MetricName,
  type MetricValues,
  pairedDifferences,
  ScoredRows,
} from './bootstrap.js';
import { type FoldOptions, walkForwardFolds } from './folds.js';

export const MODELS = ['base_rate', 'persistence', 'logistic', 'gbdt', 'focused', 'chosen'] as const;
/** The learners a candidate can be: the one that does better on a fold's validation part is its `chosen`. */
export const LEARNERS = ['logistic', 'gbdt', 'focused'] as const satisfies readonly ModelName[];
export type Learner = (typeof LEARNERS)[number];
/** How a table of folds writes each fold's chosen learner: L(ogistic), T(rees), F(ocused). */
export const LEARNER_LETTER: Readonly<Record<Learner, string>> = { logistic: 'L', gbdt: 'T', focused: 'F' };
export type ModelName = (typeof MODELS)[number];
export const BASELINES = ['base_rate', 'persistence', 'logistic'] as const satisfies readonly ModelName[];
export type BaselineName = (typeof BASELINES)[number];

/** The metric a target's models are chosen and promoted on. */
export function mainMetric(target: string): MetricName {
  return target === VOL_SPIKE_TARGET ? 'prAuc' : 'logLoss';
}

/**
 * The one input the persistence baseline reads, from a row of `features`: for quote changes the time since the
 * last one (−time_since_quote_change_s after calibration); for vol spikes the last 30 s's realized volatility
 * over the trailing level, the spike value's own rule looking back (volSpikeValue(rv_30s, level)): the
 * volatility design's rule of a short window against a longer one, on the label's scale.
 */
export function persistenceInput(
  target: string,
  features: readonly string[],
): (x: readonly number[]) => number {
  const column = (name: string) => {
    const k = features.indexOf(name);
    if (k < 0)
      throw new DatasetError(`the persistence baseline of ${target} needs ${name}, not in the feature set`);
    return k;
  };
  if (target !== VOL_SPIKE_TARGET) {
    const since = column('time_since_quote_change_s');
    return (x) => x[since]!;
  }
  const short = column('rv_30s_bps');
  const level = column(VOL_SPIKE_LEVEL_FEATURE);
  return (x) => volSpikeValue(x[short]!, x[level]!);
}

/** The embargo the issue asks for: the longest feature window plus the label horizon. */
export function embargoUs(target: string, deltaMs: number): number {
  return Math.max(...WINDOWS_S) * 1e6 + labelHorizonUs(target, deltaMs);
}

export interface WalkForwardOptions {
  target: string;
  set: FeatureSet;
  deltaMs: number;
  folds: number;
  validationFraction: number;
  /** L2 penalties the logistic regression tries on the validation part. */
  l2Grid: number[];
  gbdt: Partial<GbdtOptions>;
  bootstrap: Partial<Omit<BootstrapOptions, 'blockUs'>>;
  /** Bootstrap block length; default max(label horizon, 60 s). */
  blockUs?: number;
}

export const DEFAULT_WALK_FORWARD: Omit<WalkForwardOptions, 'target' | 'set'> = {
  deltaMs: 500,
  folds: 5,
  validationFraction: 0.2,
  l2Grid: [1e-3, 1e-2, 1e-1, 1],
  gbdt: { rounds: 200, maxDepth: 6, learningRate: 0.1, minChildWeight: 5, l2: 1, earlyStoppingRounds: 20 },
  bootstrap: DEFAULT_BOOTSTRAP,
};

export interface FoldReport {
  index: number;
  rows: { train: number; validation: number; test: number };
  purged: number;
  embargoed: number;
  testWindow: { fromUs: number; toUs: number };
  positives: { train: number; validation: number; test: number };
  /** vol_spike_60s: τ per product from this fold's training part. */
  thresholds?: Record<string, number>;
  /** Test metrics of each model (point estimates). */
  metrics: Record<ModelName, MetricValues>;
  chosen: {
    learner: Learner;
    /** Each learner's main metric on the validation part, what the choice was made on. */
    validation: Record<Learner, number>;
    logisticL2: number;
    /** The focused regression's L2 penalty; undefined for a target without one. */
    focusedL2?: number;
    gbdtTrees: number;
    gbdtTreesBuilt: number;
  };
}

export interface WalkForwardReport {
  target: string;
  set: FeatureSet;
  features: string[];
  mainMetric: MetricName;
  rows: number;
  horizonUs: number;
  embargoUs: number;
  blockUs: number;
  folds: FoldReport[];
  /** Folds left out, and why (a training or validation part with one class). */
  skipped: string[];
  /** Pooled test rows of all folds. */
  test: { rows: number; positives: number; baseRate: number; blocks: number };
  overall: Record<ModelName, MetricIntervals>;
  perProduct: Record<string, Record<ModelName, MetricIntervals>>;
  /** The chosen model minus each baseline in the main metric (positive = chosen better); paired bootstrap. */
  gain: Record<BaselineName, Interval>;
  /** Total split gain of the gbdt per feature, summed over folds, largest first. */
  importance: { feature: string; gain: number }[];
}

/** The pooled out-of-sample predictions (what the promotion gate and the run report read). */
export interface TestPredictions {
  tsUs: Float64Array;
  product: string[];
  fold: Uint8Array;
  y: Uint8Array;
  p: Record<ModelName, Float64Array>;
  /** Training base rate of each row's fold: the no-skill reference and decision threshold. */
  trainRate: Float64Array;
}

const positivesOf = (rows: readonly Example[]) => rows.reduce((n, e) => n + e.y, 0);

/** Why `rows` cannot train or validate (one class only), or undefined. */
function oneClass(rows: readonly Example[], what: string): string | undefined {
  const pos = positivesOf(rows);
  return pos === 0 || pos === rows.length
    ? `${what}: all ${rows.length} labels are ${pos === 0 ? 0 : 1}; need both classes`
    : undefined;
}

function score(p: Float64Array, rows: readonly Example[], rate: number): MetricValues {
  return new ScoredRows(p, labelsOf(rows), rate, rate).metrics();
}

/** Whether `b` is better than `a` in `metric` (ties keep `a`): the learner choice here and in the training job. */
export const better = (metric: MetricName, a: number, b: number) =>
  HIGHER_IS_BETTER[metric] ? b > a : b < a;

export async function walkForward(
  examples: readonly Example[],
  options: Pick<WalkForwardOptions, 'target' | 'set'> & Partial<WalkForwardOptions>,
): Promise<{ report: WalkForwardReport; predictions: TestPredictions }> {
  const o: WalkForwardOptions = { ...DEFAULT_WALK_FORWARD, ...options };
  const metric = mainMetric(o.target);
  const features = [...MODEL_FEATURES[o.set]];
  const persistenceOf = persistenceInput(o.target, features);
  const rows = modelRows(examples, o.set);
  if (rows.length === 0) throw new DatasetError(`no complete ${o.target} rows to evaluate`);
  const horizonUs = labelHorizonUs(o.target, o.deltaMs);
  const foldOptions: FoldOptions = {
    folds: o.folds,
    horizonUs,
    embargoUs: embargoUs(o.target, o.deltaMs),
    validationFraction: o.validationFraction,
  };
  const tsUs = rows.map((e) => e.tsUs);
  const folds = walkForwardFolds(tsUs, foldOptions);
  const blockUs = o.blockUs ?? Math.max(horizonUs, 60e6);

  const pooled = {
    rows: [] as Example[],
    fold: [] as number[],
    rate: [] as number[],
    p: Object.fromEntries(MODELS.map((m) => [m, [] as number[]])) as Record<ModelName, number[]>,
  };
  const gainByFeature = new Float64Array(features.length);
  const reports: FoldReport[] = [];
  const skipped: string[] = [];
  for (const fold of folds) {
    const raw = {
      train: rows.slice(...fold.train),
      validation: rows.slice(...fold.validation),
      test: rows.slice(...fold.test),
    };
    const thresholds = fitThresholdsByProduct(o.target, raw.train);
    const train = binarizeByProduct(raw.train, thresholds);
    const validation = binarizeByProduct(raw.validation, thresholds);
    const test = binarizeByProduct(raw.test, thresholds);
    // A calm stretch can leave a part without a spike: that fold is skipped and said so, not silently bridged.
    const unusable =
      oneClass(train, `fold ${fold.index} training rows`) ??
      oneClass(validation, `fold ${fold.index} validation rows`);
    if (unusable) {
      skipped.push(unusable);
      continue;
    }
    const rate = positivesOf(train) / train.length;
    const X = train.map((e) => e.x);
    const y = train.map((e) => e.y);

    const persistence = trainLogisticRegression(
      X.map((x) => [persistenceOf(x)]),
      y,
      { l2: 0 },
    );
    // Each regression with the L2 penalty of o.l2Grid that does best in the main metric on the validation part.
    const onGrid = (trainWith: (l2: number) => LogisticModel) => {
      let best: { l2: number; value: number; model: LogisticModel } | undefined;
      for (const l2 of o.l2Grid) {
        const model = trainWith(l2);
        const pv = Float64Array.from(validation, (e) => predictLogistic(model, e.x));
        const value = score(pv, validation, rate)[metric];
        if (!best || better(metric, best.value, value)) best = { l2, value, model };
      }
      return best!;
    };
    const logistic = onGrid((l2) => trainLogisticRegression(X, y, { l2 }));
    const focus = focusOf(o.target, features);
    const focused = focus && onGrid((l2) => trainFocusedRegression(X, y, focus, { l2 }));
    const gbdt = await trainGbdtOnLogistic(logistic.model, toMatrix(train), labelsOf(train), o.gbdt, {
      x: toMatrix(validation),
      y: labelsOf(validation),
    });
    gbdt.gain.forEach((g, f) => {
      gainByFeature[f]! += g;
    });
    const onValidation: Record<Learner, number> = {
      logistic: logistic.value,
      gbdt: score(
        Float64Array.from(validation, (e) => predictGbdt(gbdt.model, e.x)),
        validation,
        rate,
      )[metric],
      focused: (focused ?? logistic).value,
    };
    const learner = LEARNERS.reduce((a, b) => (better(metric, onValidation[a], onValidation[b]) ? b : a));
    const onTest = (model: LogisticModel) => Float64Array.from(test, (e) => predictLogistic(model, e.x));
    const linear = onTest(logistic.model);
    const learnt: Record<Learner, Float64Array> = {
      logistic: linear,
      gbdt: Float64Array.from(test, (e) => predictGbdt(gbdt.model, e.x)),
      // Without a focus list the column repeats the regression's (the same scores, not scored again).
      focused: focused ? onTest(focused.model) : linear,
    };
    const p: Record<ModelName, Float64Array> = {
      base_rate: new Float64Array(test.length).fill(rate),
      persistence: Float64Array.from(test, (e) => predictLogistic(persistence, [persistenceOf(e.x)])),
      ...learnt,
      chosen: learnt[learner],
    };
    // Not push(...p[m]): a fold of a long market has more rows than a call has room for arguments.
    for (const m of MODELS) for (const v of p[m]) pooled.p[m].push(v);
    for (const e of test) {
      pooled.rows.push(e);
      pooled.fold.push(fold.index);
      pooled.rate.push(rate);
    }
    reports.push({
      index: fold.index,
      rows: { train: train.length, validation: validation.length, test: test.length },
      purged: fold.purged,
      embargoed: fold.embargoed,
      testWindow: fold.testWindow,
      positives: { train: positivesOf(train), validation: positivesOf(validation), test: positivesOf(test) },
      ...(thresholds ? { thresholds } : {}),
      metrics: Object.fromEntries(MODELS.map((m) => [m, score(p[m], test, rate)])) as Record<
        ModelName,
        MetricValues
      >,
      chosen: {
        learner,
        validation: onValidation,
        logisticL2: logistic.l2,
        ...(focused ? { focusedL2: focused.l2 } : {}),
        gbdtTrees: gbdt.model.trees.length,
        gbdtTreesBuilt: gbdt.treesBuilt,
      },
    });
  }

  if (reports.length === 0) throw new DatasetError(`no fold could be evaluated: ${skipped.join('; ')}`);
  const predictions: TestPredictions = {
    tsUs: Float64Array.from(pooled.rows, (e) => e.tsUs),
    product: pooled.rows.map((e) => e.product),
    fold: Uint8Array.from(pooled.fold),
    y: labelsOf(pooled.rows),
    p: Object.fromEntries(MODELS.map((m) => [m, Float64Array.from(pooled.p[m])])) as Record<
      ModelName,
      Float64Array
    >,
    trainRate: Float64Array.from(pooled.rate),
  };
  const bootstrap = { ...o.bootstrap, blockUs };
  const report: WalkForwardReport = {
    target: o.target,
    set: o.set,
    features,
    mainMetric: metric,
    rows: rows.length,
    horizonUs,
    embargoUs: foldOptions.embargoUs,
    blockUs,
    folds: reports,
    skipped,
    test: {
      rows: predictions.y.length,
      positives: positivesOf(pooled.rows),
      baseRate: positivesOf(pooled.rows) / pooled.rows.length,
      blocks: new Set(Array.from(predictions.tsUs, (t) => Math.floor((t - predictions.tsUs[0]!) / blockUs)))
        .size,
    },
    ...summarizePredictions(predictions, metric, bootstrap),
    importance: features
      .map((feature, f) => ({ feature, gain: gainByFeature[f]! }))
      .sort((a, b) => b.gain - a.gain),
  };
  return { report, predictions };
}

/** The pooled figures of test predictions: each model's intervals, overall and per product, and the trees' gains. */
export function summarizePredictions(
  predictions: TestPredictions,
  metric: MetricName,
  bootstrap: Partial<BootstrapOptions> & Pick<BootstrapOptions, 'blockUs'>,
): Pick<WalkForwardReport, 'overall' | 'perProduct' | 'gain'> {
  return {
    overall: intervalsOf(predictions, undefined, bootstrap),
    perProduct: Object.fromEntries(
      [...new Set(predictions.product)]
        .sort()
        .map((product) => [product, intervalsOf(predictions, product, bootstrap)]),
    ),
    gain: Object.fromEntries(
      BASELINES.map((b) => [b, mainGain(predictions, 'chosen', b, metric, bootstrap)]),
    ) as WalkForwardReport['gain'],
  };
}

/**
 * The test predictions of several markets (seeds) as one sample, for figures pooled over them: each market's
 * times are shifted to start `gapUs` after the previous one's end, so no bootstrap block holds rows of two
 * markets (they are independent) and blocks stay whole stretches of one market. Fold indexes stay per market.
 */
export function concatPredictions(list: readonly TestPredictions[], gapUs: number): TestPredictions {
  const n = list.reduce((k, p) => k + p.y.length, 0);
  const out: TestPredictions = {
    tsUs: new Float64Array(n),
    product: [],
    fold: new Uint8Array(n),
    y: new Uint8Array(n),
    p: Object.fromEntries(MODELS.map((m) => [m, new Float64Array(n)])) as Record<ModelName, Float64Array>,
    trainRate: new Float64Array(n),
  };
  let at = 0;
  let startUs = 0;
  for (const pred of list) {
    const k = pred.y.length;
    if (k === 0) continue;
    const first = pred.tsUs[0]!;
    let last = first;
    for (let i = 0; i < k; i++) {
      out.tsUs[at + i] = startUs + (pred.tsUs[i]! - first);
      if (pred.tsUs[i]! > last) last = pred.tsUs[i]!;
    }
    for (const product of pred.product) out.product.push(product);
    out.fold.set(pred.fold, at);
    out.y.set(pred.y, at);
    out.trainRate.set(pred.trainRate, at);
    for (const m of MODELS) out.p[m].set(pred.p[m], at);
    at += k;
    startUs += last - first + gapUs;
  }
  return out;
}

/** Scored rows of one model over the pooled predictions (or one product's). */
export function scoredRows(pred: TestPredictions, model: ModelName, product?: string): ScoredRows {
  const keep = pred.product.map((p) => product === undefined || p === product);
  const pick = <T extends Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
    const out = make(keep.filter(Boolean).length);
    let k = 0;
    for (let i = 0; i < a.length; i++) if (keep[i]) out[k++] = a[i]!;
    return out;
  };
  // Each row's reference is its fold's training rate; the pooled reference is their row mean.
  const rates = pick(pred.trainRate, (n) => new Float64Array(n));
  const reference = rates.reduce((s, r) => s + r, 0) / Math.max(1, rates.length);
  return new ScoredRows(
    pick(pred.p[model], (n) => new Float64Array(n)),
    pick(pred.y, (n) => new Uint8Array(n)),
    reference,
    reference,
  );
}

function productTimes(pred: TestPredictions, product?: string): Float64Array {
  return Float64Array.from(
    Array.from(pred.tsUs).filter((_, i) => product === undefined || pred.product[i] === product),
  );
}

function intervalsOf(
  pred: TestPredictions,
  product: string | undefined,
  bootstrap: Partial<BootstrapOptions> & Pick<BootstrapOptions, 'blockUs'>,
): Record<ModelName, MetricIntervals> {
  const out = bootstrapMetrics(
    MODELS.map((m) => scoredRows(pred, m, product)),
    productTimes(pred, product),
    bootstrap,
  );
  return Object.fromEntries(MODELS.map((m, k) => [m, out[k]!])) as Record<ModelName, MetricIntervals>;
}

/** `candidate` minus `reference` in `metric`, oriented so that positive means the candidate is better. */
export function mainGain(
  pred: TestPredictions,
  candidate: ModelName,
  reference: ModelName,
  metric: MetricName,
  bootstrap: Partial<BootstrapOptions> & Pick<BootstrapOptions, 'blockUs'>,
): Interval {
  const d = pairedDifferences(scoredRows(pred, candidate), scoredRows(pred, reference), pred.tsUs, bootstrap)[
    metric
  ];
  return HIGHER_IS_BETTER[metric] ? d : { value: -d.value, lo: -d.hi, hi: -d.lo };
}

/** One line per report: target, set, the chosen model's PR-AUC with its interval and learners, the best baseline, gains. */
export function formatWalkForward(reports: readonly (WalkForwardReport & { seed?: number })[]): string {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '—');
  const i = (x: Interval) => `${f(x.value)} [${f(x.lo)}, ${f(x.hi)}]`;
  const header = [
    'seed',
    'target',
    'set',
    'folds',
    'chosen PR-AUC',
    'learners',
    'best baseline PR-AUC',
    'Brier skill',
    'main gain vs each baseline (lo)',
  ];
  const rows = reports.map((r) => {
    const best = BASELINES.reduce((a, b) => (r.overall[b].prAuc.value > r.overall[a].prAuc.value ? b : a));
    return [
      r.seed === undefined ? '' : String(r.seed),
      r.target,
      r.set,
      `${r.folds.length}/${r.folds.length + r.skipped.length}`,
      i(r.overall.chosen.prAuc),
      r.folds.map((fold) => LEARNER_LETTER[fold.chosen.learner]).join(''),
      `${f(r.overall[best].prAuc.value)} (${best})`,
      f(r.overall.chosen.brierSkill.value),
      `${r.mainMetric}: ${BASELINES.map((b) => `${b} ${f(r.gain[b].lo)}`).join(', ')}`,
    ];
  });
  return textTable(header, rows);
}

/** Columns padded to their widest cell, two spaces apart: the walk-forward's printed tables. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map((row) => row[k]!.length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((c, k) => c.padEnd(widths[k]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
