/**
 * The line arbitration stage (src/worker/arbiter.ts) on its own: ingestor lines modelled event by event (connect,
 * lost frames, the resync and fresh snapshot an ingestor publishes after a gap, a killed ingestor), interleaved at
 * random as they reach the stream. Whatever the drops, the lag and the interleaving, as long as one line was
 * continuous at every moment the arbiter passes exactly the events of one clean connection, and the feature
 * pipeline computes the same rows from them; only when both lines lose the same events does a resync reach it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FeaturePipeline } from '../src/features/pipeline.js';
import type { FeatureRow } from '../src/features/types.js';
import type { Level, MarketEvent } from '../src/marketdata/events.js';
import { eventKey, isMarketEvent, namespacedId, type StreamEvent } from '../src/stream/record.js';
import { type Delivered, LineArbiter } from '../src/worker/arbiter.js';
import { bookAt, interleave, market, P, publish, T0 } from './support/lines.js';

function arbitrate(
  input: [string, StreamEvent][],
  failoverMs = 2000,
): { passed: StreamEvent[]; arbiter: LineArbiter } {
  const arbiter = new LineArbiter({ windowMs: 120_000, failoverMs });
  const passed: StreamEvent[] = [];
  input.forEach(([line, event], i) => {
    const d: Delivered = { event, record: String(i), index: 0 };
    for (const r of arbiter.accept(line, d)) passed.push(r.event);
  });
  return { passed, arbiter };
}

/**
 * Lines A and B interleaved as they reach the stream (`delay`), A connected first (its connect resync and snapshot
 * reach the stream before anything of B), through one arbiter.
 */
function arbitrateAB(
  a: StreamEvent[],
  b: StreamEvent[],
  delay: (line: number, exchUs: number) => number,
): ReturnType<typeof arbitrate> {
  const input = interleave(
    [
      { name: 'A', events: a },
      { name: 'B', events: b },
    ],
    delay,
  );
  const connect = input.filter(([line]) => line === 'A').slice(0, 2);
  return arbitrate([...connect, ...input.filter((x) => !connect.includes(x))]);
}

/** A line's delay to the stream: `lag` (a table of 0-9) times `unitUs`, changing every 200 ms, each line its own. */
const varyingDelay =
  (lag: readonly number[], unitUs: number) =>
  (line: number, us: number): number =>
    lag[(Math.floor(us / 200_000) + line * 13) % lag.length]! * unitUs;

const market_ = (e: StreamEvent) => e.type === 'trade' || e.type === 'book_changes';
const comparable = (e: StreamEvent) => ({
  id: e.id,
  exchUs: e.exchUs,
  ...(e.type === 'book_changes' ? { changes: e.changes } : {}),
});

function rows(events: readonly StreamEvent[]): FeatureRow[] {
  return run(events).rows;
}

function run(events: readonly StreamEvent[]) {
  const pipeline = new FeaturePipeline({ tickMs: 100, deltaMs: 500, topLevels: 3 });
  for (const e of events) {
    if (e.type === 'watermark') pipeline.watermark(e.product, e.exchUs);
    else if (isMarketEvent(e)) pipeline.push(e);
  }
  return { rows: pipeline.drain().rows, stats: pipeline.stats() };
}

/**
 * A line's stream with the watermarks its ingestor would add (src/ingest/ingestor.ts publishWatermarks): after each
 * event, the last 100 ms boundary before the line's next trade or book change — what a quiet spell lets it say. It
 * cannot tell a spell from frames it lost, so its watermarks run over its own gaps; none while it awaits a snapshot.
 */
function withWatermarks(line: string, events: readonly StreamEvent[]): StreamEvent[] {
  const out: StreamEvent[] = [];
  let awaiting = false;
  let mark = Number.NEGATIVE_INFINITY;
  events.forEach((e, i) => {
    out.push(e);
    if (e.type === 'resync') awaiting = true;
    if (e.type === 'book_snapshot') awaiting = false;
    const next = events.slice(i + 1).find(market_);
    if (awaiting || !next || e.type === 'resync') return;
    const b = Math.floor((next.exchUs - 1) / 100_000) * 100_000;
    if (b <= e.exchUs || b <= mark) return;
    mark = b;
    const w = { type: 'watermark' as const, product: P, exchUs: b, recvUs: 0, seq: -1 };
    out.push({ ...w, id: eventKey(w, line) });
  });
  return out;
}

function expectSameRows(a: FeatureRow[], b: FeatureRow[]): void {
  expect(a.length).toBeGreaterThan(20);
  expect(b.map((r) => [r.tsUs, r.seq, r.bestBid, r.bestAsk, r.top])).toEqual(
    a.map((r) => [r.tsUs, r.seq, r.bestBid, r.bestAsk, r.top]),
  );
  expect(b.map((r) => [...r.values])).toEqual(a.map((r) => [...r.values]));
}

