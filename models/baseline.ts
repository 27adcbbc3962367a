/**
 * `npm run baseline`: builds the shipped baseline models, reproducibly, for both targets:
 * quote_change_500ms and vol_spike_60s.
 *
 * 1. Simulates a seeded market (src/simulator) and renders it as Advanced Trade WebSocket frames.
 * 2. Maps the frames with the production mapper and feeds them to THE feature pipeline (src/features), so the
 *    training rows are computed exactly as the worker computes live ones.
 * 3. Joins feature rows with their labels, splits by time (first 70% of ticks train, last 30% test; training
 *    rows whose label horizon reaches into the test part are purged), trains a logistic regression per target,
 *    evaluates it on the test part, and writes models/baseline/<target>/{model.onnx, feature_spec.json,
 *    metrics.json}.
 * vol_spike_60s labels are continuous (forward 60 s realized volatility, bps); the binary target is
 * "forward vol > τ" with τ the 90th percentile of the TRAINING part's values, stored in metrics.json
 * (`threshold`) and in the ONNX metadata (METADATA_KEYS.threshold) so serving and live quality use the same τ.
 *
 * Same seed and code => byte-identical files (no wall clock: trainedAt is the simulated end of the data), so
 * re-running never produces a "new" version by accident; changing FEATURE_VERSION or the trained weights
 * (a short hash of them is part of the version) changes the version.
 */

