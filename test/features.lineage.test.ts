import { describe, expect, it } from 'vitest';
import { judgeLineage } from '../src/features/lineage.js';
import { FeaturePipeline } from '../src/features/pipeline.js';
import { FEATURE_NAMES, FEATURE_SPEC, featureSpec, lookbackS } from '../src/features/spec.js';
import type { FeatureRow, FeatureSpec, TickLineage } from '../src/features/types.js';
import type { MarketEvent } from '../src/marketdata/events.js';

const P = 'BTC-USD';
const T0 = 1_700_000_000_000_000;
const s = (sec: number) => T0 + Math.round(sec * 1e6);

/**
 * A market of `seconds`: a snapshot, then every 100 ms a level change and a trade; `resyncAt` puts a resync (and a
 * snapshot 50 ms later) there. The pipeline stamps lineage, with the book check `check` gives at each tick.
 */
function run(
  seconds: number,
  resyncAt: number[] = [],
  check?: (tsUs: number) => TickLineage['verification'],
) {
  let now = 0;
  const pipeline = new FeaturePipeline({
    tickMs: 100,
    deltaMs: 500,
    lineage: { verification: () => check?.(now) },
  });
  // Received 40 ms after their exchange time; trades 25 ms (the Exchange feed's snapshots carry no time of their own).
  const base = (t: number, lateMs = 40) => ({
    product: P,
    exchUs: s(t),
    recvUs: s(t) + lateMs * 1000,
    seq: -1,
  });
  const snapshot = (t: number): MarketEvent => ({
    ...base(t, 0),
    type: 'book_snapshot',
    bids: [
      ['100', '1'],
      ['99', '2'],
    ],
    asks: [
      ['101', '1'],
      ['102', '2'],
    ],
  });
  const rows: FeatureRow[] = [];
  const push = (e: MarketEvent) => {
    now = e.exchUs;
    pipeline.push(e);
    rows.push(...pipeline.drain().rows);
  };
  push(snapshot(0));
  const resyncs = [...resyncAt];
  for (let i = 1; i <= seconds * 10; i++) {
    const t = i / 10;
    if (resyncs[0] !== undefined && t >= resyncs[0]) {
      push({ ...base(t - 0.02), type: 'resync', reason: 'gap' });
      push(snapshot(t - 0.01));
      resyncs.shift();
    }
    const bid = i % 2 ? '100' : '100.5';
    push({
      ...base(t),
      type: 'book_changes',
      changes: [{ side: 'bid', price: bid, size: String(1 + (i % 7)) }],
    });
    push({
      ...base(t + 0.001, 25),
      type: 'trade',
      tradeId: String(i),
      price: '101',
      size: '0.5',
      aggressor: i % 3 ? 'buy' : 'sell',
    });
  }
  return rows;
}

const L2: FeatureSpec = featureSpec(100, 'l2');
/** A model of the book's state at the tick alone. */
const SPOT: FeatureSpec = {
  ...FEATURE_SPEC,
  features: FEATURE_SPEC.features.filter((f) => f.name === 'spread_bps'),
};
const at = (rows: FeatureRow[], sec: number) => rows.find((r) => r.tsUs === s(sec))!;

describe('prediction lineage', () => {
  it("a model's window is the longest reach of its inputs", () => {
    expect(lookbackS(['spread_bps'])).toBe(0);
    expect(lookbackS(['spread_bps', 'trade_count_5s'])).toBe(5);
    expect(lookbackS(L2.features.map((f) => f.name))).toBe(301);
  });

  it('never abstains on a clean market: windows still filling after the first event are not a gap', () => {
    const rows = run(400);
    const early = judgeLineage(at(rows, 100), L2)!;
    expect(early.abstain).toBeUndefined();
    expect(early.lineage.gap).toBe(false);
    // The row itself says its 300 s window is incomplete (training leaves it out).
    expect(at(rows, 100).values[FEATURE_NAMES.indexOf('data_gap_300s')]).toBe(1);
    const warm = rows.filter((r) => r.tsUs > s(302)).map((r) => judgeLineage(r, L2)!);
    expect(warm.length).toBeGreaterThan(900);
    expect(warm.filter((j) => j.abstain)).toEqual([]);
    expect(warm[0]!.lineage).toEqual({
      book: 'synced',
      windowS: 301,
      sinceResyncS: null,
      resyncs: 0,
      gap: false,
      feedLatencyMs: 40,
      verification: { result: 'pending', ageS: null },
    });
    // Each tick reads the newest event before it that tells the exchange's time now: the book change, not the
    // trade 1 ms after it (a trade's time may be an old one repeated), never a snapshot's.
    expect(new Set(warm.map((j) => j.lineage.feedLatencyMs))).toEqual(new Set([40]));
    expect(judgeLineage(at(rows, 0.1), L2)!.lineage.feedLatencyMs).toBeNull();
  });

  it('abstains for exactly the window after a resync, and only for the models whose window holds it', () => {
    const rows = run(700, [350]);
    const judged = rows
      .filter((r) => r.tsUs > s(302))
      .map((r) => ({ t: (r.tsUs - T0) / 1e6, j: judgeLineage(r, L2)! }));
    const abstained = judged.filter((x) => x.j.abstain);
    // From the resync (at 349.98 s) until it leaves the 301 s window.
    expect(abstained[0]!.t).toBeCloseTo(350, 5);
    expect(abstained.at(-1)!.t).toBeCloseTo(650.9, 5);
    expect(abstained.every((x) => x.j.abstain!.startsWith('a resync'))).toBe(true);
    // A resync is placed at the stream's position, the watermark then (the trade at 349.901 s).
    expect(judgeLineage(at(rows, 360), L2)!.lineage).toMatchObject({ sinceResyncS: 10.1, resyncs: 1 });
    // The book-state model is judged on its own window: 0 s, so the resync 10 s ago does not count.
    expect(judgeLineage(at(rows, 360), SPOT)!.abstain).toBeUndefined();
  });

  it('abstains from a mismatch until the book is resynced after it', () => {
    const mismatchAt = s(400);
    const rows = run(700, [500], (now) =>
      now >= mismatchAt ? { result: 'mismatch', atUs: mismatchAt } : { result: 'match', atUs: s(300) },
    );
    expect(judgeLineage(at(rows, 399), SPOT)!.abstain).toBeUndefined();
    expect(judgeLineage(at(rows, 450), SPOT)).toMatchObject({
      lineage: { verification: { result: 'mismatch', ageS: 50 } },
      abstain: "the book differed from the exchange's at its last check (50 s before); awaiting its resync",
    });
    // The resync at 500 s rebuilt the book: the same mismatch no longer counts.
    expect(judgeLineage(at(rows, 510), SPOT)!.abstain).toBeUndefined();
  });

  it('is stamped only when asked for (training does not need it)', () => {
    const pipeline = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
    pipeline.push({
      product: P,
      exchUs: T0,
      recvUs: T0,
      seq: -1,
      type: 'book_snapshot',
      bids: [['1', '1']],
      asks: [['2', '1']],
    });
    pipeline.push({ product: P, exchUs: s(1), recvUs: s(1), seq: -1, type: 'heartbeat', counter: 1 });
    const { rows } = pipeline.drain();
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.lineage === undefined)).toBe(true);
  });
});
