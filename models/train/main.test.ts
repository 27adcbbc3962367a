/**
 * The training job against real local AWS (s3rver, dynalite): a lake written by the project's own LakeWriter from
 * a seeded simulated market run through THE feature pipeline, then train -> evaluate -> promote as the state
 * machine runs them (the step modules, and the entry main.ts as a process), with the baseline seeded as the
 * active model.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTrainingStateMachine, synthesizeTrainingDefinition } from '../../bin/localTraining.js';
import { s3Client } from '../../src/aws/clients.js';
import { DEFAULT_TRAIN_L2 } from '../../src/config.js';
import {
  FEATURE_NAMES,
  FEATURE_SPEC,
  FEATURE_VERSION,
  featureSpec,
  isCompleteRow,
  MODEL_FEATURES,
} from '../../src/features/spec.js';
import type { FeatureRow, FeatureSpec, LabelRow } from '../../src/features/types.js';
import { VOL_SPIKE_LEVEL_FEATURE, volSpikeValue } from '../../src/labels/volSpike.js';
import { type Emulators, startEmulators } from '../../src/local/emulators.js';
import { provision } from '../../src/local/provision.js';
import { METADATA_KEYS } from '../../src/model/contract.js';
import { rocAuc } from '../../src/model/metrics.js';
import {
  ActivationConflictError,
  activate,
  activeVersion,
  claimNextVersion,
  isPublished,
  publishVersion,
  readPointer,
} from '../../src/model/registry.js';
import { loadModel, ModelLoadError } from '../../src/model/runtime.js';
import { BUCKETS, LOCAL_MODEL_URI } from '../../src/resources.js';
import { Rng } from '../../src/simulator/rng.js';
import { LakeWriter } from '../../src/storage/lake.js';
import { simulateRows } from '../baseline.js';
import { formatRuns, listRuns, type RunRecord } from '../eval/runRecord.js';
import { readOnnxMetadata } from '../export/onnx.js';
import type { Evaluation } from './candidate.js';
import { DatasetError } from './dataset.js';
import { evaluate } from './evaluate.js';
import { loadLakeExamples } from './lakeDataset.js';
import { promote } from './promote.js';
import { runStep } from './run.js';
import { train } from './train.js';

const TARGET = 'quote_change_500ms';
const VOL = 'vol_spike_60s';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const baselineDir = (target: string) => join(ROOT, 'models/baseline', target);
const baselineMetrics = (target: string) =>
  JSON.parse(readFileSync(join(baselineDir(target), 'metrics.json'), 'utf8')) as {
    version: string;
    threshold?: number;
  };
const BASELINE_DIR = baselineDir(TARGET);
const BASELINE_VERSION = baselineMetrics(TARGET).version;
const SHUFFLED_LAKE = 'qw-test-lake-shuffled';

async function writeLake(
  env: Record<string, string>,
  bucket: string,
  rows: FeatureRow[],
  labels: LabelRow[],
) {
  const writer = new LakeWriter({ s3: s3Client(env), bucket, shardId: 'shardId-000000000000', tickMs: 100 });
  writer.addFeatures(rows);
  writer.addLabels(labels);
  return writer.close();
}

/**
 * The labels' values permuted (seeded) within each target: same features, same value distribution per target,
 * no relation between them. Across targets would give quote_change_500ms continuous volatility values.
 */
function shuffledLabels(labels: LabelRow[]): LabelRow[] {
  const rng = new Rng(7);
  const out = [...labels];
  for (const target of new Set(labels.map((l) => l.target))) {
    const at = labels.flatMap((l, i) => (l.target === target ? [i] : []));
    const values = at.map((i) => labels[i]!.value);
    for (let i = values.length - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [values[i], values[j]] = [values[j]!, values[i]!];
    }
    at.forEach((index, k) => {
      out[index] = { ...labels[index]!, value: values[k]! };
    });
  }
  return out;
}

async function readJson<T>(env: Record<string, string>, key: string): Promise<T> {
  const res = await s3Client(env).send(new GetObjectCommand({ Bucket: BUCKETS.models.localName, Key: key }));
  return JSON.parse(await res.Body!.transformToString()) as T;
}

