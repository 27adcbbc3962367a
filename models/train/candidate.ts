/**
 * A candidate in the model registry, as the training job's steps see it: where its files are, whether it is
 * already published, the files train leaves for evaluate (model.onnx, feature_spec.json, and the held-out window
 * and τ per product in metrics.json) and the evaluation.json evaluate leaves for promote and the state machine.
 * Publishing and activation are the registry's (src/model/registry.ts).
 */

import { QuoteWatchError } from '../../src/errors.js';
import type { FeatureSpec } from '../../src/features/types.js';
import { METADATA_KEYS } from '../../src/model/contract.js';
import { readVersionFile, s3Location, writeVersionRecord } from '../../src/model/registry.js';
import type { ModelMetrics } from '../../src/model/types.js';
import type { GateDecision } from '../eval/gate.js';
import type { WalkForwardReport } from '../eval/walkForward.js';
import { readOnnxMetadata } from '../export/onnx.js';
import type { TimeWindow } from './dataset.js';
import { isBinaryTarget } from './targets.js';

type Env = Record<string, string | undefined>;

export class TrainingJobError extends QuoteWatchError {}

/** The split a candidate was trained with, kept in its metrics.json (`split`) so evaluation scores the same rows. */
export interface SplitRecord {
  trainFraction: number;
  trainRows: number;
  /** Training rows left out because their label horizon reached the held-out part. */
  purgedRows: number;
  horizonUs: number;
  holdout: TimeWindow;
}

/** Held-out figures of one model in evaluation.json. */
export interface EvaluatedModel {
  version: string;
  auc: number;
  prAuc: number;
  brier: number;
  logLoss: number;
  calibrationError: number;
}

/** evaluation.json: what the state machine's Choice state and `promote` read (`decision.promote`). */
export interface Evaluation {
  target: string;
  candidate: EvaluatedModel;
  active: EvaluatedModel | null;
  /** The promotion rule's decision (models/eval/gate.ts) with its figures and reasons. */
  decision: GateDecision;
  /** Held-out rows both models scored. */
  rows: number;
  positives: number;
  window: TimeWindow;
  /** The feature set of the candidate: its slot is (target, featureSet). */
  featureSet: 'l2' | 'ticker';
  /** vol_spike_60s: the candidate's τ per product, which made the held-out labels 0/1 for both models. */
  thresholds?: Record<string, number>;
}

/** s3://bucket/prefix of the registry; training needs the S3 registry (a file:// MODEL_URI has no versions). */
export function registryLocation(env: Env): { bucket: string; prefix: string } {
  try {
    return s3Location(env);
  } catch (cause) {
    throw new TrainingJobError('training needs MODEL_URI=s3://<bucket>/<prefix>', { cause });
  }
}

async function readFile(env: Env, target: string, version: string, file: string): Promise<Uint8Array> {
  try {
    return await readVersionFile(target, version, file, env);
  } catch (cause) {
    throw new TrainingJobError((cause as Error).message, { cause });
  }
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw new TrainingJobError(`${what} is not valid JSON`, { cause: err });
  }
}

export interface CandidateFiles {
  onnx: Uint8Array;
  spec: FeatureSpec;
  /** The held-out window it was trained beside. */
  window: TimeWindow;
  /** Thresholded targets (vol_spike_60s): τ per product, equal in metrics.json and the ONNX metadata. */
  thresholds: Record<string, number> | undefined;
  /** Positive rate of its training rows: the no-skill forecast the gate compares a first model with. */
  trainBaseRate: number;
  trainRows: number;
  /** Seconds the train step took, when recorded. */
  trainingS: number | undefined;
  /** The walk-forward evaluation train ran on the lake (or why it did not), when recorded. */
  walkForward: WalkForwardReport | { notRun: string } | undefined;
  /** Trees: split gain per feature, largest first. */
  importance: { feature: string; gain: number }[] | undefined;
}

