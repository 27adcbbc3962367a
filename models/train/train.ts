/**
 * The `train` step: the lake's complete labelled rows of the feature set TRAIN_SET (l2 or ticker, cut to the
 * set's inputs), split by time (the oldest TRAIN_FRACTION train, minus the rows whose label horizon reaches the
 * held-out part), a model (TRAIN_ALGORITHM: by default the better of the trees and the regression on validation rows),
 * exported to ONNX and published to the registry as CANDIDATE_VERSION, NOT active; its feature_spec.json names
 * the set, so promotion points the (target, set) slot at it. metrics.json records the held-out window it left
 * out, for evaluate. vol_spike_60s: y is the spike value (forward volatility over the trailing level,
 * targets.ts toSpikeValues); the model learns "spike value > τ", τ per product fixed from the training rows
 * (fitThresholdsByProduct) and stored in metrics.json `thresholds` and the ONNX metadata.
 */

import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readCoreConfig,
  readResourceNames,
  readTrainingConfig,
  type TrainingConfig,
} from '../../src/config.js';
import { featureSpec } from '../../src/features/spec.js';
import type { FeatureSpec } from '../../src/features/types.js';
import { componentLogger, type Logger } from '../../src/log.js';
import { METADATA_KEYS } from '../../src/model/contract.js';
import { baseRate, brierScore, logLoss, rocAuc } from '../../src/model/metrics.js';
import { isPublished, publishVersion } from '../../src/model/registry.js';
import type { FeatureSetName, ModelMetrics, Target } from '../../src/model/types.js';
import { ScoredRows } from '../eval/bootstrap.js';
import { FoldError } from '../eval/folds.js';
import {
  better,
  DEFAULT_WALK_FORWARD,
  type Learner,
  mainMetric,
  type WalkForwardReport,
  walkForward,
} from '../eval/walkForward.js';
import { exportLogisticOnnx, exportTreeOnnx } from '../export/onnx.js';
import { registryLocation, type SplitRecord } from './candidate.js';
import {
  assertBothClasses,
  DatasetError,
  type Example,
  labelsOf,
  modelRows,
  splitByTime,
  toMatrix,
} from './dataset.js';
import { focusOf, trainFocusedRegression } from './focused.js';
import { predictGbdt, trainGbdtOnLogistic } from './gbdt.js';
import { loadLakeExamples } from './lakeDataset.js';
import { type LogisticModel, predictLogistic, trainLogisticRegression } from './logreg.js';
import {
  binarizeByProduct,
  fitThresholdsByProduct,
  labelHorizonUs,
  THRESHOLDS_DEFINITION,
  withOnnxMetadata,
} from './targets.js';

type Env = Record<string, string | undefined>;

export interface TrainResult {
  version: string;
  /** False when the version was already published (a retried task): nothing was trained again. */
  published: boolean;
  metrics?: ModelMetrics;
}

/** What trainCandidate needs besides the rows: the training job reads it from its settings, the baselines fix it. */
export interface CandidateOptions {
  target: Target;
  set: FeatureSetName;
  /**
   * The candidate's version, or how to name it from a digest of the fitted model (the baselines: a retrained
   * model with other weights is another version, which a registry that already holds the old one accepts).
   */
  version: string | ((modelDigest: string) => string);
  algorithm: TrainingConfig['algorithm'];
  /** The logistic regression's L2 penalty. */
  l2: number;
  trainFraction: number;
  minRows: number;
  deltaMs: number;
  tickMs: number;
  /** metrics.json `trainedAt`: the job's wall clock; the baselines' data end, so a rerun is byte-identical. */
  trainedAt: string;
  /** Run the walk-forward evaluation for the record (default true). */
  walkForward?: boolean;
}

export interface Candidate {
  version: string;
  /** model.onnx, τ per product in its metadata for vol_spike_60s. */
  onnx: Uint8Array;
  spec: FeatureSpec;
  /** metrics.json, but for what only the caller knows (`data`, the duration). */
  metrics: ModelMetrics & Record<string, unknown>;
  thresholds: Record<string, number> | undefined;
  split: SplitRecord;
  trainRows: Example[];
  /** The held-out rows (the set's inputs), labelled with the candidate's τ: what its figures are of. */
  holdout: Example[];
}

