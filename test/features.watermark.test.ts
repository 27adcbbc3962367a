/**
 * Watermarks (src/stream/record.ts WatermarkEvent, issue 16): a quiet product's ticks are closed by the ingestor's
 * watermark instead of its next event. They must change WHEN a tick is emitted, never WHAT it holds: the same
 * simulated market with watermarks anywhere between its events gives the same rows and labels, each row out no later
 * than without them; a watermark past an event that then arrives makes it late, counted.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FeaturePipeline } from '../src/features/pipeline.js';
import { FEATURE_NAMES } from '../src/features/spec.js';
import type { FeatureRow, LabelRow } from '../src/features/types.js';
import { protocolFor } from '../src/ingest/feedProtocol.js';
import type { MarketEvent } from '../src/marketdata/events.js';
import { productSpecs, seedEpochUs } from '../src/simulator/exchange.js';
import { Session } from '../src/simulator/session.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const TICK_MS = 100;
const TICK_US = TICK_MS * 1000;

/** 40 s of the seeded simulated market, every channel, as the mapper gives it. */
async function market(seed: number): Promise<MarketEvent[]> {
  const startUs = seedEpochUs(seed);
  const session = new Session(productSpecs(PRODUCTS), seed, startUs, 0);
  const frames = [];
  for (const channel of ['heartbeats', 'level2', 'market_trades', 'ticker'])
    frames.push(
      ...session.handleMessage(JSON.stringify({ type: 'subscribe', channel, product_ids: PRODUCTS })),
    );
  frames.push(...session.advanceTo(startUs + 40e6));
  const protocol = protocolFor('advanced', undefined);
  const events: MarketEvent[] = [];
  for (const f of frames) events.push(...(await protocol.map(f.text, session.timeUs)).events);
  return events;
}

function byProduct<T extends { product: string }>(xs: readonly T[]): Record<string, T[]> {
  const out: Record<string, T[]> = {};
  for (const x of xs) {
    out[x.product] ??= [];
    out[x.product]!.push(x);
  }
  return out;
}

type Item = MarketEvent | { type: 'watermark'; product: string; exchUs: number };

/** Rows and labels, and for each row the index of the item whose push emitted it. */
function run(items: readonly Item[]) {
  const p = new FeaturePipeline({ tickMs: TICK_MS, deltaMs: 500 });
  const rows: FeatureRow[] = [];
  const labels: LabelRow[] = [];
  const emittedAt = new Map<string, number>();
  items.forEach((item, i) => {
    if (item.type === 'watermark') p.watermark(item.product, item.exchUs);
    else p.push(item);
    const out = p.drain();
    for (const r of out.rows) emittedAt.set(`${r.product} ${r.tsUs}`, i);
    rows.push(...out.rows);
    labels.push(...out.labels);
  });
  return { rows, labels, emittedAt, stats: p.stats() };
}

/**
 * The market with a watermark after event i (of each chosen i) at a tick boundary of its product that is past the
 * product's events so far and not past its next one: what an ingestor sends for a quiet product.
 */
function withWatermarks(events: readonly MarketEvent[], chosen: ReadonlySet<number>): Item[] {
  const next = new Map<string, number>();
  const nextUs: number[] = new Array(events.length);
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    nextUs[i] = next.get(e.product) ?? Number.POSITIVE_INFINITY;
    if (e.type !== 'heartbeat') next.set(e.product, e.exchUs);
  }
  const out: Item[] = [];
  events.forEach((e, i) => {
    out.push(e);
    if (!chosen.has(i) || e.type === 'heartbeat') return;
    const b = Math.floor((nextUs[i]! - 1) / TICK_US) * TICK_US;
    if (Number.isFinite(b) && b > e.exchUs) out.push({ type: 'watermark', product: e.product, exchUs: b });
  });
  return out;
}

