/**
 * `npm run baseline`: builds the shipped baseline model for quote_change_500ms, reproducibly.
 *
 * 1. Simulates a seeded market (src/simulator) and renders it as Advanced Trade WebSocket frames.
 * 2. Maps the frames with the production mapper and feeds them to THE feature pipeline (src/features), so the
 *    training rows are computed exactly as the worker computes live ones.
 * 3. Joins feature rows with their labels, splits by time (first 70% of ticks train, last 30% test), trains a
 *    logistic regression, evaluates it on the test part, and writes
 *    models/baseline/quote_change_500ms/{model.onnx, feature_spec.json, metrics.json}.
 *
 * Same seed and code => byte-identical files (no wall clock: trainedAt is the simulated end of the data), so
 * re-running never produces a "new" version by accident; changing FEATURE_VERSION or the trained weights
 * (a short hash of them is part of the version) changes the version.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FeaturePipeline } from '../src/features/pipeline.js';
import { FEATURE_SPEC, FEATURE_VERSION } from '../src/features/spec.js';
import { QUOTE_CHANGE_TARGET } from '../src/labels/quoteChange.js';
import { FEED_PRODUCT, mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import type { ModelMetrics } from '../src/model/types.js';
import { DEFAULT_PRODUCTS, seedEpochUs } from '../src/simulator/exchange.js';
import { Session } from '../src/simulator/session.js';
import { baseRate, brierScore, logLoss, rocAuc } from './eval/metrics.js';
import { exportLogisticOnnx } from './export/onnx.js';
import { predictLogistic, trainLogisticRegression } from './train/logreg.js';

export const BASELINE_DIR = fileURLToPath(new URL('./baseline', import.meta.url));
const TARGET = QUOTE_CHANGE_TARGET;
const DELTA_MS = 500;

export interface BaselineOptions {
  seed: number;
  /** Simulated minutes of market data (all products). */
  minutes: number;
  trainFraction: number;
  l2: number;
}

export const DEFAULT_OPTIONS: BaselineOptions = {
  seed: 20_240_601,
  minutes: 60,
  trainFraction: 0.7,
  l2: 1e-3,
};

export interface Example {
  product: string;
  tsUs: number;
  x: number[];
  y: number;
}

/** Simulated frames -> mapper -> feature pipeline -> (features, label) pairs in time order. */
export function buildDataset(opts: Pick<BaselineOptions, 'seed' | 'minutes'>): Example[] {
  const startUs = seedEpochUs(opts.seed);
  const session = new Session(DEFAULT_PRODUCTS, opts.seed, startUs);
  const productIds = DEFAULT_PRODUCTS.map((p) => p.productId);
  const pipeline = new FeaturePipeline({ tickMs: FEATURE_SPEC.tickMs, deltaMs: DELTA_MS, topLevels: 0 });
  const rows = new Map<string, number[]>();
  const examples: Example[] = [];

  const feed = (text: string, recvUs: number) => {
    for (const event of mapAdvancedTradeFrame(text, recvUs).events) {
      if (event.product !== FEED_PRODUCT) pipeline.push(event);
    }
    const out = pipeline.drain();
    for (const row of out.rows) rows.set(`${row.product}@${row.tsUs}`, Array.from(row.values));
    for (const label of out.labels) {
      const key = `${label.product}@${label.tsUs}`;
      const x = rows.get(key);
      if (!x) continue; // no valid feature row at that tick
      rows.delete(key);
      examples.push({ product: label.product, tsUs: label.tsUs, x, y: label.value });
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
  return examples.sort((a, b) => a.tsUs - b.tsUs || a.product.localeCompare(b.product));
}

export function trainBaseline(opts: BaselineOptions = DEFAULT_OPTIONS) {
  const examples = buildDataset(opts);
  if (examples.length < 100) throw new Error(`only ${examples.length} labelled rows; simulate more minutes`);
  // Split by time, never shuffled: the test part lies strictly after the training part.
  const cut = Math.floor(examples.length * opts.trainFraction);
  const train = examples.slice(0, cut);
  const test = examples.slice(cut);
  const model = trainLogisticRegression(
    train.map((e) => e.x),
    train.map((e) => e.y),
    { l2: opts.l2 },
  );
  const yTest = test.map((e) => e.y);
  const pTest = test.map((e) => predictLogistic(model, e.x));
  const trainRate = baseRate(train.map((e) => e.y));

  // The content hash makes a retrained model (new simulator, new code) a new version: the registry refuses
  // to overwrite an existing version, so same name + different bytes would never reach a data dir.
  const digest = createHash('sha256').update(JSON.stringify(model)).digest('hex').slice(0, 8);
  const version = `baseline-fs${FEATURE_VERSION}-seed${opts.seed}-${digest}`;
  const metrics: ModelMetrics = {
    target: TARGET,
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
    data: {
      source: 'simulator',
      seed: opts.seed,
      minutes: opts.minutes,
      products: DEFAULT_PRODUCTS.map((p) => p.productId),
      split: `time-ordered ${opts.trainFraction * 100}/${100 - opts.trainFraction * 100}`,
    },
    training: { algorithm: 'logistic regression (Newton/IRLS, standardized features)', l2: opts.l2 },
  };
  const onnx = exportLogisticOnnx(model, FEATURE_SPEC, { target: TARGET, version });
  return { model, metrics, onnx };
}

function main(): void {
  const t0 = performance.now();
  const { metrics, onnx } = trainBaseline();
  const dir = join(BASELINE_DIR, TARGET);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), onnx);
  writeFileSync(join(dir, 'feature_spec.json'), `${JSON.stringify(FEATURE_SPEC, null, 2)}\n`);
  writeFileSync(join(dir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    JSON.stringify({ level: 'info', msg: 'baseline written', dir, seconds, ...metrics, data: undefined }),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
