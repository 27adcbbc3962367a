import fc from 'fast-check';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { FeatureSpec } from '../../src/features/types.js';
import { METADATA_KEYS } from '../../src/model/contract.js';
import { loadModel, ModelLoadError } from '../../src/model/runtime.js';
import { type LogisticModel, predictLogistic } from '../train/logreg.js';
import { exportLogisticOnnx, readOnnxMetadata } from './onnx.js';

function specOf(width: number): FeatureSpec {
  return {
    version: 3,
    tickMs: 100,
    features: Array.from({ length: width }, (_, i) => ({
      name: `f${i}`,
      type: 'float32',
      description: `feature ${i}`,
    })),
  };
}

const meta = { target: 'quote_change_500ms', version: 'test-1' } as const;
const num = (min: number, max: number) => fc.double({ min, max, noNaN: true });

/** A random model with F features plus a few float32 input rows for it. */
const modelAndRows = fc.integer({ min: 1, max: 8 }).chain((f) =>
  fc.record({
    model: fc.record({
      weights: fc.array(num(-3, 3), { minLength: f, maxLength: f }),
      bias: num(-3, 3),
      mean: fc.array(num(-5, 5), { minLength: f, maxLength: f }),
      std: fc.array(num(0.1, 5), { minLength: f, maxLength: f }),
    }),
    rows: fc.array(fc.array(num(-10, 10), { minLength: f, maxLength: f }), { minLength: 1, maxLength: 5 }),
  }),
);

/** The model as ONNX stores it: every parameter rounded to float32. */
function asFloat32(m: LogisticModel): LogisticModel {
  const round = (xs: number[]) => xs.map(Math.fround);
  return {
    weights: round(m.weights),
    bias: Math.fround(m.bias),
    mean: round(m.mean),
    std: round(m.std),
    ...(m.logFloor ? { logFloor: round(m.logFloor) } : {}),
  };
}

/** Runs `model` exported in onnxruntime on `rows`: each probability within 1e-5 of predictLogistic at float32. */
async function expectOnnxMatches(model: LogisticModel, rows: number[][]): Promise<void> {
  const f = model.weights.length;
  const session = await ort.InferenceSession.create(exportLogisticOnnx(model, specOf(f)));
  try {
    const input = Float32Array.from(rows.flat());
    const out = await session.run({ features: new ort.Tensor('float32', input, [rows.length, f]) });
    expect(out.probability?.dims).toEqual([rows.length, 1]);
    const reference = asFloat32(model);
    rows.forEach((_, i) => {
      const x = Array.from(input.subarray(i * f, (i + 1) * f));
      expect(Math.abs((out.probability!.data[i] as number) - predictLogistic(reference, x))).toBeLessThan(
        1e-5,
      );
    });
  } finally {
    await session.release();
  }
}

describe('exportLogisticOnnx', () => {
  it('onnxruntime computes the same probabilities as predictLogistic', async () => {
    await fc.assert(
      fc.asyncProperty(modelAndRows, ({ model, rows }) => expectOnnxMatches(model, rows)),
      { numRuns: 40 },
    );
  });

  it('a model with inputs on a log scale (the focused regression): the same probabilities, negatives at the floor', async () => {
    const withFloors = modelAndRows.chain(({ model, rows }) =>
      fc
        .array(fc.oneof(fc.constant(0), num(0.01, 2)), {
          minLength: model.weights.length,
          maxLength: model.weights.length,
        })
        .map((logFloor) => ({ model: { ...model, logFloor }, rows })),
    );
    await fc.assert(
      fc.asyncProperty(withFloors, ({ model, rows }) => expectOnnxMatches(model, rows)),
      { numRuns: 40 },
    );
    // A floor is what a log-scaled input adds before the log: 0 at a floor of 1 is ln 1, the same as no input.
    const one: LogisticModel = { weights: [2], bias: 0.5, mean: [0], std: [1], logFloor: [1] };
    expect(predictLogistic(one, [0])).toBeCloseTo(predictLogistic({ ...one, logFloor: [0] }, [0]), 12);
    expect(predictLogistic(one, [-3])).toBe(predictLogistic(one, [0]));
    expect(() => exportLogisticOnnx({ ...one, logFloor: [Number.NaN] }, specOf(1))).toThrow(/logFloor/);
  });

  it('records the feature spec and version in metadata_props', () => {
    const bytes = exportLogisticOnnx(
      { weights: [1, 2], bias: 0, mean: [0, 0], std: [1, 1] },
      specOf(2),
      meta,
    );
    expect(readOnnxMetadata(bytes)).toEqual({
      [METADATA_KEYS.featureNames]: '["f0","f1"]',
      [METADATA_KEYS.featureSpecVersion]: '3',
      [METADATA_KEYS.tickMs]: '100',
      [METADATA_KEYS.target]: meta.target,
      [METADATA_KEYS.version]: meta.version,
    });
  });

  it('refuses a spec of the wrong width and non-finite parameters', () => {
    const model = { weights: [1, 2], bias: 0, mean: [0, 0], std: [1, 1] };
    expect(() => exportLogisticOnnx(model, specOf(3))).toThrow(/3 features but the model has 2/);
    expect(() => exportLogisticOnnx({ ...model, bias: Number.NaN }, specOf(2))).toThrow(/bias is not finite/);
  });
});

describe('loadModel', () => {
  const model: LogisticModel = { weights: [0.5, -1, 2], bias: 0.1, mean: [1, 2, 3], std: [1, 2, 0.5] };
  const spec = specOf(3);
  const bytes = exportLogisticOnnx(model, spec, meta);

  it('scores batches like predictLogistic', async () => {
    const loaded = await loadModel(bytes, spec, meta);
    try {
      const rows = Float32Array.from([1, 2, 3, 0, 0, 0, 4, -1, 3.5]);
      const p = await loaded.predict(rows, 3);
      expect(p).toHaveLength(3);
      for (let i = 0; i < 3; i++) {
        const x = Array.from(rows.subarray(i * 3, i * 3 + 3));
        expect(Math.abs(p[i]! - predictLogistic(model, x))).toBeLessThan(1e-5);
      }
      await expect(loaded.predict(rows, 2)).rejects.toThrow(/2 rows x 3 features = 6 values, got 9/);
    } finally {
      await loaded.release();
    }
  });

  it('rejects truncated and corrupt bytes with a ModelLoadError that keeps the cause', async () => {
    for (const bad of [
      bytes.subarray(0, Math.floor(bytes.length / 2)),
      Uint8Array.from([1, 2, 3, 255, 7, 0]),
    ]) {
      const err = await loadModel(bad, spec, meta).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ModelLoadError);
      expect((err as Error).message).toMatch(/quote_change_500ms@test-1: not a loadable ONNX model/);
      expect((err as Error).cause).toBeDefined();
    }
  });

  it('rejects a model whose input width differs from the feature spec', async () => {
    await expect(loadModel(bytes, specOf(4), meta)).rejects.toThrow(
      /input "features" has shape \[N, 3\] but the feature spec has 4 features/,
    );
  });

  it('rejects a model whose warm-up output is not a probability', async () => {
    // std 0 with mean 0 divides 0 by 0 on the all-zero warm-up row: the model loads but yields NaN.
    const broken = exportLogisticOnnx({ weights: [1], bias: 0, mean: [0], std: [0] }, specOf(1), meta);
    await expect(loadModel(broken, specOf(1), meta)).rejects.toThrow(/warm-up produced NaN/);
  });
});
