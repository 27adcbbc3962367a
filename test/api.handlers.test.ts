/**
 * The Lambda handlers, called exactly as Lambda calls them (an HTTP API v2 event), against real dynalite and
 * s3rver started by src/local/emulators.ts. Items are written through the storage module, like the worker does.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportLogisticOnnx } from '../models/export/onnx.js';
import { type LogisticModel, predictLogistic } from '../models/train/logreg.js';
import type { HttpApiEventV2, HttpApiResultV2 } from '../src/api/http.js';
import { latestOf } from '../src/api/latest.js';
import { type PredictResponse, parsePredictBody, predict } from '../src/api/predict.js';
import { FEATURE_NAMES as ROW_FEATURES } from '../src/features/spec.js';
import type { FeatureSpec } from '../src/features/types.js';
import { type Emulators, startEmulators } from '../src/local/emulators.js';
import { provision } from '../src/local/provision.js';
import { activate, publishVersion } from '../src/model/registry.js';
import { loadModel } from '../src/model/runtime.js';
import { type LoadedModel, TARGETS, type Target } from '../src/model/types.js';
import type { LatestSnapshot } from '../src/storage/latest.js';
import { putLatest } from '../src/storage/latest.js';
import { v2 } from './support/events.js';
import { until } from './support/until.js';

type Handler = (event: HttpApiEventV2, context: never) => Promise<HttpApiResultV2>;

async function call(handler: Handler, event: HttpApiEventV2) {
  const res = await handler(event, {} as never);
  return { status: res.statusCode, headers: res.headers ?? {}, body: JSON.parse(res.body ?? 'null') };
}

const FEATURE_NAMES = ['spread_bps', 'imbalance_l1', 'mid_return_1s'];
const SPEC: FeatureSpec = {
  version: 1,
  tickMs: 100,
  features: FEATURE_NAMES.map((name) => ({ name, type: 'float32', description: name })),
};

function snapshot(
  product: string,
  mid: number,
  updatedAtMs: number,
): Omit<LatestSnapshot, 'pk' | 'sk' | 'expiresAt'> {
  const half = mid > 1000 ? 0.005 : 0.0005;
  return {
    product,
    tsUs: updatedAtMs * 1000,
    seq: Math.floor(mid),
    bestBid: String(+(mid - half).toFixed(4)),
    bestAsk: String(+(mid + half).toFixed(4)),
    mid,
    spread: half * 2,
    spreadBps: ((half * 2) / mid) * 10_000,
    bids: [[String(+(mid - half).toFixed(4)), '1.5']],
    asks: [[String(+(mid + half).toFixed(4)), '0.25']],
    features: { spread_bps: ((half * 2) / mid) * 10_000, imbalance_l1: 0.7, mid_return_1s: 0.0001 },
    predictions: { quote_change_500ms: { probability: 0.42, modelVersion: 'v-test' } },
    latencyMs: 12,
    updatedAtMs,
  };
}

let emu: Emulators;
let dataDir: string;
let latest: Handler;
let health: Handler;
let version: Handler;
let predictHandler: Handler;
let historyHandler: Handler;
const TARGET = 'quote_change_500ms';

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'qw-api-'));
  // The SDK takes region and credentials from process.env, also for the emulators' readiness probes.
  Object.assign(process.env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
  });
  emu = await startEmulators({ dataDir, ports: { kinesis: 0, dynamodb: 0, s3: 0 } });
  // The handlers read config and create clients at import, as in a Lambda container.
  Object.assign(process.env, emu.env, {
    SYMBOLS: 'BTC-USD,ETH-USD,SOL-USD',
    HEALTH_STALE_MS: '5000',
    BUILD_SHA: 'abc1234',
    // Re-read the active model pointer on every request so a promotion shows up at once.
    MODEL_CHECK_MS: '0',
    // A deployment without history (test/api.routes.test.ts serves it).
    HISTORY_WRITE_MS: '0',
  });
  await provision(emu.env, { seed: false });
  const now = Date.now();
  await putLatest(snapshot('BTC-USD', 65000.125, now));
  await putLatest(snapshot('ETH-USD', 3200.5, now));
  latest = (await import('../lambdas/latest.js')).handler as unknown as Handler;
  health = (await import('../lambdas/health.js')).handler as unknown as Handler;
  version = (await import('../lambdas/version.js')).handler as unknown as Handler;
  predictHandler = (await import('../lambdas/predict.js')).handler as unknown as Handler;
  historyHandler = (await import('../lambdas/history.js')).handler as unknown as Handler;
});

afterAll(async () => {
  await emu?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('GET /latest', () => {
  it('lists the configured products that have a snapshot, with the values written', async () => {
    const { status, body, headers } = await call(latest, v2('GET', '/latest'));
    expect(status).toBe(200);
    expect(headers['content-type']).toMatch(/application\/json/);
    expect(body.products.map((p: { product: string }) => p.product)).toEqual(['BTC-USD', 'ETH-USD']);
    const btc = body.products[0];
    expect(btc.mid).toBe(65000.125);
    expect(btc.bestBid).toBe('65000.12');
    expect(btc.bestAsk).toBe('65000.13');
    // The spec's features as float32, what the lake and the models hold; a name outside the spec as written
    // (src/storage/latest.ts packFeatures).
    const written = snapshot('BTC-USD', 65000.125, 0).features;
    expect(btc.features).toEqual(
      Object.fromEntries(
        Object.entries(written).map(([k, v]) => [k, ROW_FEATURES.includes(k) ? Math.fround(v) : v]),
      ),
    );
    expect(btc.ageMs).toBeGreaterThanOrEqual(0);
    // Table keys and the TTL attribute are storage details, not part of the API.
    expect(btc).not.toHaveProperty('pk');
    expect(btc).not.toHaveProperty('sk');
    expect(btc).not.toHaveProperty('expiresAt');
  });

  it('serves one product and follows new writes (once LATEST_CACHE_MS has passed)', async () => {
    const first = await call(latest, v2('GET', '/latest', { query: { product: 'ETH-USD' } }));
    expect(first.status).toBe(200);
    expect(first.body.product).toBe('ETH-USD');
    expect(first.body.mid).toBe(3200.5);

    await putLatest(snapshot('ETH-USD', 3201.75, Date.now()));
    const second = await until('the new ETH-USD snapshot', async () => {
      const r = await call(latest, v2('GET', '/latest', { query: { product: 'ETH-USD' } }));
      return r.body.mid === 3201.75 && r;
    });
    expect(second.body.tsUs).toBeGreaterThanOrEqual(first.body.tsUs);
  });

  it('answers 404 for a product without a snapshot', async () => {
    const { status, body } = await call(latest, v2('GET', '/latest', { query: { product: 'DOGE-USD' } }));
    expect(status).toBe(404);
    expect(body.error.code).toBe('not_found');
    expect(body.error.message).toContain('DOGE-USD');
  });

  it('answers 400 with a clear message for a malformed product', async () => {
    const { status, body } = await call(latest, v2('GET', '/latest', { query: { product: 'btc/usd' } }));
    expect(status).toBe(400);
    expect(body.error).toEqual({ code: 'bad_request', message: expect.stringContaining('BTC-USD') });
  });
});

describe('GET /history with history off (HISTORY_WRITE_MS=0)', () => {
  it('answers 404 saying so (the dashboard then starts empty and fills from /latest)', async () => {
    const { status, body } = await call(
      historyHandler,
      v2('GET', '/history', { query: { product: 'BTC-USD' } }),
    );
    expect(status).toBe(404);
    expect(body.error).toEqual({ code: 'not_found', message: 'history is off (HISTORY_WRITE_MS=0)' });
  });
});

describe('GET /health', () => {
  it('is ok while snapshots are fresh, and reports their age', async () => {
    const { status, body } = await call(health, v2('GET', '/health'));
    expect(status).toBe(200);
    expect(body.status).toBe('ok');
    expect(body.dynamodb).toBe('ok');
    expect(body.products.map((p: { product: string }) => p.product)).toEqual(['BTC-USD', 'ETH-USD']);
    expect(body.newestAgeMs).toBe(Math.min(...body.products.map((p: { ageMs: number }) => p.ageMs)));
  });

  it('is degraded (503) when every snapshot is older than HEALTH_STALE_MS', async () => {
    const old = Date.now() - 60_000;
    await putLatest(snapshot('BTC-USD', 65000.125, old));
    await putLatest(snapshot('ETH-USD', 3200.5, old));
    const { status, body } = await call(health, v2('GET', '/health'));
    expect(status).toBe(503);
    expect(body.status).toBe('degraded');
    expect(body.newestAgeMs).toBeGreaterThanOrEqual(60_000);
    expect(body.reasons.join(' ')).toMatch(/newest snapshot is \d+ ms old \(limit 5000 ms\)/);

    await putLatest(snapshot('ETH-USD', 3200.5, Date.now()));
    expect((await call(health, v2('GET', '/health'))).status).toBe(200);
  });

  it("reports the ingestor's feed from the newest snapshot, degraded once heartbeats stop", async () => {
    /** Stats made `reportAgoMs` ago, when the last heartbeat was `heartbeatAgoMs` old. */
    const withFeed = (heartbeatAgoMs: number | null, reportAgoMs = 500) => {
      const now = Date.now();
      return {
        ...snapshot('BTC-USD', 65000.125, now),
        feed: {
          exchUs: (now - reportAgoMs) * 1000,
          messagesPerS: 42.5,
          bytesPerS: 9000,
          lastHeartbeatUs: heartbeatAgoMs === null ? 0 : (now - reportAgoMs - heartbeatAgoMs) * 1000,
          reconnects: 1,
          resyncs: 2,
          producerRetries: 0,
          bufferDepth: 0,
        },
      };
    };
    await putLatest(withFeed(1000));
    const ok = await call(health, v2('GET', '/health'));
    expect(ok.status).toBe(200);
    expect(ok.body.feed).toMatchObject({
      status: 'ok',
      product: 'BTC-USD',
      messagesPerS: 42.5,
      reconnects: 1,
      resyncs: 2,
    });
    expect(ok.body.feed.heartbeatAgeMs).toBeGreaterThanOrEqual(1000);
    expect(ok.body.feed.statsAgeMs).toBeGreaterThanOrEqual(500);

    // Snapshots stay fresh (the worker runs) while the exchange has gone quiet: only the feed is degraded.
    await putLatest(withFeed(60_000));
    const quiet = await call(health, v2('GET', '/health'));
    expect(quiet.status).toBe(503);
    expect(quiet.body.feed.status).toBe('degraded');
    expect(quiet.body.feed.heartbeatAgeMs).toBeGreaterThanOrEqual(60_000);
    expect(quiet.body.reasons).toEqual([
      expect.stringMatching(/^ingestor heard no exchange heartbeat for 60000 ms \(limit 5000 ms\)$/),
    ]);

    // Stats reach the table up to ~10 s after they are made (report period + status cadence): a heartbeat that
    // was 1 s old at the report is fine though 12 s old by now; stats that stopped coming are not.
    await putLatest(withFeed(1000, 11_000));
    const lagging = await call(health, v2('GET', '/health'));
    expect(lagging.body.feed.heartbeatAgeMs).toBeGreaterThanOrEqual(12_000);
    expect(lagging.status).toBe(200);
    await putLatest(withFeed(1000, 16_000));
    const stopped = await call(health, v2('GET', '/health'));
    expect(stopped.status).toBe(503);
    expect(stopped.body.reasons).toEqual([
      expect.stringMatching(/^ingestor's newest stats are \d+ ms old \(limit 15000 ms\)$/),
    ]);

    await putLatest(withFeed(null));
    const never = await call(health, v2('GET', '/health'));
    expect(never.status).toBe(503);
    expect(never.body.feed.heartbeatAgeMs).toBeNull();
    expect(never.body.reasons).toEqual(['ingestor has received no heartbeat from the exchange']);

    // Without stats in any snapshot the feed is unknown, which is not a failure.
    await putLatest(snapshot('BTC-USD', 65000.125, Date.now()));
    const unknown = await call(health, v2('GET', '/health'));
    expect(unknown.status).toBe(200);
    expect(unknown.body.feed).toBeNull();
  });

  it("reports each product's book and its last check, degraded while one resyncs or mismatched", async () => {
    const now = Date.now();
    const checkUs = (now - 2000) * 1000;
    await putLatest({
      ...snapshot('BTC-USD', 65000.125, now),
      book: 'synced',
      verification: { result: 'match', atUs: checkUs },
    });
    await putLatest({
      ...snapshot('ETH-USD', 3200.5, now),
      book: 'synced',
      verification: { result: 'pending', atUs: null },
    });
    const ok = await call(health, v2('GET', '/health'));
    expect(ok.status).toBe(200);
    expect(ok.body.products[0]).toMatchObject({
      product: 'BTC-USD',
      book: 'synced',
      verification: { result: 'match', atUs: checkUs },
    });

    const reason = '1 of 40 levels differ: bid 64999: ours 2, exchange 1';
    await putLatest({
      ...snapshot('BTC-USD', 65000.125, now),
      book: 'synced',
      verification: { result: 'mismatch', atUs: checkUs, reason },
    });
    await putLatest({
      ...snapshot('ETH-USD', 3200.5, now),
      book: 'resyncing',
      verification: { result: 'pending', atUs: null },
    });
    const bad = await call(health, v2('GET', '/health'));
    expect(bad.status).toBe(503);
    expect(bad.body.reasons).toEqual([
      `BTC-USD: last book check mismatched the exchange: ${reason}`,
      'ETH-USD: book resyncing',
    ]);
    // /latest says the same per product; a book whose item stopped coming is stale there and in /health.
    // (A read of ETH-USD within LATEST_CACHE_MS before the write may still be served: /latest follows after it.)
    const one = await until('/latest serving the resyncing ETH-USD book', async () => {
      const got = await call(latest, v2('GET', '/latest', { query: { product: 'ETH-USD' } }));
      return got.body.book === 'resyncing' ? got : undefined;
    });
    expect(one.body).toMatchObject({ book: 'resyncing', verification: { result: 'pending', atUs: null } });
    await putLatest({ ...snapshot('ETH-USD', 3200.5, now - 60_000), book: 'synced' });
    const stale = async () =>
      (await call(latest, v2('GET', '/latest', { query: { product: 'ETH-USD' } }))).body.book === 'stale';
    await until('the ETH-USD book served as stale (after LATEST_CACHE_MS)', stale);
    expect((await call(health, v2('GET', '/health'))).body.products[1].book).toBe('stale');
    await putLatest(snapshot('BTC-USD', 65000.125, Date.now()));
    await putLatest(snapshot('ETH-USD', 3200.5, Date.now()));
  });
});

