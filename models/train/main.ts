/**
 * The training job: `node --import tsx models/train/main.ts <train|evaluate|promote>` locally, `node
 * dist/train.mjs <train|evaluate>` in the worker image, run by the training state machine (lib/training-pipeline.ts).
 *
 *   train     reads the lake's features/ and labels/ Parquet zones, joins them on (product, tick), trains a
 *             logistic regression on the oldest TRAIN_FRACTION of the rows (minus those whose label horizon
 *             reaches the held-out part) and publishes it to the registry as CANDIDATE_VERSION, NOT active.
 *             metrics.json records the held-out window it left out. vol_spike_60s: the labels are continuous;
 *             the model learns "value > τ", τ fixed from the training rows (targets.ts, the baselines' rule)
 *             and stored in metrics.json `threshold` and the ONNX metadata THRESHOLD_METADATA_KEY.
 *   evaluate  scores that held-out window with the candidate and with the active model and writes
 *             <prefix>/<target>/<version>/evaluation.json = {"target","candidate":{"version","auc"},
 *             "active":{"version","auc"}|null,"rows","positives","window":{fromUs,toUs},"threshold"?}
 *   promote   activates the candidate only if its AUC beats the active one's (or none is active), as a
 *             compare-and-set on the active version it was evaluated against. Deployed, the state machine
 *             does this step itself with the same rule.
 *
 * Settings: readTrainingConfig (TARGET, CANDIDATE_VERSION, TRAIN_FRACTION, TRAIN_L2, TRAIN_MIN_ROWS),
 * readCoreConfig (MODEL_URI, TICK_MS), readResourceNames (LAKE_BUCKET, REGISTRY_TABLE).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoClient, s3Client } from '../../src/aws/clients.js';
import {
  orExit,
  readCoreConfig,
  readResourceNames,
  readTrainingConfig,
  type TrainingConfig,
} from '../../src/config.js';
import { featureSpec } from '../../src/features/spec.js';
import type { FeatureRow, FeatureSpec, LabelRow } from '../../src/features/types.js';
import { THRESHOLD_METADATA_KEY } from '../../src/labels/volSpike.js';
import {
  activate,
  activeVersion,
  loadActive,
  parseModelUri,
  publishVersion,
} from '../../src/model/registry.js';
import { loadModel } from '../../src/model/runtime.js';
import type { LoadedModel, ModelMetrics } from '../../src/model/types.js';
import { decodeFeatureRows, decodeLabelRows } from '../../src/storage/parquet.js';
import { baseRate, brierScore, logLoss, rocAuc } from '../eval/metrics.js';
import { exportLogisticOnnx, readOnnxMetadata } from '../export/onnx.js';
import {
  assertBothClasses,
  checkSpecs,
  DatasetError,
  type Example,
  joinLabels,
  selectWindow,
  splitByTime,
  type TimeWindow,
} from './dataset.js';
import { predictLogistic, trainLogisticRegression } from './logreg.js';
import {
  binarize,
  fitThreshold,
  isBinaryTarget,
  labelHorizonUs,
  THRESHOLD_DEFINITION,
  withOnnxMetadata,
} from './targets.js';

type Env = Record<string, string | undefined>;

export class TrainingJobError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrainingJobError';
  }
}

export const COMMANDS = ['train', 'evaluate', 'promote'] as const;
export type Command = (typeof COMMANDS)[number];

/** evaluation.json: what the state machine's Choice state and `promote` read. */
export interface Evaluation {
  target: string;
  candidate: { version: string; auc: number };
  active: { version: string; auc: number } | null;
  /** Held-out rows both models scored. */
  rows: number;
  positives: number;
  window: TimeWindow;
  /** vol_spike_60s: the candidate's τ, which made the held-out labels 0/1 for both models. */
  threshold?: number;
}

/** The split a candidate was trained with, kept in its metrics.json so evaluation scores the same rows. */
interface SplitRecord {
  trainFraction: number;
  trainRows: number;
  /** Training rows left out because their label horizon reached the held-out part. */
  purgedRows: number;
  horizonUs: number;
  holdout: TimeWindow;
}

