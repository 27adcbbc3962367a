import { describe, expect, it } from 'vitest';
import { FeaturePipeline } from '../src/features/pipeline.js';
import type { LabelRow } from '../src/features/types.js';
import { QuoteChangeLabeler, quoteChangedWithin } from '../src/labels/quoteChange.js';
import type { MarketEvent } from '../src/marketdata/events.js';

const T0 = 1_700_000_000_000_000;

describe('QuoteChangeLabeler', () => {
  it('labels 1 when the quote changes at any moment of the horizon, only once the watermark reaches it', () => {
    const l = new QuoteChangeLabeler('ETH-USD', 500);
    const out: LabelRow[] = [];
    l.addTick(T0, 7);
    l.addTick(T0 + 100_000, 8);
    l.addTick(T0 + 200_000, 9);
    l.markChange(T0 + 50_000); // only the first tick's horizon [T0, T0 + 500 ms) holds it
    l.resolve(T0 + 499_999, true, out);
    expect(out).toEqual([]); // horizon not reached
    l.resolve(T0 + 600_000, true, out);
    l.addTick(T0 + 300_000, 10);
    l.resolve(T0 + 700_000, false, out); // book invalid at the horizon: unknown, dropped
    expect(out).toEqual([
      { product: 'ETH-USD', tsUs: T0, target: 'quote_change_500ms', value: 1, seq: 7 },
      { product: 'ETH-USD', tsUs: T0 + 100_000, target: 'quote_change_500ms', value: 0, seq: 8 },
    ]);
    expect(l.dropped).toBe(1);
    expect(l.pendingCount).toBe(1);
  });

  it('quoteChangedWithin: a change by an event at e belongs to the ticks t <= e < t + Δ', () => {
    expect(quoteChangedWithin(100, 100, 500)).toBe(true);
    expect(quoteChangedWithin(100, 599, 500)).toBe(true);
    expect(quoteChangedWithin(100, 600, 500)).toBe(false);
    expect(quoteChangedWithin(100, 99, 500)).toBe(false);
  });
});

describe('quote_change_500ms through the pipeline: the horizon edge', () => {
  // One tick at T0 + 100 ms; the ask changes 1 µs before or exactly at its horizon (T0 + 600 ms).
  function labelFor(changeAtUs: number): number[] {
    const base = { product: 'BTC-USD', recvUs: 0, seq: -1 };
    const events: MarketEvent[] = [
      { ...base, type: 'book_snapshot', exchUs: T0 + 1, bids: [['10', '1']], asks: [['11', '1']] },
      { ...base, type: 'heartbeat', exchUs: T0 + 100_000, counter: 1 },
      {
        ...base,
        type: 'book_changes',
        exchUs: changeAtUs,
        changes: [{ side: 'ask', price: '10.9', size: '2' }],
      },
      { ...base, type: 'heartbeat', exchUs: T0 + 600_000, counter: 2 },
    ];
    const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
    for (const e of events) p.push(e);
    return p
      .drain()
      .labels.filter((l) => l.tsUs === T0 + 100_000)
      .map((l) => l.value);
  }

  it('counts a change 1 µs before t + Δ', () => {
    expect(labelFor(T0 + 599_999)).toEqual([1]);
  });

  it('does not count a change at exactly t + Δ (it is after the horizon state)', () => {
    expect(labelFor(T0 + 600_000)).toEqual([0]);
  });

  it('a quote that moves and comes back inside the horizon is a change (stability over Δ)', () => {
    const base = { product: 'BTC-USD', recvUs: 0, seq: -1 };
    const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
    p.push({ ...base, type: 'book_snapshot', exchUs: T0 + 1, bids: [['10', '1']], asks: [['11', '1']] });
    p.push({ ...base, type: 'heartbeat', exchUs: T0 + 100_000, counter: 1 });
    const ask = (exchUs: number, price: string, size: string) =>
      p.push({ ...base, type: 'book_changes', exchUs, changes: [{ side: 'ask', price, size }] });
    ask(T0 + 200_000, '10.9', '1'); // the ask improves...
    ask(T0 + 300_000, '10.9', '0'); // ...and is gone again: back to 11 at the horizon
    p.push({ ...base, type: 'heartbeat', exchUs: T0 + 700_000, counter: 2 });
    const labels = p.drain().labels.filter((l) => l.tsUs === T0 + 100_000);
    expect(labels.map((l) => l.value)).toEqual([1]);
  });

  it('ignores a size-only change at the best price', () => {
    const base = { product: 'BTC-USD', recvUs: 0, seq: -1 };
    const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
    p.push({ ...base, type: 'book_snapshot', exchUs: T0 + 1, bids: [['10', '1']], asks: [['11', '1']] });
    p.push({
      ...base,
      type: 'book_changes',
      exchUs: T0 + 200_000,
      changes: [{ side: 'bid', price: '10', size: '5' }],
    });
    p.push({ ...base, type: 'heartbeat', exchUs: T0 + 600_000, counter: 1 });
    expect(p.drain().labels.map((l) => l.value)).toEqual([0]);
  });
});
