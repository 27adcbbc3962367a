/**
 * A model version's metadata (its metrics.json), read in ONE place for every server of models (the worker,
 * /predict) so they cannot disagree: the version it names, and τ of a target with a continuous label, which is
 * required there (a vol-spike model without its τ cannot be judged, so it is not served): `thresholds`, τ per
 * product on the spike value (src/labels/volSpike.ts), or in a model from before τ per product one pooled
 * `threshold` on the forward volatility itself (kept as that: such a model is judged by the rule it was
 * trained with). Anything unreadable is a ModelLoadError naming the file; the rest of metrics.json (scores,
 * data, training parameters) is the training job's record and passes through unchecked. spikeJudgeOf says how
 * a served model's prediction for a product is judged.
 */
import * as z from 'zod';
import { FEATURE_NAMES } from '../features/spec.js';
import { type SpikeJudge, VOL_SPIKE_LEVEL_FEATURE } from '../labels/volSpike.js';
import type { InputDistribution } from './inputs.js';
import { ModelLoadError } from './runtime.js';
import { type LoadedModel, type Target, THRESHOLD_TARGETS } from './types.js';

const InputsSchema = z.object({
  features: z.array(
    z.object({ name: z.string(), edges: z.array(z.number()), shares: z.array(z.number().min(0)) }),
  ),
});

const MetricsSchema = z.looseObject({
  target: z.string().optional(),
  version: z.string().min(1).optional(),
  thresholds: z
    .record(z.string().min(1), z.number().finite('each τ must be a finite number'))
    .refine((m) => Object.keys(m).length > 0, 'thresholds must name at least one product')
    .optional(),
  threshold: z.number().finite('threshold must be a finite number').optional(),
  rocAucLow: z.number().min(0).max(1).optional(),
  inputs: InputsSchema.optional(),
});

export interface ModelMetadata {
  /** The version metrics.json names, if any (file:// registries take it as the version). */
  version?: string;
  /** τ per product (metrics.json `thresholds`). */
  thresholds?: Readonly<Record<string, number>>;
  /** A model from before τ per product: its one τ on the forward volatility (metrics.json `threshold` alone). */
  pooledThreshold?: number;
  /** The low end of the test ROC-AUC interval (`rocAucLow`): live quality below it raises an alarm. */
  rocAucLow?: number;
  /** The training distribution of its inputs (`inputs`): live drift is measured against it. */
  inputs?: InputDistribution;
}

/** Parses metrics.json bytes of `target`; `where` names the file in errors. */
export function readModelMetadata(bytes: Uint8Array, target: Target, where: string): ModelMetadata {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new ModelLoadError(`${where} is not valid JSON`, { cause });
  }
  const parsed = MetricsSchema.safeParse(json);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ModelLoadError(`${where}: ${why}`);
  }
  const { target: named, version, thresholds, threshold, rocAucLow, inputs } = parsed.data;
  if (named !== undefined && named !== target) {
    throw new ModelLoadError(`${where} is for target ${named}, not ${target}`);
  }
  const needsTau = THRESHOLD_TARGETS.includes(target);
  if (needsTau && thresholds === undefined && threshold === undefined) {
    throw new ModelLoadError(`${where} has no "thresholds" (τ per product), which ${target} needs`);
  }
  return {
    ...(version !== undefined ? { version } : {}),
    ...(needsTau && thresholds !== undefined ? { thresholds } : {}),
    ...(needsTau && thresholds === undefined ? { pooledThreshold: threshold } : {}),
    ...(rocAucLow !== undefined ? { rocAucLow } : {}),
    ...(inputs !== undefined ? { inputs } : {}),
  };
}

/** Where a lake / worker feature row holds the trailing level a spike is measured against. */
export const SPIKE_LEVEL_COLUMN = FEATURE_NAMES.indexOf(VOL_SPIKE_LEVEL_FEATURE);

/**
 * How `model`'s prediction for `product` will be judged once its label matures (fixed now: src/worker/quality.ts
 * keeps it with the prediction): the product's τ and the tick's trailing level (`levelBps`, its
 * VOL_SPIKE_LEVEL_FEATURE value), or a pooled τ alone for a model from before τ per product. Undefined when the
 * model has no τ at all (a 0/1 target) or none for this product (or the level is unknown): a vol prediction that
 * cannot be judged, which its callers mark instead of borrowing another product's τ.
 */
export function spikeJudgeOf(
  model: Pick<LoadedModel, 'thresholds' | 'pooledThreshold'>,
  product: string,
  levelBps: number,
): SpikeJudge | undefined {
  if (model.thresholds !== undefined) {
    const tau = model.thresholds[product];
    // The level as the lake stores it (a float32 feature): the value training divided by, to the bit.
    return tau === undefined || Number.isNaN(levelBps) ? undefined : { tau, levelBps: Math.fround(levelBps) };
  }
  return model.pooledThreshold === undefined ? undefined : { tau: model.pooledThreshold };
}

/**
 * What a served model says of its τ for `product` (/predict, /latest, history): undefined for a model without
 * τ (a 0/1 target), null when it has none for this product (its predictions there cannot be judged), else the τ.
 */
export function thresholdFor(
  model: Pick<LoadedModel, 'thresholds' | 'pooledThreshold'>,
  product: string,
): number | null | undefined {
  if (model.thresholds !== undefined) return model.thresholds[product] ?? null;
  return model.pooledThreshold;
}