import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TRAIN_L2 } from '../src/config.js';
import { FeaturePipeline } from '../src/features/pipeline.js';
import { FEATURE_SPEC, FEATURE_VERSION } from '../src/features/spec.js';
import { QUOTE_CHANGE_TARGET } from '../src/labels/quoteChange.js';
import { VOL_HORIZON_S, VOL_SPIKE_TARGET } from '../src/labels/volSpike.js';
import { componentLogger } from '../src/log.js';
import { FEED_PRODUCT, mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import { METADATA_KEYS } from '../src/model/contract.js';
import { baseRate, brierScore, logLoss, rocAuc } from '../src/model/metrics.js';
import type { ModelMetrics, Target } from '../src/model/types.js';
import { DEFAULT_PRODUCTS, seedEpochUs } from '../src/simulator/exchange.js';
import { Session } from '../src/simulator/session.js';
import { exportLogisticOnnx } from './export/onnx.js';
import { type Example, splitByTime as purgedSplit } from './train/dataset.js';
import { predictLogistic, trainLogisticRegression } from './train/logreg.js';
import {
  binarize,
  fitThreshold,
  labelHorizonUs,
  THRESHOLD_DEFINITION,
  toSpikeValues,
  withOnnxMetadata,
} from './train/targets.js';

export { nearestRankQuantile, VOL_SPIKE_QUANTILE, withOnnxMetadata } from './train/targets.js';
// The rules shared with the training job live in models/train/; re-exported for this module's callers.
export type { Example };

export const BASELINE_DIR = fileURLToPath(new URL('./baseline', import.meta.url));
const DELTA_MS = 500;

export interface BaselineOptions {
  seed: number;
  /** Simulated minutes of market data (all products). */
  minutes: number;
  trainFraction: number;
  l2: number;
  /** L2 penalty of the vol_spike_60s model (why it is stronger: DEFAULT_TRAIN_L2 in src/config.ts). */
  l2Vol: number;
}

export const DEFAULT_OPTIONS: BaselineOptions = {
  seed: 20_240_601,
  minutes: 60,
  trainFraction: 0.7,
  l2: DEFAULT_TRAIN_L2.quote_change_500ms,
  l2Vol: DEFAULT_TRAIN_L2.vol_spike_60s,
};

export interface Datasets {
  /** quote_change_500ms examples, y in {0, 1}. */
  quoteChange: Example[];
  /** vol_spike_60s examples, y = the spike value (targets.ts toSpikeValues), before τ. */
  volSpike: Example[];
}

/** Simulated frames -> mapper -> feature pipeline -> (features, label) pairs per target, in time order. */
export function buildDatasets(opts: Pick<BaselineOptions, 'seed' | 'minutes'>): Datasets {
  const startUs = seedEpochUs(opts.seed);
  const session = new Session(DEFAULT_PRODUCTS, opts.seed, startUs);
  const productIds = DEFAULT_PRODUCTS.map((p) => p.productId);
  const pipeline = new FeaturePipeline({ tickMs: FEATURE_SPEC.tickMs, deltaMs: DELTA_MS, topLevels: 0 });
  // Rows wait for both labels (the vol label comes ~60 s later); each label takes its own copy of x.
  const rows = new Map<string, { x: number[]; pending: number }>();
  const out: Datasets = { quoteChange: [], volSpike: [] };

  const feed = (text: string, recvUs: number) => {
    for (const event of mapAdvancedTradeFrame(text, recvUs).events) {
      if (event.product !== FEED_PRODUCT) pipeline.push(event);
    }
    const drained = pipeline.drain();
    for (const row of drained.rows)
      rows.set(`${row.product}@${row.tsUs}`, { x: Array.from(row.values), pending: 2 });
    for (const label of drained.labels) {
      const key = `${label.product}@${label.tsUs}`;
      const row = rows.get(key);
      if (!row) continue; // no valid feature row at that tick
      const list = label.target === VOL_SPIKE_TARGET ? out.volSpike : out.quoteChange;
      list.push({ product: label.product, tsUs: label.tsUs, x: row.x, y: label.value });
      if (--row.pending === 0) rows.delete(key);
    }
    // A row whose label was dropped (gap) would wait forever: forget rows older than any horizon.
    if (rows.size > 4 * (VOL_HORIZON_S + 2) * 10 * productIds.length) {
      const oldest = recvUs - (VOL_HORIZON_S + 5) * 1e6;
      for (const key of rows.keys()) if (Number(key.slice(key.indexOf('@') + 1)) < oldest) rows.delete(key);
    }
  };

  for (const channel of ['level2', 'market_trades']) {
    const subscribe = JSON.stringify({ type: 'subscribe', channel, product_ids: productIds });
    for (const f of session.handleMessage(subscribe)) feed(f.text, session.timeUs);
  }
  const endUs = startUs + opts.minutes * 60_000_000;
  for (let t = startUs; t < endUs; t += 1_000_000) {
    for (const f of session.advanceTo(Math.min(t + 1_000_000, endUs))) feed(f.text, session.timeUs);
  }
  const byTime = (a: Example, b: Example) => a.tsUs - b.tsUs || a.product.localeCompare(b.product);
  out.quoteChange.sort(byTime);
  out.volSpike.sort(byTime);
  // The lake keeps the forward volatility; what is learnt is its spike value (as the training job's lake reader).
  return { quoteChange: out.quoteChange, volSpike: toSpikeValues(out.volSpike) };
}

/** quote_change_500ms examples only (kept for callers of the single-target builder). */
export function buildDataset(opts: Pick<BaselineOptions, 'seed' | 'minutes'>): Example[] {
  return buildDatasets(opts).quoteChange;
}

/**
 * The training job's time split (models/train/dataset.ts): the oldest trainFraction of the rows train, the
 * cut on a tick boundary, training rows whose label horizon reaches the test part purged.
 */
export function splitByTime(examples: readonly Example[], trainFraction: number, horizonUs: number) {
  const { train, holdout } = purgedSplit(examples, trainFraction, horizonUs);
  return { train, test: holdout };
}

export function trainBaseline(
  opts: BaselineOptions = DEFAULT_OPTIONS,
  target: Target = QUOTE_CHANGE_TARGET,
  datasets: Datasets = buildDatasets(opts),
) {
  const isVol = target === VOL_SPIKE_TARGET;
  const examples = isVol ? datasets.volSpike : datasets.quoteChange;
  if (examples.length < 100)
    throw new Error(`only ${examples.length} labelled ${target} rows; simulate more minutes`);
  const split = splitByTime(examples, opts.trainFraction, labelHorizonUs(target, DELTA_MS));
  // vol_spike_60s: τ from the training part only, then the binary target "forward vol > τ" on both parts.
  const threshold = fitThreshold(target, split.train);
  const train = binarize(split.train, threshold);
  const test = binarize(split.test, threshold);
  const model = trainLogisticRegression(
    train.map((e) => e.x),
    train.map((e) => e.y),
    { l2: isVol ? opts.l2Vol : opts.l2 },
  );
  const yTest = test.map((e) => e.y);
  const pTest = test.map((e) => predictLogistic(model, e.x));
  const trainRate = baseRate(train.map((e) => e.y));

  // The content hash makes a retrained model (new simulator, new code) a new version: the registry refuses
  // to overwrite an existing version, so same name + different bytes would never reach a data dir.
  const digest = createHash('sha256').update(JSON.stringify(model)).digest('hex').slice(0, 8);
  const version = `baseline-fs${FEATURE_VERSION}-seed${opts.seed}-${digest}`;
  const metrics: ModelMetrics = {
    target,
    version,
    trainedAt: new Date(Math.floor(examples.at(-1)!.tsUs / 1000)).toISOString(),
    rows: { train: train.length, test: test.length },
    baseRate: baseRate(yTest),
    auc: rocAuc(pTest, yTest),
    brier: brierScore(pTest, yTest),
    logLoss: logLoss(pTest, yTest),
    // What "no skill" scores on the same test rows: always predicting the training base rate.
    reference: {
      brier: brierScore(
        yTest.map(() => trainRate),
        yTest,
      ),
      logLoss: logLoss(
        yTest.map(() => trainRate),
        yTest,
      ),
    },
    ...(isVol
      ? {
          threshold,
          thresholdDefinition: THRESHOLD_DEFINITION,
          trainBaseRate: trainRate,
        }
      : {}),
    data: {
      source: 'simulator',
      seed: opts.seed,
      minutes: opts.minutes,
      products: DEFAULT_PRODUCTS.map((p) => p.productId),
      split: `time-ordered ${opts.trainFraction * 100}/${100 - opts.trainFraction * 100}, training rows with a label horizon past the cut purged`,
    },
    training: {
      algorithm: 'logistic regression (Newton/IRLS, standardized features)',
      l2: isVol ? opts.l2Vol : opts.l2,
    },
  };
  const bare = exportLogisticOnnx(model, FEATURE_SPEC, { target, version });
  const onnx =
    threshold === undefined ? bare : withOnnxMetadata(bare, { [METADATA_KEYS.threshold]: String(threshold) });
  return { model, metrics, onnx };
}

function main(): void {
  const log = componentLogger('baseline');
  const t0 = performance.now();
  const datasets = buildDatasets(DEFAULT_OPTIONS);
  for (const target of [QUOTE_CHANGE_TARGET, VOL_SPIKE_TARGET] as const) {
    const { metrics, onnx } = trainBaseline(DEFAULT_OPTIONS, target, datasets);
    const dir = join(BASELINE_DIR, target);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.onnx'), onnx);
    writeFileSync(join(dir, 'feature_spec.json'), `${JSON.stringify(FEATURE_SPEC, null, 2)}\n`);
    writeFileSync(join(dir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    log('info', 'baseline written', { dir, seconds, ...metrics, data: undefined });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
