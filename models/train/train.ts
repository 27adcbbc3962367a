/**
 * The `train` step: the lake's labelled rows, split by time (the oldest TRAIN_FRACTION train, minus the rows
 * whose label horizon reaches the held-out part), a logistic regression, exported to ONNX and published to the
 * registry as CANDIDATE_VERSION, NOT active. metrics.json records the held-out window it left out, for evaluate.
 * vol_spike_60s: the labels are continuous; the model learns "value > τ", τ fixed from the training rows
 * (targets.ts, the baselines' rule) and stored in metrics.json `threshold` and the ONNX metadata.
 */

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
import type { ModelMetrics } from '../../src/model/types.js';
import { FoldError } from '../eval/folds.js';
import { DEFAULT_WALK_FORWARD, type WalkForwardReport, walkForward } from '../eval/walkForward.js';
import { exportLogisticOnnx, exportTreeOnnx } from '../export/onnx.js';
import { registryLocation, type SplitRecord } from './candidate.js';
import {
  assertBothClasses,
  DatasetError,
  type Example,
  inputsOf,
  modelRows,
  splitByTime,
} from './dataset.js';
import { predictGbdt, trainGbdt } from './gbdt.js';
import { loadLakeExamples } from './lakeDataset.js';
import { predictLogistic, trainLogisticRegression } from './logreg.js';
import { binarize, fitThreshold, labelHorizonUs, THRESHOLD_DEFINITION, withOnnxMetadata } from './targets.js';

type Env = Record<string, string | undefined>;

export interface TrainResult {
  version: string;
  /** False when the version was already published (a retried task): nothing was trained again. */
  published: boolean;
  metrics?: ModelMetrics;
}

