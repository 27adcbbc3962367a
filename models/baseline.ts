/**
 * `npm run baseline [-- --hours H]`: the shipped models, one per slot (each target's `l2` and `ticker` model),
 * trained by THE training job's code on a simulated market, reproducibly:
 *
 * 1. Simulates the default market (src/simulator, default profiles, seed 20240601, 24 hours) and renders it as
 *    Advanced Trade WebSocket frames.
 * 2. Maps the frames with the production mapper and feeds them to THE feature pipeline (src/features), so the
 *    training rows are computed exactly as the worker computes live ones (buildDatasets).
 * 3. For each slot, models/train/train.ts trainCandidate, as the training job runs it on the lake's rows: complete
 *    rows of the set, the purged 70/30 time split, τ per product (vol_spike_60s), the learner chosen on the newest
 *    training rows (TRAIN_ALGORITHM=auto), the held-out figures and the walk-forward record; then the gate of a
 *    first model (models/eval/gate.ts: no active model, so the held-out rows must show skill over the base rate).
 * 4. Writes models/baseline/<slot>/{model.onnx, feature_spec.json, metrics.json, run.json, report.html}.
 *
 * Same seed, hours and code => byte-identical model.onnx, feature_spec.json and metrics.json (no wall clock:
 * trainedAt is the simulated end of the data); the version carries a digest of the fitted model, so a retrained
 * model with other weights is another version. run.json and report.html also name the commit they came from.
 */

import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_TRAIN_L2, readPromotionConfig } from '../src/config.js';
import { FeaturePipeline } from '../src/features/pipeline.js';
import { FEATURE_SPEC, FEATURE_VERSION } from '../src/features/spec.js';
import type { FeatureRow, FeatureSpec, LabelRow } from '../src/features/types.js';
import { VOL_HORIZON_S, VOL_SPIKE_TARGET } from '../src/labels/volSpike.js';
import { componentLogger, type Logger } from '../src/log.js';
import { FEED_PRODUCT, mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import { loadModel } from '../src/model/runtime.js';
import { MODEL_SETS, slotKey, TARGETS } from '../src/model/types.js';
import { DEFAULT_PRODUCTS, seedEpochUs } from '../src/simulator/exchange.js';
import { Session } from '../src/simulator/session.js';
import { ScoredRows } from './eval/bootstrap.js';
import { decidePromotion, timeFolds } from './eval/gate.js';
import { curvesOf, gitSha, type RunRecord, renderReport, specHash } from './eval/runRecord.js';
import { mainMetric } from './eval/walkForward.js';
import { type Example, labelsOf, splitByTime as purgedSplit } from './train/dataset.js';
import { labelHorizonUs, toSpikeValues } from './train/targets.js';
import { trainCandidate } from './train/train.js';

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
  /** Run the walk-forward evaluation for each run record (default true; the reproducibility test skips it). */
  walkForward?: boolean;
}

export const DEFAULT_OPTIONS: BaselineOptions = {
  seed: 20_240_601,
  minutes: 24 * 60,
  trainFraction: 0.7,
};

export interface Datasets {
  /** quote_change_500ms examples, y in {0, 1}. */
  quoteChange: Example[];
  /** vol_spike_60s examples, y = the spike value (targets.ts toSpikeValues), before τ. */
  volSpike: Example[];
}

/** The examples of `target` in `datasets`. */
export function examplesOf(datasets: Datasets, target: string): Example[] {
  return target === VOL_SPIKE_TARGET ? datasets.volSpike : datasets.quoteChange;
}

/** Simulated frames -> mapper -> feature pipeline -> (features, label) pairs per target, in time order. */
/**
 * A seeded simulated market (default products) rendered as Advanced Trade frames, mapped by the production mapper
 * and fed to THE feature pipeline, in one-second steps: `visit` gets each drain (feature rows and labels) and the
 * receive time. The one way the baselines, the walk-forward and the training tests make market rows offline.
 */
export function simulateMarket(
  seed: number,
  minutes: number,
  visit: (drained: { rows: FeatureRow[]; labels: LabelRow[] }, recvUs: number) => void,
): void {
  const startUs = seedEpochUs(seed);
  const session = new Session(DEFAULT_PRODUCTS, seed, startUs);
  const pipeline = new FeaturePipeline({ tickMs: FEATURE_SPEC.tickMs, deltaMs: DELTA_MS, topLevels: 0 });
  const feed = (text: string, recvUs: number) => {
    for (const event of mapAdvancedTradeFrame(text, recvUs).events) {
      if (event.product !== FEED_PRODUCT) pipeline.push(event);
    }
    visit(pipeline.drain(), recvUs);
  };
  const productIds = DEFAULT_PRODUCTS.map((p) => p.productId);
  for (const channel of ['level2', 'market_trades']) {
    const subscribe = JSON.stringify({ type: 'subscribe', channel, product_ids: productIds });
    for (const f of session.handleMessage(subscribe)) feed(f.text, session.timeUs);
  }
  const endUs = startUs + minutes * 60_000_000;
  for (let t = startUs; t < endUs; t += 1_000_000) {
    for (const f of session.advanceTo(Math.min(t + 1_000_000, endUs))) feed(f.text, session.timeUs);
  }
}

