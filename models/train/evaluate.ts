/**
 * The `evaluate` step: the held-out window the candidate was trained beside (its complete rows, as train chose
 * them), scored with the candidate and with the active model of the candidate's slot (its target and feature
 * set), and the promotion gate's decision on those rows cut into PROMOTE_FOLDS consecutive time folds
 * (models/eval/gate.ts, PROMOTE_* settings), written to <prefix>/<target>/<version>/evaluation.json
 * (candidate.ts `Evaluation`) for promote and the state machine's Choice state.
 */
import { readCoreConfig, readPromotionConfig, readTrainingConfig } from '../../src/config.js';
import { featureSpec } from '../../src/features/spec.js';
import { componentLogger, type Logger } from '../../src/log.js';
import { activeVersion } from '../../src/model/registry.js';
import { loadModel } from '../../src/model/runtime.js';
import { loadActive } from '../../src/model/source.js';
import type { LoadedModel } from '../../src/model/types.js';
import { ScoredRows } from '../eval/bootstrap.js';
import { decidePromotion, timeFolds } from '../eval/gate.js';
import { curvesOf, gitSha, specHash, writeRunRecord } from '../eval/runRecord.js';
import { mainMetric } from '../eval/walkForward.js';
import { type EvaluatedModel, type Evaluation, readCandidate, writeEvaluation } from './candidate.js';
import {
  assertBothClasses,
  completeRows,
  DatasetError,
  type Example,
  inputsOf,
  labelsOf,
  selectWindow,
} from './dataset.js';
import { loadLakeExamples } from './lakeDataset.js';
import { binarizeByProduct, labelHorizonUs } from './targets.js';

type Env = Record<string, string | undefined>;

async function probabilities(model: LoadedModel, rows: Example[]): Promise<Float64Array> {
  // Each model reads its own inputs of the row (a feature set's columns, or the whole row).
  const inputs = inputsOf(model.spec);
  const width = model.spec.features.length;
  const packed = new Float32Array(rows.length * width);
  rows.forEach((e, i) => {
    packed.set(inputs(e.x), i * width);
  });
  return Float64Array.from(await model.predict(packed, rows.length));
}

function figures(version: string, p: Float64Array, y: Uint8Array, trainRate: number): EvaluatedModel {
  const m = new ScoredRows(p, y, trainRate, trainRate).metrics();
  return {
    version,
    auc: m.rocAuc,
    prAuc: m.prAuc,
    brier: m.brier,
    logLoss: m.logLoss,
    calibrationError: m.calibrationError,
  };
}

export async function evaluate(
  env: Env = process.env,
  log: Logger = componentLogger('trainer'),
): Promise<Evaluation> {
  const { target, candidateVersion: version } = readTrainingConfig(env);
  const { tickMs, deltaMs } = readCoreConfig(env);
  const promotion = readPromotionConfig(env);
  const candidateFiles = await readCandidate(env, target, version);
  // The slot the candidate is for: the feature set it was trained on (its feature_spec.json).
  const set = candidateFiles.spec.set ?? 'l2';
  const lake = await loadLakeExamples(env, target, featureSpec(tickMs));
  // The CANDIDATE's τ per product labels the held-out rows for both models: AUC only compares two models on the
  // same 0/1 labels, and the question the promotion answers is "which model ranks the spikes better that we
  // would alarm on after promoting", i.e. spikes by the candidate's τ (fixed from its training rows, before
  // these). Each model's own τ would give each its own labels, and AUCs on different labels do not compare.
  // Rows of a product the candidate has no τ for are left out, as train left them out.
  const rows = binarizeByProduct(
    completeRows(selectWindow(lake.examples, candidateFiles.window), set),
    candidateFiles.thresholds,
  );
  if (rows.length === 0) {
    throw new DatasetError(
      `no labelled rows of ${target} in the held-out window ${JSON.stringify(candidateFiles.window)} ` +
        `of ${version}; was the lake emptied since training?`,
    );
  }
  assertBothClasses(rows, 'held-out rows');

  const models: LoadedModel[] = [];
  try {
    const candidate = await loadModel(candidateFiles.onnx, candidateFiles.spec, { target, version });
    models.push(candidate);
    // Loaded with the code's tick: an active model on other features cannot be compared (nor served).
    const active = (await activeVersion(target, env, set))
      ? await loadActive(target, env, { tickMs, set })
      : undefined;
    if (active) models.push(active);
    const y = labelsOf(rows);
    const trainRate = candidateFiles.trainBaseRate;
    const pCandidate = await probabilities(candidate, rows);
    const pActive = active ? await probabilities(active, rows) : undefined;
    // The held-out window cut into PROMOTE_FOLDS consecutive time folds, each checked by the gate
    // (models/eval/gate.ts): spikes all in one stretch of the window do not make a decision.
    const tsUs = Float64Array.from(rows, (e) => e.tsUs);
    const decision = decidePromotion(
      {
        target,
        mainMetric: mainMetric(target),
        horizonUs: labelHorizonUs(target, deltaMs),
        tsUs,
        fold: timeFolds(tsUs, promotion.folds),
        folds: promotion.folds,
        y,
        candidate: pCandidate,
        ...(pActive ? { active: pActive } : {}),
        trainRate,
      },
      promotion,
    );
    const evaluation: Evaluation = {
      target,
      candidate: figures(version, pCandidate, y, trainRate),
      active: active && pActive ? figures(active.version, pActive, y, trainRate) : null,
      decision,
      rows: rows.length,
      positives: rows.reduce((n, e) => n + e.y, 0),
      window: candidateFiles.window,
      featureSet: set,
      ...(candidateFiles.thresholds === undefined ? {} : { thresholds: candidateFiles.thresholds }),
    };
    await writeEvaluation(env, evaluation);
    await writeRunRecord(
      {
        target,
        version,
        status: decision.promote ? 'passed' : 'rejected',
        recordedAt: new Date().toISOString(),
        gitSha: gitSha(),
        featureSpecHash: specHash(candidateFiles.spec),
        parameters: { training: readTrainingConfig(env), promotion: decision.config },
        data: {
          window: candidateFiles.window,
          rows: { train: candidateFiles.trainRows, test: rows.length },
          positives: evaluation.positives,
          ...(candidateFiles.thresholds === undefined ? {} : { thresholds: candidateFiles.thresholds }),
        },
        ...(candidateFiles.trainingS === undefined ? {} : { trainingS: candidateFiles.trainingS }),
        ...(candidateFiles.walkForward === undefined ? {} : { walkForward: candidateFiles.walkForward }),
        ...(candidateFiles.importance === undefined ? {} : { importance: candidateFiles.importance }),
        candidate: evaluation.candidate,
        active: evaluation.active,
        decision,
        curves: {
          candidate: curvesOf(pCandidate, y),
          ...(pActive ? { active: curvesOf(pActive, y) } : {}),
        },
      },
      env,
    );
    log('info', 'candidate evaluated', { ...evaluation });
    return evaluation;
  } finally {
    await Promise.all(models.map((m) => m.release()));
  }
}