type Log = (level: 'info' | 'error', msg: string, fields?: Record<string, unknown>) => void;
const jsonLog: Log = (level, msg, fields = {}) => console.log(JSON.stringify({ level, msg, ...fields }));

/** s3://bucket/prefix of the registry; training needs the S3 registry (a file:// MODEL_URI has no versions). */
function registryLocation(env: Env): { bucket: string; prefix: string } {
  const location = parseModelUri(readCoreConfig(env).modelUri);
  if (location.kind !== 's3') throw new TrainingJobError('training needs MODEL_URI=s3://<bucket>/<prefix>');
  return location;
}

const versionKey = (prefix: string, target: string, version: string, file: string) =>
  [prefix, target, version, file].filter(Boolean).join('/');

async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    // No delimiter: s3rver leaves sub-folder prefixes out of delimited listings.
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) if (o.Key?.endsWith('.parquet')) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

async function getBytes(s3: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await res.Body!.transformToByteArray();
  } catch (err) {
    throw new TrainingJobError(`cannot read s3://${bucket}/${key}`, { cause: err });
  }
}

/** Runs `fn` over `items` with at most `limit` in flight, results in input order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

/** Every labelled example of `target` in the lake, in time order, with features checked against `spec`. */
export async function loadLakeExamples(
  env: Env,
  target: string,
  spec: FeatureSpec,
): Promise<{ examples: Example[]; featureObjects: number; labelObjects: number }> {
  const bucket = readResourceNames(env).lakeBucket;
  const s3 = s3Client(env);
  const [featureKeys, labelKeys] = await Promise.all([
    listKeys(s3, bucket, 'features/'),
    listKeys(s3, bucket, 'labels/'),
  ]);
  if (featureKeys.length === 0 || labelKeys.length === 0) {
    throw new DatasetError(
      `s3://${bucket} has ${featureKeys.length} features/ and ${labelKeys.length} labels/ objects; ` +
        'the worker writes them, nothing to train on yet',
    );
  }
  const decodeOrExplain = async <T>(key: string, decode: (b: Uint8Array) => Promise<T>): Promise<T> => {
    const bytes = await getBytes(s3, bucket, key);
    try {
      return await decode(bytes);
    } catch (err) {
      throw new DatasetError(`s3://${bucket}/${key}: ${(err as Error).message}`, { cause: err });
    }
  };
  const featureFiles = await mapLimited(featureKeys, 8, async (key) => ({
    key,
    ...(await decodeOrExplain(key, decodeFeatureRows)),
  }));
  const labelFiles = await mapLimited(labelKeys, 8, (key) => decodeOrExplain(key, decodeLabelRows));
  checkSpecs(featureFiles, spec);
  const features: FeatureRow[] = featureFiles.flatMap((f) => f.rows);
  const labels: LabelRow[] = labelFiles.flat();
  return {
    examples: joinLabels(features, labels, target),
    featureObjects: featureKeys.length,
    labelObjects: labelKeys.length,
  };
}

async function isPublished(env: Env, target: string, version: string): Promise<boolean> {
  const res = await dynamoClient(env).send(
    new GetCommand({
      TableName: readResourceNames(env).registryTable,
      Key: { pk: target, sk: `v#${version}` },
      ConsistentRead: true,
    }),
  );
  return res.Item !== undefined;
}

export interface TrainResult {
  version: string;
  /** False when the version was already published (a retried task): nothing was trained again. */
  published: boolean;
  metrics?: ModelMetrics;
}