/** Every feature row and label of a simulated market (simulateMarket), in the order the pipeline emitted them. */
export function simulateRows(seed: number, minutes: number): { rows: FeatureRow[]; labels: LabelRow[] } {
  const rows: FeatureRow[] = [];
  const labels: LabelRow[] = [];
  simulateMarket(seed, minutes, (out) => {
    for (const r of out.rows) rows.push(r);
    for (const l of out.labels) labels.push(l);
  });
  return { rows, labels };
}

export function buildDatasets(opts: Pick<BaselineOptions, 'seed' | 'minutes'>): Datasets {
  const products = DEFAULT_PRODUCTS.length;
  // Rows wait for both labels (the vol label comes ~60 s later); each label takes its own copy of x.
  const rows = new Map<string, { x: number[]; pending: number }>();
  const out: Datasets = { quoteChange: [], volSpike: [] };
  simulateMarket(opts.seed, opts.minutes, (drained, recvUs) => {
    for (const row of drained.rows)
      rows.set(`${row.product}@${row.tsUs}`, { x: Array.from(row.values), pending: 2 });
    for (const label of drained.labels) {
      const key = `${label.product}@${label.tsUs}`;
      const row = rows.get(key);
      if (!row) continue; // no valid feature row at that tick
      const list = examplesOf(out, label.target);
      list.push({ product: label.product, tsUs: label.tsUs, x: row.x, y: label.value });
      if (--row.pending === 0) rows.delete(key);
    }
    // A row whose label was dropped (gap) would wait forever: forget rows older than any horizon.
    if (rows.size > 4 * (VOL_HORIZON_S + 2) * 10 * products) {
      const oldest = recvUs - (VOL_HORIZON_S + 5) * 1e6;
      for (const key of rows.keys()) if (Number(key.slice(key.indexOf('@') + 1)) < oldest) rows.delete(key);
    }
  });
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

/** The models of the slots (target, set) on `datasets`, as the training job trains them, and their run records. */
export async function trainBaselines(
  opts: BaselineOptions = DEFAULT_OPTIONS,
  datasets: Datasets = buildDatasets(opts),
  log: Logger = () => {},
): Promise<BaselineFiles[]> {
  const out: BaselineFiles[] = [];
  for (const target of TARGETS) {
    const examples = examplesOf(datasets, target);
    for (const set of MODEL_SETS) {
      const started = performance.now();
      const trainedAt = new Date(Math.floor(examples.at(-1)!.tsUs / 1000)).toISOString();
      const candidate = await trainCandidate(
        examples,
        {
          target,
          set,
          version: (digest) => `baseline-fs${FEATURE_VERSION}-${set}-seed${opts.seed}-${digest}`,
          algorithm: 'auto',
          l2: DEFAULT_TRAIN_L2[target],
          trainFraction: opts.trainFraction,
          minRows: 100,
          deltaMs: DELTA_MS,
          tickMs: FEATURE_SPEC.tickMs,
          trainedAt,
          walkForward: opts.walkForward,
        },
        log,
      );
      const { metrics, version } = candidate;
      Object.assign(metrics, {
        data: {
          source: 'simulator',
          seed: opts.seed,
          minutes: opts.minutes,
          products: DEFAULT_PRODUCTS.map((p) => p.productId),
          split: `time-ordered ${opts.trainFraction * 100}/${Math.round(100 - opts.trainFraction * 100)}, training rows with a label horizon past the cut purged`,
        },
      });
      // The first model of a slot passes the gate only by beating the base rate beyond noise on the held-out rows.
      const model = await loadModel(candidate.onnx, candidate.spec, { target, version });
      let pHoldout: Float64Array;
      const { holdout } = candidate;
      try {
        const width = candidate.spec.features.length;
        const packed = new Float32Array(holdout.length * width);
        holdout.forEach((e, i) => {
          packed.set(e.x, i * width);
        });
        pHoldout = Float64Array.from(await model.predict(packed, holdout.length));
      } finally {
        await model.release();
      }
      const y = labelsOf(holdout);
      const trainRate = metrics.trainBaseRate as number;
      const promotion = readPromotionConfig({});
      const horizonUs = labelHorizonUs(target, DELTA_MS);
      const tsUs = Float64Array.from(holdout, (e) => e.tsUs);
      const decision = decidePromotion(
        {
          target,
          mainMetric: mainMetric(target),
          horizonUs,
          tsUs,
          fold: timeFolds(tsUs, promotion.folds),
          y,
          candidate: pHoldout,
          trainRate,
        },
        promotion,
      );
      const scored = new ScoredRows(pHoldout, y, trainRate, trainRate).metrics();
      const record: RunRecord = {
        target,
        version,
        status: decision.promote ? 'passed' : 'rejected',
        recordedAt: trainedAt,
        gitSha: gitSha(),
        featureSpecHash: specHash(candidate.spec),
        parameters: {
          training: {
            target,
            set,
            candidateVersion: version,
            trainFraction: opts.trainFraction,
            l2: DEFAULT_TRAIN_L2[target],
            minRows: 100,
            algorithm: 'auto',
            keepSuspect: false,
          },
          promotion,
        },
        data: {
          window: candidate.split.holdout,
          rows: { train: candidate.split.trainRows, test: holdout.length },
          positives: y.reduce((n, v) => n + v, 0),
          ...(candidate.thresholds ? { thresholds: candidate.thresholds } : {}),
        },
        trainingS: (performance.now() - started) / 1000,
        candidate: {
          version,
          auc: scored.rocAuc,
          prAuc: scored.prAuc,
          brier: scored.brier,
          logLoss: scored.logLoss,
          calibrationError: scored.calibrationError,
        },
        active: null,
        decision,
        curves: { candidate: curvesOf(pHoldout, y) },
        walkForward: (metrics.walkForward as RunRecord['walkForward']) ?? {
          notRun: 'skipped (npm run baseline -- --skip-walk-forward): see npm run bench -- --only quality',
        },
      };
      out.push({ slot: slotKey(target, set), onnx: candidate.onnx, spec: candidate.spec, metrics, record });
      log('info', 'baseline trained', {
        slot: slotKey(target, set),
        version,
        seconds: record.trainingS,
        learner: (metrics.training as { choice?: { learner: string } }).choice?.learner,
        auc: metrics.auc,
        gate: decision.promote ? 'passed' : decision.reasons,
      });
    }
  }
  return out;
}

export interface BaselineFiles {
  slot: string;
  onnx: Uint8Array;
  spec: FeatureSpec;
  metrics: Record<string, unknown>;
  record: RunRecord;
}

/** The files of one slot, as they are committed (and compared by the reproducibility test). */
export function baselineFiles(b: BaselineFiles): Record<string, Uint8Array | string> {
  return {
    'model.onnx': b.onnx,
    'feature_spec.json': `${JSON.stringify(b.spec, null, 2)}\n`,
    'metrics.json': `${JSON.stringify(b.metrics, null, 2)}\n`,
  };
}

/**
 * The short configuration whose file digests are committed in models/baseline/repro.json: the reproducibility
 * test of `npm test` retrains it (seconds, not the 24-hour run) and must get the same bytes.
 */
export const REPRO_OPTIONS: BaselineOptions = {
  seed: 20_240_601,
  minutes: 40,
  trainFraction: 0.7,
  walkForward: false,
};

/** repro.json: REPRO_OPTIONS and the sha256 of each slot's files trained with them. */
export async function reproDigests(): Promise<{
  options: BaselineOptions;
  files: Record<string, Record<string, string>>;
}> {
  const files: Record<string, Record<string, string>> = {};
  for (const b of await trainBaselines(REPRO_OPTIONS)) {
    files[b.slot] = Object.fromEntries(
      Object.entries(baselineFiles(b)).map(([file, bytes]) => [
        file,
        createHash('sha256').update(bytes).digest('hex'),
      ]),
    );
  }
  return { options: REPRO_OPTIONS, files };
}

async function main(): Promise<void> {
  const log = componentLogger('baseline');
  const { values } = parseArgs({
    options: {
      hours: { type: 'string', default: String(DEFAULT_OPTIONS.minutes / 60) },
      // The walk-forward of 24 hours of rows per slot takes most of the run's time on 2 cores.
      'skip-walk-forward': { type: 'boolean', default: false },
    },
  });
  const hours = Number(values.hours);
  if (!(hours > 0)) throw new Error(`--hours: a positive number, got ${values.hours}`);
  const opts = {
    ...DEFAULT_OPTIONS,
    minutes: Math.round(hours * 60),
    walkForward: !values['skip-walk-forward'],
  };
  const t0 = performance.now();
  log('info', 'simulating', { seed: opts.seed, hours });
  const datasets = buildDatasets(opts);
  log('info', 'rows built', {
    seconds: (performance.now() - t0) / 1000,
    quoteChange: datasets.quoteChange.length,
  });
  for (const b of await trainBaselines(opts, datasets, log)) {
    const dir = join(BASELINE_DIR, b.slot);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const [file, bytes] of Object.entries(baselineFiles(b))) writeFileSync(join(dir, file), bytes);
    writeFileSync(join(dir, 'run.json'), `${JSON.stringify(b.record, null, 2)}\n`);
    writeFileSync(join(dir, 'report.html'), renderReport(b.record));
    log('info', 'baseline written', { dir, version: b.record.version });
  }
  writeFileSync(join(BASELINE_DIR, 'repro.json'), `${JSON.stringify(await reproDigests(), null, 2)}\n`);
  log('info', 'repro.json written', { seconds: (performance.now() - t0) / 1000 });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