describe('line arbitration', () => {
  it('two lines, each losing frames the other has, at any lag: the stream of one clean connection (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.integer({ min: 1, max: 30 }),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 50, maxLength: 50 }),
        fc.integer({ min: 5, max: 40 }),
        fc.integer({ min: 0, max: 30 }),
        (seed, bStart, lag, gapLen, snapDelay) => {
          const events = market(seed, 600);
          const clean = publish(events, { name: 'A', start: 0, gaps: [] });
          // Each line loses frames in its own places, far enough apart that the other is continuous then.
          const a = publish(events, {
            name: 'A',
            start: 0,
            gaps: [
              [150, gapLen, snapDelay],
              [420, 3, 0],
            ],
          });
          const b = publish(events, { name: 'B', start: bStart, gaps: [[280, gapLen, snapDelay]] });
          // Each line reaches the stream 0-0.9 s after the exchange sent it, varying every 200 ms.
          const delay = varyingDelay(lag, 100_000);
          const { passed, arbiter } = arbitrateAB(a, b, delay);
          const reference = arbitrate(clean.map((e) => ['A', e])).passed;
          expect(passed.filter(market_).map(comparable)).toEqual(reference.filter(market_).map(comparable));
          expect(arbiter.counters.resyncs).toBe(1); // the connect, before any line had the book
          expect(arbiter.counters.failovers).toBeGreaterThanOrEqual(1);
          expectSameRows(rows(reference), rows(passed));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('periodic snapshots the lines take at different moments (other frame batching), either line behind: the rows of one clean connection (property)', () => {
    // Found on the real capture (test/determinism.capture.test.ts, under load): the line taking over behind the
    // other passed its own periodic snapshot, older than the other's already passed, and the changes between the two
    // that the other had passed were dropped as copies: the book went back in time.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.integer({ min: 1, max: 30 }),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 50, maxLength: 50 }),
        fc.integer({ min: -1500, max: 1500 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 5, max: 40 }),
        (seed, bStart, lag, bBehindMs, early, gapLen) => {
          const events = market(seed, 600);
          const periodic = (early: number) => ({ everyUs: 500_000, early });
          const clean = publish(events, { name: 'A', start: 0, gaps: [], periodic: periodic(0) });
          // Each line loses frames once, and B's frames batch several events.
          const a = publish(events, { name: 'A', start: 0, gaps: [[300, gapLen, 2]], periodic: periodic(0) });
          const b = publish(events, {
            name: 'B',
            start: bStart,
            gaps: [[480, gapLen, 2]],
            periodic: periodic(early),
          });
          // B reaches the stream up to 1.5 s behind or ahead of A, give or take 0.45 s.
          const jitter = varyingDelay(lag, 50_000);
          const delay = (line: number, us: number) => 2_000_000 + line * bBehindMs * 1000 + jitter(line, us);
          const { passed } = arbitrateAB(a, b, delay);
          const reference = arbitrate(clean.map((e) => ['A', e])).passed;
          expectSameRows(rows(reference), rows(passed));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('watermarks from lines that lose frames: the passed ones close ticks early but never overtake an event (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.integer({ min: 1, max: 30 }),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 50, maxLength: 50 }),
        fc.integer({ min: 5, max: 40 }),
        (seed, bStart, lag, gapLen) => {
          const events = market(seed, 600);
          const clean = publish(events, { name: 'A', start: 0, gaps: [] });
          const a = withWatermarks('A', publish(events, { name: 'A', start: 0, gaps: [[150, gapLen, 2]] }));
          const b = withWatermarks(
            'B',
            publish(events, { name: 'B', start: bStart, gaps: [[330, gapLen, 2]] }),
          );
          const delay = varyingDelay(lag, 100_000);
          const { passed } = arbitrateAB(a, b, delay);
          const marks = passed.filter((e) => e.type === 'watermark');
          expect(marks.length).toBeGreaterThan(10);
          const reference = run(arbitrate(clean.map((e) => ['A', e])).passed);
          const got = run(passed);
          expectSameRows(reference.rows, got.rows);
          expect(got.stats.lateEvents).toBe(reference.stats.lateEvents);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('watermarks change nothing the arbitration passes, whatever the lag between the lines, past LINE_FAILOVER_MS too (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 50, maxLength: 50 }),
        fc.integer({ min: 5, max: 40 }),
        (seed, lag, gapLen) => {
          const events = market(seed, 600);
          const lines = {
            A: publish(events, { name: 'A', start: 0, gaps: [[150, gapLen, 2]] }),
            B: publish(events, { name: 'B', start: 5, gaps: [[330, gapLen, 2]] }),
          };
          // Up to 4 s apart: a standby that far behind can still take over (it delivers), so it holds them back.
          const delay = varyingDelay(lag, 100_000);
          const input = (marked: boolean) => {
            const x = interleave(
              Object.entries(lines).map(([name, events]) => ({
                name,
                events: marked ? withWatermarks(name, events) : events,
              })),
              delay,
            );
            const connect = x.filter(([line]) => line === 'A').slice(0, 2);
            return [...connect, ...x.filter((y) => !connect.includes(y))];
          };
          const plain = run(arbitrate(input(false)).passed);
          const got = run(arbitrate(input(true)).passed);
          expectSameRows(plain.rows, got.rows);
          expect(got.stats.lateEvents).toBe(plain.stats.lateEvents);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("a standby 3 s behind that takes over at the primary's gap brings nothing late: the watermark waited for it", () => {
    const events = market(5, 600);
    const lines = (marked: boolean) =>
      interleave(
        [
          { name: 'A', events: publish(events, { name: 'A', start: 0, gaps: [[150, 20, 2]] }) },
          { name: 'B', events: publish(events, { name: 'B', start: 0, gaps: [] }) },
        ].map((l) => ({ ...l, events: marked ? withWatermarks(l.name, l.events) : l.events })),
        (line) => line * 3_000_000,
      );
    const plain = run(arbitrate(lines(false)).passed);
    const marked = arbitrate(lines(true));
    expect(marked.arbiter.counters.failovers).toBeGreaterThanOrEqual(1);
    expect(marked.passed.filter((e) => e.type === 'watermark').length).toBeGreaterThan(10);
    const got = run(marked.passed);
    expectSameRows(plain.rows, got.rows);
    expect(got.stats.lateEvents).toBe(plain.stats.lateEvents);
  });

  it("the passed watermark is the older of the lines' (a standby within LINE_FAILOVER_MS holds the primary's back)", () => {
    const events = market(3, 300);
    const a = withWatermarks('A', publish(events, { name: 'A', start: 0, gaps: [] }));
    const b = withWatermarks('B', publish(events, { name: 'B', start: 0, gaps: [] }));
    // B reaches the stream 1 s after A: under LINE_FAILOVER_MS, so it could still cover A.
    const input = interleave(
      [
        { name: 'A', events: a },
        { name: 'B', events: b },
      ],
      (line) => line * 1_000_000,
    );
    const arbiter = new LineArbiter({ windowMs: 120_000, failoverMs: 2000 });
    const newest = { A: Number.NEGATIVE_INFINITY, B: Number.NEGATIVE_INFINITY };
    let passed = 0;
    let heldBack = 0;
    let bContinuous = false;
    let bEvent = Number.NEGATIVE_INFINITY;
    input.forEach(([line, event], i) => {
      if (line === 'B' && event.type === 'book_snapshot') bContinuous = true;
      if (line === 'B' && market_(event)) bEvent = Math.max(bEvent, event.exchUs);
      if (event.type === 'watermark') {
        newest[line as 'A' | 'B'] = event.exchUs;
        if (line === 'A' && event.exchUs > Math.max(newest.B, bEvent)) heldBack++;
      }
      for (const r of arbiter.accept(line, { event, record: String(i), index: 0 })) {
        if (r.event.type !== 'watermark') continue;
        passed++;
        // B's progress: its watermark or its newest event. Before B has its book it could not cover A.
        const b = bContinuous ? Math.max(newest.B, bEvent) : Number.POSITIVE_INFINITY;
        expect(r.event.exchUs).toBeLessThanOrEqual(Math.min(newest.A, b));
      }
    });
    expect(heldBack).toBeGreaterThanOrEqual(5);
    expect(passed).toBeGreaterThanOrEqual(5);
  });

  it('a killed primary: the standby takes over after LINE_FAILOVER_MS of exchange time, nothing lost or doubled', () => {
    const events = market(7, 600);
    const clean = publish(events, { name: 'A', start: 0, gaps: [] });
    const a = publish(events, { name: 'A', start: 0, gaps: [], killedAt: 300 });
    const b = publish(events, { name: 'B', start: 5, gaps: [] });
    // B lags A by 50 ms: at the kill B still holds nothing A did not pass.
    const input = interleave(
      [
        { name: 'A', events: a },
        { name: 'B', events: b },
      ],
      (line) => line * 50_000,
    );
    const { passed, arbiter } = arbitrate(input);
    const reference = arbitrate(clean.map((e) => ['A', e])).passed;
    expect(passed.filter(market_).map(comparable)).toEqual(reference.filter(market_).map(comparable));
    expect(arbiter.counters.failovers).toBe(1);
    expect(arbiter.primaryOf(P)).toBe('B');
    expectSameRows(rows(reference), rows(passed));
  });

  it('a primary merely behind is not overtaken with a hole: a standby ahead waits while it delivers, not once it is silent', () => {
    const events = market(5, 700);
    const clean = publish(events, { name: 'A', start: 0, gaps: [] });
    // B runs 8 s ahead of A and loses frames 400-404: A takes over (it has them), B's fresh snapshot comes after
    // what A has passed so far. Before, B took over 2 s later with a hole (a resync) although A still delivered.
    const run = (killedAt?: number) =>
      arbitrate(
        interleave(
          [
            { name: 'A', events: publish(events, { name: 'A', start: 0, gaps: [], killedAt }) },
            { name: 'B', events: publish(events, { name: 'B', start: 0, gaps: [[400, 5, 3]] }) },
          ],
          (line) => (line === 0 ? 8_000_000 : 0),
        ),
      );
    const behind = run();
    const reference = arbitrate(clean.map((e) => ['A', e])).passed;
    expect(behind.passed.filter(market_).map(comparable)).toEqual(reference.filter(market_).map(comparable));
    expect(behind.arbiter.counters.resyncs).toBe(1); // the connect only
    expect(behind.arbiter.counters.failovers).toBeGreaterThanOrEqual(2); // to A at B's gap, back to B once gapless
    expectSameRows(rows(reference), rows(behind.passed));
    // A killed inside B's gap: nobody has those events; once A is silent for 2 s of the feed's time, B takes over
    // and says so with a resync.
    const silent = run(402);
    expect(silent.arbiter.counters.resyncs).toBe(2);
    expect(silent.arbiter.primaryOf(P)).toBe('B');
  });

  it("a common gap: no trade is lost, although each line's copy arrived while the other was primary (property)", () => {
    // Both lose the same frames, each gets its snapshot back after its own delay, B lags A. A's trades after the
    // gap can arrive while B (its resync not in yet) is primary, and B's once A is primary again: before, each copy
    // was dropped as "covered" and the trade was lost.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 10, max: 300 }),
        (seed, snapA, snapB, lagMs) => {
          const events = market(seed, 400);
          const a = publish(events, { name: 'A', start: 0, gaps: [[200, 2, snapA]] });
          const b = publish(events, { name: 'B', start: 0, gaps: [[200, 2, snapB]] });
          const { passed } = arbitrate(
            interleave(
              [
                { name: 'A', events: a },
                { name: 'B', events: b },
              ],
              (line) => line * lagMs * 1000,
            ),
          );
          const lost = new Set(
            events.flatMap((e) =>
              e.type === 'trade' && !(e.exchUs >= events[200]!.exchUs && e.exchUs <= events[201]!.exchUs)
                ? [e.tradeId]
                : [],
            ),
          );
          for (const e of passed) if (e.type === 'trade') lost.delete(e.tradeId);
          expect([...lost]).toEqual([]);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('both lines lose the same frames: the resync reaches the book, which rebuilds from the next snapshot', () => {
    const events = market(11, 500);
    const a = publish(events, { name: 'A', start: 0, gaps: [[200, 10, 5]] });
    const b = publish(events, { name: 'B', start: 0, gaps: [[200, 10, 8]] });
    const { passed, arbiter } = arbitrate(
      interleave(
        [
          { name: 'A', events: a },
          { name: 'B', events: b },
        ],
        (line) => line * 30_000,
      ),
    );
    expect(arbiter.counters.resyncs).toBe(2); // the connect, then the common gap
    const resyncAt = passed.findIndex((e, i) => i > 2 && e.type === 'resync');
    const next = passed
      .slice(resyncAt + 1)
      .find((e) => e.type === 'book_snapshot' || e.type === 'book_changes');
    expect(next?.type).toBe('book_snapshot');
    const ids = passed.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    // After the rebuild the book is the exchange's again.
    const pipeline = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
    for (const e of passed) if (isMarketEvent(e)) pipeline.push(e);
    const book = pipeline.book(P)!;
    expect({ bids: book.top('bid', book.depth('bid')), asks: book.top('ask', book.depth('ask')) }).toEqual(
      bookAt(events, events.length),
    );
  });

  it('a single line restarted (a new session) after a kill: a resync before its snapshot, no row from a stale book', () => {
    const events = market(3, 500);
    const first = publish(events, { name: 'A1', start: 0, gaps: [], killedAt: 200 });
    const second = publish(events, { name: 'A2', start: 260, gaps: [] });
    const { passed, arbiter } = arbitrate([
      ...first.map((e): [string, StreamEvent] => ['A1', e]),
      ...second.map((e): [string, StreamEvent] => ['A2', e]),
    ]);
    expect(arbiter.counters.failovers).toBe(1);
    const kinds = passed.map((e) => e.type);
    const resync = kinds.indexOf('resync', 1);
    expect(kinds.slice(resync, resync + 2)).toEqual(['resync', 'book_snapshot']);
    // Nothing the dead line never delivered is invented; everything after the restart is there.
    const ids = new Set(passed.map((e) => e.id));
    for (const e of second) if (market_(e)) expect(ids.has(e.id)).toBe(true);
  });

  it("a takeover that leaves a hole puts its resync where the passed stream breaks, not at its line's own time", () => {
    // B loses frames 150-154 and gets its snapshot back only at 250; A, the primary, is killed at 200. B takes over
    // with a hole (200-249): the resync it passes is B's own, published at 154. Before, it kept that time, so the
    // hole's ticks (200-249) had no resync in them (the chaos audit's "holes no resync explains").
    const events = market(21, 400);
    const a = publish(events, { name: 'A', start: 0, gaps: [], killedAt: 200 });
    const b = publish(events, { name: 'B', start: 0, gaps: [[150, 5, 95]] });
    const { passed, arbiter } = arbitrate(
      interleave(
        [
          { name: 'A', events: a },
          { name: 'B', events: b },
        ],
        (line) => line * 40_000,
      ),
    );
    expect(arbiter.counters.resyncs).toBe(2); // the connect, then the hole
    const at = passed.findIndex((e, i) => i > 2 && e.type === 'resync');
    const before = Math.max(
      ...passed
        .slice(0, at)
        .filter(market_)
        .map((e) => e.exchUs),
    );
    const snapshot = passed.slice(at).find((e) => e.type === 'book_snapshot')!;
    expect(before).toBe(events[199]!.exchUs);
    expect(passed[at]!.exchUs).toBe(before);
    expect(snapshot.exchUs).toBe(events[249]!.exchUs);
  });

  it("a hole's resync is where the pipeline's clock stopped: after the dead primary's last heartbeat, not its last change", () => {
    // A's last book change is at 100 ms, its last heartbeat at 900 ms (the pipeline emitted ticks up to it); then A
    // is killed and B, started later, takes over with a hole. Before, the resync took the newest change's time (100
    // ms): ticks 200-900 ms were written, so the hole after them held no resync (the audit's unexplained holes).
    const arbiter = new LineArbiter({ windowMs: 120_000, failoverMs: 2000 });
    const out: StreamEvent[] = [];
    const feed = (line: string, e: Record<string, unknown> & { type: string; exchUs: number }, n = 0) => {
      const event = { product: P, recvUs: e.exchUs, seq: 0, ...e } as StreamEvent;
      const id = eventKey(event as MarketEvent, line, n);
      for (const r of arbiter.accept(line, { event: { ...event, id }, record: '1', index: 0 }))
        out.push(r.event);
    };
    const ms = (n: number) => T0 + n * 1000;
    const book = { bids: [['99', '1']] as Level[], asks: [['101', '1']] as Level[] };
    feed('A', { type: 'resync', exchUs: ms(0), reason: 'connect' });
    feed('A', { type: 'book_snapshot', exchUs: ms(0), ...book });
    feed('A', { type: 'book_changes', exchUs: ms(100), changes: [{ side: 'bid', price: '98', size: '1' }] });
    feed('A', { type: 'heartbeat', exchUs: ms(900), counter: 1 });
    feed('B', { type: 'resync', exchUs: ms(50), reason: 'connect' });
    feed('B', { type: 'book_snapshot', exchUs: ms(4000), ...book });
    for (let t = 4100; t <= 6500; t += 300)
      feed('B', {
        type: 'book_changes',
        exchUs: ms(t),
        changes: [{ side: 'bid', price: '97', size: String(t) }],
      });
    const resyncs = out.filter((e) => e.type === 'resync');
    expect(resyncs.map((e) => e.exchUs)).toEqual([ms(0), ms(900)]);
    expect(arbiter.primaryOf(P)).toBe('B');
  });

  it('a killed standby is not taken over with: the live line that resynced rebuilds at once and loses nothing', () => {
    // B is killed at 100 (a killed ingestor publishes no resync: its line still looks continuous). A resyncs at 200
    // and 230, each snapshot 10 events later. Before, A's first resync made the dead B primary; A's events after its
    // snapshot were held for a takeover 2 s of exchange time later, and its second gap (< 2 s on) dropped them.
    const events = market(22, 400);
    const a = publish(events, {
      name: 'A',
      start: 0,
      gaps: [
        [198, 2, 10],
        [228, 2, 10],
      ],
    });
    const b = publish(events, { name: 'B', start: 0, gaps: [], killedAt: 100 });
    const { passed, arbiter } = arbitrate(
      interleave(
        [
          { name: 'A', events: a },
          { name: 'B', events: b },
        ],
        (line) => line * 40_000,
      ),
    );
    const ids = new Set(passed.map((e) => e.id));
    expect(a.filter((e) => market_(e) && !ids.has(e.id)).map((e) => e.exchUs)).toEqual([]);
    expect(arbiter.counters.resyncs).toBe(3); // the connect and A's two gaps: nobody else had them
    expect(arbiter.primaryOf(P)).toBe('A');
  });

  it("both lines killed, two new sessions: the dying standby's last events are kept, the hole is the smallest the lines allow", () => {
    // A (primary) is killed at 200 and B (its standby, 50 ms behind) at 230, before B held LINE_FAILOVER_MS of
    // events: events 200-229 reached the stream only through B. Two new sessions: C from 300, and D from 290, 2 s
    // late: its snapshot reaches the stream before C holds enough to take over, its events after C's.
    const events = market(23, 600);
    const lines = [
      { name: 'A', events: publish(events, { name: 'A', start: 0, gaps: [], killedAt: 200 }) },
      { name: 'B', events: publish(events, { name: 'B', start: 0, gaps: [], killedAt: 230 }) },
      { name: 'C', events: publish(events, { name: 'C', start: 300, gaps: [] }) },
      { name: 'D', events: publish(events, { name: 'D', start: 290, gaps: [] }) },
    ];
    const { passed, arbiter } = arbitrate(interleave(lines, (line) => [0, 50_000, 0, 2_000_000][line]!));
    const ids = new Set(passed.map((e) => e.id));
    const missing = (line: number, from: number) =>
      lines[line]!.events.filter((e) => market_(e) && e.exchUs >= events[from]!.exchUs && !ids.has(e.id));
    // Before, B's last events were dropped with its held queue, although the stream had them.
    expect(missing(1, 200).map((e) => e.exchUs)).toEqual([]);
    // Before, C took over with its own snapshot (at 299) and D's events 290-298 were lost: D's is the older one.
    expect(missing(3, 290).map((e) => e.exchUs)).toEqual([]);
    expect(arbiter.counters.resyncs).toBe(2); // the connect, then the hole 230-289 nobody had
    const pipeline = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
    for (const e of passed) if (isMarketEvent(e)) pipeline.push(e);
    const book = pipeline.book(P)!;
    expect({ bids: book.top('bid', book.depth('bid')), asks: book.top('ask', book.depth('ask')) }).toEqual(
      bookAt(events, events.length),
    );
  });

  it('a hole is announced even when the line taking over was first seen at its snapshot (a replay starts after its resync)', () => {
    const events = market(24, 400);
    const a = publish(events, { name: 'A', start: 0, gaps: [], killedAt: 200 });
    // B's connect resync is before what this worker replays; it starts at 260.
    const b = publish(events, { name: 'B', start: 260, gaps: [] }).filter((e) => e.type !== 'resync');
    const { passed, arbiter } = arbitrate([
      ...a.map((e): [string, StreamEvent] => ['A', e]),
      ...b.map((e): [string, StreamEvent] => ['B', e]),
    ]);
    expect(arbiter.counters.resyncs).toBe(2);
    const kinds = passed.map((e) => e.type);
    const at = kinds.indexOf('resync', 1);
    expect(kinds.slice(at, at + 2)).toEqual(['resync', 'book_snapshot']);
    expect(passed[at]!.exchUs).toBe(events[199]!.exchUs);
  });

  it('a standby that loses frames while the primary is silent passes what it held first: nobody else will', () => {
    // A is killed at 200; a new session C starts at 300 and loses frames 320-321 (its snapshot back at 330) before it
    // held LINE_FAILOVER_MS of events. Before, its resync dropped what it held: events 300-319 were lost although
    // the stream had them.
    const events = market(25, 500);
    const a = publish(events, { name: 'A', start: 0, gaps: [], killedAt: 200 });
    const c = publish(events, { name: 'C', start: 300, gaps: [[320, 2, 8]] });
    const { passed, arbiter } = arbitrate([
      ...a.map((e): [string, StreamEvent] => ['A', e]),
      ...c.map((e): [string, StreamEvent] => ['C', e]),
    ]);
    const ids = new Set(passed.map((e) => e.id));
    const held = c.filter((e) => market_(e) && e.exchUs < events[320]!.exchUs);
    expect(held.length).toBeGreaterThan(10);
    expect(held.filter((e) => !ids.has(e.id)).map((e) => e.exchUs)).toEqual([]);
    expect(arbiter.counters.resyncs).toBe(3); // the connect, the hole 200-298, C's gap
  });

  it("after a break, a lagging line's older snapshot does not rebuild the book: the changes passed since would be missing", () => {
    // A loses frame 71 and gets its snapshot back at 102; B runs 1.7 s behind and connects at 40, so at A's resync
    // B is not continuous yet (the resync breaks the book) and B's snapshot, from event 39, arrives before A's. Before,
    // B became the primary with it: B's changes 40-70 were copies of what A had passed and were dropped, so the book
    // missed them until B's next snapshot, and A's fresh one was not taken.
    const events = market(41, 400);
    const a = publish(events, { name: 'A', start: 5, gaps: [[71, 1, 30]] });
    const b = publish(events, { name: 'B', start: 40, gaps: [] });
    const { passed, arbiter } = arbitrate(
      interleave(
        [
          { name: 'A', events: a },
          { name: 'B', events: b },
        ],
        (line) => line * 1_700_000,
      ),
    );
    // A's connect and A's gap before B was continuous; B's connect, while no line had the book, breaks nothing more.
    expect(arbiter.counters.resyncs).toBe(2);
    let changesUs = Number.NEGATIVE_INFINITY;
    let broken = false;
    for (const e of passed) {
      if (e.type === 'resync') broken = true;
      if (e.type === 'book_snapshot' && broken) {
        expect(e.exchUs).toBeGreaterThanOrEqual(changesUs);
        broken = false;
      }
      if (e.type === 'book_changes') changesUs = Math.max(changesUs, e.exchUs);
    }
    const pipeline = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
    for (const e of passed) if (isMarketEvent(e)) pipeline.push(e);
    const book = pipeline.book(P)!;
    expect({ bids: book.top('bid', book.depth('bid')), asks: book.top('ask', book.depth('ask')) }).toEqual(
      bookAt(events, events.length),
    );
  });

  it("a standby's book changes from before the snapshot another line gave the book are never applied after it", () => {
    const arbiter = new LineArbiter({ windowMs: 120_000, failoverMs: 2000 });
    const out: StreamEvent[] = [];
    const feed = (line: string, e: Omit<StreamEvent, 'id' | 'recvUs' | 'seq' | 'product'>, n = 0) => {
      const event = { ...e, product: P, recvUs: e.exchUs, seq: 0 } as StreamEvent;
      const id = eventKey(event as MarketEvent, line, n);
      for (const r of arbiter.accept(line, { event: { ...event, id }, record: '1', index: 0 }))
        out.push(r.event);
    };
    const snapshot = (ms: number, bids: Level[]) => ({
      type: 'book_snapshot' as const,
      exchUs: T0 + ms * 1000,
      bids,
      asks: [['101', '1']] as Level[],
    });
    const change = (ms: number, price: string, size: string) => ({
      type: 'book_changes' as const,
      exchUs: T0 + ms * 1000,
      changes: [{ side: 'bid' as const, price, size }],
    });
    const resync = (ms: number) => ({ type: 'resync' as const, exchUs: T0 + ms * 1000, reason: 'gap' });
    feed('A', snapshot(0, [['99', '1']]));
    feed('A', change(10, '98', '1'));
    feed('A', resync(20)); // no other line: the book breaks
    // The exchange: 95 set at 600 and removed at 900; C's snapshot at 1000 (without 95) comes first.
    feed('C', resync(30));
    feed('C', snapshot(1000, [['99', '1']]));
    feed('D', resync(40));
    feed('D', snapshot(500, [['99', '1']]));
    feed('D', change(600, '95', '3'));
    feed('D', change(900, '95', '0'));
    feed('C', change(1100, '97', '1'));
    feed('D', change(1100, '97', '1'));
    // C falls behind; D delivers first, 2 s and more after its oldest held change.
    for (let ms = 1200; ms <= 3600; ms += 300) feed('D', change(ms, '96', String(ms)));
    let snapshotUs = Number.NEGATIVE_INFINITY;
    const applied: string[] = [];
    for (const e of out) {
      if (e.type === 'book_snapshot') snapshotUs = e.exchUs;
      if (e.type !== 'book_changes') continue;
      applied.push(`${e.changes[0]!.price}@${(e.exchUs - T0) / 1e6}`);
      expect(e.exchUs, applied.join(' ')).toBeGreaterThanOrEqual(snapshotUs);
    }
    expect(applied).toContain('96@3.6');
  });

  it("any lines, gaps, kills and lags: each event passed once, and a book once rebuilt is the exchange's (property)", () => {
    const plan = fc.record({
      start: fc.integer({ min: 0, max: 300 }),
      gaps: fc.array(
        fc.tuple(
          fc.integer({ min: 0, max: 390 }),
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 0, max: 15 }),
        ),
        { maxLength: 4 },
      ),
      killedAt: fc.option(fc.integer({ min: 20, max: 400 }), { nil: undefined }),
      lagMs: fc.constantFrom(0, 300, 600, 1500, 2500),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.array(plan, { minLength: 2, maxLength: 4 }),
        (seed, plans) => {
          const events = market(seed, 400);
          const lines = plans.map((p, i) => {
            // Gaps in order and apart (an ingestor sees one at a time), after its start.
            const gaps = p.gaps
              .map(([k, n, d]): [number, number, number] => [p.start + 2 + k, n, d])
              .sort((x, y) => x[0] - y[0])
              .filter((g, j, all) => j === 0 || g[0] > all[j - 1]![0] + all[j - 1]![1] + all[j - 1]![2] + 2);
            const name = `L${i}`;
            const killedAt = p.killedAt === undefined ? undefined : p.start + p.killedAt;
            return {
              name,
              events: publish(events, { name, start: p.start, gaps, ...(killedAt ? { killedAt } : {}) }),
            };
          });
          const { passed } = arbitrate(
            interleave(lines, (line, us) => plans[line]!.lagMs * 1000 + ((us / 500_000) % 3) * 1000),
          );
          const ids = passed.filter(market_).map((e) => e.id);
          expect(new Set(ids).size).toBe(ids.length);
          // The book as the pipeline keeps it; when it stands, it is the exchange's as of the newest change or
          // snapshot passed.
          const book = new FeaturePipeline({ tickMs: 100, deltaMs: 500 });
          let newest = Number.NEGATIVE_INFINITY;
          for (const e of passed) {
            if (isMarketEvent(e)) book.push(e);
            if (e.type === 'book_changes' || e.type === 'book_snapshot') newest = Math.max(newest, e.exchUs);
          }
          if (book.bookState(P) !== 'synced') return;
          const b = book.book(P)!;
          const through = events.filter((e) => e.exchUs <= newest).length;
          expect({ bids: b.top('bid', b.depth('bid')), asks: b.top('ask', b.depth('ask')) }).toEqual(
            bookAt(events, through),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a book change is applied to a level only if newer than what the level holds, whatever the batching', () => {
    const arbiter = new LineArbiter({ windowMs: 120_000, failoverMs: 2000 });
    const ev = (line: string, changes: [string, string][], us: number, n = 0): [string, StreamEvent] => {
      const e = {
        type: 'book_changes' as const,
        product: P,
        exchUs: us,
        recvUs: us,
        seq: n,
        changes: changes.map(([price, size]) => ({ side: 'bid' as const, price, size })),
      };
      return [line, { ...e, id: eventKey(e, line) }];
    };
    const snap = {
      type: 'book_snapshot' as const,
      product: P,
      exchUs: T0,
      recvUs: T0,
      seq: 0,
      bids: [['99', '1']] as Level[],
      asks: [['101', '1']] as Level[],
    };
    const out: StreamEvent[] = [];
    const feed = ([line, event]: [string, StreamEvent]) => {
      for (const r of arbiter.accept(line, { event, record: '1', index: 0 })) out.push(r.event);
    };
    feed(['A', { ...snap, id: 'x:A:0' }]);
    feed(
      ev(
        'A',
        [
          ['98', '2'],
          ['97', '3'],
        ],
        T0 + 10,
      ),
    );
    feed(ev('A', [['98', '5']], T0 + 20));
    // No primary switch needed to see it: with no line primary, every line passes first copy wins.
    const noPrimary = new LineArbiter({ windowMs: 120_000, failoverMs: 2000 });
    const passedWithout: StreamEvent[] = [];
    for (const [line, e] of [
      ev(
        'B',
        [
          ['98', '2'],
          ['96', '1'],
        ],
        T0 + 10,
      ),
      ev('C', [['98', '2']], T0 + 10),
      ev(
        'C',
        [
          ['96', '1'],
          ['95', '4'],
        ],
        T0 + 10,
      ),
    ]) {
      for (const r of noPrimary.accept(line, { event: e, record: '1', index: 0 }))
        passedWithout.push(r.event);
    }
    // The same changes batched differently: only the level not seen yet passes.
    expect(
      passedWithout.map((e) => (e.type === 'book_changes' ? e.changes.map((c) => c.price) : [])),
    ).toEqual([['98', '96'], ['95']]);
    expect(noPrimary.counters.levelRepeats).toBe(2);
    expect(out.map((e) => e.type)).toEqual(['book_snapshot', 'book_changes', 'book_changes']);
  });

  it('a replay has its own namespace: applied after the live run, not dropped as repeats', () => {
    const events = market(5, 100);
    const live = publish(events, { name: 'L', start: 0, gaps: [] });
    const replayed = live.map((e) => ({ ...e, id: namespacedId(e.id, 'replay-r1') }));
    const { passed } = arbitrate([
      ...live.map((e): [string, StreamEvent] => ['L', e]),
      ...replayed.map((e): [string, StreamEvent] => ['R', e]),
    ]);
    expect(passed.filter(market_)).toHaveLength(2 * live.filter(market_).length);
    // The live ids once more, in the live namespace: repeats.
    const again = arbitrate([
      ...live.map((e): [string, StreamEvent] => ['L', e]),
      ...live.map((e): [string, StreamEvent] => ['L2', e]),
    ]);
    expect(again.passed.filter(market_)).toHaveLength(live.filter(market_).length);
  });
});
