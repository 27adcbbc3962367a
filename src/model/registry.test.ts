import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportLogisticOnnx } from '../../models/export/onnx.js';
import { type LogisticModel, predictLogistic } from '../../models/train/logreg.js';
import { dynamoClient } from '../aws/clients.js';
import { readResourceNames } from '../config.js';
import type { FeatureSpec } from '../features/types.js';
import { type Emulators, startEmulators } from '../local/emulators.js';
import { provision } from '../local/provision.js';
import { REGISTRY_KEYS } from '../resources.js';
import {
  ActivationConflictError,
  activate,
  activeVersion,
  parseModelUri,
  publishVersion,
  RegistryError,
  seedRegistry,
} from './registry.js';
import { ModelLoadError } from './runtime.js';
import { loadActive } from './source.js';

const TARGET = 'quote_change_500ms';
const spec: FeatureSpec = {
  version: 1,
  tickMs: 100,
  features: ['a', 'b'].map((name) => ({ name, type: 'float32', description: name })),
};

/** Writes a model directory as the registry expects it and returns its path. */
function modelDir(root: string, version: string, model: LogisticModel, onnx?: Uint8Array): string {
  const dir = join(root, version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'model.onnx'),
    onnx ?? exportLogisticOnnx(model, spec, { target: TARGET, version }),
  );
  writeFileSync(join(dir, 'feature_spec.json'), JSON.stringify(spec));
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ target: TARGET, version }));
  return dir;
}

const modelA: LogisticModel = { weights: [1, -1], bias: 0.2, mean: [0, 0], std: [1, 1] };
const modelB: LogisticModel = { weights: [-2, 0.5], bias: -0.1, mean: [1, 1], std: [2, 2] };

describe('parseModelUri', () => {
  it('splits s3 URIs and resolves file URIs', () => {
    expect(parseModelUri('s3://quotewatch-models/registry/')).toEqual({
      kind: 's3',
      bucket: 'quotewatch-models',
      prefix: 'registry',
    });
    expect(parseModelUri('s3://bucket')).toEqual({ kind: 's3', bucket: 'bucket', prefix: '' });
    expect(parseModelUri('file:///tmp/models')).toEqual({ kind: 'file', dir: '/tmp/models' });
  });

  it('names the problem in bad URIs', () => {
    expect(() => parseModelUri('http://x/y')).toThrow(RegistryError);
    expect(() => parseModelUri('s3://Upper_Case/x')).toThrow(/expected s3:\/\/<bucket>\/<prefix>/);
  });
});