async function readBytes(env: Record<string, string>, key: string): Promise<Uint8Array> {
  const res = await s3Client(env).send(new GetObjectCommand({ Bucket: BUCKETS.models.localName, Key: key }));
  return res.Body!.transformToByteArray();
}

/**
 * AUC of an ONNX model on rows recomputed by the test (whole feature rows, 0/1 outcomes), each row cut to the
 * inputs of `spec` (a feature set's, or the whole row).
 */
async function onnxAuc(
  bytes: Uint8Array,
  target: 'quote_change_500ms' | 'vol_spike_60s',
  rows: number[][],
  y: number[],
  spec: FeatureSpec = FEATURE_SPEC,
): Promise<number> {
  const columns = spec.features.map((f) => FEATURE_NAMES.indexOf(f.name));
  const packed = new Float32Array(rows.flatMap((x) => columns.map((c) => x[c]!)));
  const model = await loadModel(bytes, spec, { target, version: 'under-test' });
  try {
    return rocAuc(await model.predict(packed, y.length), y);
  } finally {
    await model.release();
  }
}

const L2_SPEC = featureSpec(FEATURE_SPEC.tickMs, 'l2');

describe('training job on the local emulators', () => {
  let root: string;
  let emulators: Emulators;
  let env: Record<string, string>;
  let data: { rows: FeatureRow[]; labels: LabelRow[] };
  const envFor = (version: string, lake: string = BUCKETS.lake.localName) => ({
    ...env,
    CANDIDATE_VERSION: version,
    LAKE_BUCKET: lake,
  });

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'qw-train-'));
    emulators = await startEmulators({ dataDir: join(root, 'data') });
    env = { ...emulators.env, MODEL_URI: LOCAL_MODEL_URI, TARGET };
    await provision(env, { seed: true }); // the baseline becomes the active model
    await s3Client(env).send(new CreateBucketCommand({ Bucket: SHUFFLED_LAKE }));
    // 20 minutes: enough held-out rows (the newest 30 % of the complete rows, past the 300 s warm-up: ~4.5 min)
    // for the promotion gate to tell a model from noise; vol_spike_60s labels cover all but the last ~61 s, and
    // its training part loses another 61 s to the purge. The held-out minutes hold only ~4 independent vol
    // horizons: seed 7's have spikes of both products (by the training part's τ), some seeds' have none.
    data = simulateRows(7, 20);
    await writeLake(env, BUCKETS.lake.localName, data.rows, data.labels);
    await writeLake(env, SHUFFLED_LAKE, data.rows, shuffledLabels(data.labels));
  }, 60_000);

  afterAll(async () => {
    await emulators?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const silent = () => {};
  /** The simulation's complete feature rows (no warm-up, no gap: what training uses), by "product@tick". */
  const completeFeatureRows = () =>
    new Map(
      data.rows
        .filter((r) => isCompleteRow(r.values))
        .map((r) => [`${r.product}@${r.tsUs}`, Array.from(r.values)]),
    );

  it('a candidate trained on shuffled labels is published, evaluated on the held-out rows, NOT promoted', async () => {
    // Trained on the shuffled lake, judged on the true one: a model that learnt nothing.
    const trained = await train(envFor('noise-1', SHUFFLED_LAKE), silent);
    expect(trained.published).toBe(true);
    expect(await activeVersion(TARGET, env)).toBe(BASELINE_VERSION);
    const metrics = await readJson<{
      split: { holdout: { fromUs: number; toUs: number } };
      training: {
        algorithm: string;
        choice: { learner: string; metric: string; validation: { logistic: number; gbdt: number } };
      };
      featureSet: string;
      thresholds?: unknown;
    }>(env, `registry/${TARGET}/noise-1/metrics.json`);
    // The default learner (auto): the better of the trees and the regression on the validation rows, in the
    // target's main metric (log loss: lower is better), on the l2 set's inputs.
    const { choice } = metrics.training;
    expect(choice.metric).toBe('logLoss');
    expect(choice.learner).toBe(choice.validation.gbdt < choice.validation.logistic ? 'gbdt' : 'logistic');
    expect(metrics.training.algorithm).toMatch(
      choice.learner === 'gbdt' ? /^histogram gradient-boosted trees/ : /^logistic regression/,
    );
    expect(metrics.featureSet).toBe('l2');
    expect(metrics.thresholds).toBeUndefined();

    const evaluation = await evaluate(envFor('noise-1'), silent);
    expect(await readJson<Evaluation>(env, `registry/${TARGET}/noise-1/evaluation.json`)).toEqual(evaluation);
    expect(evaluation.active?.version).toBe(BASELINE_VERSION);
    expect(evaluation.window).toEqual(metrics.split.holdout);

    // The held-out rows, rebuilt here from the simulated data: the newest ~30% of the complete labelled ticks.
    const x = completeFeatureRows();
    const labelled = data.labels.filter((l) => l.target === TARGET && x.has(`${l.product}@${l.tsUs}`));
    const held = labelled.filter(
      (l) => l.tsUs >= evaluation.window.fromUs && l.tsUs <= evaluation.window.toUs,
    );
    expect(held.length).toBe(evaluation.rows);
    expect(labelled.filter((l) => l.tsUs < evaluation.window.fromUs).length).toBe(
      labelled.length - held.length,
    );
    expect(held.length / labelled.length).toBeGreaterThan(0.25);
    expect(held.length / labelled.length).toBeLessThan(0.31);

    // Both AUCs recomputed on those rows with the two ONNX models, each on the l2 set's inputs (the candidate and
    // the shipped l2 baseline): the job scored exactly these rows.
    const rows = held.map((l) => x.get(`${l.product}@${l.tsUs}`)!);
    const y = held.map((l) => l.value);
    const candidateOnnx = await readBytes(env, `registry/${TARGET}/noise-1/model.onnx`);
    expect(evaluation.candidate.auc).toBe(await onnxAuc(candidateOnnx, TARGET, rows, y, L2_SPEC));
    expect(evaluation.active?.auc).toBe(
      await onnxAuc(readFileSync(join(BASELINE_DIR, 'model.onnx')), TARGET, rows, y, L2_SPEC),
    );

    expect(evaluation.candidate.auc).toBeLessThan(evaluation.active!.auc);
    expect(await promote(envFor('noise-1'), silent)).toMatchObject({
      promoted: false,
      active: BASELINE_VERSION,
    });
    expect(await activeVersion(TARGET, env)).toBe(BASELINE_VERSION);

    // A retried train task must not publish a second, different model under the same version.
    expect((await train(envFor('noise-1', SHUFFLED_LAKE), silent)).published).toBe(false);
  }, 30_000);

  it('a candidate trained on the true labels replaces a weaker active model (CLI entry)', async () => {
    // The noise model stands in for a weak model that is active.
    await activate(TARGET, 'noise-1', env);
    const cli = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'models/train/main.ts'), 'train'],
      { cwd: ROOT, env: { ...process.env, ...envFor('good-1') }, encoding: 'utf8', timeout: 30_000 },
    );
    expect(cli.stderr).toBe('');
    expect(cli.status).toBe(0);
    const lines = cli.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.message === 'candidate published (not active)')).toMatchObject({
      level: 'INFO',
      message: 'candidate published (not active)',
      version: 'good-1',
    });
    expect(await activeVersion(TARGET, env)).toBe('noise-1');

    // 20 simulated minutes hold out ~4.5: 10 s bootstrap blocks (≥ the 0.5 s horizon) instead of the default 60 s,
    // and a calibration limit of 0.1: trees learnt on ~9 minutes miss the next minutes' base rate by ~0.08.
    const evaluation = await evaluate(
      { ...envFor('good-1'), PROMOTE_BLOCK_S: '10', PROMOTE_MAX_ECE: '0.1' },
      silent,
    );
    expect(evaluation.active?.version).toBe('noise-1');
    expect(evaluation.candidate.auc).toBeGreaterThan(evaluation.active!.auc);
    expect(evaluation.decision.reasons).toEqual([]);
    expect(evaluation.decision).toMatchObject({ promote: true, reference: 'active', mainMetric: 'logLoss' });
    expect(evaluation.decision.gain.lo).toBeGreaterThan(0);
    expect(await promote(envFor('good-1'), silent)).toMatchObject({ promoted: true, active: 'good-1' });
    expect(await activeVersion(TARGET, env)).toBe('good-1');

    // Promotion is a compare-and-set on the version it was evaluated against: a stale evaluation cannot win.
    await activate(TARGET, BASELINE_VERSION, env);
    await expect(promote(envFor('good-1'), silent)).rejects.toThrow(ActivationConflictError);
    expect(await activeVersion(TARGET, env)).toBe(BASELINE_VERSION);
  }, 30_000);

  it('vol_spike_60s: τ per product from the purged training part, in metrics.json and the ONNX metadata; evaluation on the candidate τ', async () => {
    // The logistic regression (TRAIN_ALGORITHM=logistic), which also learns from the l2 set's inputs only.
    const volEnv = (version: string) => ({ ...envFor(version), TARGET: VOL, TRAIN_ALGORITHM: 'logistic' });
    const trained = await train(volEnv('vol-1'), silent);
    expect(trained.published).toBe(true);
    const metrics = await readJson<{
      thresholds: Record<string, number>;
      thresholdDefinition: string;
      trainBaseRate: number;
      rows: { train: number; test: number };
      training: { l2: number };
      split: { trainRows: number; purgedRows: number; holdout: { fromUs: number; toUs: number } };
    }>(env, `registry/${VOL}/vol-1/metrics.json`);
    expect(metrics.training.l2).toBe(DEFAULT_TRAIN_L2[VOL]);
    expect(metrics.thresholdDefinition).toMatch(/rv_300s_bps .* τ per product/);
    const spec = await readJson<FeatureSpec>(env, `registry/${VOL}/vol-1/feature_spec.json`);
    expect(spec).toEqual(L2_SPEC);

    // The labelled complete rows recomputed from the simulation, in time order; each label's spike value is the
    // forward volatility over the row's trailing level.
    const x = completeFeatureRows();
    const level = FEATURE_NAMES.indexOf(VOL_SPIKE_LEVEL_FEATURE);
    const labelled = data.labels
      .filter((l) => l.target === VOL && x.has(`${l.product}@${l.tsUs}`))
      .sort((a, b) => a.tsUs - b.tsUs || a.product.localeCompare(b.product))
      .map((l) => {
        const row = x.get(`${l.product}@${l.tsUs}`)!;
        // The level as the lake stores it: a float32 feature.
        return { ...l, row, spike: volSpikeValue(l.value, Math.fround(row[level]!)) };
      });
    const { fromUs, toUs } = metrics.split.holdout;
    const held = labelled.filter((l) => l.tsUs >= fromUs && l.tsUs <= toUs);
    // Training rows: before the held-out part by more than the 61 s label horizon (the window starts at the
    // next whole second), so none of their labels saw held-out data.
    const trainRows = labelled.filter((l) => l.tsUs + 61e6 < fromUs);
    expect(metrics.rows).toEqual({ train: trainRows.length, test: held.length });
    expect(metrics.split.purgedRows).toBe(labelled.length - held.length - trainRows.length);
    expect(metrics.split.purgedRows).toBeGreaterThan(0);

    // τ per product = nearest-rank 90th percentile of that product's training spike values; the model learnt
    // "spike value > τ" (strictly).
    const tau: Record<string, number> = {};
    for (const product of ['BTC-USD', 'ETH-USD']) {
      const sorted = trainRows
        .filter((l) => l.product === product)
        .map((l) => l.spike)
        .sort((a, b) => a - b);
      tau[product] = sorted[Math.ceil(0.9 * sorted.length) - 1]!;
    }
    expect(metrics.thresholds).toEqual(tau);
    expect(tau['BTC-USD']).not.toBe(tau['ETH-USD']);
    const isPositive = (l: (typeof labelled)[number]) => l.spike > tau[l.product]!;
    expect(metrics.trainBaseRate).toBe(trainRows.filter(isPositive).length / trainRows.length);
    expect(metrics.trainBaseRate).toBeLessThanOrEqual(0.1);
    const onnx = await readBytes(env, `registry/${VOL}/vol-1/model.onnx`);
    expect(JSON.parse(readOnnxMetadata(onnx)[METADATA_KEYS.thresholds]!)).toEqual(tau);

    // Evaluation against the active baseline: both AUCs on the same labels, "spike value > the candidate's τ of
    // the row's product".
    const baseline = baselineMetrics(VOL);
    const evaluation = await evaluate(volEnv('vol-1'), silent);
    expect(evaluation.active?.version).toBe(baseline.version);
    expect(evaluation.thresholds).toEqual(tau);
    const y = held.map((l) => (isPositive(l) ? 1 : 0));
    expect(evaluation.rows).toBe(held.length);
    expect(evaluation.positives).toBe(y.filter((v) => v === 1).length);
    const rows = held.map((l) => l.row);
    expect(evaluation.candidate.auc).toBe(await onnxAuc(onnx, VOL, rows, y, L2_SPEC));
    expect(evaluation.active?.auc).toBe(
      await onnxAuc(readFileSync(join(baselineDir(VOL), 'model.onnx')), VOL, rows, y, L2_SPEC),
    );
    // ~4 held-out minutes in 5 folds of ~50 s: no fold holds 30 independent 61 s horizons, and it says so.
    expect(evaluation.decision.folds).toHaveLength(5);
    expect(evaluation.decision.reasons).toContain('fold 1: 0 independent horizons, fewer than 30');
    expect(await promote(volEnv('vol-1'), silent)).toMatchObject({
      promoted: false,
      active: baseline.version,
    });
    // The other target's active model is untouched.
    expect(await activeVersion(TARGET, env)).not.toBe('vol-1');
  }, 30_000);

  it('vol_spike_60s by default (auto): the better of the regression, the trees and the focused regression on the validation rows; its ONNX scores as the trainer did', async () => {
    const volEnv = { ...envFor('vol-auto'), TARGET: VOL };
    expect((await train(volEnv, silent)).published).toBe(true);
    const metrics = await readJson<{
      auc: number;
      training: {
        algorithm: string;
        inputs?: string[];
        choice: { learner: string; metric: string; validation: Record<string, number> };
      };
    }>(env, `registry/${VOL}/vol-auto/metrics.json`);
    const { choice, algorithm } = metrics.training;
    expect(choice.metric).toBe('prAuc');
    expect(Object.keys(choice.validation).sort()).toEqual(['focused', 'gbdt', 'logistic']);
    // Higher PR-AUC wins; a tie keeps the earlier of logistic, gbdt, focused.
    const order = ['logistic', 'gbdt', 'focused'];
    const best = order.reduce((a, b) => (choice.validation[b]! > choice.validation[a]! ? b : a));
    expect(choice.learner).toBe(best);
    expect(algorithm).toMatch(
      { logistic: /^logistic regression/, gbdt: /^histogram gradient-boosted trees/, focused: /^focused/ }[
        best
      ]!,
    );
    if (best === 'focused') expect(metrics.training.inputs).toContain('log_book_update_rate_ratio_5s_300s');
    // The evaluation scores the held-out rows with the ONNX model in onnxruntime: the trainer's AUC (TypeScript).
    const evaluation = await evaluate(volEnv, silent);
    expect(evaluation.candidate.auc).toBeCloseTo(metrics.auc, 4);
  }, 60_000);

  it('TRAIN_SET=ticker: the trees on the ticker inputs, a candidate for the ticker slot; promoting it leaves the l2 slot alone', async () => {
    const tickerEnv = {
      ...envFor('ticker-1'),
      TRAIN_SET: 'ticker',
      TRAIN_ALGORITHM: 'gbdt',
      PROMOTE_BLOCK_S: '10',
      PROMOTE_MAX_ECE: '0.1',
    };
    const l2Active = await activeVersion(TARGET, env);
    expect((await train(tickerEnv, silent)).published).toBe(true);
    const spec = await readJson<FeatureSpec>(env, `registry/${TARGET}/ticker-1/feature_spec.json`);
    expect(spec.set).toBe('ticker');
    expect(spec.features.map((f) => f.name)).toEqual(MODEL_FEATURES.ticker);
    const onnx = new TextDecoder('latin1').decode(
      await readBytes(env, `registry/${TARGET}/ticker-1/model.onnx`),
    );
    expect(onnx).toContain('TreeEnsemble');
    // The candidate is judged against the ticker slot's active model (the shipped ticker baseline), never the l2 one.
    const tickerBaseline = baselineMetrics(`${TARGET}.ticker`).version;
    expect(await activeVersion(TARGET, env, 'ticker')).toBe(tickerBaseline);
    const evaluation = await evaluate(tickerEnv, silent);
    expect(evaluation).toMatchObject({ featureSet: 'ticker', active: { version: tickerBaseline } });
    expect(evaluation.decision.reference).toBe('active');
    expect(evaluation.decision.reasons.length === 0).toBe(evaluation.decision.promote);
    // Whichever way the gate went, only the ticker slot follows it; the l2 slot is untouched.
    const promoted = evaluation.decision.promote;
    expect(await promote(tickerEnv, silent)).toMatchObject({
      promoted,
      active: promoted ? 'ticker-1' : tickerBaseline,
    });
    expect(await activeVersion(TARGET, env, 'ticker')).toBe(promoted ? 'ticker-1' : tickerBaseline);
    expect(await activeVersion(TARGET, env)).toBe(l2Active);
    const record = await readJson<RunRecord>(env, `registry/${TARGET}/ticker-1/run.json`);
    expect(record.parameters.training).toMatchObject({ algorithm: 'gbdt', set: 'ticker' });
    expect(record.importance?.[0]?.gain).toBeGreaterThan(0);
    expect(
      new TextDecoder().decode(await readBytes(env, `registry/${TARGET}/ticker-1/report.html`)),
    ).toContain('Feature importance');
  }, 30_000);

  it('every evaluated run leaves a run record and a report page; `quotewatch runs` lists them', async () => {
    const runs = await listRuns(env);
    const byVersion = new Map(runs.map((r) => [r.version, r]));
    expect(byVersion.get('noise-1')).toMatchObject({ target: TARGET, status: 'rejected' });
    expect(byVersion.get('good-1')).toMatchObject({ target: TARGET, status: 'passed' });
    expect(byVersion.get('vol-1')?.target).toBe(VOL);
    const good = byVersion.get('good-1')!;
    const evaluation = await readJson<Evaluation>(env, `registry/${TARGET}/good-1/evaluation.json`);
    expect(good.decision).toEqual(evaluation.decision);
    expect(good.candidate).toEqual(evaluation.candidate);
    expect(good.data?.rows.test).toBe(evaluation.rows);
    expect(good.parameters.promotion?.blockS).toBe(10);
    expect(good.featureSpecHash).toMatch(/^[0-9a-f]{16}$/);
    expect(good.trainingS).toBeGreaterThan(0);
    expect(good.curves?.candidate.roc[0]).toEqual([0, 0]);
    // 20 minutes cannot hold 5 folds with a 300.5 s embargo each: recorded as such, the run goes on.
    expect(good.walkForward).toEqual({ notRun: expect.stringMatching(/too short for 5 folds/) });
    const html = new TextDecoder().decode(await readBytes(env, `registry/${TARGET}/good-1/report.html`));
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).toContain('Decision: promote');
    expect(formatRuns(runs)).toMatch(/quote_change_500ms\s+noise-1\s+rejected\s+logLoss -?\d/);
  });

  it('the state machine of the CDK app, run locally: a better candidate is promoted, a worse one kept', async () => {
    await activate(TARGET, 'noise-1', env);
    const progress: string[] = [];
    const synth = synthesizeTrainingDefinition();
    const good = await runTrainingStateMachine(
      TARGET,
      'sm-good',
      { ...env, PROMOTE_BLOCK_S: '10', PROMOTE_MAX_ECE: '0.1' },
      (line) => progress.push(line),
      synth,
    );
    expect(good.error).toBeUndefined();
    expect(good.states).toEqual([
      'WhichSlot?',
      'Slot-l2',
      'HasVersion?',
      'Prepare',
      'ReserveVersion',
      'Train',
      'Evaluate',
      'ReadEvaluation',
      'PassesGate?',
      'Promote',
      'NotifyPromoted',
      'Promoted',
    ]);
    expect(await activeVersion(TARGET, env)).toBe('sm-good');
    // The Promote state keeps the pointer's history as activate() does: one command goes back.
    expect((await readPointer(TARGET, 'l2', env))?.previous[0]).toBe('noise-1');
    expect(progress).toContain(`[${TARGET} sm-good] Train`);
    expect(progress.some((l) => l.startsWith('  train | ') && l.includes('candidate published'))).toBe(true);

    // A deliberately worse configuration (an L2 penalty that flattens the model): rejected, pointer unchanged.
    const worse = await runTrainingStateMachine(
      TARGET,
      'sm-worse',
      { ...env, TRAIN_ALGORITHM: 'logistic', TRAIN_L2: '1000' },
      () => {},
      synth,
    );
    expect(worse.status).toBe('SUCCEEDED');
    expect(worse.states.slice(-3)).toEqual(['PassesGate?', 'NotifyKept', 'KeptActive']);
    expect(await activeVersion(TARGET, env)).toBe('sm-good');
    const runs = new Map((await listRuns(env, [TARGET])).map((r) => [r.version, r.status]));
    expect(runs.get('sm-good')).toBe('passed');
    expect(runs.get('sm-worse')).toBe('rejected');

    // A failing task: retried, then the execution fails naming the trainer's error; nothing promoted.
    const failing = await runTrainingStateMachine(
      TARGET,
      'sm-empty',
      { ...env, LAKE_BUCKET: 'qw-test-lake-missing' },
      () => {},
      synth,
    );
    expect(failing.status).toBe('FAILED');
    expect(failing.retries).toBe(2); // taskAttempts 3 in all
    expect(failing.states.at(-1)).toBe('TrainingFailed');
    expect(failing.error).toMatch(/trainer train exited 1/);
    expect(await activeVersion(TARGET, env)).toBe('sm-good');
    expect((await readJson<RunRecord>(env, `registry/${TARGET}/sm-empty/run.json`)).status).toBe('failed');
  }, 240_000);

  it('a run without a version claims the next qs-x.y.z tag; two at once get different ones', async () => {
    const [a, b] = await Promise.all([claimNextVersion(VOL, env), claimNextVersion(VOL, env)]);
    expect(new Set([a, b]).size).toBe(2);
    for (const tag of [a, b]) expect(tag).toMatch(new RegExp(`^qs-${FEATURE_VERSION}\\.0\\.[12]$`));
    expect(await claimNextVersion(VOL, env)).toBe(`qs-${FEATURE_VERSION}.0.3`);
    expect(await claimNextVersion(TARGET, env)).toBe(`qs-${FEATURE_VERSION}.0.1`); // per target
  });

  it('names what is wrong with the lake: nothing in it, an object that is not Parquet', async () => {
    const bucket = 'qw-test-lake-bad';
    await s3Client(env).send(new CreateBucketCommand({ Bucket: bucket }));
    const lakeEnv = { ...env, LAKE_BUCKET: bucket };
    const empty = loadLakeExamples(lakeEnv, TARGET, FEATURE_SPEC);
    await expect(empty).rejects.toThrow(DatasetError);
    await expect(empty).rejects.toThrow(`s3://${bucket} has 0 features/ and 0 labels/ objects`);
    // The step, as the entry runs it, fails with the same error and leaves a failed run record.
    await expect(runStep('train', { ...lakeEnv, CANDIDATE_VERSION: 'empty-1' }, silent)).rejects.toThrow(
      DatasetError,
    );
    expect(await readJson<RunRecord>(env, `registry/${TARGET}/empty-1/run.json`)).toMatchObject({
      status: 'failed',
      version: 'empty-1',
      error: { step: 'train', name: 'DatasetError', message: expect.stringMatching(/has 0 features/) },
    });

    await writeLake(env, bucket, data.rows.slice(0, 50), data.labels.slice(0, 50));
    const bad = 'features/product=BTC-USD/date=2026-01-01/hour=00/not-parquet.parquet';
    await s3Client(env).send(new PutObjectCommand({ Bucket: bucket, Key: bad, Body: 'not parquet' }));
    const undecodable = loadLakeExamples(lakeEnv, TARGET, FEATURE_SPEC);
    await expect(undecodable).rejects.toThrow(DatasetError);
    await expect(undecodable).rejects.toThrow(`s3://${bucket}/${bad}: `);
  }, 30_000);

  it('bad input fails the step with a run record naming it, nothing published or promoted: one class, a NaN feature, another feature spec, a model that does not load', async () => {
    const active = await activeVersion(TARGET, env);
    // The first 7 simulated minutes: past the 300 s warm-up, complete rows enough for TRAIN_MIN_ROWS.
    const endUs = data.rows[0]!.tsUs + 7 * 60e6;
    const rows = data.rows.filter((r) => r.tsUs < endUs);
    const labels = data.labels.filter((l) => l.tsUs < endUs);
    const nanAt = rows.findLastIndex((r) => isCompleteRow(r.values));
    const nanFeature = MODEL_FEATURES.l2[5]!;
    const withNaN = rows.map((r, i) => {
      if (i !== nanAt) return r;
      const values = Float64Array.from(r.values);
      values[FEATURE_NAMES.indexOf(nanFeature)] = Number.NaN;
      return { ...r, values };
    });
    const cases = [
      {
        version: 'bad-one-class',
        rows,
        labels: labels.map((l) => (l.target === TARGET ? { ...l, value: 0 } : l)),
        spec: FEATURE_SPEC,
        error: /training rows: all \d+ labels are 0; need both classes/,
      },
      {
        version: 'bad-nan',
        rows: withNaN,
        labels,
        spec: FEATURE_SPEC,
        error: new RegExp(
          `the row of ${rows[nanAt]!.product} at ${rows[nanAt]!.tsUs} µs: feature ${nanFeature} is NaN`,
        ),
      },
      {
        version: 'bad-spec',
        rows,
        labels,
        spec: featureSpec(250),
        error: /was written with feature spec v\d+ \(tick 250 ms/,
      },
    ];
    for (const c of cases) {
      const bucket = `qw-test-lake-${c.version}`;
      await s3Client(env).send(new CreateBucketCommand({ Bucket: bucket }));
      const writer = new LakeWriter({
        s3: s3Client(env),
        bucket,
        shardId: 'shardId-000000000000',
        tickMs: 100,
        spec: c.spec,
      });
      writer.addFeatures(c.rows);
      writer.addLabels(c.labels);
      await writer.close();
      const step = runStep('train', envFor(c.version, bucket), silent);
      await expect(step, c.version).rejects.toThrow(DatasetError);
      await expect(step, c.version).rejects.toThrow(c.error);
      expect(await readJson<RunRecord>(env, `registry/${TARGET}/${c.version}/run.json`)).toMatchObject({
        status: 'failed',
        error: { step: 'train', name: 'DatasetError', message: expect.stringMatching(c.error) },
      });
      expect(await isPublished(TARGET, c.version, env)).toBe(false);
    }

    // A candidate whose model.onnx does not load: evaluate fails naming it, and without an evaluation nothing
    // can be promoted.
    const dir = join(root, 'corrupt-1');
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.onnx'), 'not an onnx model');
    writeFileSync(join(dir, 'feature_spec.json'), JSON.stringify(L2_SPEC));
    const lastUs = data.rows.at(-1)!.tsUs;
    writeFileSync(
      join(dir, 'metrics.json'),
      JSON.stringify({
        target: TARGET,
        version: 'corrupt-1',
        split: { trainRows: 1000, holdout: { fromUs: lastUs - 300e6, toUs: lastUs } },
        trainBaseRate: 0.4,
      }),
    );
    await publishVersion(dir, TARGET, 'corrupt-1', env);
    const evaluated = runStep('evaluate', envFor('corrupt-1'), silent);
    await expect(evaluated).rejects.toThrow(ModelLoadError);
    await expect(evaluated).rejects.toThrow(/quote_change_500ms@corrupt-1: not a loadable ONNX model/);
    expect(await readJson<RunRecord>(env, `registry/${TARGET}/corrupt-1/run.json`)).toMatchObject({
      status: 'failed',
      error: { step: 'evaluate', name: 'ModelLoadError' },
    });
    await expect(runStep('promote', envFor('corrupt-1'), silent)).rejects.toThrow(/evaluation\.json/);
    expect(await activeVersion(TARGET, env)).toBe(active);
  }, 60_000);

  it('the CLI names what is wrong: usage, an invalid CANDIDATE_VERSION', () => {
    const run = (args: string[], extra: Record<string, string> = {}) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'models/train/main.ts'), ...args], {
        cwd: ROOT,
        env: { ...process.env, ...env, CANDIDATE_VERSION: '', ...extra },
        encoding: 'utf8',
        timeout: 30_000,
      });
    const usage = run(['retrain']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/usage: .*<train\|evaluate\|promote>/);
    const invalid = run(['evaluate'], { CANDIDATE_VERSION: 'bad/version' });
    expect(invalid.status).toBe(2);
    expect(invalid.stderr).toMatch(/configuration error: CANDIDATE_VERSION: invalid value "bad\/version"/);
  }, 30_000);
});
