import { parquetMetadata } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { FEATURE_SPEC } from '../src/features/spec.js';
import type { FeatureRow } from '../src/features/types.js';
import { lakeKey } from '../src/storage/lake.js';
import {
  decodeFeatureRows,
  decodeLabelRows,
  decodePredictionRows,
  decodeRawRows,
  encodeFeatureRows,
  encodeLabelRows,
  encodePredictionRows,
  encodeRawRows,
  ParquetFormatError,
  type RawRow,
} from '../src/storage/parquet.js';
import { simStream } from '../src/worker/simStream.js';

const F = FEATURE_SPEC.features.length;
const T = 1_786_309_548_123_456; // µs with a non-zero microsecond part

function featureRow(product: string, tsUs: number, seq: number, seed: number): FeatureRow {
  return {
    product,
    tsUs,
    seq,
    bestBid: '65083.67',
    bestAsk: '65083.68',
    mid: 65083.675,
    spread: 0.01,
    values: Float64Array.from({ length: F }, (_, i) => (seed + i) / 7 - 3),
  };
}

describe('Parquet encoding', () => {
  it('round-trips feature rows: exact µs times, seqs, strings, float32 feature values, the spec', async () => {
    const rows = [featureRow('BTC-USD', T, 41, 1), featureRow('BTC-USD', T + 100_000, 42, 2)];
    const bytes = encodeFeatureRows(rows);
    const back = await decodeFeatureRows(bytes);
    expect(back.spec).toEqual(FEATURE_SPEC);
    expect(back.rows.map((r) => [r.product, r.tsUs, r.seq, r.bestBid, r.bestAsk, r.mid, r.spread])).toEqual(
      rows.map((r) => [r.product, r.tsUs, r.seq, r.bestBid, r.bestAsk, r.mid, r.spread]),
    );
    // Stored as FLOAT, the model's input type: equal to the float32 rounding of each value.
    for (let i = 0; i < rows.length; i++)
      expect(back.rows[i]!.values).toEqual(Float64Array.from(Float32Array.from(rows[i]!.values)));
  });

  it('writes ts as INT64 TIMESTAMP(MICROS, UTC) and compresses with SNAPPY', () => {
    const bytes = encodeFeatureRows([featureRow('ETH-USD', T, 1, 1)]);
    const meta = parquetMetadata(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    );
    const ts = meta.schema.find((e) => e.name === 'ts');
    expect(ts?.type).toBe('INT64');
    expect(ts?.logical_type).toMatchObject({ type: 'TIMESTAMP', unit: 'MICROS', isAdjustedToUTC: true });
    expect(meta.row_groups[0]!.columns.every((c) => c.meta_data?.codec === 'SNAPPY')).toBe(true);
  });

  it('round-trips labels and predictions, and empty files', async () => {
    const labels = [
      { product: 'ETH-USD', tsUs: T, target: 'quote_change_500ms' as const, value: 1 },
      { product: 'ETH-USD', tsUs: T + 100_000, target: 'quote_change_500ms' as const, value: 0 },
    ];
    expect(await decodeLabelRows(encodeLabelRows(labels))).toEqual(labels);
    const preds = [
      { product: 'ETH-USD', tsUs: T, target: 'quote_change_500ms', modelVersion: 'v3', probability: 0.25 },
    ];
    expect(await decodePredictionRows(encodePredictionRows(preds))).toEqual(preds);
    expect(await decodeLabelRows(encodeLabelRows([]))).toEqual([]);
  });

  it("round-trips each prediction's lineage, and rows without one in the same file", async () => {
    const base = { product: 'ETH-USD', target: 'vol_spike_60s', modelVersion: 'v3', probability: 0.5 };
    const abstained = {
      ...base,
      tsUs: T,
      abstain: "a resync 12.3 s before, inside the model's 301 s window",
      windowS: 301,
      sinceResyncS: 12.3,
      windowResyncs: 1,
      windowGap: 0,
      verification: 'match',
      verificationAgeS: 40.5,
      feedLatencyMs: 37,
    };
    const clean = {
      ...abstained,
      tsUs: T + 100_000,
      abstain: '',
      sinceResyncS: Number.NaN,
      windowResyncs: 0,
      feedLatencyMs: Number.NaN,
    };
    const none = { ...base, tsUs: T + 200_000 };
    expect(await decodePredictionRows(encodePredictionRows([abstained, clean, none]))).toEqual([
      abstained,
      clean,
      none,
    ]);
  });

  it('rejects rows that do not fit the spec and bytes that are not Parquet', async () => {
    const bad = { ...featureRow('BTC-USD', T, 1, 1), values: new Float64Array(F - 1) };
    expect(() => encodeFeatureRows([bad])).toThrow(ParquetFormatError);
    await expect(decodeLabelRows(new TextEncoder().encode('not parquet at all'))).rejects.toThrow(
      ParquetFormatError,
    );
  });
});

describe('raw zone encoding hints', () => {
  const rawRows = (seconds: number): RawRow[] => {
    const rows: RawRow[] = [];
    for (const b of simStream({ seed: 11, products: ['BTC-USD'], seconds, snapshotEveryMs: 20_000 }))
      for (const r of b.records)
        r.events.forEach((e, index) => {
          rows.push({
            product: e.product,
            tsUs: e.exchUs,
            exchUs: e.exchUs,
            recvUs: e.recvUs,
            seq: e.seq,
            type: e.type,
            eventId: e.id,
            record: r.sequenceNumber,
            index,
            event: JSON.stringify(e),
          });
        });
    return rows;
  };

  it('gives the bytes the library chooses by itself, for distinct ids and with repeated ones', async () => {
    const rows = rawRows(30);
    expect(rows.length).toBeGreaterThan(100);
    const hinted = encodeRawRows(rows);
    expect(hinted).toEqual(encodeRawRows(rows, { hints: false }));
    // Every row four times (few enough rows for the library to sample them all): a dictionary then more than
    // halves the bytes, the library picks it, and the hint must not override it.
    const some = rows.slice(0, 100);
    const repeated = [...some, ...some, ...some, ...some];
    expect(encodeRawRows(repeated)).toEqual(encodeRawRows(repeated, { hints: false }));
    expect((await decodeRawRows(hinted)).map((r) => r.event)).toEqual(rows.map((r) => r.event));
  });
});

describe('lakeKey', () => {
  it('partitions by product, UTC date and hour of the window start', () => {
    // 2026-08-09T21:05:48.123456Z
    expect(lakeKey('features', 'BTC-USD', T, 'shardId-000000000001', 10, 20)).toBe(
      `features/product=BTC-USD/date=2026-08-09/hour=21/shardId-000000000001-10-20-${Math.floor(T / 1000)}.parquet`,
    );
  });
});