/** Publishes a real logistic ONNX model under `version` and makes it the active one, through the registry. */
async function publishAndActivate(
  version: string,
  weights: LogisticModel,
  target: Target = TARGET,
  metrics: Record<string, unknown> = {},
): Promise<void> {
  const dir = join(dataDir, 'models', target, version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), exportLogisticOnnx(weights, SPEC, { target, version }));
  writeFileSync(join(dir, 'feature_spec.json'), JSON.stringify(SPEC));
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ target, version, ...metrics }));
  await publishVersion(dir, target, version);
  await activate(target, version);
}

const MODEL_A: LogisticModel = {
  weights: [0.8, -1.2, 40],
  bias: -0.3,
  mean: [1, 0.5, 0],
  std: [0.5, 0.2, 0.001],
};
const MODEL_VOL: LogisticModel = {
  weights: [2, 0.5, -20],
  bias: -2,
  mean: [1, 0.5, 0],
  std: [0.5, 0.2, 0.001],
};
const MODEL_B: LogisticModel = {
  weights: [-0.5, 2, -10],
  bias: 0.7,
  mean: [1, 0.5, 0],
  std: [0.5, 0.2, 0.001],
};

describe('POST /predict before any model is active', () => {
  it('answers 503 saying the model is unavailable', async () => {
    const { status, body } = await call(
      predictHandler,
      v2('POST', '/predict', { body: '{"product":"BTC-USD"}' }),
    );
    expect(status).toBe(503);
    expect(body.error).toEqual({
      code: 'unavailable',
      message: 'model for quote_change_500ms (l2 features) is unavailable',
    });
  });
});