describe('registry on the local emulators', () => {
  let emulators: Emulators;
  let root: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'qw-registry-'));
    emulators = await startEmulators({ dataDir: join(root, 'data') });
    env = { ...emulators.env, MODEL_URI: 's3://quotewatch-models/registry' };
    await provision(env, { seed: false });
  });

  afterAll(async () => {
    await emulators?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('publish -> activate -> loadActive -> predict', async () => {
    const dir = modelDir(root, 'v1', modelA);
    expect(await publishVersion(dir, TARGET, 'v1', env)).toEqual({
      uploaded: ['model.onnx', 'feature_spec.json', 'metrics.json'],
      unchanged: [],
    });
    expect(await activeVersion(TARGET, env)).toBeUndefined();
    await activate(TARGET, 'v1', env);
    expect(await activeVersion(TARGET, env)).toBe('v1');

    const loaded = await loadActive(TARGET, env);
    try {
      expect(loaded.version).toBe('v1');
      expect(loaded.spec).toEqual(spec);
      const [p] = await loaded.predict(Float32Array.from([0.5, 2]), 1);
      expect(Math.abs(p! - predictLogistic(modelA, [0.5, 2]))).toBeLessThan(1e-6);
    } finally {
      await loaded.release();
    }
  });

  it('versions are immutable: same bytes are a no-op, different bytes are refused', async () => {
    await publishVersion(modelDir(root, 'imm-1', modelA), TARGET, 'imm-1', env);
    const same = modelDir(join(root, 'again'), 'imm-1', modelA);
    expect(await publishVersion(same, TARGET, 'imm-1', env)).toEqual({
      uploaded: [],
      unchanged: ['model.onnx', 'feature_spec.json', 'metrics.json'],
    });
    const different = modelDir(join(root, 'other'), 'imm-1', modelB);
    await expect(publishVersion(different, TARGET, 'imm-1', env)).rejects.toThrow(
      /imm-1 is already published with a different model\.onnx; versions are immutable/,
    );
    // The registry still serves the original bytes.
    await activate(TARGET, 'imm-1', env);
    const loaded = await loadActive(TARGET, env);
    const [p] = await loaded.predict(Float32Array.from([3, 1]), 1);
    await loaded.release();
    expect(Math.abs(p! - predictLogistic(modelA, [3, 1]))).toBeLessThan(1e-6);
  });

  it('activation needs a published version and honours compare-and-set', async () => {
    await expect(activate(TARGET, 'never-published', env)).rejects.toThrow(/is not published/);
    await publishVersion(modelDir(root, 'v2', modelB), TARGET, 'v2', env);
    await publishVersion(modelDir(root, 'v1-cas', modelA), TARGET, 'v1-cas', env);
    await activate(TARGET, 'v1-cas', env);
    await expect(activate(TARGET, 'v2', env, { ifCurrent: null })).rejects.toThrow(ActivationConflictError);
    await expect(activate(TARGET, 'v2', env, { ifCurrent: 'v0' })).rejects.toThrow(ActivationConflictError);
    expect(await activeVersion(TARGET, env)).toBe('v1-cas');
    await activate(TARGET, 'v2', env, { ifCurrent: 'v1-cas' });
    expect(await activeVersion(TARGET, env)).toBe('v2');
  });

  it('a corrupt model published under a new version is rejected by loadActive with a clear error', async () => {
    const good = exportLogisticOnnx(modelA, spec);
    await publishVersion(
      modelDir(root, 'v3-corrupt', modelA, good.subarray(0, 40)),
      TARGET,
      'v3-corrupt',
      env,
    );
    await activate(TARGET, 'v3-corrupt', env);
    const err = await loadActive(TARGET, env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toMatch(/quote_change_500ms@v3-corrupt: not a loadable ONNX model/);
  });

  it('seedRegistry publishes and activates the baseline when nothing is active, and never replaces a pointer', async () => {
    const seedEnv = { ...env, MODEL_URI: 's3://quotewatch-models/seed-test' };
    const baseline = join(root, 'baseline');
    modelDir(baseline, TARGET, modelB);
    writeFileSync(
      join(baseline, TARGET, 'metrics.json'),
      JSON.stringify({ target: TARGET, version: 'base-1' }),
    );
    // Start from a registry with no active pointer.
    await dynamoClient(seedEnv).send(
      new DeleteCommand({
        TableName: readResourceNames(seedEnv).registryTable,
        Key: REGISTRY_KEYS.active(TARGET),
      }),
    );

    expect(await seedRegistry(baseline, seedEnv)).toEqual({
      published: [`${TARGET}/base-1`],
      activated: [`${TARGET}/base-1`],
    });
    expect(await activeVersion(TARGET, seedEnv)).toBe('base-1');

    await publishVersion(modelDir(join(root, 'seed'), 'after-seed', modelA), TARGET, 'after-seed', seedEnv);
    await activate(TARGET, 'after-seed', seedEnv);
    expect(await seedRegistry(baseline, seedEnv)).toEqual({ published: [], activated: [] });
    expect(await activeVersion(TARGET, seedEnv)).toBe('after-seed');
  });

  it('loadActive reads <dir>/<target>/ for a file:// MODEL_URI', async () => {
    const offline = join(root, 'offline');
    modelDir(offline, TARGET, modelB);
    writeFileSync(
      join(offline, TARGET, 'metrics.json'),
      JSON.stringify({ target: TARGET, version: 'disk-7' }),
    );
    const loaded = await loadActive(TARGET, { MODEL_URI: pathToFileURL(offline).href });
    const [p] = await loaded.predict(Float32Array.from([1, 2]), 1);
    await loaded.release();
    expect(loaded.version).toBe('disk-7');
    expect(Math.abs(p! - predictLogistic(modelB, [1, 2]))).toBeLessThan(1e-6);
    await expect(
      loadActive(TARGET, { MODEL_URI: pathToFileURL(join(root, 'nowhere')).href }),
    ).rejects.toThrow(/no model files in/);
  });
});