/**
 * THE training of a candidate, shared by the training job (train, below: rows from the lake) and the shipped
 * baselines (models/baseline.ts: rows from the simulated market): complete rows of the set, the purged time
 * split, τ per product, the model, its held-out figures and the walk-forward record. `examples` are whole lake
 * rows in time order (vol_spike_60s: y = the spike value, targets.ts toSpikeValues).
 */
export async function trainCandidate(
  examples: readonly Example[],
  o: CandidateOptions,
  log: Logger,
): Promise<Candidate> {
  const { target, set } = o;
  // What the model learns from and is judged on: complete rows (no warm-up, no gap), the set's inputs only.
  const rows = modelRows(examples, set);
  if (rows.length < o.minRows) {
    throw new DatasetError(
      `only ${rows.length} complete labelled rows of ${target} (of ${examples.length}); ` +
        `TRAIN_MIN_ROWS is ${o.minRows}`,
    );
  }
  const horizonUs = labelHorizonUs(target, o.deltaMs);
  const split = splitByTime(rows, o.trainFraction, horizonUs);
  // vol_spike_60s: τ per product from the training rows only (the held-out ones must not shape the target),
  // then "spike value > τ" on both parts (a held-out product without τ is left out). Other targets pass
  // through unchanged.
  const thresholds = fitThresholdsByProduct(target, split.train);
  const trainRows = binarizeByProduct(split.train, thresholds);
  const holdout = binarizeByProduct(split.holdout, thresholds);
  assertBothClasses(trainRows, 'training rows');
  assertBothClasses(holdout, 'held-out rows');
  const spec = featureSpec(o.tickMs, set);
  const fitted = await fitModel(o, spec, trainRows, horizonUs, target);
  const { version } = fitted;
  const metrics: ModelMetrics & Record<string, unknown> = holdoutMetrics(
    { ...o, version },
    trainRows,
    holdout,
    fitted.score,
  );
  const splitRecord: SplitRecord = {
    trainFraction: o.trainFraction,
    trainRows: trainRows.length,
    purgedRows: split.purged,
    horizonUs,
    holdout: split.holdoutWindow,
  };
  Object.assign(metrics, {
    featureSet: set,
    ...(thresholds === undefined ? {} : { thresholds, thresholdDefinition: THRESHOLDS_DEFINITION }),
    trainBaseRate: baseRate(trainRows.map((e) => e.y)),
    ...(o.walkForward === false
      ? {}
      : { walkForward: await walkForwardRecord(examples, target, set, o.deltaMs, log) }),
    split: splitRecord,
    training: fitted.record,
  });
  const onnx =
    thresholds === undefined
      ? fitted.onnx
      : withOnnxMetadata(fitted.onnx, { [METADATA_KEYS.thresholds]: JSON.stringify(thresholds) });
  return { version, onnx, spec, metrics, thresholds, split: splitRecord, trainRows, holdout };
}

