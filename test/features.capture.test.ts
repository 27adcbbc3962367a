import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FeaturePipeline } from '../src/features/pipeline.js';
import type { FeatureRow, LabelRow } from '../src/features/types.js';
import { mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import type { MarketEvent } from '../src/marketdata/events.js';

const capture = join(
  import.meta.dirname,
  '../../shared/data/coinbase/advanced-trade-btc-eth-2026-08-09.jsonl.gz',
);
if (!existsSync(capture)) {
  console.warn(
    `skipping feature tests over the real capture: ${capture} is absent (real captures live in ../shared/)`,
  );
}

function captureEvents(): MarketEvent[] {
  const out: MarketEvent[] = [];
  for (const line of gunzipSync(readFileSync(capture)).toString('utf8').split('\n')) {
    if (!line) continue;
    const rec = JSON.parse(line) as { t: string; ts: number; data: string };
    if (rec.t === 'recv') out.push(...mapAdvancedTradeFrame(rec.data, Math.round(rec.ts * 1e6)).events);
  }
  return out;
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

describe.skipIf(!existsSync(capture))('feature pipeline over the real Advanced Trade capture', () => {
  const events = existsSync(capture) ? captureEvents() : [];
  const first = run(events);

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

  it('labels agree with the quotes of the rows Δ later', () => {
    const byKey = new Map<string, FeatureRow>(first.rows.map((r) => [`${r.product}@${r.tsUs}`, r]));
    let checked = 0;
    for (const l of first.labels as LabelRow[]) {
      const now = byKey.get(`${l.product}@${l.tsUs}`);
      const later = byKey.get(`${l.product}@${l.tsUs + 500_000}`);
      expect(now).toBeDefined();
      if (!later) continue;
      const changed = now!.bestBid !== later.bestBid || now!.bestAsk !== later.bestAsk;
      expect(l.value).toBe(changed ? 1 : 0);
      checked++;
    }
    expect(checked).toBe(first.labels.length);
    const rate = first.labels.filter((l) => l.value === 1).length / first.labels.length;
    expect(rate).toBeGreaterThan(0);
    expect(rate).toBeLessThan(1);
  });

  it('is deterministic over the capture', () => {
    const second = run(events);
    expect(second.rows).toEqual(first.rows);
    expect(second.labels).toEqual(first.labels);
  });
});
