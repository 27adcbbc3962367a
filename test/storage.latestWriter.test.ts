/**
 * The latest table's write side as DynamoDB bills it, against dynalite: compact items (features packed as
 * float64 in spec order, quality and feed in a status item) stay at one write unit, measured by the emulator's own consumed
 * capacity, and so does a full history row (written by the worker's history sink) with its labels; LatestWriter
 * writes the latest item and the status item at their cadences in event time; and the API's reads give back what
 * was written.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { describe, expect, it } from 'vitest';
import { dynamoClient } from '../src/aws/clients.js';
import { DYNAMO_RATES } from '../src/config.js';
import { itemSize, writeUnits } from '../src/cost/dynamoSize.js';
import { abstainReason, type PredictionLineage } from '../src/features/lineage.js';
import { FEATURE_NAMES } from '../src/features/spec.js';
import { TABLES } from '../src/resources.js';
import {
  getHistory,
  type HistoryItem,
  historyKey,
  LABEL_BUCKET_ROWS,
  putHistory,
  putHistoryLabels,
} from '../src/storage/history.js';
import {
  getLatest,
  LatestWriter,
  listLatest,
  packFeatures,
  putLatest,
  STATUS_WRITE_MS,
  unpackFeatures,
} from '../src/storage/latest.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const T0 = Date.UTC(2026, 7, 9, 21, 0, 0) * 1000;

/** A snapshot as the worker makes it: every feature set, both targets scored, quality and feed health. */
/** A full lineage (the longest it gets: every field set), as the worker stamps each prediction. */
const LINEAGE: PredictionLineage = {
  book: 'synced',
  windowS: 301,
  sinceResyncS: 123.4,
  resyncs: 2,
  gap: true,
  // A capture from 2021 replayed today: 12 digits, and negative when the exchange's clock runs ahead.
  feedLatencyMs: -123_456_789_012,
  verification: { result: 'unavailable', ageS: 45.6 },
};

const VOL_LINEAGE: PredictionLineage = { ...LINEAGE, verification: { result: 'mismatch', ageS: 12.5 } };

function snapshot(product: string, tsUs: number) {
  const features = Object.fromEntries(
    FEATURE_NAMES.map((name, i) => [name, (i - 11) * 1234.56789 + 0.123456789]),
  );
  return {
    product,
    tsUs,
    seq: 123_456_789,
    bestBid: '65083.66',
    bestAsk: '65083.67',
    mid: 65083.665,
    spread: 0.01,
    spreadBps: 0.0015364830938,
    bids: [
      ['65083.66', '0.49123456'],
      ['65083.5', '1.20000001'],
      ['65083.01', '0.00012345'],
    ] as [string, string][],
    asks: [
      ['65083.67', '0.51234567'],
      ['65083.9', '2.5'],
      ['65084.12', '0.3'],
    ] as [string, string][],
    features,
    predictions: {
      quote_change_500ms: {
        probability: 0.123456789012345,
        modelVersion: 'baseline-fs2-seed20240601-fc3f7988',
        featureSet: 'l2' as const,
        lineage: LINEAGE,
        abstain: abstainReason('resync', LINEAGE),
      },
      vol_spike_60s: {
        probability: 0.876543210987654,
        modelVersion: 'baseline-fs2-seed20240601-d3f6a5c7',
        featureSet: 'l2' as const,
        lineage: VOL_LINEAGE,
        // A mismatch younger than the last resync: the book is still wrong.
        abstain: abstainReason('mismatch', VOL_LINEAGE),
      },
    },
    quality: {
      quote_change_500ms: {
        modelVersion: 'baseline-fs2-seed20240601-fc3f7988',
        n: 512,
        auc: 0.71234,
        brier: 0.1734,
        baseRate: 0.41,
      },
      vol_spike_60s: {
        modelVersion: 'baseline-fs2-seed20240601-d3f6a5c7',
        n: 512,
        auc: null,
        brier: 0.09,
        baseRate: 0.1,
      },
    },
    feed: {
      exchUs: tsUs,
      messagesPerS: 21.3,
      bytesPerS: 17_000.5,
      lastHeartbeatUs: tsUs,
      reconnects: 0,
      resyncs: 1,
      producerRetries: 0,
      bufferDepth: 0,
    },
    latencyMs: 18.25,
    updatedAtMs: tsUs / 1000 + 18,
  };
}

const pick = ({ probability, modelVersion }: { probability: number; modelVersion: string }) => ({
  probability,
  modelVersion,
});

