import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  FeedError,
  MalformedFrameError,
  type MappedFrame,
  mapAdvancedTradeFrame,
} from '../src/marketdata/advancedTrade.js';
import { normalizeDecimal } from '../src/marketdata/decimal.js';
import type { BookSnapshotEvent, MarketEvent, TradeEvent } from '../src/marketdata/events.js';

const dataDir = join(import.meta.dirname, '../../shared/data/coinbase');
const capture = join(dataDir, 'advanced-trade-btc-eth-2026-08-09.jsonl.gz');
if (!existsSync(capture)) {
  console.warn(
    `skipping Advanced Trade conformance tests: ${capture} is absent (real captures live in ../shared/)`,
  );
}

interface RawFrame {
  raw: string;
  recvUs: number;
}

function loadFrames(): RawFrame[] {
  const lines = gunzipSync(readFileSync(capture)).toString('utf8').split('\n');
  const frames: RawFrame[] = [];
  for (const line of lines) {
    if (!line) continue;
    const rec = JSON.parse(line) as { t: string; ts: number; data: string };
    if (rec.t === 'recv') frames.push({ raw: rec.data, recvUs: Math.round(rec.ts * 1e6) });
  }
  return frames;
}

describe.skipIf(!existsSync(capture))('Advanced Trade mapper over a real capture', () => {
  const frames = existsSync(capture) ? loadFrames() : [];
  const raws = frames.map((f) => JSON.parse(f.raw) as Record<string, unknown>);
  const mapped: MappedFrame[] = frames.map((f) => mapAdvancedTradeFrame(f.raw, f.recvUs));

  it('maps every frame without error', () => {
    expect(frames.length).toBeGreaterThan(1000);
    expect(mapped).toHaveLength(frames.length);
  });

  it('sees one sequence counter 0..N-1 across all channels', () => {
    expect(mapped.map((m) => m.seq)).toEqual(frames.map((_, i) => i));
    expect(new Set(mapped.map((m) => m.channel)).size).toBeGreaterThan(3);
  });

  it('keeps every snapshot level, offers as asks', () => {
    const snapshots = mapped
      .flatMap((m) => m.events)
      .filter((e): e is BookSnapshotEvent => e.type === 'book_snapshot');
    const rawSnapshots = raws.filter(
      (r) => r.channel === 'l2_data' && (r.events as { type: string }[])[0]?.type === 'snapshot',
    );
    expect(snapshots.map((s) => s.product).sort()).toEqual(['BTC-USD', 'ETH-USD']);
    for (const snap of snapshots) {
      const raw = rawSnapshots.find(
        (r) => (r.events as { product_id: string }[])[0]!.product_id === snap.product,
      )!;
      const updates = (raw.events as { updates: { side: string; price_level: string }[] }[])[0]!.updates;
      const offers = updates.filter((u) => u.side === 'offer');
      expect(offers.length).toBeGreaterThan(0);
      expect(snap.asks).toHaveLength(offers.length);
      expect(snap.bids).toHaveLength(updates.length - offers.length);
      expect(snap.asks.map((l) => l[0])).toEqual(offers.map((u) => normalizeDecimal(u.price_level)));
      // A sane snapshot is not crossed.
      expect(Number(snap.bids[0]![0])).toBeLessThan(Number(snap.asks[0]![0]));
    }
  });

  it('emits every trade of every batch, aggressor opposite to the reported maker side', () => {
    const byId = new Map<string, TradeEvent>();
    for (const e of mapped.flatMap((m) => m.events))
      if (e.type === 'trade') byId.set(`${e.product}:${e.tradeId}`, e);
    let rawCount = 0;
    for (const r of raws.filter((x) => x.channel === 'market_trades')) {
      for (const ev of r.events as { trades: Record<string, string>[] }[]) {
        for (const t of ev.trades) {
          rawCount++;
          const got = byId.get(`${t.product_id}:${t.trade_id}`);
          expect(got, `trade ${t.trade_id}`).toBeDefined();
          expect(got!.aggressor).toBe(t.side === 'SELL' ? 'buy' : 'sell');
          expect(got!.price).toBe(normalizeDecimal(t.price!));
          expect(got!.seq).toBe(r.sequence_num);
        }
      }
    }
    expect(rawCount).toBeGreaterThan(200); // two 100-trade snapshots plus the live batches
    expect(byId.size).toBe(rawCount);
  });

  it('orders the trades of a frame by time', () => {
    for (const m of mapped.filter((x) => x.channel === 'market_trades')) {
      const times = m.events.map((e) => e.exchUs);
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
  });

  it('maps updates to absolute level changes with "0" removals and exchange time from event_time', () => {
    const l2 = mapped.filter((m) => m.channel === 'l2_data');
    const changes = l2.flatMap((m) => m.events).filter((e) => e.type === 'book_changes');
    expect(changes.length).toBeGreaterThan(700);
    const all = changes.flatMap((e) => e.changes);
    expect(all.some((c) => c.size === '0')).toBe(true);
    expect(new Set(all.map((c) => c.side))).toEqual(new Set(['bid', 'ask']));
    // The change happens before the exchange sends the frame (recorder clocks may be skewed, exchange's are not).
    for (const m of l2) for (const e of m.events) expect(e.exchUs).toBeLessThanOrEqual(m.exchUs);
    expect(l2.some((m) => m.events[0]!.exchUs < m.exchUs)).toBe(true);
  });

  it('maps tickers and heartbeats', () => {
    const events = mapped.flatMap((m) => m.events);
    const tickers = events.filter((e) => e.type === 'ticker');
    const heartbeats = events.filter((e) => e.type === 'heartbeat');
    expect(tickers).toHaveLength(160);
    expect(heartbeats).toHaveLength(25);
    const counters = heartbeats.map((h) => h.counter);
    expect(counters.slice(1).every((c, i) => c === counters[i]! + 1)).toBe(true);
    for (const t of tickers) expect(Number(t.bestBid)).toBeLessThan(Number(t.bestAsk));
  });

  it('maps subscriptions and candles to no events', () => {
    const quiet = mapped.filter((m) => m.channel === 'subscriptions' || m.channel === 'candles');
    expect(quiet.length).toBe(11);
    expect(quiet.every((m) => m.events.length === 0)).toBe(true);
  });
});

describe('Advanced Trade mapper: bad input', () => {
  const ok = (events: unknown[], channel = 'l2_data') =>
    JSON.stringify({ channel, timestamp: '2026-08-09T21:05:48.483587501Z', sequence_num: 7, events });
  const update = (u: Record<string, unknown>) => [
    {
      type: 'update',
      product_id: 'BTC-USD',
      updates: [
        { side: 'bid', event_time: '2026-08-09T21:05:48.1Z', price_level: '1.50', new_quantity: '2', ...u },
      ],
    },
  ];

  it('accepts a well-formed update (control for the cases below)', () => {
    const m = mapAdvancedTradeFrame(ok(update({})), 1);
    const e = m.events[0] as Extract<MarketEvent, { type: 'book_changes' }>;
    expect(m.seq).toBe(7);
    expect(e.changes).toEqual([{ side: 'bid', price: '1.5', size: '2' }]);
    expect(e.exchUs).toBe(Date.UTC(2026, 7, 9, 21, 5, 48, 100) * 1000);
  });

  it.each([
    ['truncated JSON', '{"channel":"l2_data","timest', 'not JSON'],
    ['non-object', '[1,2]', 'frame is not an object'],
    [
      'missing channel',
      JSON.stringify({ sequence_num: 1, timestamp: '2026-08-09T21:05:48Z', events: [] }),
      'channel',
    ],
    ['negative sequence', ok([]).replace('"sequence_num":7', '"sequence_num":-1'), 'sequence_num'],
    ['bad timestamp', ok([]).replace('2026-08-09T21:05:48.483587501Z', 'yesterday'), 'timestamp'],
    ['events not array', ok([]).replace('"events":[]', '"events":{}'), 'events'],
    ['unknown side', ok(update({ side: 'ask' })), 'side'],
    ['bad price', ok(update({ price_level: '1e5' })), 'price_level'],
    ['numeric size', ok(update({ new_quantity: 2 })), 'new_quantity'],
    ['bad trade side', ok([{ type: 'update', trades: [{ side: 'X' }] }], 'market_trades'), 'trades[0]'],
  ])('%s -> MalformedFrameError naming the problem and quoting the frame', (_name, raw, needle) => {
    let caught: unknown;
    try {
      mapAdvancedTradeFrame(raw, 1);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MalformedFrameError);
    const msg = (caught as Error).message;
    expect(msg).toContain(needle);
    expect(msg).toContain(JSON.stringify(raw.slice(0, 20)).slice(1, -1));
  });

  it('quotes only the first bytes of a huge frame', () => {
    const raw = `{"channel":"l2_data",${' '.repeat(100_000)}`;
    const err = (() => {
      try {
        mapAdvancedTradeFrame(raw, 1);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(MalformedFrameError);
    expect(err!.message.length).toBeLessThan(400);
    expect(err!.cause).toBeInstanceOf(SyntaxError);
  });

  it('turns an error frame into a FeedError with the exchange message', () => {
    const raw = JSON.stringify({ type: 'error', message: 'failure to subscribe' });
    expect(() => mapAdvancedTradeFrame(raw, 1)).toThrow(FeedError);
    expect(() => mapAdvancedTradeFrame(raw, 1)).toThrow(/failure to subscribe/);
  });
});
