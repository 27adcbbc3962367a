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
import { componentLogger, type Logger } from '../../src/log.js';
import { METADATA_KEYS } from '../../src/model/contract.js';
import { baseRate, brierScore, logLoss, rocAuc } from '../../src/model/metrics.js';
import { isPublished, publishVersion } from '../../src/model/registry.js';
import type { ModelMetrics } from '../../src/model/types.js';
import { FoldError } from '../eval/folds.js';
import { type WalkForwardReport, walkForward } from '../eval/walkForward.js';
import { exportLogisticOnnx } from '../export/onnx.js';
import { registryLocation, type SplitRecord } from './candidate.js';
import { assertBothClasses, DatasetError, type Example, splitByTime } from './dataset.js';
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
  const lake = await loadLakeExamples(env, target, spec);
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
  const model = trainLogisticRegression(
    trainRows.map((e) => e.x),
    trainRows.map((e) => e.y),
    { l2: cfg.l2 },
  );
  const metrics = holdoutMetrics(cfg, trainRows, holdout, (x) => predictLogistic(model, x));
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
      from: new Date(Math.floor(trainRows[0]!.tsUs / 1000)).toISOString(),
      to: new Date(Math.floor(split.holdoutWindow.toUs / 1000)).toISOString(),
    },
    training: {
      algorithm: 'logistic regression (Newton/IRLS, standardized features)',
      l2: cfg.l2,
      durationS: (performance.now() - started) / 1000,
    },
  });

  const dir = await mkdtemp(join(tmpdir(), 'qw-train-'));
  try {
    const onnx = exportLogisticOnnx(model, spec, { target, version });
    await writeFile(
      join(dir, 'model.onnx'),
      threshold === undefined
        ? onnx
        : withOnnxMetadata(onnx, { [METADATA_KEYS.threshold]: String(threshold) }),
    );
    await writeFile(join(dir, 'feature_spec.json'), `${JSON.stringify(spec, null, 2)}\n`);
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