export async function train(
  env: Env = process.env,
  log: Logger = componentLogger('trainer'),
): Promise<TrainResult> {
  const started = performance.now();
  const cfg = readTrainingConfig(env);
  const { tickMs, deltaMs } = readCoreConfig(env);
  registryLocation(env);
  const { target, candidateVersion: version } = cfg;
  // Versions are immutable: a retry of a finished run must not train a (slightly different) second model.
  if (await isPublished(target, version, env)) {
    log('info', 'candidate already published, not retraining', { target, version });
    return { version, published: false };
  }
  const spec = featureSpec(tickMs);
  const lake = await loadLakeExamples(env, target, spec, { keepSuspect: cfg.keepSuspect });
  if (lake.examples.length < cfg.minRows) {
    throw new DatasetError(
      `only ${lake.examples.length} labelled rows of ${target} in the lake; TRAIN_MIN_ROWS is ${cfg.minRows}`,
    );
  }
  const horizonUs = labelHorizonUs(target, deltaMs);
  const split = splitByTime(lake.examples, cfg.trainFraction, horizonUs);
  // vol_spike_60s: τ from the training rows only (the held-out ones must not shape the target), then
  // "value > τ" on both parts. Other targets pass through unchanged.
  const threshold = fitThreshold(target, split.train);
  const trainRows = binarize(split.train, threshold);
  const holdout = binarize(split.holdout, threshold);
  assertBothClasses(trainRows, 'training rows');
  assertBothClasses(holdout, 'held-out rows');
  const fitted = await fitModel(cfg, trainRows, tickMs, horizonUs, { target, version });
  const metrics = holdoutMetrics(cfg, trainRows, holdout, fitted.score);
  const splitRecord: SplitRecord = {
    trainFraction: cfg.trainFraction,
    trainRows: trainRows.length,
    purgedRows: split.purged,
    horizonUs,
    holdout: split.holdoutWindow,
  };
  Object.assign(metrics, {
    ...(threshold === undefined ? {} : { threshold, thresholdDefinition: THRESHOLD_DEFINITION }),
    trainBaseRate: baseRate(trainRows.map((e) => e.y)),
    walkForward: await walkForwardRecord(lake.examples, target, deltaMs, log),
  });
  Object.assign(metrics, {
    split: splitRecord,
    data: {
      source: 'lake',
      bucket: readResourceNames(env).lakeBucket,
      featureObjects: lake.featureObjects,
      labelObjects: lake.labelObjects,
      suspect: lake.suspect,
      from: new Date(Math.floor(trainRows[0]!.tsUs / 1000)).toISOString(),
      to: new Date(Math.floor(split.holdoutWindow.toUs / 1000)).toISOString(),
    },
    training: { ...fitted.record, durationS: (performance.now() - started) / 1000 },
  });

  const dir = await mkdtemp(join(tmpdir(), 'qw-train-'));
  try {
    const onnx = fitted.onnx;
    await writeFile(
      join(dir, 'model.onnx'),
      threshold === undefined
        ? onnx
        : withOnnxMetadata(onnx, { [METADATA_KEYS.threshold]: String(threshold) }),
    );
    await writeFile(join(dir, 'feature_spec.json'), `${JSON.stringify(fitted.spec, null, 2)}\n`);
    await writeFile(join(dir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    await publishVersion(dir, target, version, env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  log('info', 'candidate published (not active)', {
    target,
    version,
    rows: metrics.rows,
    auc: metrics.auc,
    threshold,
    holdout: splitRecord.holdout,
  });
  return { version, published: true, metrics };
}

function holdoutMetrics(
  cfg: TrainingConfig,
  trainRows: Example[],
  holdout: Example[],
  score: (x: number[]) => number,
): ModelMetrics {
  const y = holdout.map((e) => e.y);
  const p = holdout.map((e) => score(e.x));
  const trainRate = baseRate(trainRows.map((e) => e.y));
  const noSkill = y.map(() => trainRate);
  return {
    target: cfg.target,
    version: cfg.candidateVersion,
    trainedAt: new Date().toISOString(),
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
  deltaMs: number,
  log: Logger,
): Promise<WalkForwardReport | { notRun: string }> {
  try {
    return (await walkForward(examples, { target, set: 'l2', deltaMs })).report;
  } catch (err) {
    if (!(err instanceof FoldError || err instanceof DatasetError)) throw err;
    log('info', 'walk-forward evaluation skipped', { target, reason: err.message });
    return { notRun: err.message };
  }
}

interface Fitted {
  /** Probability for a lake row (the whole row; the model picks its inputs). */
  score: (x: number[]) => number;
  onnx: Uint8Array;
  /** The model's feature spec (feature_spec.json). */
  spec: FeatureSpec;
  /** metrics.json `training`. */
  record: Record<string, unknown>;
}

/** The gbdt's settings in the training job: those the walk-forward evaluates (models/eval/walkForward.ts). */
const JOB_GBDT = DEFAULT_WALK_FORWARD.gbdt;

/**
 * TRAIN_ALGORITHM=logistic: the regression on the whole row. gbdt: the trees on the l2 inputs of the complete
 * rows, early-stopped on the newest 20 % of the training rows (purged by the label horizon from the rest).
 */
async function fitModel(
  cfg: TrainingConfig,
  trainRows: Example[],
  tickMs: number,
  horizonUs: number,
  meta: { target: string; version: string },
): Promise<Fitted> {
  if (cfg.algorithm === 'logistic') {
    const model = trainLogisticRegression(
      trainRows.map((e) => e.x),
      trainRows.map((e) => e.y),
      { l2: cfg.l2 },
    );
    const spec = featureSpec(tickMs);
    return {
      score: (x) => predictLogistic(model, x),
      onnx: exportLogisticOnnx(model, spec, meta),
      spec,
      record: { algorithm: 'logistic regression (Newton/IRLS, standardized features)', l2: cfg.l2 },
    };
  }
  const spec = featureSpec(tickMs, 'l2');
  const inputs = inputsOf(spec);
  const rows = modelRows(trainRows, 'l2');
  const cut = rows[Math.floor(rows.length * 0.8)]?.tsUs ?? Number.POSITIVE_INFINITY;
  const fitPart = rows.filter((e) => e.tsUs + horizonUs < cut);
  const validation = rows.filter((e) => e.tsUs >= cut);
  assertBothClasses(fitPart, 'gbdt training rows');
  assertBothClasses(validation, 'gbdt validation rows');
  const matrix = (part: Example[]) => ({
    rows: part.length,
    features: spec.features.length,
    values: Float32Array.from(part.flatMap((e) => e.x)),
  });
  const labels = (part: Example[]) => Uint8Array.from(part, (e) => e.y);
  const result = await trainGbdt(matrix(fitPart), labels(fitPart), JOB_GBDT, {
    x: matrix(validation),
    y: labels(validation),
  });
  const names = spec.features.map((f) => f.name);
  return {
    score: (x) => predictGbdt(result.model, inputs(x)),
    onnx: exportTreeOnnx(result.model, spec, meta),
    spec,
    record: {
      algorithm:
        'histogram gradient-boosted trees (log loss), early-stopped on the newest 20% of the training rows',
      options: JOB_GBDT,
      rows: { fit: fitPart.length, validation: validation.length },
      trees: result.model.trees.length,
      treesBuilt: result.treesBuilt,
      importance: names
        .map((feature, f) => ({ feature, gain: result.gain[f]! }))
        .filter((f) => f.gain > 0)
        .sort((a, b) => b.gain - a.gain),
    },
  };
}