/** A history row as the worker's history sink writes it, every field at its longest (both models, τ, feed). */
function historyRow(product: string, tsUs: number): HistoryItem {
  const s = snapshot(product, tsUs);
  return {
    pk: product,
    sk: historyKey(tsUs),
    tsUs,
    seq: s.seq,
    bestBid: s.bestBid,
    bestAsk: s.bestAsk,
    bid: Number(s.bestBid),
    ask: Number(s.bestAsk),
    mid: s.mid,
    spread: s.spread,
    source: 'book',
    // As the history sink writes them (src/worker/sinks/history.ts): probability and version, τ for vol.
    predictions: {
      quote_change_500ms: pick(s.predictions.quote_change_500ms),
      vol_spike_60s: { ...pick(s.predictions.vol_spike_60s), threshold: 1.234567890123 },
    },
    quality: s.quality,
    feed: { messagesPerS: 21.3, reconnects: 0, resyncs: 1, heartbeatAgeMs: 412.5 },
    latencyMs: s.latencyMs,
    expiresAt: Math.floor(tsUs / 1e6) + 21_600,
  };
}

/** Every PutItem the client sends, with the write units dynalite says it consumed. */
function countingClient() {
  const client = dynamoClient(local.env);
  const puts: { sk: string; units: number; item: Record<string, unknown> }[] = [];
  client.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as { Item?: Record<string, unknown>; ReturnConsumedCapacity?: string };
      if (input.Item) input.ReturnConsumedCapacity = 'TOTAL';
      const out = await next(args);
      if (input.Item) {
        const units =
          (out.output as { ConsumedCapacity?: { CapacityUnits?: number } }).ConsumedCapacity?.CapacityUnits ??
          0;
        puts.push({ sk: String(input.Item.sk), units, item: input.Item });
      }
      return out;
    },
    { step: 'initialize', name: 'countPuts' },
  );
  return { client, puts };
}

describe('compact items', () => {
  it('a full latest item, the status item, a full history row and a bucket of labels each take one write unit', async () => {
    const { client, puts } = countingClient();
    const table = TABLES.latest.localName;
    await putLatest(snapshot('BTC-USD', T0), { client, table });
    await putHistory(historyRow('BTC-USD', T0), { client, table });
    // The longest bucket: LABEL_BUCKET_ROWS ticks, every target's label, full-precision values.
    const labels = Object.fromEntries(
      Array.from({ length: LABEL_BUCKET_ROWS }, (_, i) => [
        String(T0 / 1000 + i * 1000),
        { quote_change_500ms: 1, vol_spike_60s: 1.2345678901234567 + i },
      ]),
    );
    await putHistoryLabels('BTC-USD', T0 / 1000, labels, Math.floor(T0 / 1e6) + 21_600, { client, table });
    expect(
      puts.map((p) => (p.sk.startsWith('t#') ? 'history' : p.sk.startsWith('l#') ? 'labels' : p.sk)).sort(),
    ).toEqual(['history', 'labels', 'latest', 'status']);
    for (const p of puts) {
      expect(p.units, p.sk).toBe(1);
      // Our billing arithmetic (used by `quotewatch cost`) agrees, with room to spare.
      const wire = marshall(p.item, { removeUndefinedValues: true }) as unknown as Parameters<
        typeof itemSize
      >[0];
      expect(writeUnits(wire), p.sk).toBe(1);
      expect(itemSize(wire), p.sk).toBeLessThan(1000);
    }
    expect(DYNAMO_RATES.latestItemWriteUnits).toBe(1);
  });

  it('reads back what was written: features exactly, status merged; a history row with its labels', async () => {
    const store = { client: dynamoClient(local.env), table: TABLES.latest.localName };
    const written = snapshot('ETH-USD', T0);
    await putLatest(written, store);
    const [read] = await listLatest(['ETH-USD'], store);
    expect(read).toMatchObject({ product: 'ETH-USD', mid: written.mid, predictions: written.predictions });
    expect(read!.quality).toEqual(written.quality);
    expect(read!.feed).toEqual(written.feed);
    for (const name of FEATURE_NAMES)
      expect(Math.fround(read!.features[name]!), name).toBe(Math.fround(written.features[name]!));
    const row = historyRow('ETH-USD', T0);
    await putHistory(row, store);
    // T0 is on a whole 10 s: the first tick of its labels bucket.
    await putHistoryLabels(
      'ETH-USD',
      T0 / 1000,
      { [T0 / 1000]: { quote_change_500ms: 1, vol_spike_60s: 2.5 } },
      row.expiresAt,
      store,
    );
    const { items } = await getHistory('ETH-USD', T0 / 1000, T0 / 1000, 10, store);
    expect(items).toEqual([{ ...row, labels: { quote_change_500ms: 1, vol_spike_60s: 2.5 } }]);
    expect((await getLatest('ETH-USD', store))?.bids).toEqual(written.bids);
  });

  it('leaves out undefined features and refuses another feature version rather than mislabel', async () => {
    const { packed, extra } = packFeatures({
      [FEATURE_NAMES[0]!]: 0.1 + 0.2,
      [FEATURE_NAMES[1]!]: Number.NaN,
      other: 2,
    });
    // float32, as the lake's columns and the models' inputs hold them; the extra ones as given.
    expect(packed.byteLength).toBe(4 * FEATURE_NAMES.length);
    expect(extra).toEqual({ other: 2 });
    expect(unpackFeatures(packed, extra)).toEqual({ [FEATURE_NAMES[0]!]: Math.fround(0.1 + 0.2), other: 2 });
    expect(Math.fround(0.1 + 0.2)).not.toBe(0.1 + 0.2);
    // An item packed by another feature version (a worker of another release during a deploy).
    const client = dynamoClient(local.env);
    const table = TABLES.latest.localName;
    await putLatest(snapshot('XRP-USD', T0), { client, table });
    await client.send(
      new UpdateCommand({
        TableName: table,
        Key: { pk: 'XRP-USD', sk: 'latest' },
        UpdateExpression: 'SET fv = :v',
        ExpressionAttributeValues: { ':v': 999 },
      }),
    );
    const read = await getLatest('XRP-USD', { client, table });
    expect(read?.features).toEqual({});
    expect(read?.mid).toBe(65083.665);
  });
});

