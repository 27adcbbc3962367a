/**
 * Ingestor lines modelled event by event for the line tests (worker.arbiter, worker.recovery.lines): a seeded
 * market, what one ingestor publishes of it (connect, lost frames, the resync and fresh snapshot after a gap, a
 * kill), and the lines interleaved as they reach the stream.
 */
import { OrderBook } from '../../src/book/book.js';
import type { Level, MarketEvent } from '../../src/marketdata/events.js';
import { eventKey, type StreamEvent } from '../../src/stream/record.js';

export const P = 'BTC-USD';
export const T0 = 1_780_000_000_000_000;

/** A market of `n` exchange events: book changes every 10-60 ms on a small ladder, a trade now and then. */
export function market(seed: number, n: number): MarketEvent[] {
  let s = seed >>> 0 || 1;
  const rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const out: MarketEvent[] = [];
  let t = T0;
  let tradeId = 1000;
  for (let i = 0; i < n; i++) {
    t += 10_000 + Math.floor(rand() * 50_000);
    if (rand() < 0.2) {
      out.push({
        type: 'trade',
        product: P,
        exchUs: t,
        recvUs: t,
        seq: 0,
        tradeId: String(tradeId++),
        price: `${100 + Math.floor(rand() * 3)}`,
        size: '0.5',
        aggressor: rand() < 0.5 ? 'buy' : 'sell',
      });
      continue;
    }
    const changes = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
      const bid = rand() < 0.5;
      const price = bid ? 90 + Math.floor(rand() * 10) : 101 + Math.floor(rand() * 10);
      return {
        side: bid ? ('bid' as const) : ('ask' as const),
        price: String(price),
        size: String(Math.floor(rand() * 4)),
      };
    });
    // One change per level within an event, as the exchange sends them.
    const unique = [...new Map(changes.map((c) => [`${c.side}${c.price}`, c])).values()];
    out.push({ type: 'book_changes', product: P, exchUs: t, recvUs: t, seq: 0, changes: unique });
  }
  return out;
}

/** The exchange's book after its first `k` events, starting from a fixed ladder. */
export function bookAt(events: readonly MarketEvent[], k: number): { bids: Level[]; asks: Level[] } {
  const book = new OrderBook(P);
  book.applySnapshot(
    Array.from({ length: 10 }, (_, i) => [String(99 - i), '1'] as Level),
    Array.from({ length: 10 }, (_, i) => [String(101 + i), '1'] as Level),
  );
  for (const e of events.slice(0, k)) {
    if (e.type === 'book_changes') for (const c of e.changes) book.applyChange(c.side, c.price, c.size);
  }
  return { bids: book.top('bid', book.depth('bid')), asks: book.top('ask', book.depth('ask')) };
}

export interface LinePlan {
  name: string;
  /** Connects before the exchange's event `start`. */
  start: number;
  /** Frames lost: [first, count, events until the fresh snapshot arrives]. */
  gaps: [number, number, number][];
  /** Killed before this event (publishes nothing from then on). */
  killedAt?: number;
  /**
   * The ingestor's periodic snapshots (src/ingest/ingestor.ts): a copy of its book when a frame enters a new
   * `everyUs` bucket of exchange time, published before that frame. On a line whose frames batch several events, the
   * frame that crosses holds events from before the boundary too: its copy stands for a moment up to `early` events
   * sooner. Named by exchange time alone, as the real ones.
   */
  periodic?: { everyUs: number; early: number };
}

/** What an ingestor publishes for a line plan: resync + snapshot on connect, and on every gap, as the real one. */
export function publish(events: readonly MarketEvent[], plan: LinePlan): StreamEvent[] {
  const out: StreamEvent[] = [];
  let n = 0;
  let awaiting = false;
  let resyncs = 0;
  const at = (k: number) => (k < 0 ? T0 : events[Math.min(k, events.length - 1)]!.exchUs);
  const resync = (k: number) => {
    const e = { type: 'resync' as const, product: P, exchUs: at(k), recvUs: 0, seq: -1, reason: 'gap' };
    out.push({ ...e, id: eventKey(e, plan.name, resyncs++) });
  };
  /** The line's book after the exchange's first k events: its own snapshot, or a periodic one (named by time). */
  const snapshot = (k: number, periodic = false) => {
    const e = {
      type: 'book_snapshot' as const,
      product: P,
      exchUs: at(k - 1),
      recvUs: 0,
      seq: 0,
      ...bookAt(events, k),
    };
    out.push({ ...e, id: periodic ? `p:${P}:${e.exchUs}` : eventKey(e, plan.name, n++) });
  };
  resync(plan.start);
  snapshot(plan.start);
  let snapshotDue = -1;
  const bucket = (k: number) => Math.floor(at(k) / (plan.periodic?.everyUs ?? 1));
  for (let k = plan.start; k < events.length && k < (plan.killedAt ?? Number.POSITIVE_INFINITY); k++) {
    const gap = plan.gaps.find(([first, count]) => k >= first && k < first + count);
    const crossing = k + (plan.periodic?.early ?? 0);
    // Only a book that is whole is copied.
    if (plan.periodic && k > plan.start && bucket(crossing) !== bucket(crossing - 1) && !awaiting && !gap)
      snapshot(k, true);
    if (gap) {
      if (k === gap[0] + gap[1] - 1) {
        resync(k); // the next frame reveals the gap
        awaiting = true;
        snapshotDue = k + 1 + gap[2];
      }
      continue;
    }
    if (awaiting && k === snapshotDue) {
      snapshot(k);
      awaiting = false;
    }
    const e = events[k]!;
    if (awaiting && e.type === 'book_changes') continue; // held back until the fresh snapshot
    out.push({ ...e, recvUs: e.exchUs + 1000, seq: k + 7, id: eventKey(e, plan.name) });
  }
  return out;
}

/**
 * Interleaves the lines' events as they reach the stream: each line in its own order, its event at exchange time t
 * arriving at t + that line's delay then (`delayUs`), which varies over time and between lines.
 */
export function interleave(
  lines: { name: string; events: StreamEvent[] }[],
  delayUs: (line: number, exchUs: number) => number,
): [string, StreamEvent][] {
  const arrivals: { at: number; line: number; n: number; event: StreamEvent }[] = [];
  lines.forEach((l, i) => {
    let last = Number.NEGATIVE_INFINITY;
    l.events.forEach((event, n) => {
      last = Math.max(last, event.exchUs + delayUs(i, event.exchUs));
      arrivals.push({ at: last, line: i, n, event });
    });
  });
  arrivals.sort((x, y) => x.at - y.at || x.line - y.line || x.n - y.n);
  return arrivals.map((x) => [lines[x.line]!.name, x.event]);
}