describe('watermarks in the feature pipeline', () => {
  it('change when ticks are emitted, never what rows and labels hold (property over where they fall)', async () => {
    const events = await market(7);
    const plain = run(events);
    expect(plain.rows.length).toBeGreaterThan(500);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.nat({ max: events.length - 1 }), { maxLength: 400 }), async (is) => {
        const items = withWatermarks(events, new Set(is));
        const marked = run(items);
        // Per product in the same order; products interleave differently (a watermark closes one product's tick).
        expect(byProduct(marked.rows)).toEqual(byProduct(plain.rows));
        expect(byProduct(marked.labels)).toEqual(byProduct(plain.labels));
        expect(marked.stats.lateEvents).toBe(plain.stats.lateEvents);
      }),
      { numRuns: 15 },
    );
  });

  it('close a quiet product’s ticks at the watermark, earlier than its next event would', async () => {
    const events = await market(7);
    const every = new Set(events.map((_, i) => i));
    const items = withWatermarks(events, every);
    const marks = items.filter((x) => x.type === 'watermark');
    expect(marks.length).toBeGreaterThan(100);
    const plain = run(events);
    const marked = run(items);
    // Map each run's emitting item back to a position in the plain event stream.
    const position: number[] = [];
    let k = -1;
    for (const x of items) {
      if (x.type !== 'watermark') k++;
      position.push(k);
    }
    let earlier = 0;
    for (const r of plain.rows) {
      const key = `${r.product} ${r.tsUs}`;
      const atPlain = plain.emittedAt.get(key)!;
      const atMarked = position[marked.emittedAt.get(key)!]!;
      expect(atMarked).toBeLessThanOrEqual(atPlain);
      if (atMarked < atPlain) earlier++;
    }
    // Most ticks of the simulated market are closed by their product's next event; a share waits for a quiet spell.
    expect(earlier).toBeGreaterThan(plain.rows.length / 10);
  });

  it('keep a product quiet past the gap limit a data gap: the ticks and labels are those of no watermark', () => {
    const t0 = 1_700_000_000_000_000;
    const base = { product: 'BTC-USD', recvUs: t0, seq: 1 };
    const events: MarketEvent[] = [
      { ...base, type: 'book_snapshot', exchUs: t0 + 10_000, bids: [['100', '1']], asks: [['101', '1']] },
      {
        ...base,
        type: 'book_changes',
        exchUs: t0 + 9_000_000,
        changes: [{ side: 'bid', price: '100.5', size: '1' }],
      },
    ];
    const marks: Item[] = Array.from({ length: 89 }, (_, i) => ({
      type: 'watermark',
      product: 'BTC-USD',
      exchUs: t0 + (i + 1) * TICK_US,
    }));
    const plain = run(events);
    const marked = run([events[0]!, ...marks, events[1]!]);
    expect(marked.rows).toEqual(plain.rows);
    expect(marked.labels).toEqual(plain.labels);
    // Past the gap limit (5 s) the quiet spell's ticks say data_gap_now, as without watermarks.
    const gap = FEATURE_NAMES.indexOf('data_gap_now');
    expect(plain.rows.filter((r) => r.values[gap] === 1).length).toBeGreaterThan(30);
  });

  it('a periodic snapshot or a ticker inside a quiet spell neither hides the data gap nor counts as late', () => {
    const t0 = 1_700_000_000_000_000;
    const base = { product: 'BTC-USD', recvUs: t0, seq: 1 };
    const book = { bids: [['100', '1']] as [string, string][], asks: [['101', '1']] as [string, string][] };
    // The ingestor's periodic copy of the book carries the time of its last change (t0 + 10 ms), 7 s later.
    const periodic: MarketEvent = { ...base, type: 'book_snapshot', exchUs: t0 + 10_000, ...book };
    const ticker: MarketEvent = {
      ...base,
      type: 'ticker',
      exchUs: t0 + 7_500_000,
      price: '100.5',
      bestBid: '100',
      bestAsk: '101',
    };
    const first: MarketEvent = { ...base, type: 'book_snapshot', exchUs: t0 + 10_000, ...book };
    const last: MarketEvent = {
      ...base,
      type: 'book_changes',
      exchUs: t0 + 9_000_000,
      changes: [{ side: 'bid', price: '100.5', size: '1' }],
    };
    const marks = (from: number, to: number): Item[] =>
      Array.from({ length: to - from }, (_, i) => ({
        type: 'watermark',
        product: 'BTC-USD',
        exchUs: t0 + (from + i) * TICK_US,
      }));
    const plain = run([first, periodic, ticker, last]);
    const marked = run([first, ...marks(1, 70), periodic, ...marks(70, 75), ticker, ...marks(75, 89), last]);
    expect(marked.rows).toEqual(plain.rows);
    expect(marked.stats.lateEvents).toBe(plain.stats.lateEvents);
    const gap = FEATURE_NAMES.indexOf('data_gap_now');
    expect(marked.rows.filter((r) => r.values[gap] === 1).length).toBeGreaterThan(30);
  });

  it('an event older than a watermark that passed is late: applied at the watermark and counted', () => {
    const p = new FeaturePipeline({ tickMs: TICK_MS, deltaMs: 500 });
    const t0 = 1_700_000_000_000_000;
    const base = { product: 'BTC-USD', recvUs: t0, seq: 1 };
    p.push({
      ...base,
      type: 'book_snapshot',
      exchUs: t0 + 10_000,
      bids: [['100', '1']],
      asks: [['101', '1']],
    });
    p.watermark('BTC-USD', t0 + 300_000);
    expect(p.drain().rows.map((r) => r.tsUs - t0)).toEqual([100_000, 200_000, 300_000]);
    p.push({
      ...base,
      type: 'book_changes',
      exchUs: t0 + 250_000,
      changes: [{ side: 'bid', price: '100.5', size: '1' }],
    });
    expect(p.stats().lateEvents).toBe(1);
    p.watermark('BTC-USD', t0 + 400_000);
    const [row] = p.drain().rows;
    expect(row?.bestBid).toBe('100.5');
    // An older watermark, or one for a product never seen, changes nothing.
    p.watermark('BTC-USD', t0 + 350_000);
    p.watermark('ETH-USD', t0 + 900_000);
    expect(p.drain().rows).toEqual([]);
  });
});
