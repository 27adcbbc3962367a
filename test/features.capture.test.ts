import { beforeAll, expect, it } from 'vitest';
import { FeaturePipeline } from '../src/features/pipeline.js';
import type { FeatureRow, LabelRow } from '../src/features/types.js';
import { mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import type { MarketEvent } from '../src/marketdata/events.js';
import { type Capture, describeCapture, receivedFrames } from './support/captures.js';

async function captureEvents(c: Capture): Promise<MarketEvent[]> {
  return (await receivedFrames(c)).flatMap((f) => mapAdvancedTradeFrame(f.frame, f.recvUs).events);
}

function run(events: MarketEvent[]) {
  const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
  let crossedAfterBookEvent = 0;
  for (const e of events) {
    p.push(e);
    if (e.type === 'book_snapshot' || e.type === 'book_changes')
      crossedAfterBookEvent += p.book(e.product)!.isCrossed() ? 1 : 0;
  }
  return { ...p.drain(), crossedAfterBookEvent, stats: p.stats(), pipeline: p };
}

describeCapture('advancedTrade', 'feature pipeline over the real Advanced Trade capture', (c) => {
  let events: MarketEvent[] = [];
  let first: ReturnType<typeof run>;
  beforeAll(async () => {
    events = await captureEvents(c);
    first = run(events);
  });

  it('keeps both books uncrossed and emits finite rows for both products', () => {
    expect(first.crossedAfterBookEvent).toBe(0);
    for (const product of ['BTC-USD', 'ETH-USD']) {
      const rows = first.rows.filter((r) => r.product === product);
      // One row per 100 ms from the book snapshot to the product's last event (~24 s of capture).
      expect(rows.length).toBeGreaterThan(200);
      const span = rows[rows.length - 1]!.tsUs - rows[0]!.tsUs;
      expect(rows.length).toBe(span / 100_000 + 1); // no gaps once the book is valid
    }
    expect(first.rows.every((r) => r.values.every(Number.isFinite))).toBe(true);
    expect(first.rows.every((r) => r.spread > 0)).toBe(true);
  });

  it('labels agree with the quotes of the rows up to Δ later', () => {
    // The label is 1 when the best bid or ask changes at any moment in the horizon; the rows sample the quote
    // every 100 ms, so a row that differs within the horizon makes the label 1, and a quote that moved and came
    // back between two rows is a 1 no row shows.
    const byKey = new Map<string, FeatureRow>(first.rows.map((r) => [`${r.product}@${r.tsUs}`, r]));
    let checked = 0;
    let seenByRows = 0;
    for (const l of first.labels as LabelRow[]) {
      const now = byKey.get(`${l.product}@${l.tsUs}`);
      expect(now).toBeDefined();
      const later = [1, 2, 3, 4, 5].map((k) => byKey.get(`${l.product}@${l.tsUs + k * 100_000}`));
      if (later.some((r) => !r)) continue;
      const changed = later.some((r) => now!.bestBid !== r!.bestBid || now!.bestAsk !== r!.bestAsk);
      if (changed) {
        expect(l.value, `${l.product}@${l.tsUs}`).toBe(1);
        seenByRows++;
      }
      checked++;
    }
    expect(checked).toBe(first.labels.length);
    const positives = first.labels.filter((l) => l.value === 1).length;
    expect(seenByRows).toBeGreaterThan(0);
    expect(positives).toBeGreaterThanOrEqual(seenByRows);
    expect(positives).toBeLessThan(first.labels.length);
  });

  it('is deterministic over the capture', () => {
    const second = run(events);
    expect(second.rows).toEqual(first.rows);
    expect(second.labels).toEqual(first.labels);
  });
});
