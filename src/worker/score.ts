/**
 * Score stage: ONE onnxruntime call per served model for every row of a batch (all products together). A model
 * whose feature spec does not match the code is never served (checked once per loaded model); a model that fails
 * on a batch costs that batch its predictions, not its rows.
 */
import { assertSpecMatches, FEATURE_NAMES } from '../features/spec.js';
import type { FeatureRow } from '../features/types.js';
import { describeError, type Logger } from '../log.js';
import type { LoadedModel } from '../model/types.js';
import type { PredictionRow } from '../storage/parquet.js';

export interface Scored {
  model: LoadedModel;
  /** One per row, in row order. */
  probabilities: Float32Array;
  predictions: PredictionRow[];
}

export class Scorer {
  /** Models whose spec was checked: true = servable. */
  private readonly checked = new WeakMap<LoadedModel, boolean>();

  constructor(
    private readonly tickMs: number,
    private readonly log: Logger,
    /** Told how long each model's run over a batch took. */
    private readonly onRun: (target: string, ms: number) => void = () => {},
  ) {}

  async score(rows: readonly FeatureRow[], models: readonly LoadedModel[]): Promise<Scored[]> {
    if (rows.length === 0) return [];
    const F = FEATURE_NAMES.length;
    let input: Float32Array | undefined;
    const out: Scored[] = [];
    for (const model of models) {
      if (!this.servable(model)) continue;
      if (!input) {
        input = new Float32Array(rows.length * F);
        for (let i = 0; i < rows.length; i++) input.set(rows[i]!.values, i * F);
      }
      let probabilities: Float32Array;
      try {
        const started = performance.now();
        probabilities = await model.predict(input, rows.length);
        this.onRun(model.target, performance.now() - started);
      } catch (err) {
        this.log('error', 'model scoring failed; rows kept without its predictions', {
          target: model.target,
          version: model.version,
          error: describeError(err),
        });
        continue;
      }
      const predictions = rows.map((r, i) => ({
        product: r.product,
        tsUs: r.tsUs,
        seq: r.seq,
        target: model.target,
        modelVersion: model.version,
        probability: probabilities[i]!,
      }));
      out.push({ model, probabilities, predictions });
    }
    return out;
  }

  private servable(model: LoadedModel): boolean {
    let ok = this.checked.get(model);
    if (ok === undefined) {
      try {
        assertSpecMatches(model.spec, this.tickMs);
        ok = true;
      } catch (err) {
        this.log('error', 'model not served: feature spec mismatch', {
          version: model.version,
          error: describeError(err),
        });
        ok = false;
      }
      this.checked.set(model, ok);
    }
    return ok;
  }
}
