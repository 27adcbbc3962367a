/**
 * /predict: score either a product's latest features or caller-supplied features with the active model of
 * the requested target (default quote_change_500ms).
 */
import { z } from 'zod';
import { PRODUCT_ID_PATTERN } from '../config.js';
import { ModelUnavailableError } from '../model/serving.js';
import { type LoadedModel, TARGETS, type Target } from '../model/types.js';
import type { LatestSnapshot } from '../storage/latest.js';
import { BadRequestError, DependencyError } from './errors.js';

/** The target scored when the request names none (the API's first and original target). */
export const PREDICT_TARGET: Target = 'quote_change_500ms';

const targetField = z
  .string({ message: `target must be a string, one of: ${TARGETS.join(', ')}` })
  .refine((t): t is Target => (TARGETS as readonly string[]).includes(t), {
    message: `target must be one of: ${TARGETS.join(', ')}`,
  })
  .transform((t) => t as Target)
  .optional();

const ByProduct = z.strictObject({
  product: z
    .string({ message: 'product must be a string like "BTC-USD"' })
    .regex(PRODUCT_ID_PATTERN, 'product must look like BTC-USD (upper case BASE-QUOTE)'),
  target: targetField,
});
const ByFeatures = z.strictObject({
  features: z.record(z.string(), z.number({ message: 'each feature value must be a finite number' }), {
    message: 'features must be an object of {"name": number}',
  }),
  target: targetField,
});

export type PredictRequest = z.infer<typeof ByProduct> | z.infer<typeof ByFeatures>;

export interface PredictResponse {
  target: Target;
  modelVersion: string;
  probability: number;
  /** vol_spike_60s: the model's τ in bps (a spike is forward 60 s realized volatility above it). */
  threshold?: number;
  product?: string;
  tsUs?: number;
}

/** The target a parsed request asks for. */
export function requestTarget(req: PredictRequest): Target {
  return req.target ?? PREDICT_TARGET;
}

/** Parses the raw request body; every failure is a BadRequestError saying what is wrong. */
export function parsePredictBody(text: string | undefined): PredictRequest {
  if (text === undefined || text.trim() === '')
    throw new BadRequestError(
      'request body is required: {"product": "BTC-USD"} or {"features": {...}}, optionally with "target"',
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new BadRequestError(`request body is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new BadRequestError('request body must be a JSON object: {"product": ...} or {"features": {...}}');
  // Pick the schema by key so the error talks about the shape the caller meant.
  const hasProduct = 'product' in raw;
  const hasFeatures = 'features' in raw;
  if (hasProduct === hasFeatures)
    throw new BadRequestError('request body needs exactly one of "product" or "features"');
  const parsed = (hasProduct ? ByProduct : ByFeatures).safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues
      .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
      .join('; ');
    throw new BadRequestError(why);
  }
  return parsed.data;
}

/** Orders named values by the model's feature spec; unknown or missing names are listed in the error. */
export function featureVector(model: LoadedModel, values: Record<string, number>): Float32Array {
  const names = model.spec.features.map((f) => f.name);
  const known = new Set(names);
  const unknown = Object.keys(values).filter((n) => !known.has(n));
  const missing = names.filter((n) => !(n in values));
  const problems: string[] = [];
  if (unknown.length) problems.push(`unknown feature names: ${unknown.join(', ')}`);
  if (missing.length) problems.push(`missing features: ${missing.join(', ')}`);
  if (problems.length)
    throw new BadRequestError(`${problems.join('; ')} (model ${model.version} expects: ${names.join(', ')})`);
  return Float32Array.from(names, (n) => values[n]!);
}

export interface PredictDeps {
  /** The active model of a target (ActiveModels.get, src/model/serving.ts). */
  model: (target: Target) => Promise<LoadedModel>;
  latest: (product: string) => Promise<Pick<LatestSnapshot, 'product' | 'tsUs' | 'features'>>;
}

export async function predict(req: PredictRequest, deps: PredictDeps): Promise<PredictResponse> {
  const target = requestTarget(req);
  const model = await deps.model(target).catch((cause: unknown) => {
    if (cause instanceof ModelUnavailableError)
      throw new DependencyError(`model for ${target} is unavailable`, { cause });
    throw cause;
  });
  const about = {
    target: model.target,
    modelVersion: model.version,
    ...(model.threshold !== undefined ? { threshold: model.threshold } : {}),
  };
  if ('features' in req) return { ...about, probability: await score(model, req.features) };
  const snap = await deps.latest(req.product);
  let probability: number;
  try {
    probability = await score(model, snap.features);
  } catch (err) {
    // The worker's features not matching the model is a deployment mismatch, not the caller's fault.
    if (err instanceof BadRequestError)
      throw new DependencyError(`latest features of ${req.product} do not fit model ${model.version}`, {
        cause: err,
      });
    throw err;
  }
  return {
    ...about,
    probability,
    product: snap.product,
    tsUs: snap.tsUs,
  };
}

async function score(model: LoadedModel, values: Record<string, number>): Promise<number> {
  const row = featureVector(model, values);
  const out = await model.predict(row, 1);
  const p = out[0];
  if (p === undefined || !Number.isFinite(p)) throw new Error(`model ${model.version} returned ${p}`);
  return p;
}
