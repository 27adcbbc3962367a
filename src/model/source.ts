/**
 * Where served models come from: the active version of a target in the registry (src/model/registry.ts), loaded
 * into onnxruntime (src/model/runtime.ts) with its metadata (src/model/metadata.ts), as the ModelSource that
 * ActiveModels (src/model/serving.ts) follows.
 */
import { join } from 'node:path';
import { dynamoClient } from '../aws/clients.js';
import { readCoreConfig, readResourceNames } from '../config.js';
import { assertSpecMatches } from '../features/spec.js';
import type { FeatureSpec } from '../features/types.js';
import { readModelMetadata } from './metadata.js';
import { readActiveVersion } from './pointer.js';
import {
  activeVersion,
  checkTarget,
  MODEL_FILES,
  type ModelFile,
  parseJson,
  parseModelUri,
  readModelDir,
  readVersionFile,
} from './registry.js';
import { loadModel, ModelLoadError } from './runtime.js';
import type { ModelSource } from './serving.js';
import { type FeatureSetName, type LoadedModel, slotKey } from './types.js';

type Env = Record<string, string | undefined>;

/**
 * Loads the active model of `target` into onnxruntime (from S3, or from `<dir>/<target>/` for a file:// URI).
 * Any problem (no active version, missing file, bad JSON, unloadable model, feature spec not matching the
 * code when options.tickMs is given) is a ModelLoadError naming the version.
 */
export interface LoadOptions {
  /**
   * The worker's TICK_MS: when given, the model's feature spec must match the features this code computes at
   * that tick (assertSpecMatches), so a model trained on other features is never served.
   */
  tickMs?: number;
  /** The slot's feature set (default l2): a file:// registry keeps it in `<dir>/<slotKey>/`. */
  set?: FeatureSetName;
}

export async function loadActive(
  target: string,
  env: Env = process.env,
  options: LoadOptions = {},
): Promise<LoadedModel> {
  checkTarget(target);
  const set = options.set ?? 'l2';
  const location = parseModelUri(readCoreConfig(env).modelUri);
  let files: Record<ModelFile, Uint8Array>;
  let version: string;
  let where: string;
  if (location.kind === 'file') {
    where = join(location.dir, slotKey(target, set));
    files = await readModelDir(where).catch((err: unknown) => {
      throw new ModelLoadError(`${target}: no model files in ${where}`, { cause: err });
    });
    version = readModelMetadata(files['metrics.json'], target, `${where}/metrics.json`).version ?? 'local';
  } else {
    const active = await activeVersion(target, env, set);
    if (!active) {
      throw new ModelLoadError(
        `${slotKey(target, set)}: no active model version in the registry (run provisioning to seed it)`,
      );
    }
    version = active;
    where = `${target}/${version}`;
    files = {} as Record<ModelFile, Uint8Array>;
    for (const file of MODEL_FILES) {
      files[file] = await readVersionFile(target, version, file, env).catch((err: unknown) => {
        throw new ModelLoadError(`${target}@${version}: ${(err as Error).message}`, { cause: err });
      });
    }
  }
  let spec: FeatureSpec;
  try {
    spec = parseJson<FeatureSpec>(files['feature_spec.json'], `${where}/feature_spec.json`);
  } catch (err) {
    throw new ModelLoadError(`${target}@${version}: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(spec.features)) {
    throw new ModelLoadError(`${target}@${version}: ${where}/feature_spec.json has no "features" list`);
  }
  if (options.tickMs !== undefined) {
    try {
      assertSpecMatches(spec, options.tickMs);
    } catch (err) {
      throw new ModelLoadError(`${target}@${version}: ${(err as Error).message}`, { cause: err });
    }
  }
  if ((spec.set ?? 'l2') !== set) {
    throw new ModelLoadError(
      `${target}@${version}: takes the ${spec.set ?? 'l2'} feature set, its slot is ${set}`,
    );
  }
  const { version: _named, ...meta } = readModelMetadata(
    files['metrics.json'],
    target,
    `${where}/metrics.json`,
  );
  return loadModel(files['model.onnx'], spec, { target, version, ...meta });
}

/**
 * The registry of `env` (MODEL_URI, the registry table) as a ModelSource for ActiveModels (src/model/serving.ts).
 * With `tickMs`, a model whose feature spec does not match the code at that tick is not served.
 */
export function registrySource(env: Env = process.env, options: LoadOptions = {}): ModelSource {
  const pointerless = parseModelUri(readCoreConfig(env).modelUri).kind === 'file';
  // One client for the pointer reads every few seconds; loads are rare and make their own.
  const db = dynamoClient(env);
  const table = readResourceNames(env).registryTable;
  return {
    pointerless,
    activeVersion: (target, set) =>
      pointerless ? Promise.resolve(undefined) : readActiveVersion(db, table, target, set),
    load: (target, set) => loadActive(target, env, { ...options, set }),
  };
}
