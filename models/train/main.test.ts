/**
 * The training job against real local AWS (s3rver, dynalite): a lake written by the project's own LakeWriter from
 * a seeded simulated market run through THE feature pipeline, then train -> evaluate -> promote as the state
 * machine runs them, with the baseline seeded as the active model.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client } from '../../src/aws/clients.js';
import { FeaturePipeline } from '../../src/features/pipeline.js';
import { FEATURE_SPEC } from '../../src/features/spec.js';
import type { FeatureRow, LabelRow } from '../../src/features/types.js';
import { type Emulators, startEmulators } from '../../src/local/emulators.js';
import { provision } from '../../src/local/provision.js';
import { FEED_PRODUCT, mapAdvancedTradeFrame } from '../../src/marketdata/advancedTrade.js';
import { ActivationConflictError, activate, activeVersion } from '../../src/model/registry.js';
import { loadModel } from '../../src/model/runtime.js';
import { BUCKETS, LOCAL_MODEL_URI } from '../../src/resources.js';
import { DEFAULT_PRODUCTS, seedEpochUs } from '../../src/simulator/exchange.js';
import { Rng } from '../../src/simulator/rng.js';
import { Session } from '../../src/simulator/session.js';
import { LakeWriter } from '../../src/storage/lake.js';
import { rocAuc } from '../eval/metrics.js';
import { type Evaluation, evaluate, promote, shouldPromote, train } from './main.js';

const TARGET = 'quote_change_500ms';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BASELINE_DIR = join(ROOT, 'models/baseline', TARGET);
const BASELINE_VERSION = (
  JSON.parse(readFileSync(join(BASELINE_DIR, 'metrics.json'), 'utf8')) as { version: string }
).version;
const SHUFFLED_LAKE = 'qw-test-lake-shuffled';

/** Seeded market -> Advanced Trade frames -> production mapper -> feature pipeline (as models/baseline.ts). */
function simulate(seed: number, minutes: number): { rows: FeatureRow[]; labels: LabelRow[] } {
  const startUs = seedEpochUs(seed);
  const session = new Session(DEFAULT_PRODUCTS, seed, startUs);
  const pipeline = new FeaturePipeline({ tickMs: FEATURE_SPEC.tickMs, deltaMs: 500, topLevels: 0 });
  const rows: FeatureRow[] = [];
  const labels: LabelRow[] = [];
  const feed = (text: string, recvUs: number) => {
    for (const event of mapAdvancedTradeFrame(text, recvUs).events) {
      if (event.product !== FEED_PRODUCT) pipeline.push(event);
    }
    const out = pipeline.drain();
    rows.push(...out.rows);
    labels.push(...out.labels);
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
  return { rows, labels };
}

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

/** The labels' values permuted (seeded): same features, same base rate, no relation between them. */
function shuffledLabels(labels: LabelRow[]): LabelRow[] {
  const values = labels.map((l) => l.value);
  const rng = new Rng(7);
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [values[i], values[j]] = [values[j]!, values[i]!];
  }
  return labels.map((l, i) => ({ ...l, value: values[i]! }));
}

async function readJson<T>(env: Record<string, string>, key: string): Promise<T> {
  const res = await s3Client(env).send(new GetObjectCommand({ Bucket: BUCKETS.models.localName, Key: key }));
  return JSON.parse(await res.Body!.transformToString()) as T;
}

