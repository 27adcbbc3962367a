/**
 * End to end, every part real: simulator (Coinbase protocol over a real WebSocket) -> ingestor process ->
 * kinesalite -> worker process (book, features, onnxruntime) -> dynalite + s3rver -> gateway process running the
 * Lambda handlers -> GET /latest. The simulator runs in this test's process so its book can be asked
 * "what was your best bid/ask at sequence N"; every other component is its own OS process, as under `npm start`.
 * Two ingestors run (INGESTORS=2, the hot-standby pair), each on its own connection: the worker keeps one book and
 * one copy of every event from both.
 */
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { PushEntry } from '../src/api/push.js';
import { s3Client } from '../src/aws/clients.js';
import { FEATURE_SPEC } from '../src/features/spec.js';
import { defaultComponents } from '../src/local/supervisor.js';
import { TARGETS } from '../src/model/types.js';
import { BUCKETS } from '../src/resources.js';
import type { LatestSnapshot } from '../src/storage/latest.js';
import { decodeFeatureRows, decodePredictionRows, decodeRawRows } from '../src/storage/parquet.js';
import { expectSimulatorTop, withSimulatedSystem } from './support/system.js';
import { until } from './support/until.js';
import { connect } from './support/wsClient.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const OBJECT_TICKS = 20; // 2 s lake objects, so complete objects appear within the test
const fixture = await withSimulatedSystem({
  simulator: { seed: 42, products: PRODUCTS },
  components: defaultComponents({ ingestors: 2 }).filter((n) => n !== 'simulator'),
  env: { LAKE_OBJECT_TICKS: String(OBJECT_TICKS) },
});

type Latest = LatestSnapshot & { ageMs: number };

/** Lake object names end in -<windowStartMs>.parquet (optionally -<target>): order objects by event time. */
function windowStartMs(key: string): number {
  const m = /-(\d{13})(?:-[a-z0-9_]+)?\.parquet$/.exec(key);
  if (!m) throw new Error(`unexpected lake key ${key}`);
  return Number(m[1]);
}

async function latestAll(): Promise<Latest[]> {
  const res = await fetch(`${fixture.system.urls.dashboard}latest`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { products: Latest[] }).products;
}

