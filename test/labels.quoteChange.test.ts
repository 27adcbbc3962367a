import { describe, expect, it } from 'vitest';
import { FeaturePipeline } from '../src/features/pipeline.js';
import type { LabelRow } from '../src/features/types.js';
import { QuoteChangeLabeler } from '../src/labels/quoteChange.js';
import type { MarketEvent } from '../src/marketdata/events.js';

const T0 = 1_700_000_000_000_000;

describe('QuoteChangeLabeler', () => {
  it('labels 1 when bid or ask price differs at the horizon, only once the watermark reaches it', () => {
    const l = new QuoteChangeLabeler('ETH-USD', 500);
    const out: LabelRow[] = [];
    l.addTick(T0, 100, 101, 7);
    l.addTick(T0 + 100_000, 100, 101, 8);
    l.addTick(T0 + 200_000, 100, 101, 9);
    l.resolve(T0 + 499_999, 100, 102, true, out);
    expect(out).toEqual([]); // horizon not reached
    l.resolve(T0 + 500_000, 100, 102, true, out); // ask moved
    l.resolve(T0 + 600_000, 100, 101, true, out); // back to the same prices: no change at this horizon
    l.resolve(T0 + 700_000, 99, 101, false, out); // book invalid at the horizon: unknown, dropped
    expect(out).toEqual([
      { product: 'ETH-USD', tsUs: T0, target: 'quote_change_500ms', value: 1, seq: 7 },
      { product: 'ETH-USD', tsUs: T0 + 100_000, target: 'quote_change_500ms', value: 0, seq: 8 },
    ]);
    expect(l.dropped).toBe(1);
    expect(l.pendingCount).toBe(0);
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
