/**
 * The audit's judgement of trades and level changes (src/audit/audit.ts judgeEvents) on hand-made raw zones: what
 * counts as lost, as explained by a resync, and as superseded (one line's copy that reached the stream only after
 * the book had been rebuilt from a later snapshot), and the raw zone read in the order the worker applied it.
 */
import { describe, expect, it } from 'vitest';
import { type Accepted, judgeEvents } from '../src/audit/audit.js';
import type { LevelChange } from '../src/marketdata/events.js';
import type { RawRow } from '../src/storage/parquet.js';
import { levelKey, type StreamEvent } from '../src/stream/record.js';

const P = 'BTC-USD';
const T0 = 1_786_309_200_000_000;
const ms = (n: number) => T0 + n * 1000;

const change = (at: number, price: string, size = '1'): StreamEvent => ({
  type: 'book_changes',
  product: P,
  exchUs: ms(at),
  recvUs: ms(at),
  seq: 0,
  changes: [{ side: 'bid', price, size }],
  id: `b:${at}:${price}`,
});
const snapshot = (at: number): StreamEvent => ({
  type: 'book_snapshot',
  product: P,
  exchUs: ms(at),
  recvUs: ms(at),
  seq: 0,
  bids: [['99', '1']],
  asks: [['101', '1']],
  id: `x:${at}`,
});
const resync = (at: number): StreamEvent => ({
  type: 'resync',
  product: P,
  exchUs: ms(at),
  recvUs: ms(at),
  seq: -1,
  reason: 'gap',
  id: `r:${at}`,
});

/** Raw rows as the worker stores them: each event with its record, the stream time never going back. */
function raw(stored: [StreamEvent, number][]): RawRow[] {
  let t = Number.NEGATIVE_INFINITY;
  return stored.map(([e, record], index) => {
    t = Math.max(t, e.exchUs);
    return {
      product: P,
      tsUs: t,
      exchUs: e.exchUs,
      recvUs: e.recvUs,
      seq: e.seq,
      type: e.type,
      eventId: e.id,
      record: String(10n ** 20n + BigInt(record)),
      index,
      event: JSON.stringify(e),
    };
  });
}

const accepted = (list: [StreamEvent, number][]): Accepted[] =>
  list.map(([event, record]) => ({ event, record: 10n ** 20n + BigInt(record) }));

function sentOf(events: StreamEvent[]) {
  const levels = new Map<string, number>();
  for (const e of events)
    if (e.type === 'book_changes')
      for (const c of e.changes as LevelChange[]) levels.set(levelKey(P, c, e.exchUs), e.exchUs);
  return { trades: new Map<string, number>(), levels };
}

describe('audit: level changes lost, explained, superseded', () => {
  // The passed stream: a snapshot, a change at 100 ms, a resync, the book rebuilt from a snapshot at 300 ms, a change
  // at 400 ms. The exchange also sent a change at 200 ms (or 350 ms) that the raw zone does not hold.
  const stored = (): [StreamEvent, number][] => [
    [snapshot(0), 1],
    [change(100, '98'), 2],
    [resync(100), 3],
    [snapshot(300), 4],
    [change(400, '97'), 6],
  ];

  it('superseded: its only copy reached the stream after the book was rebuilt from a later snapshot', () => {
    const missing = change(200, '96');
    const { levelChanges } = judgeEvents(
      P,
      sentOf([change(100, '98'), missing, change(400, '97')]),
      accepted([...stored(), [missing, 5]]),
      raw(stored()),
      ms(0),
    );
    expect(levelChanges).toMatchObject({ lost: 1, superseded: 1, lostAccepted: 0, unexplained: 0 });
  });

  it('lost although accepted: a copy was in the stream before the rebuild, or the snapshot is older than it', () => {
    const early = change(200, '96');
    const before = judgeEvents(
      P,
      sentOf([change(100, '98'), early, change(400, '97')]),
      accepted([...stored(), [early, 3]]),
      raw(stored()),
      ms(0),
    );
    expect(before.levelChanges).toMatchObject({ lost: 1, superseded: 0, lostAccepted: 1 });
    const after = change(350, '96');
    const newer = judgeEvents(
      P,
      sentOf([change(100, '98'), after, change(400, '97')]),
      accepted([...stored(), [after, 5]]),
      raw(stored()),
      ms(0),
    );
    expect(newer.levelChanges).toMatchObject({ lost: 1, superseded: 0, lostAccepted: 1 });
  });

  it('never accepted: explained by the resync between its stored neighbours, in the order the worker applied them', () => {
    const gap = change(200, '96');
    const rows = raw(stored());
    // Lake objects are listed by name (shard, first and last feed seq, window), not by window: the second
    // window's object can come first.
    const listed = [...rows.slice(3), ...rows.slice(0, 3)];
    const { levelChanges } = judgeEvents(
      P,
      sentOf([change(100, '98'), gap, change(400, '97')]),
      accepted(stored()),
      listed,
      ms(0),
    );
    expect(levelChanges).toMatchObject({ lost: 1, superseded: 0, lostAccepted: 0, unexplained: 0 });
    const noResync = raw(stored().filter(([e]) => e.type !== 'resync'));
    const bare = judgeEvents(
      P,
      sentOf([change(100, '98'), gap, change(400, '97')]),
      accepted(stored()),
      noResync,
      ms(0),
    );
    expect(bare.levelChanges).toMatchObject({ lost: 1, unexplained: 1 });
  });
});