describe('the whole path, locally', () => {
  it("pushes the worker's scored snapshots to a subscribed WebSocket, each product's counter rising", async () => {
    const c = await connect(fixture.system.urls.websocket);
    c.send({ action: 'subscribe', products: PRODUCTS });
    expect(await c.next()).toMatchObject({ type: 'subscribed', products: PRODUCTS });
    type Push = { type: string; snapshots: PushEntry[] };
    const pushed = () =>
      c.received.flatMap((m) => ((m as Push).type === 'snapshot' ? (m as Push).snapshots : []));
    await until('three scored pushes of every product', () =>
      PRODUCTS.every(
        (p) => pushed().filter((e) => e.product === p && e.predictions.quote_change_500ms).length >= 3,
      ),
    );
    for (const product of PRODUCTS) {
      const ns = pushed()
        .filter((e) => e.product === product)
        .map((e) => e.n);
      expect(ns).toEqual([...new Set(ns)].sort((a, b) => a - b));
      const e = pushed().find((x) => x.product === product)!;
      expect(Number(e.bestAsk)).toBeGreaterThan(Number(e.bestBid));
      expect(e.n).toBe(Math.round(e.tsUs / 1000 / 100));
    }
    await c.close();
  });

  it('serves, for every product, a scored snapshot whose best bid/ask equal the simulator book at its sequence', async () => {
    const scored = await until('a scored snapshot of every product', async () => {
      const all = await latestAll();
      const ready = all.filter((s) => s.predictions.quote_change_500ms !== undefined);
      return ready.length === PRODUCTS.length ? ready : undefined;
    });
    for (const snap of scored) {
      expect(PRODUCTS).toContain(snap.product);
      expect(snap.seq).toBeGreaterThan(0);
      expectSimulatorTop(fixture.sim, snap.product, snap.seq, snap.bestBid, snap.bestAsk);
      expect(Number(snap.bestAsk)).toBeGreaterThan(Number(snap.bestBid));
      expect(snap.mid).toBeCloseTo((Number(snap.bestBid) + Number(snap.bestAsk)) / 2, 6);
      expect(snap.bids).toHaveLength(3);
      expect(snap.asks).toHaveLength(3);
      expect(Object.keys(snap.features).sort()).toEqual(FEATURE_SPEC.features.map((f) => f.name).sort());
      const p = snap.predictions.quote_change_500ms!;
      expect(p.probability).toBeGreaterThanOrEqual(0);
      expect(p.probability).toBeLessThanOrEqual(1);
      expect(p.modelVersion).toMatch(/\S/);
      // Exchange -> ingest latency of the newest event (the realtime simulator's exchange clock is this machine's).
      expect(p.lineage?.feedLatencyMs).toBeGreaterThanOrEqual(0);
      expect(p.lineage!.feedLatencyMs!).toBeLessThan(10_000);
      expect(snap.tsUs % 100_000).toBe(0);
    }

    // The snapshot moves on with the market: a later one has a later tick and still matches the simulator.
    const first = new Map(scored.map((s) => [s.product, s.tsUs]));
    const later = await until('a newer snapshot', async () => {
      const all = await latestAll();
      return all.every((s) => s.tsUs > (first.get(s.product) ?? Number.POSITIVE_INFINITY)) ? all : undefined;
    });
    for (const snap of later)
      expectSimulatorTop(fixture.sim, snap.product, snap.seq, snap.bestBid, snap.bestAsk);
  });

  it('writes Parquet feature and prediction objects to S3 that read back tick by tick', async () => {
    const s3 = s3Client(fixture.system.env);
    const bucket = BUCKETS.lake.localName;
    const product = 'ETH-USD';
    const list = (zone: string) =>
      s3
        .send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${zone}/product=${product}/` }))
        .then((r) =>
          (r.Contents ?? []).map((o) => o.Key!).sort((a, b) => windowStartMs(a) - windowStartMs(b)),
        );
    const read = async (key: string) => {
      const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return obj.Body!.transformToByteArray();
    };

    // Objects close on event-time window boundaries; the first window may start mid-way, so read the second.
    const keys = await until('two feature objects', async () => {
      const k = await list('features');
      return k.length >= 2 ? k : undefined;
    });
    const { spec, rows } = await decodeFeatureRows(await read(keys[1]!));
    expect(spec.features.map((f) => f.name)).toEqual(FEATURE_SPEC.features.map((f) => f.name));
    expect(rows).toHaveLength(OBJECT_TICKS);
    const windowUs = OBJECT_TICKS * 100_000;
    expect(rows[0]!.tsUs % windowUs).toBe(0);
    rows.forEach((row, i) => {
      expect(row.product).toBe(product);
      expect(row.tsUs).toBe(rows[0]!.tsUs + i * 100_000);
      expect(row.values).toHaveLength(spec.features.length);
      for (const v of row.values) expect(Number.isFinite(v)).toBe(true);
      expectSimulatorTop(fixture.sim, product, row.seq, row.bestBid, row.bestAsk);
    });

    // Every tick of that window was scored, with the probabilities in range and a model version.
    const firstTickMs = rows[0]!.tsUs / 1000;
    const predictionKey = await until('the matching prediction object', async () =>
      (await list('predictions')).find((k) => windowStartMs(k) === firstTickMs),
    );
    const predictions = await decodePredictionRows(await read(predictionKey));
    const quoteChange = predictions.filter((p) => p.target === 'quote_change_500ms');
    expect(quoteChange.map((p) => p.tsUs)).toEqual(rows.map((r) => r.tsUs));
    for (const p of predictions) {
      expect(TARGETS).toContain(p.target);
      expect(p.probability).toBeGreaterThanOrEqual(0);
      expect(p.probability).toBeLessThanOrEqual(1);
      expect(p.modelVersion).toMatch(/\S/);
    }
  });

  it('two ingestors on two connections: both publish, the raw zone holds every trade once', async () => {
    const s3 = s3Client(fixture.system.env);
    const bucket = BUCKETS.lake.localName;
    expect(fixture.sim.connections().length).toBeGreaterThanOrEqual(2);
    const sessions = ['ingestor', 'ingestor2'].map((name) => {
      const line = fixture.system
        .logs(name as 'ingestor' | 'ingestor2')
        .find((l) => l.includes('"ingestor starting"'));
      return (JSON.parse(line!) as { session: string }).session;
    });
    expect(new Set(sessions).size).toBe(2);
    const raw = await until('two raw objects of BTC-USD', async () => {
      const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'raw/product=BTC-USD/' }));
      const keys = (out.Contents ?? []).map((o) => o.Key!);
      return keys.length >= 2 ? keys : undefined;
    });
    const trades: string[] = [];
    for (const key of raw) {
      const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      for (const row of await decodeRawRows(await obj.Body!.transformToByteArray())) {
        if (row.type === 'trade') trades.push(row.eventId);
      }
    }
    expect(trades.length).toBeGreaterThan(0);
    expect(new Set(trades).size).toBe(trades.length);
  });
});