describe('shouldPromote', () => {
  it('promotes on a strictly better AUC or when nothing is active', () => {
    const candidate = { version: 'c', auc: 0.7 };
    expect(shouldPromote({ candidate, active: null })).toBe(true);
    expect(shouldPromote({ candidate, active: { version: 'a', auc: 0.69 } })).toBe(true);
    expect(shouldPromote({ candidate, active: { version: 'a', auc: 0.7 } })).toBe(false);
    expect(shouldPromote({ candidate, active: { version: 'a', auc: 0.8 } })).toBe(false);
  });
});

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
    data = simulate(11, 3);
    await writeLake(env, BUCKETS.lake.localName, data.rows, data.labels);
    await writeLake(env, SHUFFLED_LAKE, data.rows, shuffledLabels(data.labels));
  }, 60_000);

  afterAll(async () => {
    await emulators?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const silent = () => {};

  it('a candidate trained on shuffled labels is published, evaluated on the held-out rows, NOT promoted', async () => {
    // Trained on the shuffled lake, judged on the true one: a model that learnt nothing.
    const trained = await train(envFor('noise-1', SHUFFLED_LAKE), silent);
    expect(trained.published).toBe(true);
    expect(await activeVersion(TARGET, env)).toBe(BASELINE_VERSION);
    const metrics = await readJson<{ split: { holdout: { fromUs: number; toUs: number } } }>(
      env,
      `registry/${TARGET}/noise-1/metrics.json`,
    );

    const evaluation = await evaluate(envFor('noise-1'), silent);
    expect(await readJson<Evaluation>(env, `registry/${TARGET}/noise-1/evaluation.json`)).toEqual(evaluation);
    expect(evaluation.active?.version).toBe(BASELINE_VERSION);
    expect(evaluation.window).toEqual(metrics.split.holdout);

    // The held-out rows, rebuilt here from the simulated data: the newest ~30% of the labelled ticks.
    const x = new Map(data.rows.map((r) => [`${r.product}@${r.tsUs}`, Array.from(r.values)]));
    const labelled = data.labels.filter((l) => x.has(`${l.product}@${l.tsUs}`));
    const held = labelled.filter(
      (l) => l.tsUs >= evaluation.window.fromUs && l.tsUs <= evaluation.window.toUs,
    );
    expect(held.length).toBe(evaluation.rows);
    expect(labelled.filter((l) => l.tsUs < evaluation.window.fromUs).length).toBe(
      labelled.length - held.length,
    );
    expect(held.length / labelled.length).toBeGreaterThan(0.25);
    expect(held.length / labelled.length).toBeLessThan(0.31);

    // Both AUCs recomputed on those rows with the two ONNX models: the job scored exactly these rows.
    const packed = new Float32Array(held.flatMap((l) => x.get(`${l.product}@${l.tsUs}`)!));
    const y = held.map((l) => l.value);
    const onnxAuc = async (bytes: Uint8Array, version: string) => {
      const model = await loadModel(bytes, FEATURE_SPEC, { target: TARGET, version });
      try {
        return rocAuc(await model.predict(packed, held.length), y);
      } finally {
        await model.release();
      }
    };
    const candidateOnnx = await s3Client(env)
      .send(
        new GetObjectCommand({
          Bucket: BUCKETS.models.localName,
          Key: `registry/${TARGET}/noise-1/model.onnx`,
        }),
      )
      .then((r) => r.Body!.transformToByteArray());
    expect(evaluation.candidate.auc).toBe(await onnxAuc(candidateOnnx, 'noise-1'));
    expect(evaluation.active?.auc).toBe(
      await onnxAuc(readFileSync(join(BASELINE_DIR, 'model.onnx')), 'baseline'),
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
    expect(JSON.parse(cli.stdout.trim().split('\n').at(-1)!)).toMatchObject({
      level: 'info',
      msg: 'candidate published (not active)',
      version: 'good-1',
    });
    expect(await activeVersion(TARGET, env)).toBe('noise-1');

    const evaluation = await evaluate(envFor('good-1'), silent);
    expect(evaluation.active?.version).toBe('noise-1');
    expect(evaluation.candidate.auc).toBeGreaterThan(evaluation.active!.auc);
    expect(await promote(envFor('good-1'), silent)).toMatchObject({ promoted: true, active: 'good-1' });
    expect(await activeVersion(TARGET, env)).toBe('good-1');

    // Promotion is a compare-and-set on the version it was evaluated against: a stale evaluation cannot win.
    await activate(TARGET, BASELINE_VERSION, env);
    await expect(promote(envFor('good-1'), silent)).rejects.toThrow(ActivationConflictError);
    expect(await activeVersion(TARGET, env)).toBe(BASELINE_VERSION);
  }, 30_000);

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
