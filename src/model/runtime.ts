/**
 * Loads ONNX models into onnxruntime-node and checks them against the QuoteWatch model contract
 * (src/model/contract.ts: input "features" float32 [N, F], output "probability" float32 [N, 1]) before anything
 * is scored.
 */

import * as ort from 'onnxruntime-node';
import { QuoteWatchError } from '../errors.js';
import type { FeatureSpec } from '../features/types.js';
import { INPUT_NAME, OUTPUT_NAME } from './contract.js';
import type { InputDistribution } from './inputs.js';
import type { LoadedModel, Target } from './types.js';

export class ModelLoadError extends QuoteWatchError {}

export class PredictInputError extends QuoteWatchError {}

export interface ModelMeta {
  target: Target;
  version: string;
  /** vol_spike_60s: τ per product, or a model's one pooled τ (from the version's metadata, src/model/metadata.ts). */
  thresholds?: Readonly<Record<string, number>>;
  pooledThreshold?: number;
  rocAucLow?: number;
  inputs?: InputDistribution;
}

// One thread per session: the worker and Lambdas score small batches, and cores are shared with the pipeline.
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

export async function loadModel(bytes: Uint8Array, spec: FeatureSpec, meta: ModelMeta): Promise<LoadedModel> {
  const label = `${meta.target}@${meta.version}`;
  const width = spec.features.length;
  if (width === 0) throw new ModelLoadError(`${label}: feature spec has no features`);

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  } catch (err) {
    throw new ModelLoadError(`${label}: not a loadable ONNX model (${(err as Error).message})`, {
      cause: err,
    });
  }

  try {
    checkSignature(session, width);
    await warmUp(session, width);
  } catch (err) {
    await session.release().catch(() => {});
    if (err instanceof ModelLoadError) {
      throw new ModelLoadError(`${label}: ${err.message}`, { cause: err.cause ?? err });
    }
    throw new ModelLoadError(`${label}: warm-up run failed (${(err as Error).message})`, { cause: err });
  }

  return {
    target: meta.target,
    version: meta.version,
    ...(meta.thresholds !== undefined ? { thresholds: meta.thresholds } : {}),
    ...(meta.pooledThreshold !== undefined ? { pooledThreshold: meta.pooledThreshold } : {}),
    ...(meta.rocAucLow !== undefined ? { rocAucLow: meta.rocAucLow } : {}),
    ...(meta.inputs !== undefined ? { inputs: meta.inputs } : {}),
    spec,
    featureSet: spec.set ?? 'l2',
    async predict(rows: Float32Array, n: number): Promise<Float32Array> {
      if (!Number.isInteger(n) || n < 1)
        throw new PredictInputError(`row count must be a positive integer, got ${n}`);
      if (rows.length !== n * width) {
        throw new PredictInputError(
          `expected ${n} rows x ${width} features = ${n * width} values, got ${rows.length}`,
        );
      }
      return run(session, rows, n, width);
    },
    release: () => session.release(),
  };
}

function checkSignature(session: ort.InferenceSession, width: number): void {
  if (!session.inputNames.includes(INPUT_NAME)) {
    throw new ModelLoadError(`expected input "${INPUT_NAME}", model has [${session.inputNames.join(', ')}]`);
  }
  if (!session.outputNames.includes(OUTPUT_NAME)) {
    throw new ModelLoadError(
      `expected output "${OUTPUT_NAME}", model has [${session.outputNames.join(', ')}]`,
    );
  }
  const input = session.inputMetadata.find((m) => m.name === INPUT_NAME);
  if (!input?.isTensor || input.type !== 'float32') {
    throw new ModelLoadError(`input "${INPUT_NAME}" must be a float32 tensor`);
  }
  const modelWidth = input.shape[1];
  if (input.shape.length !== 2 || modelWidth !== width) {
    throw new ModelLoadError(
      `input "${INPUT_NAME}" has shape [${input.shape.join(', ')}] but the feature spec has ${width} features`,
    );
  }
}

/** Scores two synthetic rows: catches models that load but compute garbage (NaN, logits, wrong shape). */
async function warmUp(session: ort.InferenceSession, width: number): Promise<void> {
  const rows = new Float32Array(2 * width);
  rows.fill(1, width);
  const probabilities = await run(session, rows, 2, width);
  for (const p of probabilities) {
    if (!(Number.isFinite(p) && p >= 0 && p <= 1)) {
      throw new ModelLoadError(`warm-up produced ${p}, expected probabilities in [0, 1]`);
    }
  }
}

async function run(session: ort.InferenceSession, rows: Float32Array, n: number, width: number) {
  const input = new ort.Tensor('float32', rows, [n, width]);
  const result = await session.run({ [INPUT_NAME]: input }).finally(() => input.dispose());
  const output = result[OUTPUT_NAME];
  if (output?.type !== 'float32' || output.data.length !== n) {
    throw new ModelLoadError(
      `output "${OUTPUT_NAME}" must be float32 [${n}, 1], got ${output?.type} [${output?.dims.join(', ')}]`,
    );
  }
  return Float32Array.from(output.data as Float32Array);
}