export async function train(
  env: Env = process.env,
  log: Logger = componentLogger('trainer'),
): Promise<TrainResult> {
  const started = performance.now();
  const cfg = readTrainingConfig(env);
  const { tickMs, deltaMs } = readCoreConfig(env);
  registryLocation(env);
  const { target, set, candidateVersion: version } = cfg;
  // Versions are immutable: a retry of a finished run must not train a (slightly different) second model.
  if (await isPublished(target, version, env)) {
    log('info', 'candidate already published, not retraining', { target, version });
    return { version, published: false };
  }
  const lake = await loadLakeExamples(env, target, featureSpec(tickMs), { keepSuspect: cfg.keepSuspect });
  const candidate = await trainCandidate(
    lake.examples,
    { ...cfg, version, deltaMs, tickMs, trainedAt: new Date().toISOString() },
    log,
  );
  const { metrics, thresholds, split: splitRecord, trainRows } = candidate;
  Object.assign(metrics, {
    data: {
      source: 'lake',
      bucket: readResourceNames(env).lakeBucket,
      featureObjects: lake.featureObjects,
      labelObjects: lake.labelObjects,
      suspect: lake.suspect,
      from: new Date(Math.floor(trainRows[0]!.tsUs / 1000)).toISOString(),
      to: new Date(Math.floor(splitRecord.holdout.toUs / 1000)).toISOString(),
    },
    training: { ...(metrics.training as object), durationS: (performance.now() - started) / 1000 },
  });

  const dir = await mkdtemp(join(tmpdir(), 'qw-train-'));
  try {
    await writeFile(join(dir, 'model.onnx'), candidate.onnx);
    await writeFile(join(dir, 'feature_spec.json'), `${JSON.stringify(candidate.spec, null, 2)}\n`);
    await writeFile(join(dir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    await publishVersion(dir, target, version, env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  log('info', 'candidate published (not active)', {
    target,
    set,
    version,
    rows: metrics.rows,
    auc: metrics.auc,
    thresholds,
    holdout: splitRecord.holdout,
  });
  return { version, published: true, metrics };
}

function holdoutMetrics(
  o: Pick<CandidateOptions, 'target' | 'trainedAt'> & { version: string },
  trainRows: Example[],
  holdout: Example[],
  score: (x: number[]) => number,
): ModelMetrics {
  const y = holdout.map((e) => e.y);
  const p = holdout.map((e) => score(e.x));
  const trainRate = baseRate(trainRows.map((e) => e.y));
  const noSkill = y.map(() => trainRate);
  return {
    target: o.target,
    version: o.version,
    trainedAt: o.trainedAt,
    rows: { train: trainRows.length, test: holdout.length },
    baseRate: baseRate(y),
    auc: rocAuc(p, y),
    brier: brierScore(p, y),
    logLoss: logLoss(p, y),
    reference: { brier: brierScore(noSkill, y), logLoss: logLoss(noSkill, y) },
  };
}

/**
 * The walk-forward evaluation of the lake's rows (models/eval/walkForward.ts: the trees against the baselines,
 * folds, intervals) for the run record, or why there is none: a lake too short for its folds and embargo, or
 * folds without both classes, is a reason recorded, not a failed run.
 */
async function walkForwardRecord(
  examples: readonly Example[],
  target: string,
  set: FeatureSetName,
  deltaMs: number,
  log: Logger,
): Promise<WalkForwardReport | { notRun: string }> {
  try {
    return (await walkForward(examples, { target, set, deltaMs })).report;
  } catch (err) {
    if (!(err instanceof FoldError || err instanceof DatasetError)) throw err;
    log('info', 'walk-forward evaluation skipped', { target, reason: err.message });
    return { notRun: err.message };
  }
}

interface Fitted {
  version: string;
  /** Probability for a row of the set's inputs. */
  score: (x: number[]) => number;
  onnx: Uint8Array;
  /** metrics.json `training`. */
  record: Record<string, unknown>;
}

/** The gbdt's settings in the training job: those the walk-forward evaluates (models/eval/walkForward.ts). */
const JOB_GBDT = DEFAULT_WALK_FORWARD.gbdt;

/**
 * The model on `trainRows` (complete rows cut to the inputs of `spec`'s set). The newest 20 % of the training rows
 * validate (purged by the label horizon from the rest, `fit`):
 *   gbdt      the regression on `fit` (TRAIN_L2), then trees boosted from its margin on `fit`, early-stopped on
 *             the validation rows;
 *   logistic  the regression on all the training rows, L2 penalty TRAIN_L2;
 *   auto      (default) both on `fit`, and for a target with a focus list (focused.ts) the focused regression
 *             (TRAIN_L2) too, and the one better in the target's main metric on the validation rows (ties: the
 *             regression, then the trees), as the walk-forward's `chosen` (models/eval/walkForward.ts): on the
 *             simulated market no learner wins every target and fold.
 */
async function fitModel(
  o: Pick<CandidateOptions, 'algorithm' | 'l2' | 'version'>,
  spec: FeatureSpec,
  trainRows: Example[],
  horizonUs: number,
  target: Target,
): Promise<Fitted> {
  const metaOf = (model: unknown) => {
    const version =
      typeof o.version === 'string'
        ? o.version
        : o.version(createHash('sha256').update(JSON.stringify(model)).digest('hex').slice(0, 8));
    return { target, version };
  };
  // A regression (the plain one or the focused one) as a candidate: scored, exported and recorded alike.
  const linear = (
    model: LogisticModel,
    record: Record<string, unknown>,
  ): Fitted & { model: LogisticModel } => {
    const meta = metaOf(model);
    return {
      model,
      version: meta.version,
      score: (x) => predictLogistic(model, x),
      onnx: exportLogisticOnnx(model, spec, meta),
      record,
    };
  };
  const logistic = (rows: Example[], extra: Record<string, unknown> = {}) =>
    linear(
      trainLogisticRegression(
        rows.map((e) => e.x),
        rows.map((e) => e.y),
        { l2: o.l2 },
      ),
      { algorithm: 'logistic regression (Newton/IRLS, standardized features)', l2: o.l2, ...extra },
    );
  if (o.algorithm === 'logistic') {
    const { model: _, ...fitted } = logistic(trainRows);
    return fitted;
  }
  const cut = trainRows[Math.floor(trainRows.length * 0.8)]?.tsUs ?? Number.POSITIVE_INFINITY;
  const fitPart = trainRows.filter((e) => e.tsUs + horizonUs < cut);
  const validation = trainRows.filter((e) => e.tsUs >= cut);
  assertBothClasses(fitPart, 'gbdt training rows');
  assertBothClasses(validation, 'gbdt validation rows');
  // The trees are boosted from the regression on the same rows (trainGbdtOnLogistic says why).
  const regression = logistic(fitPart, { rows: { fit: fitPart.length, validation: validation.length } });
  const result = await trainGbdtOnLogistic(regression.model, toMatrix(fitPart), labelsOf(fitPart), JOB_GBDT, {
    x: toMatrix(validation),
    y: labelsOf(validation),
  });
  const names = spec.features.map((f) => f.name);
  const meta = metaOf(result.model);
  const trees: Fitted = {
    version: meta.version,
    score: (x) => predictGbdt(result.model, x),
    onnx: exportTreeOnnx(result.model, spec, meta),
    record: {
      algorithm:
        "histogram gradient-boosted trees (log loss) on the logistic regression's margin, early-stopped on the newest 20% of the training rows",
      options: JOB_GBDT,
      l2: o.l2,
      rows: { fit: fitPart.length, validation: validation.length },
      trees: result.model.trees.length,
      treesBuilt: result.treesBuilt,
      importance: names
        .map((feature, f) => ({ feature, gain: result.gain[f]! }))
        .filter((f) => f.gain > 0)
        .sort((a, b) => b.gain - a.gain),
    },
  };
  if (o.algorithm === 'gbdt') return trees;
  const metric = mainMetric(target);
  const y = labelsOf(validation);
  const rate = baseRate(fitPart.map((e) => e.y));
  const on = (f: Fitted) =>
    new ScoredRows(
      Float64Array.from(validation, (e) => f.score(e.x)),
      y,
      rate,
      rate,
    ).metrics()[metric];
  const { model: _, ...plain } = regression;
  const fitted: Partial<Record<Learner, Fitted>> = { logistic: plain, gbdt: trees };
  const focus = focusOf(target, names);
  if (focus) {
    const { model: __, ...focused } = linear(
      trainFocusedRegression(
        fitPart.map((e) => e.x),
        fitPart.map((e) => e.y),
        focus,
        { l2: o.l2 },
      ),
      {
        algorithm:
          "focused logistic regression (the target's own inputs, rates and volatilities on a log scale; Newton/IRLS, standardized)",
        l2: o.l2,
        inputs: focus.map((j) => names[j]!),
        rows: { fit: fitPart.length, validation: validation.length },
      },
    );
    fitted.focused = focused;
  }
  const onValidation = Object.fromEntries(
    Object.entries(fitted).map(([learner, f]) => [learner, on(f)]),
  ) as Partial<Record<Learner, number>>;
  const learner = (Object.keys(fitted) as Learner[]).reduce((a, b) =>
    better(metric, onValidation[a]!, onValidation[b]!) ? b : a,
  );
  const chosen = fitted[learner]!;
  return {
    ...chosen,
    record: { ...chosen.record, choice: { learner, metric, validation: onValidation } },
  };
}