export async function train(env: Env = process.env, log: Log = jsonLog): Promise<TrainResult> {
  const cfg = readTrainingConfig(env);
  const { tickMs, deltaMs } = readCoreConfig(env);
  registryLocation(env);
  const { target, candidateVersion: version } = cfg;
  // Versions are immutable: a retry of a finished run must not train a (slightly different) second model.
  if (await isPublished(env, target, version)) {
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
  if (threshold !== undefined) {
    Object.assign(metrics, {
      threshold,
      thresholdDefinition: THRESHOLD_DEFINITION,
      trainBaseRate: baseRate(trainRows.map((e) => e.y)),
    });
  }
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
    training: { algorithm: 'logistic regression (Newton/IRLS, standardized features)', l2: cfg.l2 },
  });

  const dir = await mkdtemp(join(tmpdir(), 'qw-train-'));
  try {
    const onnx = exportLogisticOnnx(model, spec, { target, version });
    await writeFile(
      join(dir, 'model.onnx'),
      threshold === undefined
        ? onnx
        : withOnnxMetadata(onnx, { [THRESHOLD_METADATA_KEY]: String(threshold) }),
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

async function readCandidate(env: Env, target: string, version: string) {
  const { bucket, prefix } = registryLocation(env);
  const s3 = s3Client(env);
  const read = (file: string) => getBytes(s3, bucket, versionKey(prefix, target, version, file));
  const parse = <T>(bytes: Uint8Array, file: string): T => {
    try {
      return JSON.parse(new TextDecoder().decode(bytes)) as T;
    } catch (err) {
      throw new TrainingJobError(`${target}/${version}/${file} is not valid JSON`, { cause: err });
    }
  };
  const [onnx, specBytes, metricsBytes] = await Promise.all([
    read('model.onnx'),
    read('feature_spec.json'),
    read('metrics.json'),
  ]);
  const metrics = parse<ModelMetrics & { split?: SplitRecord; threshold?: unknown }>(
    metricsBytes,
    'metrics.json',
  );
  const window = metrics.split?.holdout;
  if (!window || !Number.isSafeInteger(window.fromUs) || !Number.isSafeInteger(window.toUs)) {
    throw new TrainingJobError(
      `${target}/${version}/metrics.json has no split.holdout window; was it trained by this job?`,
    );
  }
  return {
    onnx,
    spec: parse<FeatureSpec>(specBytes, 'feature_spec.json'),
    window,
    threshold: candidateThreshold(target, version, metrics.threshold, onnx),
  };
}

/** τ of a thresholded target's candidate: metrics.json and the ONNX metadata must both hold it, equal. */
function candidateThreshold(
  target: string,
  version: string,
  inMetrics: unknown,
  onnx: Uint8Array,
): number | undefined {
  if (isBinaryTarget(target)) return undefined;
  const inOnnx = readOnnxMetadata(onnx)[THRESHOLD_METADATA_KEY];
  if (typeof inMetrics !== 'number' || !Number.isFinite(inMetrics) || inOnnx !== String(inMetrics)) {
    throw new TrainingJobError(
      `${target}/${version}: threshold ${JSON.stringify(inMetrics)} in metrics.json and ` +
        `${JSON.stringify(inOnnx)} in the ONNX metadata (${THRESHOLD_METADATA_KEY}) must be the same number`,
    );
  }
  return inMetrics;
}

async function aucOf(model: LoadedModel, rows: Example[]): Promise<number> {
  const width = model.spec.features.length;
  const packed = new Float32Array(rows.length * width);
  rows.forEach((e, i) => {
    packed.set(e.x, i * width);
  });
  const p = await model.predict(packed, rows.length);
  return rocAuc(
    p,
    rows.map((e) => e.y),
  );
}

export async function evaluate(env: Env = process.env, log: Log = jsonLog): Promise<Evaluation> {
  const { target, candidateVersion: version } = readTrainingConfig(env);
  const { tickMs } = readCoreConfig(env);
  const { bucket, prefix } = registryLocation(env);
  const candidateFiles = await readCandidate(env, target, version);
  const lake = await loadLakeExamples(env, target, featureSpec(tickMs));
  // The CANDIDATE's τ labels the held-out rows for both models: AUC only compares two models on the same 0/1
  // labels, and the question the promotion answers is "which model ranks the spikes better that we would
  // alarm on after promoting", i.e. spikes by the candidate's τ (fixed from its training rows, before these).
  // Each model's own τ would give each its own labels, and AUCs on different labels do not compare.
  const rows = binarize(selectWindow(lake.examples, candidateFiles.window), candidateFiles.threshold);
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
    const active = (await activeVersion(target, env)) ? await loadActive(target, env, { tickMs }) : undefined;
    if (active) models.push(active);
    const evaluation: Evaluation = {
      target,
      candidate: { version, auc: await aucOf(candidate, rows) },
      active: active ? { version: active.version, auc: await aucOf(active, rows) } : null,
      rows: rows.length,
      positives: rows.reduce((n, e) => n + e.y, 0),
      window: candidateFiles.window,
      ...(candidateFiles.threshold === undefined ? {} : { threshold: candidateFiles.threshold }),
    };
    await s3Client(env).send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: versionKey(prefix, target, version, 'evaluation.json'),
        Body: `${JSON.stringify(evaluation, null, 2)}\n`,
        ContentType: 'application/json',
      }),
    );
    log('info', 'candidate evaluated', { ...evaluation });
    return evaluation;
  } finally {
    await Promise.all(models.map((m) => m.release()));
  }
}