/** What evaluate needs of a candidate `train` published; a TrainingJobError when a file is missing or wrong. */
export async function readCandidate(env: Env, target: string, version: string): Promise<CandidateFiles> {
  const [onnx, specBytes, metricsBytes] = await Promise.all([
    readFile(env, target, version, 'model.onnx'),
    readFile(env, target, version, 'feature_spec.json'),
    readFile(env, target, version, 'metrics.json'),
  ]);
  const metrics = parseJson<
    ModelMetrics & { split?: SplitRecord; thresholds?: unknown; trainBaseRate?: unknown }
  >(metricsBytes, `${target}/${version}/metrics.json`);
  const window = metrics.split?.holdout;
  if (!window || !Number.isSafeInteger(window.fromUs) || !Number.isSafeInteger(window.toUs)) {
    throw new TrainingJobError(
      `${target}/${version}/metrics.json has no split.holdout window; was it trained by this job?`,
    );
  }
  const rate = metrics.trainBaseRate;
  if (typeof rate !== 'number' || !(rate > 0 && rate < 1)) {
    throw new TrainingJobError(
      `${target}/${version}/metrics.json has no trainBaseRate in (0, 1): ${JSON.stringify(rate)}`,
    );
  }
  return {
    onnx,
    spec: parseJson<FeatureSpec>(specBytes, `${target}/${version}/feature_spec.json`),
    window,
    trainBaseRate: rate,
    trainRows: metrics.split!.trainRows,
    trainingS: (metrics.training as { durationS?: number } | undefined)?.durationS,
    walkForward: metrics.walkForward as CandidateFiles['walkForward'],
    importance: (metrics.training as { importance?: CandidateFiles['importance'] } | undefined)?.importance,
    thresholds: candidateThresholds(target, version, metrics.thresholds, onnx),
  };
}

/** A τ map: an object of at least one product, each τ a finite number. */
function isThresholdMap(value: unknown): value is Record<string, number> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const taus = Object.values(value);
  return taus.length > 0 && taus.every((t) => typeof t === 'number' && Number.isFinite(t));
}

/**
 * τ per product of a thresholded target's candidate: metrics.json `thresholds` and the ONNX metadata
 * (METADATA_KEYS.thresholds, JSON) must both hold it, the same products with the same numbers.
 */
function candidateThresholds(
  target: string,
  version: string,
  inMetrics: unknown,
  onnx: Uint8Array,
): Record<string, number> | undefined {
  if (isBinaryTarget(target)) return undefined;
  const raw = readOnnxMetadata(onnx)[METADATA_KEYS.thresholds];
  let inOnnx: unknown;
  try {
    inOnnx = raw === undefined ? undefined : JSON.parse(raw);
  } catch {
    inOnnx = raw;
  }
  const same =
    isThresholdMap(inMetrics) &&
    isThresholdMap(inOnnx) &&
    Object.keys(inMetrics).length === Object.keys(inOnnx).length &&
    Object.entries(inMetrics).every(([product, tau]) => inOnnx[product] === tau);
  if (!same) {
    throw new TrainingJobError(
      `${target}/${version}: thresholds ${JSON.stringify(inMetrics)} in metrics.json and ` +
        `${JSON.stringify(raw)} in the ONNX metadata (${METADATA_KEYS.thresholds}) must be the same τ per product`,
    );
  }
  return inMetrics as Record<string, number>;
}

/** <prefix>/<target>/<candidate version>/evaluation.json */
export async function writeEvaluation(env: Env, evaluation: Evaluation): Promise<void> {
  const { target, candidate } = evaluation;
  await writeVersionRecord(
    target,
    candidate.version,
    'evaluation.json',
    `${JSON.stringify(evaluation, null, 2)}\n`,
    env,
  );
}

export async function readEvaluation(env: Env, target: string, version: string): Promise<Evaluation> {
  return parseJson<Evaluation>(
    await readFile(env, target, version, 'evaluation.json'),
    `${target}/${version}/evaluation.json`,
  );
}