describe('GET /version', () => {
  it('reports the package version, BUILD_SHA and the active model version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const before = await call(version, v2('GET', '/version'));
    expect(before.status).toBe(200);
    expect(before.body).toEqual({
      app: 'quotewatch',
      version: pkg.version,
      buildSha: 'abc1234',
      models: { quote_change_500ms: null, vol_spike_60s: null },
    });

    await publishAndActivate('v-a', MODEL_A);
    const after = await call(version, v2('GET', '/version'));
    expect(after.body.models).toEqual({ quote_change_500ms: 'v-a', vol_spike_60s: null });
  });
});

describe('POST /predict', () => {
  const post = (body: string) => call(predictHandler, v2('POST', '/predict', { body }));

  it("scores a product's latest features with the active model", async () => {
    const now = Date.now();
    const snap = snapshot('ETH-USD', 3205.25, now);
    await putLatest(snap);
    const { status, body } = await post('{"product":"ETH-USD"}');
    expect(status).toBe(200);
    expect(body).toMatchObject({ target: TARGET, modelVersion: 'v-a', product: 'ETH-USD', tsUs: now * 1000 });
    const x = FEATURE_NAMES.map((n) => snap.features[n]!);
    expect(body.probability).toBeCloseTo(predictLogistic(MODEL_A, x), 5);
  });

  it('scores caller-supplied features', async () => {
    const { status, body } = await post(
      JSON.stringify({ features: { mid_return_1s: -0.001, imbalance_l1: 0.9, spread_bps: 0.4 } }),
    );
    expect(status).toBe(200);
    expect(body.probability).toBeCloseTo(predictLogistic(MODEL_A, [0.4, 0.9, -0.001]), 5);
    expect(body).not.toHaveProperty('product');
    // Nothing is known of where a caller's numbers came from.
    expect(body.lineage).toBeNull();
  });

  it('answers 400 with a clear message for bad bodies', async () => {
    const cases: [string, RegExp][] = [
      ['{"product": "BTC', /request body is not valid JSON/],
      [
        '{"features":{"spread_bps":1,"imbalance_l1":0,"mid_return_1s":0,"vpin":2}}',
        /unknown feature names: vpin/,
      ],
      [
        '{"features":{"spread_bps":"wide"}}',
        /features\.spread_bps: each feature value must be a finite number/,
      ],
      ['{"features":{"spread_bps":1}}', /missing features: imbalance_l1, mid_return_1s/],
      ['{"product":42}', /product must be a string/],
    ];
    for (const [body, message] of cases) {
      const res = await post(body);
      expect(res.status, body).toBe(400);
      expect(res.body.error.code).toBe('bad_request');
      expect(res.body.error.message).toMatch(message);
    }
  });

  it('answers 404 for a product without a snapshot', async () => {
    const { status, body } = await post('{"product":"DOGE-USD"}');
    expect(status).toBe(404);
    expect(body.error.message).toContain('DOGE-USD');
  });

  it('answers 400 listing the valid targets for an unknown one', async () => {
    for (const target of ['"vol_spike_30s"', '7']) {
      const res = await post(`{"product":"BTC-USD","target":${target}}`);
      expect(res.status, target).toBe(400);
      expect(res.body.error.code).toBe('bad_request');
      expect(res.body.error.message).toContain(`target must be`);
      expect(res.body.error.message).toContain(TARGETS.join(', '));
    }
  });

  it('answers 503 for a target without an active model, while the other target keeps serving', async () => {
    const vol = await post('{"product":"ETH-USD","target":"vol_spike_60s"}');
    expect(vol.status).toBe(503);
    expect(vol.body.error.message).toBe('model for vol_spike_60s (l2 features) is unavailable');
    expect((await post('{"product":"ETH-USD"}')).status).toBe(200);
  });

  it("scores each target with its own active model; vol_spike_60s carries the product's τ from the model's metrics", async () => {
    await publishAndActivate('vol-a', MODEL_VOL, 'vol_spike_60s', {
      thresholds: { 'BTC-USD': 0.5, 'ETH-USD': 0.8125 },
    });
    const now = Date.now();
    const snap = snapshot('ETH-USD', 3206.5, now);
    await putLatest(snap);
    const x = FEATURE_NAMES.map((n) => snap.features[n]!);

    const vol = await post('{"product":"ETH-USD","target":"vol_spike_60s"}');
    expect(vol.status).toBe(200);
    expect(vol.body).toMatchObject({
      target: 'vol_spike_60s',
      modelVersion: 'vol-a',
      threshold: 0.8125,
      product: 'ETH-USD',
      tsUs: now * 1000,
    });
    expect(vol.body.probability).toBeCloseTo(predictLogistic(MODEL_VOL, x), 5);
    // A product the model has no τ for: scored, and said to have none (never another product's τ).
    await putLatest(snapshot('SOL-USD', 150.25, now));
    const sol = await post('{"product":"SOL-USD","target":"vol_spike_60s"}');
    expect(sol.status).toBe(200);
    expect(sol.body).toMatchObject({ modelVersion: 'vol-a', product: 'SOL-USD', threshold: null });
    expect(sol.body.probability).toBeGreaterThan(0);
    // A caller's vector names no product: the answer gives τ per product.
    const byVector = await post(JSON.stringify({ target: 'vol_spike_60s', features: snap.features }));
    expect(byVector.body.thresholds).toEqual({ 'BTC-USD': 0.5, 'ETH-USD': 0.8125 });
    expect(byVector.body).not.toHaveProperty('threshold');

    // Named explicitly or by default, quote_change_500ms is still the other model, without a threshold.
    for (const body of ['{"product":"ETH-USD","target":"quote_change_500ms"}', '{"product":"ETH-USD"}']) {
      const quote = await post(body);
      expect(quote.body).toMatchObject({ target: TARGET, modelVersion: 'v-a' });
      expect(quote.body.probability).toBeCloseTo(predictLogistic(MODEL_A, x), 5);
      expect(quote.body).not.toHaveProperty('threshold');
    }
    expect((await call(version, v2('GET', '/version'))).body.models).toEqual({
      quote_change_500ms: 'v-a',
      vol_spike_60s: 'vol-a',
    });
  });

  it('serves the shipped vol_spike_60s baseline with the one τ of its metrics.json (from before τ per product)', async () => {
    const dir = join(import.meta.dirname, '../models/baseline/vol_spike_60s');
    const metrics = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
    const spec: FeatureSpec = JSON.parse(readFileSync(join(dir, 'feature_spec.json'), 'utf8'));
    await publishVersion(dir, 'vol_spike_60s', metrics.version);
    await activate('vol_spike_60s', metrics.version);
    const features = Object.fromEntries(spec.features.map((f, i) => [f.name, ((i % 5) - 2) * 0.3]));
    const res = await post(JSON.stringify({ target: 'vol_spike_60s', features }));
    expect(res.status).toBe(200);
    expect(res.body.modelVersion).toBe(metrics.version);
    expect(res.body.threshold).toBe(metrics.threshold);
    // The same bytes loaded straight into onnxruntime, bypassing registry and API, give the same answer.
    const direct = await loadModel(readFileSync(join(dir, 'model.onnx')), spec, {
      target: 'vol_spike_60s',
      version: metrics.version,
    });
    const row = Float32Array.from(spec.features, (f) => features[f.name]!);
    expect(res.body.probability).toBeCloseTo((await direct.predict(row, 1))[0]!, 6);
    await direct.release();
  });

  it('switches to a newly activated version without a restart', async () => {
    const features = { spread_bps: 0.4, imbalance_l1: 0.9, mid_return_1s: -0.001 };
    await publishAndActivate('v-b', MODEL_B);
    const { body } = await post(JSON.stringify({ features }));
    expect(body.modelVersion).toBe('v-b');
    expect(body.probability).toBeCloseTo(predictLogistic(MODEL_B, [0.4, 0.9, -0.001]), 5);
    expect(body.probability).not.toBeCloseTo(predictLogistic(MODEL_A, [0.4, 0.9, -0.001]), 2);
  });
});

