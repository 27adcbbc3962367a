import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FEATURE_SPEC } from '../src/features/spec.js';
import { loadModel } from '../src/model/runtime.js';
import type { ModelMetrics } from '../src/model/types.js';
import { BASELINE_DIR, buildDataset } from './baseline.js';
import { METADATA_KEYS, readOnnxMetadata } from './export/onnx.js';

const dir = join(BASELINE_DIR, 'quote_change_500ms');
const shipped = existsSync(join(dir, 'feature_spec.json'));
if (!shipped)
  console.warn(`skipping shipped-baseline checks: ${dir} has no baseline yet (run npm run baseline)`);

describe.skipIf(!shipped)('shipped baseline model', () => {
  const read = (file: string) => readFileSync(join(dir, file));
  const json = <T>(file: string) => JSON.parse(read(file).toString('utf8')) as T;

  it("feature_spec.json equals the code's FEATURE_SPEC (rerun npm run baseline after changing features)", () => {
    expect(json('feature_spec.json')).toEqual(FEATURE_SPEC);
  });

  it('model.onnx carries the same feature names and loads under the model contract', async () => {
    const bytes = new Uint8Array(read('model.onnx'));
    const meta = readOnnxMetadata(bytes);
    expect(JSON.parse(meta[METADATA_KEYS.featureNames]!)).toEqual(FEATURE_SPEC.features.map((f) => f.name));
    expect(meta[METADATA_KEYS.featureSpecVersion]).toBe(String(FEATURE_SPEC.version));
    const metrics = json<ModelMetrics>('metrics.json');
    expect(meta[METADATA_KEYS.version]).toBe(metrics.version);
    const model = await loadModel(bytes, FEATURE_SPEC, {
      target: 'quote_change_500ms',
      version: metrics.version,
    });
    await model.release();
  });

  it('metrics.json describes a model that beats always predicting the base rate', () => {
    const m = json<ModelMetrics & { reference: { brier: number; logLoss: number } }>('metrics.json');
    expect(m.target).toBe('quote_change_500ms');
    expect(m.rows.train).toBeGreaterThan(m.rows.test);
    expect(m.auc).toBeGreaterThan(0.5);
    expect(m.brier).toBeLessThan(m.reference.brier);
    expect(m.logLoss).toBeLessThan(m.reference.logLoss);
  });
});

describe('buildDataset', () => {
  it('is reproducible from its seed and yields time-ordered binary examples of spec width', () => {
    const a = buildDataset({ seed: 7, minutes: 1 });
    expect(buildDataset({ seed: 7, minutes: 1 })).toEqual(a);
    expect(a.length).toBeGreaterThan(500);
    for (let i = 1; i < a.length; i++) expect(a[i]!.tsUs).toBeGreaterThanOrEqual(a[i - 1]!.tsUs);
    for (const e of a) {
      expect(e.x).toHaveLength(FEATURE_SPEC.features.length);
      expect([0, 1]).toContain(e.y);
    }
    expect(buildDataset({ seed: 8, minutes: 1 })).not.toEqual(a);
  });
});
