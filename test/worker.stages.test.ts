/**
 * The worker's stages one by one (src/worker/): dedup, decode, score, the latest and history sinks, the replay point of
 * recovery, and the one shard loop over real kinesalite. The stages together are tested by the worker tests
 * (worker.consumer, determinism.*, worker.recovery).
 */
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exportLogisticOnnx } from '../models/export/onnx.js';
import { dynamoClient, kinesisClient, s3Client } from '../src/aws/clients.js';
import { featureSpec } from '../src/features/spec.js';
import type { FeatureRow, LabelRow } from '../src/features/types.js';
import type { Logger } from '../src/log.js';
import { loadModel } from '../src/model/runtime.js';
import type { LoadedModel } from '../src/model/types.js';
import { TABLES } from '../src/resources.js';
import { getHistory, putHistory, putHistoryLabels } from '../src/storage/history.js';
import { LakeWriter } from '../src/storage/lake.js';
import { encodeRecord, type StreamEvent } from '../src/stream/record.js';
import { decodeRecords } from '../src/worker/decode.js';
import { Deduplicator, WindowedKeys } from '../src/worker/dedup.js';
import { replayPoint } from '../src/worker/recovery.js';
import { Scorer } from '../src/worker/score.js';
import { pollingSource, readShard, type ShardSink } from '../src/worker/shards.js';
import { HistorySink } from '../src/worker/sinks/history.js';
import { latestSnapshot } from '../src/worker/sinks/latest.js';
import { withEmulators } from './support/system.js';
import { createStream } from './worker.consumer.support.js';

const local = withEmulators({ provision: true });
const TICK_MS = 100;
const SPEC = featureSpec(TICK_MS);
const F = SPEC.features.length;

function recorder() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const log: Logger = (level, msg, fields) => lines.push({ level, msg, fields });
  return { lines, log };
}

function row(product: string, tsUs: number, fill = 0.5): FeatureRow {
  return {
    product,
    tsUs,
    seq: tsUs / 1000,
    bestBid: '100',
    bestAsk: '100.02',
    mid: 100.01,
    spread: 0.02,
    values: new Float64Array(F).fill(fill),
    top: { bids: [['100', '1']], asks: [['100.02', '2']] },
  };
}

const model = (version: string, target: LoadedModel['target'] = 'quote_change_500ms') =>
  loadModel(
    exportLogisticOnnx(
      { weights: Array(F).fill(0.1), bias: 0, mean: Array(F).fill(0), std: Array(F).fill(1) },
      SPEC,
    ),
    SPEC,
    { target, version },
  );

