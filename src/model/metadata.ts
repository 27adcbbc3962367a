/**
 * A model version's metadata (its metrics.json), read in ONE place for every server of models (the worker,
 * /predict) so they cannot disagree: the version it names, and τ (`threshold`) of a target with a continuous
 * label, which is required there (a vol-spike model without its τ cannot be judged, so it is not served).
 * Anything unreadable is a ModelLoadError naming the file; the rest of metrics.json (scores, data, training
 * parameters) is the training job's record and passes through unchecked.
 */
import * as z from 'zod';
import type { InputDistribution } from './inputs.js';
import { ModelLoadError } from './runtime.js';
import { type Target, THRESHOLD_TARGETS } from './types.js';

const InputsSchema = z.object({
  features: z.array(
    z.object({ name: z.string(), edges: z.array(z.number()), shares: z.array(z.number().min(0)) }),
  ),
});

const MetricsSchema = z.looseObject({
  target: z.string().optional(),
  version: z.string().min(1).optional(),
  threshold: z.number().finite('threshold must be a finite number').optional(),
  rocAucLow: z.number().min(0).max(1).optional(),
  inputs: InputsSchema.optional(),
});

export interface ModelMetadata {
  /** The version metrics.json names, if any (file:// registries take it as the version). */
  version?: string;
  threshold?: number;
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
  const { target: named, version, threshold, rocAucLow, inputs } = parsed.data;
  if (named !== undefined && named !== target) {
    throw new ModelLoadError(`${where} is for target ${named}, not ${target}`);
  }
  if (THRESHOLD_TARGETS.includes(target) && threshold === undefined) {
    throw new ModelLoadError(`${where} has no "threshold" (τ), which ${target} needs`);
  }
  return {
    ...(version !== undefined ? { version } : {}),
    ...(threshold !== undefined ? { threshold } : {}),
    ...(rocAucLow !== undefined ? { rocAucLow } : {}),
    ...(inputs !== undefined ? { inputs } : {}),
  };
}