describe('predict with a real ONNX model', () => {
  const weights: LogisticModel = {
    weights: [0.8, -1.2, 40],
    bias: -0.3,
    mean: [1, 0.5, 0],
    std: [0.5, 0.2, 0.001],
  };
  let model: LoadedModel;

  beforeAll(async () => {
    const bytes = exportLogisticOnnx(weights, SPEC, { target: 'quote_change_500ms', version: 'v-a' });
    model = await loadModel(bytes, SPEC, { target: 'quote_change_500ms', version: 'v-a' });
  });
  afterAll(async () => model?.release());

  const deps = () => ({
    model: async () => model,
    latest: (product: string) => latestOf(product),
  });

  it('scores named features in spec order whatever order they arrive in', async () => {
    const req = parsePredictBody(
      JSON.stringify({ features: { mid_return_1s: 0.002, spread_bps: 1.5, imbalance_l1: 0.1 } }),
    );
    const res = (await predict(req, deps())) as PredictResponse;
    expect(res.target).toBe('quote_change_500ms');
    expect(res.modelVersion).toBe('v-a');
    expect(res.probability).toBeCloseTo(predictLogistic(weights, [1.5, 0.1, 0.002]), 5);
    expect(res).not.toHaveProperty('product');
  });

  it("scores a product's latest features and says which tick it scored", async () => {
    const now = Date.now();
    await putLatest(snapshot('BTC-USD', 65010.125, now));
    const res = (await predict(parsePredictBody('{"product":"BTC-USD"}'), deps())) as PredictResponse;
    const f = snapshot('BTC-USD', 65010.125, now).features;
    expect(res.product).toBe('BTC-USD');
    expect(res.tsUs).toBe(now * 1000);
    expect(res.probability).toBeCloseTo(
      predictLogistic(
        weights,
        FEATURE_NAMES.map((n) => f[n]!),
      ),
      5,
    );
  });

  it('rejects unknown and missing feature names, naming them', async () => {
    const req = parsePredictBody(JSON.stringify({ features: { spread_bps: 1, imbalance_l1: 0, bogus: 3 } }));
    await expect(predict(req, deps())).rejects.toThrow(
      /unknown feature names: bogus; missing features: mid_return_1s \(model v-a expects: spread_bps, imbalance_l1, mid_return_1s\)/,
    );
  });

  it('rejects malformed bodies with messages saying what is wrong', () => {
    const bad = (body: string | undefined) => () => parsePredictBody(body);
    expect(bad(undefined)).toThrow(/request body is required/);
    expect(bad('{"product": ')).toThrow(/not valid JSON/);
    expect(bad('[1,2]')).toThrow(/must be a JSON object/);
    expect(bad('{}')).toThrow(/exactly one of "product", "features" or "vectors"/);
    expect(bad('{"product":"BTC-USD","features":{}}')).toThrow(/exactly one of/);
    expect(bad('{"product":"btc"}')).toThrow(/product must look like BTC-USD/);
    expect(bad('{"product":"BTC-USD","extra":1}')).toThrow(/extra/);
    expect(bad('{"features":{"spread_bps":"1.5"}}')).toThrow(
      /features\.spread_bps: each feature value must be a finite number/,
    );
    expect(bad('{"features":[1,2]}')).toThrow(/features must be an object/);
  });
});

describe('when DynamoDB is down', () => {
  it('/latest answers 503 and /health reports degraded; both recover after restart', async () => {
    await emu.kill('dynamodb');
    const l = await call(latest, v2('GET', '/latest'));
    expect(l.status).toBe(503);
    expect(l.body.error.code).toBe('unavailable');
    const h = await call(health, v2('GET', '/health'));
    expect(h.status).toBe(503);
    expect(h.body).toMatchObject({ status: 'degraded', dynamodb: 'unreachable' });
    expect(h.body.reasons[0]).toMatch(/latest table unreachable/);

    await emu.restart('dynamodb');
    expect((await call(latest, v2('GET', '/latest'))).status).toBe(200);
  });
});