describe('dedup stage', () => {
  it('WindowedKeys forgets keys older than the window of exchange time, and only those', () => {
    const s = new WindowedKeys(1000);
    s.add('a', 0);
    s.add('b', 500);
    expect([s.has('a'), s.has('b')]).toEqual([true, true]);
    s.add('c', 1000); // a is exactly at the horizon: kept
    expect(s.has('a')).toBe(true);
    s.add('d', 1001);
    expect([s.has('a'), s.has('b'), s.has('c'), s.has('d')]).toEqual([false, true, true, true]);
    expect(s.size).toBe(3);
  });

  it('WindowedKeys matches a reference model on keys in time order (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 20 })), {
          maxLength: 200,
        }),
        (window, steps) => {
          const s = new WindowedKeys(window);
          const ref = new Map<string, number>();
          let t = 0;
          for (const [n, dt] of steps) {
            t += dt;
            const k = String(n);
            // As the Deduplicator uses it: a key is added once, when first passed.
            expect(s.has(k)).toBe(ref.has(k));
            if (ref.has(k)) continue;
            ref.set(k, t);
            s.add(k, t);
            for (const [key, at] of ref) if (at < t - window) ref.delete(key);
            for (const key of ref.keys()) expect(s.has(key)).toBe(true);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('Deduplicator: repeats within the window are duplicates, older trades and book changes are stale', () => {
    const d = new Deduplicator(10); // 10 ms
    expect(d.check('a', 0, true)).toBe('new');
    d.pass('a', 0, true);
    expect(d.check('a', 0, true)).toBe('duplicate');
    d.pass('b', 20_000, true);
    expect(d.check('a', 0, true)).toBe('stale'); // forgotten, and older than the window
    expect(d.check('snap', 0, false)).toBe('new'); // snapshots, resyncs: no exchange time of their own
    expect(d.check('c', 10_000, true)).toBe('new'); // exactly at the horizon
  });

  it('an untimed event (resync, snapshot) does not move the window; a key bound holds whatever the times', () => {
    const d = new Deduplicator(10);
    d.pass('t', 0, true);
    d.pass('resync', 60_000, false); // an ingestor's clock, not the exchange's: trades at 5 ms are not stale
    expect(d.check('u', 5_000, true)).toBe('new');
    expect(d.check('t', 0, true)).toBe('duplicate');
    const s = new WindowedKeys(1000, 3);
    for (const k of ['a', 'b', 'c', 'd']) s.add(k, 0, false);
    expect([s.has('a'), s.has('b'), s.has('d'), s.size]).toEqual([false, true, true, 3]);
  });
});

describe('decode stage', () => {
  it('decodes in order and sets aside what does not decode, with its bytes and the reason', () => {
    const event: StreamEvent = {
      type: 'heartbeat',
      product: 'A-B',
      exchUs: 1,
      recvUs: 1,
      seq: 1,
      counter: 0,
      id: 'x:1:0',
    };
    const bad = new TextEncoder().encode('{"v":9}');
    const out = decodeRecords('shard-1', [
      { SequenceNumber: '1', Data: encodeRecord('A-B', [event]) },
      { SequenceNumber: '2', Data: bad },
      { SequenceNumber: '3', Data: encodeRecord('A-B', [{ ...event, id: 'x:2:0' }]) },
    ]);
    expect(out.records.map((r) => [r.sequenceNumber, r.product, r.events.map((e) => e.id)])).toEqual([
      ['1', 'A-B', ['x:1:0']],
      ['3', 'A-B', ['x:2:0']],
    ]);
    expect(out.bad).toHaveLength(1);
    expect(out.bad[0]).toMatchObject({ shardId: 'shard-1', sequenceNumber: '2', data: bad });
    expect(out.bad[0]!.error.message).toMatch(/unsupported record version 9/);
  });
});

describe('score stage', () => {
  it('scores every row with ONE call per model; a failing model costs its predictions only; a spec mismatch is never served', async () => {
    const { lines, log } = recorder();
    const good = await model('good');
    const calls: number[] = [];
    const counted: LoadedModel = {
      ...good,
      predict: (rows, n) => {
        calls.push(n);
        return good.predict(rows, n);
      },
    };
    const failing: LoadedModel = {
      ...(await model('bad', 'vol_spike_60s')),
      predict: () => Promise.reject(new Error('boom')),
    };
    const otherSpec = await loadModel(
      exportLogisticOnnx(
        { weights: [1], bias: 0, mean: [0], std: [1] },
        { ...SPEC, features: SPEC.features.slice(0, 1) },
      ),
      { ...SPEC, features: SPEC.features.slice(0, 1) },
      { target: 'vol_spike_60s', version: 'narrow' },
    );
    const scorer = new Scorer(TICK_MS, log);
    const rows = [row('BTC-USD', 1_000_000), row('ETH-USD', 1_000_000), row('BTC-USD', 1_100_000)];
    const first = await scorer.score(rows, [counted, failing, otherSpec]);
    const second = await scorer.score(rows.slice(0, 1), [counted, failing, otherSpec]);
    expect(first.map((s) => s.models.map((m) => m?.version))).toEqual([['good', 'good', 'good']]);
    expect(first[0]!.predictions.map((p) => [p.product, p.tsUs, p.modelVersion])).toEqual(
      rows.map((r) => [r.product, r.tsUs, 'good']),
    );
    expect(Array.from(first[0]!.probabilities)).toEqual(first[0]!.predictions.map((p) => p.probability));
    expect(second[0]!.predictions).toHaveLength(1);
    expect(calls).toEqual([3, 1]);
    expect(
      lines.filter((l) => l.msg === 'model scoring failed; rows kept without its predictions'),
    ).toHaveLength(2);
    // The mismatch is found once per loaded model, not per batch.
    expect(lines.filter((l) => l.msg === 'model not served: feature spec mismatch')).toHaveLength(1);
    expect(await scorer.score([], [counted])).toEqual([]);
    await Promise.all([good.release(), otherSpec.release()]);
  });
});

describe('score stage: the model the data supports', () => {
  it('scores L2 rows with the l2 model and ticker-only rows with the ticker model, each on its own columns', async () => {
    const l2Spec = featureSpec(TICK_MS, 'l2');
    const tickerSpec = featureSpec(TICK_MS, 'ticker');
    const linear = (spec: typeof l2Spec, version: string) => {
      const W = spec.features.length;
      return loadModel(
        exportLogisticOnnx(
          { weights: Array(W).fill(0.05), bias: 0, mean: Array(W).fill(0), std: Array(W).fill(1) },
          spec,
        ),
        spec,
        { target: 'quote_change_500ms', version },
      );
    };
    const l2 = await linear(l2Spec, 'l2-v');
    const ticker = await linear(tickerSpec, 'tk-v');
    const source = SPEC.features.findIndex((f) => f.name === 'source_is_ticker');
    const book = row('BTC-USD', 1_000_000, 1);
    book.values[source] = 0;
    const tick = row('SOL-USD', 1_000_000, 1);
    tick.values[source] = 1;
    const scorer = new Scorer(TICK_MS, () => {});
    const [both] = await scorer.score([book, tick], [l2, ticker]);
    expect(both!.models.map((m) => m?.version)).toEqual(['l2-v', 'tk-v']);
    // All-ones input: the probability is the sigmoid of 0.05 × the set's width.
    const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
    expect(both!.probabilities[0]).toBeCloseTo(sigmoid(0.05 * l2Spec.features.length), 5);
    expect(both!.probabilities[1]).toBeCloseTo(sigmoid(0.05 * tickerSpec.features.length), 5);
    expect(l2Spec.features.length).toBeGreaterThan(tickerSpec.features.length);
    // Without a ticker model, a ticker-only row goes unscored; without an l2 model, the ticker one serves both.
    const [l2Only] = await scorer.score([book, tick], [l2]);
    expect(l2Only!.models.map((m) => m?.version)).toEqual(['l2-v', undefined]);
    expect(l2Only!.probabilities[1]).toBeNaN();
    expect(l2Only!.predictions.map((p) => p.product)).toEqual(['BTC-USD']);
    const [tickerOnly] = await scorer.score([book, tick], [ticker]);
    expect(tickerOnly!.models.map((m) => m?.version)).toEqual(['tk-v', 'tk-v']);
    await Promise.all([l2.release(), ticker.release()]);
  });
});

describe('latest sink', () => {
  it('builds a product snapshot from its row, every model, quality and feed health', async () => {
    const m = await model('v1');
    const r = row('BTC-USD', 5_000_000);
    r.values[0] = Number.NaN; // an undefined feature is left out, not stored as null
    const [scored] = await new Scorer(TICK_MS, () => {}).score([r], [m]);
    const feed = {
      exchUs: 4_900_000,
      messagesPerS: 10,
      bytesPerS: 1000,
      lastHeartbeatUs: 4_950_000,
      reconnects: 0,
      resyncs: 1,
      producerRetries: 0,
      bufferDepth: 0,
    };
    const quality = {
      quote_change_500ms: { modelVersion: 'v1', n: 10, auc: 0.6, brier: 0.2, baseRate: 0.3 },
    };
    const asked: [string, string | undefined][] = [];
    const drift = { modelVersion: 'v1', psiMax: 0.4, feature: 'spread_bps', flagged: true };
    const snap = latestSnapshot(
      r,
      0,
      [scored!],
      {
        quality: (product, versions) => {
          asked.push([product, versions.get('quote_change_500ms')]);
          return quality;
        },
        drift: () => drift,
        feed: () => feed,
        watermarkUs: () => 5_050_000,
        book: () => ({}),
      },
      5_080,
    );
    expect(asked).toEqual([['BTC-USD', 'v1']]); // the quality of the version that scored this row
    expect(snap).toMatchObject({
      product: 'BTC-USD',
      tsUs: 5_000_000,
      bestBid: '100',
      bestAsk: '100.02',
      bids: [['100', '1']],
      asks: [['100.02', '2']],
      predictions: {
        quote_change_500ms: {
          modelVersion: 'v1',
          probability: scored!.probabilities[0],
          featureSet: 'l2',
          drifted: true,
        },
      },
      quality,
      drift: { quote_change_500ms: drift },
      feed,
      latencyMs: 30, // from the product's newest exchange time, not the tick
      updatedAtMs: 5_080,
    });
    expect(snap.spreadBps).toBeCloseTo((0.02 / 100.01) * 1e4, 9);
    expect(Object.keys(snap.features)).toHaveLength(F - 1);
    expect(SPEC.features[0]!.name in snap.features).toBe(false);
    await m.release();
  });
});

describe('history sink (against dynalite)', () => {
  const label = (product: string, tsUs: number, target: string, value: number) =>
    ({ product, tsUs, target, value }) as LabelRow;
  const ctx = {
    quality: () => undefined,
    drift: () => undefined,
    feed: () => undefined,
    watermarkUs: () => undefined,
    book: () => ({}),
  };

  it('writes a row per boundary tick, and the labels of ten rows as one item once their last horizon has passed', async () => {
    const store = { client: dynamoClient(local.env), table: TABLES.latest.localName };
    const writes: string[] = [];
    const sink = new HistorySink({
      writeMs: 1000,
      ttlS: 3600,
      holdMs: 65_000,
      put: (item) => {
        writes.push(`row ${item.tsUs}`);
        return putHistory(item, store);
      },
      labels: (product, startMs, labels, expiresAt) => {
        writes.push(`labels ${startMs} ${Object.keys(labels).length}`);
        return putHistoryLabels(product, startMs, labels, expiresAt, store);
      },
      now: () => 10_000,
    });
    const m = await model('v1');
    const T = 1_000_000_000; // a whole 10 s: the start of a bucket
    const rows = [row('SOL-USD', T), row('SOL-USD', T + 100_000), row('SOL-USD', T + 1_000_000)];
    const scored = await new Scorer(TICK_MS, () => {}).score(rows, [m]);
    await sink.write(rows, scored, ctx, []);
    expect(writes).toEqual([`row ${T}`, `row ${T + 1_000_000}`]); // boundaries only
    // Quote labels mature first (an off-boundary tick's is not kept); a minute later the vol labels.
    await sink.write([], [], ctx, [
      label('SOL-USD', T, 'quote_change_500ms', 1),
      label('SOL-USD', T + 100_000, 'quote_change_500ms', 0),
      label('SOL-USD', T + 1_000_000, 'quote_change_500ms', 0),
    ]);
    await sink.write([], [], ctx, [
      label('SOL-USD', T, 'vol_spike_60s', 2.5),
      label('SOL-USD', T + 1_000_000, 'vol_spike_60s', 0.4),
    ]);
    expect(writes).toHaveLength(2);
    expect(sink.heldBuckets).toBe(1);
    // Due once the product's event time is past the bucket (10 s) and the hold (65 s): one write for both rows.
    const due = row('SOL-USD', T + 75_000_000);
    await sink.write([due], await new Scorer(TICK_MS, () => {}).score([due], [m]), ctx, []);
    expect(writes.slice(2)).toEqual([`row ${T + 75_000_000}`, `labels ${T / 1000} 2`]);
    expect(sink.heldBuckets).toBe(0);
    const { items } = await getHistory('SOL-USD', T / 1000, T / 1000 + 1000, 10, store);
    expect(items.map((i) => i.labels)).toEqual([
      { quote_change_500ms: 1, vol_spike_60s: 2.5 },
      { quote_change_500ms: 0, vol_spike_60s: 0.4 },
    ]);
    await m.release();
  });

  it("waits for the product's own event time: another product's does not release its labels", async () => {
    const written: [number, number][] = [];
    const sink = new HistorySink({
      writeMs: 1000,
      ttlS: 3600,
      holdMs: 65_000,
      put: async () => {},
      labels: async (_p, startMs, labels) => void written.push([startMs, Object.keys(labels).length]),
      now: () => 0,
    });
    const T = 2_000_000_000;
    await sink.write([], [], ctx, [label('ADA-USD', T, 'quote_change_500ms', 0)]);
    await sink.write([row('XRP-USD', T + 100_000_000)], [], ctx, []);
    expect(written).toEqual([]);
    await sink.write([row('ADA-USD', T + 74_900_000)], [], ctx, []);
    expect(written).toEqual([]);
    await sink.write([row('ADA-USD', T + 75_000_000)], [], ctx, []);
    expect(written).toEqual([[T / 1000, 1]]);
  });
});

describe('recovery replay point', () => {
  it('is the oldest of: each product open raw object, and its last snapshot old enough to recompute its open windows', () => {
    const lake = new LakeWriter({
      s3: s3Client(local.env),
      bucket: 'unused',
      shardId: 's',
      tickMs: TICK_MS,
      objectTicks: 10,
    });
    const minute = 60_000_000;
    lake.restore({ 'features|A-B': 10 * minute, 'labels|A-B|quote_change_500ms': 10 * minute });
    const products = new Map([
      [
        'A-B',
        {
          first: '100',
          snapshots: [
            { exchUs: 1 * minute, record: '110' },
            { exchUs: 2 * minute, record: '120' }, // the newest one at least 7 min before the open windows
            { exchUs: 9 * minute, record: '190' },
          ],
        },
      ],
      ['C-D', { first: '150', snapshots: [] }], // no rows yet: from its first record
    ]);
    expect(replayPoint(products, lake, 7 * 60_000)).toBe('120');
    expect(products.get('A-B')!.snapshots.map((s) => s.record)).toEqual(['120', '190']); // older ones dropped
    products.delete('C-D');
    expect(replayPoint(products, lake, 7 * 60_000)).toBe('120');
    // Too short a history: nothing old enough, so from the product's first record.
    expect(replayPoint(products, lake, 20 * 60_000)).toBe('100');
  });
});

describe('the shard loop over kinesalite', () => {
  it('reads up to a bound (exclusive) and reports it reached; a sink failure ends the read with its error', async () => {
    const kinesis = kinesisClient(local.env);
    const stream = 'shard-loop';
    const [shard] = await createStream(kinesis, stream, 1);
    const put = await kinesis.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: Array.from({ length: 6 }, (_, i) => ({
          PartitionKey: 'k',
          Data: new TextEncoder().encode(`r${i}`),
        })),
      }),
    );
    const seqs = put.Records!.map((r) => r.SequenceNumber!);
    const got: string[] = [];
    const sink: ShardSink = {
      records: async (records) => void got.push(...records.map((r) => new TextDecoder().decode(r.Data))),
      empty: () => {},
    };
    const source = pollingSource(kinesis, stream, { limit: 2, idleMs: 5 });
    const signal = new AbortController().signal;
    expect(
      await readShard(source, shard!.ShardId!, { at: seqs[1]! }, signal, sink, { until: seqs[4]! }),
    ).toBe('reached');
    expect(got).toEqual(['r1', 'r2', 'r3']);

    const failing: ShardSink = { records: () => Promise.reject(new Error('handler down')), empty: () => {} };
    await expect(readShard(source, shard!.ShardId!, { trimHorizon: true }, signal, failing)).rejects.toThrow(
      'handler down',
    );

    const stop = new AbortController();
    const rest: string[] = [];
    const reading = readShard(source, shard!.ShardId!, { after: seqs[3]! }, stop.signal, {
      records: async (records) => void rest.push(...records.map((r) => new TextDecoder().decode(r.Data))),
      empty: () => stop.abort(), // caught up: stop
    });
    expect(await reading).toBe('stopped');
    expect(rest).toEqual(['r4', 'r5']);
  });
});