describe('LatestWriter cadences (event time)', () => {
  it('writes the latest item once per 300 ms slot and the status at most every 5 s', async () => {
    const { client, puts } = countingClient();
    const writer = new LatestWriter({ client, table: TABLES.latest.localName, latestWriteMs: 300 });
    // 12 s of 100 ms ticks; the feed's figures change every tick, so only the status cadence limits its writes.
    const wrote: boolean[] = [];
    for (let i = 0; i < 120; i++) {
      const s = snapshot('SOL-USD', T0 + i * 100_000);
      s.feed.messagesPerS = i;
      wrote.push(await writer.put(s));
    }
    const count = (match: (sk: string) => boolean) => puts.filter((p) => match(p.sk)).length;
    expect(count((sk) => sk === 'latest')).toBe(40); // 12 s / 300 ms
    expect(wrote.filter(Boolean)).toHaveLength(40);
    expect(count((sk) => sk.startsWith('t#'))).toBe(0); // history rows are the history sink's
    expect(count((sk) => sk === 'status')).toBe(Math.ceil(12_000 / STATUS_WRITE_MS));
    // Every write of a full snapshot is one unit: 40 + 3 units for 12 s of one product.
    expect(puts.reduce((n, p) => n + p.units, 0)).toBe(40 + 3);
  });

  it('with latestWriteMs 0 writes every snapshot; an unchanged status is not rewritten', async () => {
    const { client, puts } = countingClient();
    const writer = new LatestWriter({ client, table: TABLES.latest.localName, latestWriteMs: 0 });
    for (let i = 0; i < 100; i++) await writer.put(snapshot('ADA-USD', T0 + i * 100_000));
    expect(puts.filter((p) => p.sk === 'latest')).toHaveLength(100);
    // 10 s: two status slots, but the snapshot's status is the same each time (lastHeartbeatUs aside).
    expect(puts.filter((p) => p.sk === 'status').length).toBeLessThanOrEqual(2);
  });

  it("writes the book's state and verification at once when they change, not at the status cadence", async () => {
    const { client, puts } = countingClient();
    const writer = new LatestWriter({ client, table: TABLES.latest.localName, latestWriteMs: 300 });
    const at = (i: number, book: 'synced' | 'resyncing', result: 'match' | 'mismatch') => ({
      ...snapshot('DOT-USD', T0 + i * 100_000),
      book,
      verification: { result, atUs: T0 },
    });
    // 2 s of ticks (inside one 5 s status slot): a mismatch at 0.5 s and a resync at 1 s each write the status.
    for (let i = 0; i < 20; i++)
      await writer.put(at(i, i >= 10 ? 'resyncing' : 'synced', i >= 5 ? 'mismatch' : 'match'));
    const statuses = puts.filter((p) => p.sk === 'status').map((p) => p.item);
    expect(statuses.map((i) => [i.book, (i.verification as { result: string }).result])).toEqual([
      ['synced', 'match'],
      ['synced', 'mismatch'],
      ['resyncing', 'mismatch'],
    ]);
    const [read] = await listLatest(['DOT-USD'], { client, table: TABLES.latest.localName });
    expect(read).toMatchObject({ book: 'resyncing', verification: { result: 'mismatch', atUs: T0 } });
  });
});
