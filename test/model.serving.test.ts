/**
 * ActiveModels (src/model/serving.ts), the one model cache of the worker and /predict, against the real
 * registry: dynalite holds the pointer, s3rver the versions, onnxruntime-node runs them.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportLogisticOnnx } from '../models/export/onnx.js';
import type { LogisticModel } from '../models/train/logreg.js';
import type { FeatureSpec } from '../src/features/types.js';
import type { Logger } from '../src/log.js';
import { activate, activeVersion, publishVersion, readPointer, rollback } from '../src/model/registry.js';
import { ActiveModels, ModelUnavailableError } from '../src/model/serving.js';
import { registrySource } from '../src/model/source.js';
import type { FeatureSetName, LoadedModel, Target } from '../src/model/types.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const spec: FeatureSpec = {
  version: 1,
  tickMs: 100,
  features: ['a', 'b', 'c'].map((name) => ({ name, type: 'float32', description: name })),
};
let root: string;
let env: Record<string, string>;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'qw-serving-'));
  env = { ...local.env, MODEL_URI: 's3://quotewatch-models/registry' };
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const model = (bias: number): LogisticModel => ({
  weights: [1, 1, 1],
  bias,
  mean: [0, 0, 0],
  std: [1, 1, 1],
});

/** Publishes a version (a real ONNX model; `onnx` overrides it, e.g. with garbage) and returns its name. */
async function publish(
  target: Target,
  version: string,
  metrics: Record<string, unknown>,
  onnx?: Uint8Array,
  set?: FeatureSetName,
): Promise<string> {
  const dir = join(root, target, version);
  mkdirSync(dir, { recursive: true });
  const versionSpec = set ? { ...spec, set } : spec;
  writeFileSync(
    join(dir, 'model.onnx'),
    onnx ?? exportLogisticOnnx(model(version.endsWith('1') ? -5 : 5), versionSpec),
  );
  writeFileSync(join(dir, 'feature_spec.json'), JSON.stringify(versionSpec));
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ target, version, ...metrics }));
  await publishVersion(dir, target, version, env);
  return version;
}

function recorder() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const log: Logger = (level, msg, fields) => lines.push({ level, msg, fields });
  return { lines, log };
}

/** The registry source, counting loads and releases of what it hands out. */
function countingSource() {
  const source = registrySource(env);
  const loads: string[] = [];
  const released: string[] = [];
  return {
    loads,
    released,
    source: {
      ...source,
      load: async (target: Target, set: FeatureSetName): Promise<LoadedModel> => {
        const m = await source.load(target, set);
        loads.push(m.version);
        const release = async () => {
          released.push(m.version);
          await m.release();
        };
        return { ...m, release };
      },
    },
  };
}

const zero = Float32Array.from([0, 0, 0]);

