/**
 * /predict: score either a product's latest features or caller-supplied features with the active model of
 * the requested target (default quote_change_500ms).
 */
import { thresholdFor } from '../model/metadata.js';
import { ModelUnavailableError } from '../model/serving.js';
import type { FeatureSetName, LoadedModel, Target } from '../model/types.js';
import type { LatestSnapshot } from '../storage/latest.js';
import { API } from '../telemetry/catalog.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { BadRequestError, DependencyError } from './errors.js';
import {
  type PredictAnswer,
  PredictBatch,
  type PredictBatchAnswer,
  PredictByFeatures,
  PredictByProduct,
  type PredictRequestBody,
} from './schemas.js';

/** The target scored when the request names none (the API's first and original target). */
export const PREDICT_TARGET: Target = 'quote_change_500ms';

export type PredictRequest = PredictRequestBody;
export type PredictResponse = PredictAnswer;

/** The target a parsed request asks for. */
export function requestTarget(req: PredictRequest): Target {
  return req.target ?? PREDICT_TARGET;
}

/** Parses the raw request body; every failure is a BadRequestError saying what is wrong. */
export function parsePredictBody(text: string | undefined): PredictRequest {
  if (text === undefined || text.trim() === '')
    throw new BadRequestError(
      'request body is required: {"product": "BTC-USD"}, {"features": {...}} or {"vectors": [{...}, ...]}, ' +
        'optionally with "target"',
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new BadRequestError(`request body is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new BadRequestError(
      'request body must be a JSON object: {"product": ...}, {"features": {...}} or {"vectors": [...]}',
    );
  // Pick the schema by key so the error talks about the shape the caller meant.
  const shapes = [
    ['product', PredictByProduct],
    ['features', PredictByFeatures],
    ['vectors', PredictBatch],
  ] as const;
  const given = shapes.filter(([key]) => key in raw);
  if (given.length !== 1)
    throw new BadRequestError('request body needs exactly one of "product", "features" or "vectors"');
  const parsed = given[0]![1].safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues
      .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
      .join('; ');
    throw new BadRequestError(why);
  }
  return parsed.data;
}

/** Orders named values by the model's feature spec; unknown or missing names are listed in the error. */
export function featureVector(model: LoadedModel, values: Record<string, number>, where = ''): Float32Array {
  const names = model.spec.features.map((f) => f.name);
  const known = new Set(names);
  const unknown = Object.keys(values).filter((n) => !known.has(n));
  const missing = names.filter((n) => !(n in values));
  const problems: string[] = [];
  if (unknown.length) problems.push(`unknown feature names: ${unknown.join(', ')}`);
  if (missing.length) problems.push(`missing features: ${missing.join(', ')}`);
  if (problems.length)
    throw new BadRequestError(
      `${where}${problems.join('; ')} (model ${model.version} expects: ${names.join(', ')})`,
    );
  return Float32Array.from(names, (n) => values[n]!);
}

export interface PredictDeps {
  /** The active model of a target (ActiveModels.get, src/model/serving.ts). */
  model: (target: Target, set?: FeatureSetName) => Promise<LoadedModel>;
  latest: (
    product: string,
  ) => Promise<
    Pick<LatestSnapshot, 'product' | 'tsUs' | 'features'> & Partial<Pick<LatestSnapshot, 'predictions'>>
  >;
  telemetry?: Telemetry;
}

/** Scores a request: one product's latest features, one vector, or a batch in ONE model run. */
export async function predict(
  req: PredictRequest,
  deps: PredictDeps,
): Promise<PredictResponse | PredictBatchAnswer> {
  const target = requestTarget(req);
  // A product is scored by the model its data supports (a ticker-only product: the ticker model); a vector
  // given by the caller by the l2 model, whose features it must name.
  const snap = 'product' in req ? await deps.latest(req.product) : undefined;
  const set: FeatureSetName = snap?.features.source_is_ticker === 1 ? 'ticker' : 'l2';
  const model = await deps.model(target, set).catch((cause: unknown) => {
    if (cause instanceof ModelUnavailableError)
      throw new DependencyError(`model for ${target} (${set} features) is unavailable`, { cause });
    throw cause;
  });
  const about = {
    target: model.target,
    modelVersion: model.version,
    featureSet: model.featureSet,
    ...taus(model, snap?.product),
  };
  if ('vectors' in req) {
    const rows = new Float32Array(req.vectors.length * model.spec.features.length);
    req.vectors.forEach((v, i) => {
      rows.set(featureVector(model, v, `vectors.${i}: `), i * model.spec.features.length);
    });
    return { ...about, probabilities: Array.from(await run(model, rows, req.vectors.length, deps)) };
  }
  // A caller's vector has no known data behind it: lineage null.
  if ('features' in req)
    return { ...about, probability: await score(model, req.features, deps), lineage: null };
  let probability: number;
  try {
    // The snapshot holds the whole row; the model takes its feature set's columns.
    const names = model.spec.features.map((f) => f.name);
    const mine = Object.fromEntries(
      names.filter((n) => n in snap!.features).map((n) => [n, snap!.features[n]!]),
    );
    probability = await score(model, mine, deps);
  } catch (err) {
    // The worker's features not matching the model is a deployment mismatch, not the caller's fault.
    if (err instanceof BadRequestError)
      throw new DependencyError(`latest features of ${snap!.product} do not fit model ${model.version}`, {
        cause: err,
      });
    throw err;
  }
  // The tick's data, as the worker judged it for this target when it scored the same tick.
  const worker = snap!.predictions?.[target];
  return {
    ...about,
    probability,
    product: snap!.product,
    tsUs: snap!.tsUs,
    lineage: worker?.lineage ?? null,
    ...(worker?.abstain ? { abstain: worker.abstain } : {}),
  };
}

/**
 * What the answer says of τ (vol_spike_60s): a product's prediction its product's τ (null: the model has none for
 * it, the probability cannot be judged); a caller's vectors, which name no product, the model's τ per product.
 */
function taus(
  model: LoadedModel,
  product: string | undefined,
): { threshold?: number | null; thresholds?: Readonly<Record<string, number>> } {
  if (product !== undefined) {
    const threshold = thresholdFor(model, product);
    return threshold === undefined ? {} : { threshold };
  }
  if (model.thresholds !== undefined) return { thresholds: model.thresholds };
  return model.pooledThreshold === undefined ? {} : { threshold: model.pooledThreshold };
}

async function score(model: LoadedModel, values: Record<string, number>, deps: PredictDeps): Promise<number> {
  const [p] = await run(model, featureVector(model, values), 1, deps);
  return p!;
}

/** One model run, timed and counted (ApiPredictionMs, ApiPredictions); every probability must be finite. */
async function run(
  model: LoadedModel,
  rows: Float32Array,
  n: number,
  deps: PredictDeps,
): Promise<Float32Array> {
  const started = performance.now();
  const out = await model.predict(rows, n);
  deps.telemetry?.timing(API.predictionMs, performance.now() - started, { Target: model.target });
  deps.telemetry?.count(API.predictions, n, { Target: model.target, ModelVersion: model.version });
  for (const p of out) if (!Number.isFinite(p)) throw new Error(`model ${model.version} returned ${p}`);
  return out;
}