/** The promotion rule (the state machine's Choice state applies the same one): strictly better AUC, or no active. */
export function shouldPromote(evaluation: Pick<Evaluation, 'candidate' | 'active'>): boolean {
  return evaluation.active === null || evaluation.candidate.auc > evaluation.active.auc;
}

export interface PromoteResult {
  promoted: boolean;
  version: string;
  /** The active version after this step. */
  active: string | undefined;
}

export async function promote(env: Env = process.env, log: Log = jsonLog): Promise<PromoteResult> {
  const { target, candidateVersion: version } = readTrainingConfig(env);
  const { bucket, prefix } = registryLocation(env);
  const bytes = await getBytes(s3Client(env), bucket, versionKey(prefix, target, version, 'evaluation.json'));
  let evaluation: Evaluation;
  try {
    evaluation = JSON.parse(new TextDecoder().decode(bytes)) as Evaluation;
  } catch (err) {
    throw new TrainingJobError(`${target}/${version}/evaluation.json is not valid JSON`, { cause: err });
  }
  if (!shouldPromote(evaluation)) {
    log('info', 'candidate kept inactive: not better than the active model', {
      target,
      version,
      candidateAuc: evaluation.candidate.auc,
      active: evaluation.active,
    });
    return { promoted: false, version, active: evaluation.active?.version };
  }
  // Compare-and-set: if the pointer moved since evaluation, the comparison is stale (ActivationConflictError).
  await activate(target, version, env, { ifCurrent: evaluation.active?.version ?? null });
  log('info', 'candidate promoted', { target, version, replaced: evaluation.active?.version ?? null });
  return { promoted: true, version, active: version };
}

export async function runCommand(
  command: string,
  env: Env = process.env,
  log: Log = jsonLog,
): Promise<unknown> {
  switch (command) {
    case 'train':
      return train(env, log);
    case 'evaluate':
      return evaluate(env, log);
    case 'promote':
      return promote(env, log);
    default:
      throw new TrainingJobError(
        `unknown command ${JSON.stringify(command)}; expected ${COMMANDS.join(' | ')}`,
      );
  }
}

async function main(): Promise<void> {
  const command = process.argv[2] ?? '';
  if (!(COMMANDS as readonly string[]).includes(command)) {
    console.error(`usage: node --import tsx models/train/main.ts <${COMMANDS.join('|')}>`);
    process.exit(2);
  }
  orExit(() => {
    readTrainingConfig();
    readCoreConfig();
    return readResourceNames();
  });
  try {
    await runCommand(command);
    process.exit(0);
  } catch (err) {
    const e = err as Error;
    jsonLog('error', `${command} failed`, {
      error: `${e.name}: ${e.message}`,
      cause: e.cause instanceof Error ? `${e.cause.name}: ${e.cause.message}` : undefined,
    });
    process.exit(1);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