describe('ActiveModels over the registry', () => {
  it('loads once for concurrent callers, re-reads the pointer only when stale, swaps, releases the old one later', async () => {
    const target = 'quote_change_500ms';
    await activate(target, await publish(target, 'qc-1', {}), env);
    const { source, loads, released } = countingSource();
    let clock = 0;
    const models = new ActiveModels({
      source,
      log: recorder().log,
      checkEveryMs: 1000,
      now: () => clock,
      releaseAfterMs: 0,
    });
    const [a, b] = await Promise.all([models.get(target), models.get(target)]);
    expect(a.version).toBe('qc-1');
    expect(b).toBe(a);
    await activate(target, await publish(target, 'qc-2', {}), env);
    clock = 999; // within the check interval: the pointer is not re-read
    expect((await models.get(target)).version).toBe('qc-1');
    clock = 1000;
    const swapped = await models.get(target);
    expect(swapped.version).toBe('qc-2');
    expect(loads).toEqual(['qc-1', 'qc-2']);
    expect((await swapped.predict(zero, 1))[0]).toBeGreaterThan(0.5);
    expect(models.served().map((m) => m.version)).toEqual(['qc-2']);
    await new Promise((r) => setTimeout(r, 20));
    expect(released).toEqual(['qc-1']);
    await models.release();
    expect(released).toEqual(['qc-1', 'qc-2']);
  });

  it('keeps serving the current model when a new version cannot be loaded, retrying it only after retryFailedMs', async () => {
    const target = 'vol_spike_60s';
    await activate(target, await publish(target, 'vs-1', { thresholds: { 'BTC-USD': 0.75 } }), env);
    const { source, loads } = countingSource();
    const { lines, log } = recorder();
    let clock = 0;
    const models = new ActiveModels({
      source,
      log,
      targets: [target],
      now: () => clock,
      retryFailedMs: 60_000,
    });
    await models.refresh();
    expect(models.served().map((m) => [m.version, m.thresholds])).toEqual([['vs-1', { 'BTC-USD': 0.75 }]]);

    const garbage = new TextEncoder().encode('not an onnx model');
    await activate(target, await publish(target, 'vs-2', { thresholds: { 'BTC-USD': 0.8 } }, garbage), env);
    await models.refresh();
    expect(models.served().map((m) => m.version)).toEqual(['vs-1']);
    const failure = lines.find((l) => l.msg.startsWith('model not loaded'));
    expect(failure?.fields).toMatchObject({ target, version: 'vs-2', keeping: 'vs-1' });
    expect(String(failure?.fields?.error)).toMatch(
      /ModelLoadError: vol_spike_60s@vs-2: not a loadable ONNX model/,
    );

    clock = 59_999;
    await models.refresh(); // the broken version is not downloaded again on every check
    expect(lines.filter((l) => l.msg.startsWith('model not loaded'))).toHaveLength(1);
    clock = 60_000;
    await models.refresh();
    expect(lines.filter((l) => l.msg.startsWith('model not loaded'))).toHaveLength(2);

    // A fixed version under a new name is taken at once.
    await activate(target, await publish(target, 'vs-3', { thresholds: { 'BTC-USD': 0.9 } }), env);
    await models.refresh();
    expect(models.served().map((m) => [m.version, m.thresholds])).toEqual([['vs-3', { 'BTC-USD': 0.9 }]]);
    expect(loads).toEqual(['vs-1', 'vs-3']);
    await models.release();
  });

  it('refuses a vol-spike version whose metadata lacks τ, the same way for every caller', async () => {
    const target = 'vol_spike_60s';
    await activate(target, await publish(target, 'vs-no-tau', {}), env);
    const models = new ActiveModels({ source: registrySource(env), log: recorder().log, targets: [target] });
    const err = await models.get(target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelUnavailableError);
    expect(String((err as Error).message)).toMatch(
      /metrics\.json has no "thresholds" \(τ per product\), which vol_spike_60s needs/,
    );
    expect(models.served()).toEqual([]);
    await models.release();
  });

  it('keeps the current model while the pointer cannot be read (DynamoDB down), and follows it again after', async () => {
    const target = 'quote_change_500ms';
    await activate(target, await publish(target, 'qc-down-1', {}), env);
    const { lines, log } = recorder();
    let clock = 0;
    const models = new ActiveModels({
      source: registrySource(env),
      log,
      targets: [target],
      now: () => clock,
    });
    expect((await models.get(target)).version).toBe('qc-down-1');
    await local.emulators.kill('dynamodb');
    try {
      clock = 10_000;
      expect((await models.get(target)).version).toBe('qc-down-1');
      expect(lines.some((l) => l.msg === 'model pointer unreadable; keeping the current model')).toBe(true);
    } finally {
      await local.emulators.restart('dynamodb');
    }
    await activate(target, await publish(target, 'qc-down-2', {}), env);
    clock = 20_000;
    expect((await models.get(target)).version).toBe('qc-down-2');
    await models.release();
  });

  it('the worker, with nothing to serve, waits out DynamoDB restarting and loads the model; /predict does not wait', async () => {
    const target = 'quote_change_500ms';
    await activate(target, await publish(target, 'qc-restart-1', {}), env);
    const { lines, log } = recorder();
    const worker = new ActiveModels({
      source: registrySource(env),
      log,
      targets: [target],
      waitOutTransient: true,
    });
    const api = new ActiveModels({ source: registrySource(env), log: () => {}, targets: [target] });
    await local.emulators.kill('dynamodb');
    let refreshed = false;
    const refreshing = worker.refresh().then(() => {
      refreshed = true;
    });
    try {
      // /predict's cache gives up at once: nothing to serve while the pointer cannot be read.
      await expect(api.get(target)).rejects.toThrow(ModelUnavailableError);
      await new Promise((r) => setTimeout(r, 500));
      expect(refreshed).toBe(false);
    } finally {
      await local.emulators.restart('dynamodb');
    }
    await refreshing;
    expect(worker.served().map((m) => m.version)).toEqual(['qc-restart-1']);
    expect(lines.some((l) => l.msg === 'model pointer failed; retrying')).toBe(true);
    await worker.release();
    await api.release();
  });

  it('serves one model per target and feature set; a version activates its own set; rollback goes back', async () => {
    const target = 'quote_change_500ms';
    await activate(target, await publish(target, 'slot-l2-1', {}), env);
    await activate(target, await publish(target, 'slot-tk-1', {}, undefined, 'ticker'), env);
    expect(await activeVersion(target, env)).toBe('slot-l2-1');
    expect(await activeVersion(target, env, 'ticker')).toBe('slot-tk-1');
    const models = new ActiveModels({ source: registrySource(env), log: recorder().log, targets: [target] });
    await models.refresh();
    expect(models.served().map((m) => [m.version, m.featureSet])).toEqual([
      ['slot-l2-1', 'l2'],
      ['slot-tk-1', 'ticker'],
    ]);
    expect((await models.get(target, 'ticker')).version).toBe('slot-tk-1');
    // The next l2 version, then back: the pointer remembers what was active before.
    await activate(target, await publish(target, 'slot-l2-2', {}), env);
    expect(await rollback(target, 'l2', undefined, env)).toEqual({ from: 'slot-l2-2', to: 'slot-l2-1' });
    expect(await activeVersion(target, env)).toBe('slot-l2-1');
    expect((await readPointer(target, 'l2', env))?.previous[0]).toBe('slot-l2-2');
    await expect(rollback(target, 'l2', 'slot-tk-1', env)).rejects.toThrow(
      /takes the ticker feature set, not l2/,
    );
    await expect(rollback(target, 'ticker', undefined, env)).rejects.toThrow(/no earlier version was active/);
    await models.release();
  });

  it('says why when nothing is active', async () => {
    const models = new ActiveModels({
      source: { activeVersion: async () => undefined, load: async () => Promise.reject(new Error('unused')) },
      log: recorder().log,
    });
    await expect(models.get('quote_change_500ms')).rejects.toThrow(
      /no servable model for quote_change_500ms \(no active version\)/,
    );
  });
});
