/**
 * Score stage: each row of a batch is scored, per target, by the served model whose feature set its data
 * supports (src/features/spec.ts supportedSets: an L2 row by the l2 model, a ticker-only row by the ticker
 * model; an L2 row falls back to the ticker model when no l2 model is served). ONE onnxruntime call per model
 * for all its rows of the batch (all products together), on the columns of its feature set. A model whose
 * feature spec does not match the code is never served (checked once per loaded model); a model that fails on a
 * batch costs that batch its predictions, not its rows.
 */

import { type JudgedLineage, judgeLineage } from '../features/lineage.js';
import { assertSpecMatches, featureColumns, supportedSets } from '../features/spec.js';
import type { FeatureRow } from '../features/types.js';
import { describeError, type Logger } from '../log.js';
import type { LoadedModel, Target } from '../model/types.js';
import type { PredictionRow } from '../storage/parquet.js';

/** One target's scores of a batch. */
export interface Scored {
  target: Target;
  /** Per row: its probability, NaN where no served model of the target fits the row's data. */
  probabilities: Float32Array;
  /** Per row: the model that scored it (undefined where none did). */
  models: (LoadedModel | undefined)[];
  /** The scored rows' predictions, in row order. */
  predictions: PredictionRow[];
  /** Per row: its lineage as its model judged it (src/features/lineage.ts; undefined where unscored or none). */
  judged: (JudgedLineage | undefined)[];
}

/** The lake row's form of the prediction's lineage (src/features/lineage.ts); nothing for a row without one. */
function lineageFields(judged: JudgedLineage | undefined): Partial<PredictionRow> {
  if (!judged) return {};
  const l = judged.lineage;
  return {
    abstain: judged.abstain ?? '',
    windowS: l.windowS,
    sinceResyncS: l.sinceResyncS ?? Number.NaN,
    windowResyncs: l.resyncs,
    windowGap: l.gap ? 1 : 0,
    verification: l.verification.result,
    verificationAgeS: l.verification.ageS ?? Number.NaN,
    feedLatencyMs: l.feedLatencyMs ?? Number.NaN,
  };
}

export class Scorer {
  /** Models whose spec was checked: their input columns when servable, null when not. */
  private readonly checked = new WeakMap<LoadedModel, Int32Array | null>();

  constructor(
    private readonly tickMs: number,
    private readonly log: Logger,
    /** Told how long each model's run over a batch took. */
    private readonly onRun: (target: string, ms: number) => void = () => {},
  ) {}

  async score(rows: readonly FeatureRow[], models: readonly LoadedModel[]): Promise<Scored[]> {
    if (rows.length === 0) return [];
    const out: Scored[] = [];
    const targets = [...new Set(models.map((m) => m.target))];
    for (const target of targets) {
      const bySet = new Map<string, LoadedModel>();
      for (const m of models) if (m.target === target && this.columns(m)) bySet.set(m.featureSet, m);
      if (bySet.size === 0) continue;
      // Which model scores each row: the first set its data supports that has a served model.
      const chosen = rows.map((r) => {
        for (const set of supportedSets(r.values)) {
          const m = bySet.get(set);
          if (m) return m;
        }
        return undefined;
      });
      const probabilities = new Float32Array(rows.length).fill(Number.NaN);
      const scoredBy: (LoadedModel | undefined)[] = new Array(rows.length).fill(undefined);
      for (const model of bySet.values()) {
        const mine: number[] = [];
        chosen.forEach((m, i) => {
          if (m === model) mine.push(i);
        });
        if (mine.length === 0) continue;
        const columns = this.columns(model)!;
        const F = columns.length;
        const input = new Float32Array(mine.length * F);
        mine.forEach((i, k) => {
          const values = rows[i]!.values;
          for (let j = 0; j < F; j++) input[k * F + j] = values[columns[j]!]!;
        });
        let p: Float32Array;
        try {
          const started = performance.now();
          p = await model.predict(input, mine.length);
          this.onRun(model.target, performance.now() - started);
        } catch (err) {
          this.log('error', 'model scoring failed; rows kept without its predictions', {
            target: model.target,
            version: model.version,
            error: describeError(err),
          });
          continue;
        }
        mine.forEach((i, k) => {
          probabilities[i] = p[k]!;
          scoredBy[i] = model;
        });
      }
      const predictions: PredictionRow[] = [];
      const judged: (JudgedLineage | undefined)[] = new Array(rows.length);
      rows.forEach((r, i) => {
        const m = scoredBy[i];
        if (!m) return;
        judged[i] = judgeLineage(r, m.spec);
        predictions.push({
          product: r.product,
          tsUs: r.tsUs,
          seq: r.seq,
          target,
          modelVersion: m.version,
          probability: probabilities[i]!,
          ...lineageFields(judged[i]),
        });
      });
      if (predictions.length > 0) out.push({ target, probabilities, models: scoredBy, predictions, judged });
    }
    return out;
  }

  private columns(model: LoadedModel): Int32Array | null {
    let columns = this.checked.get(model);
    if (columns === undefined) {
      try {
        assertSpecMatches(model.spec, this.tickMs);
        columns = featureColumns(model.spec);
      } catch (err) {
        this.log('error', 'model not served: feature spec mismatch', {
          version: model.version,
          error: describeError(err),
        });
        columns = null;
      }
      this.checked.set(model, columns);
    }
    return columns;
  }
}
