import { describe, expect, it } from 'vitest';
import { componentLogger } from '../src/log.js';
import type { Level, LevelChange } from '../src/marketdata/events.js';
import { type BookCheckEvent, eventKey, type StreamEvent } from '../src/stream/record.js';
import { MarketStage } from '../src/worker/market.js';

const P = 'BTC-USD';
const T0 = 1_700_000_000_000_000;
const ms = (n: number) => T0 + n * 1000;

const BIDS: Level[] = [
  ['100', '1'],
  ['99', '2'],
  ['98', '3'],
];
const ASKS: Level[] = [
  ['101', '1'],
  ['102', '2'],
  ['103', '3'],
];

/** A stage fed by hand, with a 200 ms skew window (no snapshot_ref is fed, so S3 is never called). */
function stage(skewMs = 200) {
  const s3 = {
    send: () => Promise.reject(new Error('not used')),
  };
  const m = new MarketStage({
    tickMs: 100,
    deltaMs: 500,
    bookCheckSkewMs: skewMs,
    s3,
    log: componentLogger('test'),
  });
  let n = 0;
  const feed = (e: object) => {
    const ev = { ...e, id: eventKey(e as never, 'line', n++) } as StreamEvent;
    return m.apply(ev, `r${n}`, 0);
  };
  const base = (t: number) => ({ product: P, exchUs: t, recvUs: t, seq: -1 });
  return {
    m,
    snapshot: (t: number, bids = BIDS, asks = ASKS) =>
      feed({ ...base(t), type: 'book_snapshot', bids, asks }),
    changes: (t: number, changes: LevelChange[]) => feed({ ...base(t), type: 'book_changes', changes }),
    heartbeat: (t: number) => feed({ ...base(t), type: 'heartbeat', counter: n }),
    resync: (t: number) => feed({ ...base(t), type: 'resync', reason: 'gap' }),
    check: (t: number, bids: Level[], asks: Level[], extra: Partial<BookCheckEvent> = {}) =>
      feed({
        ...base(t),
        recvUs: t + 150_000,
        type: 'book_check',
        source: 'advanced_trade',
        depth: 50,
        bids,
        asks,
        ...extra,
      }),
  };
}

describe('book verification stage', () => {
  it('waits for the skew window after the REST book time, then finds a match', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    await s.changes(ms(100), [{ side: 'bid', price: '99', size: '5' }]);
    await s.check(ms(150), [BIDS[0]!, ['99', '5'], BIDS[2]!], ASKS);
    await s.heartbeat(ms(300)); // 150 ms after the book: still inside the window
    expect(s.m.verifier.state(P).result).toBe('pending');
    expect(s.m.verifier.drain()).toEqual([]);
    await s.heartbeat(ms(400));
    const [outcome] = s.m.verifier.drain();
    expect(outcome).toMatchObject({ product: P, result: 'match', atUs: ms(150), compared: 6, inFlight: 0 });
    expect(s.m.verifier.state(P)).toEqual({ result: 'match', atUs: ms(150) });
  });

  it('holds a verdict for the ticks after the event that reached it, not for those that event makes due', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    await s.check(ms(500), BIDS.slice(0, 2).concat([['98', '7']]), ASKS); // 98 differs: a mismatch
    await s.heartbeat(ms(630));
    s.m.drain();
    // The event at 720 ms judges the check (720 >= 500 + 200), then makes the tick at 700 ms due.
    await s.heartbeat(ms(720));
    expect(s.m.verifier.drain().map((o) => [o.result, o.judgedUs])).toEqual([['mismatch', ms(720)]]);
    await s.heartbeat(ms(860));
    const ticks = s.m.drain().rows.map((r) => [(r.tsUs - T0) / 1000, r.lineage?.verification?.result]);
    expect(ticks).toEqual([
      [700, 'pending'],
      [800, 'mismatch'],
    ]);
    expect(s.m.verifier.state(P, ms(720) - 1).result).toBe('pending');
    expect(s.m.verifier.state(P, ms(720)).result).toBe('mismatch');
    expect(s.m.verifier.state(P).result).toBe('mismatch');
  });

  it('holds it from the tick at its own time when the judging event falls on one, and marks its span once repaired', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    await s.check(ms(500), BIDS.slice(0, 2).concat([['98', '7']]), ASKS);
    await s.heartbeat(ms(690));
    s.m.drain();
    await s.heartbeat(ms(800)); // judges the check (800 >= 700) and makes the ticks at 700 and 800 due
    const [verdict] = s.m.verifier.drain();
    expect(verdict).toMatchObject({ result: 'mismatch', judgedUs: ms(800), cleanSinceUs: ms(0) });
    await s.heartbeat(ms(950));
    expect(s.m.drain().rows.map((r) => [(r.tsUs - T0) / 1000, r.lineage?.verification?.result])).toEqual([
      [700, 'pending'],
      [800, 'mismatch'],
      [900, 'mismatch'],
    ]);
    // The suspect mark is [cleanSince, verdict): tick 700 is in it, tick 800 abstains. The rebuild ends the
    // abstaining span [verdict, rebuild), reported once, for the mark training reads.
    expect(s.m.verifier.drainRepairs()).toEqual([]);
    await s.resync(ms(1000));
    await s.snapshot(ms(1200), BIDS.slice(0, 2).concat([['98', '7']]), ASKS);
    expect(s.m.verifier.drainRepairs()).toEqual([
      { product: P, checkId: verdict!.checkId, fromUs: ms(800), toUs: ms(1200) },
    ]);
    await s.snapshot(ms(1300));
    expect(s.m.verifier.drainRepairs()).toEqual([]);
  });

  it('keeps a mismatch through later checks, whatever they say, until the book is rebuilt', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    await s.check(ms(500), BIDS.slice(0, 2).concat([['98', '7']]), ASKS);
    await s.heartbeat(ms(800));
    const [verdict] = s.m.verifier.drain();
    expect(verdict?.result).toBe('mismatch');
    await s.check(ms(900), [], [], { unavailable: 'HTTP 503' });
    expect(s.m.verifier.drain().map((o) => o.result)).toEqual(['unavailable']);
    expect(s.m.verifier.state(P).result).toBe('mismatch');
    // The exchange sets 98 to what our book holds: the next check matches, but the book stays suspect until rebuilt.
    await s.changes(ms(1000), [{ side: 'bid', price: '98', size: '7' }]);
    await s.check(ms(1500), BIDS.slice(0, 2).concat([['98', '7']]), ASKS);
    await s.heartbeat(ms(1750));
    expect(s.m.verifier.drain().map((o) => o.result)).toEqual(['match']);
    expect(s.m.verifier.state(P).result).toBe('mismatch');
    expect(s.m.verifier.drainRepairs()).toEqual([]);
    await s.resync(ms(1800));
    await s.snapshot(ms(1900));
    expect(s.m.verifier.state(P).result).toBe('pending');
    expect(s.m.verifier.drainRepairs()).toEqual([
      { product: P, checkId: verdict!.checkId, fromUs: ms(800), toUs: ms(1900) },
    ]);
  });

  it('finds a level our book lost, with the differing sizes', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    // The exchange changed 98 to 7 at 50 ms; our feed lost that update.
    await s.check(ms(500), BIDS.slice(0, 2).concat([['98', '7']]), ASKS);
    await s.heartbeat(ms(800));
    const [outcome] = s.m.verifier.drain();
    expect(outcome?.result).toBe('mismatch');
    expect(outcome?.differences).toEqual([{ side: 'bid', price: '98', ours: '3', exchange: '7' }]);
    expect(outcome?.reason).toMatch(/1 of 6 levels differ: bid 98: ours 3, exchange 7/);
  });

  it('does not judge a level that changed inside the window, before or after the book time', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    // The REST book (time 1000) predates our change at 1100 and missed one at 900 that our feed has too: both
    // levels differ from the REST book, both changed within 200 ms of its time.
    await s.changes(ms(900), [{ side: 'ask', price: '102', size: '4' }]);
    await s.check(ms(1000), BIDS, [ASKS[0]!, ['102', '9'], ASKS[2]!]);
    await s.changes(ms(1100), [{ side: 'bid', price: '100', size: '8' }]);
    await s.heartbeat(ms(1300));
    const [outcome] = s.m.verifier.drain();
    expect(outcome).toMatchObject({ result: 'match', inFlight: 2, compared: 4 });
    // The same difference outside the window is a mismatch.
    await s.check(ms(2000), BIDS, [ASKS[0]!, ['102', '9'], ASKS[2]!]);
    await s.heartbeat(ms(2300));
    expect(s.m.verifier.drain()[0]?.result).toBe('mismatch');
  });

  it('says unavailable, with the reason, for a failed fetch, a resync while waiting, a book being rebuilt', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    await s.check(ms(100), [], [], { unavailable: 'HTTP 429 Too Many Requests' });
    expect(s.m.verifier.state(P)).toEqual({
      result: 'unavailable',
      atUs: ms(100),
      reason: 'exchange book unavailable: HTTP 429 Too Many Requests',
    });
    await s.check(ms(200), BIDS, ASKS);
    await s.resync(ms(250));
    expect(s.m.verifier.state(P).reason).toMatch(/our book resynced \(gap\) before the check was due/);
    await s.check(ms(300), BIDS, ASKS);
    await s.heartbeat(ms(600));
    expect(s.m.verifier.state(P).reason).toMatch(/not synced/);
    expect(s.m.verifier.counts).toEqual({ match: 0, mismatch: 0, unavailable: 3 });
  });

  it('compares after a fresh snapshot, counting the levels it replaced as changed at its time', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    await s.resync(ms(100));
    const fresh: Level[] = [['100', '6'], ...BIDS.slice(1)];
    await s.snapshot(ms(200), fresh, ASKS);
    // The REST book (time 250) predates the level the snapshot brought... within the window: not judged.
    await s.check(ms(250), BIDS, ASKS);
    await s.heartbeat(ms(500));
    expect(s.m.verifier.drain().at(-1)).toMatchObject({ result: 'match', inFlight: 1 });
  });

  it('says since when a differing level was last known right: its last equal check, else the book start', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    // The check at 500 ms compares the asks only as deep as 101 (depth 1): 102 is not verified there.
    await s.check(ms(500), BIDS, [ASKS[0]!], { depth: 1 });
    await s.heartbeat(ms(800));
    await s.check(ms(1000), BIDS, ASKS);
    await s.heartbeat(ms(1300));
    expect(s.m.verifier.drain().map((o) => o.result)).toEqual(['match', 'match']);
    await s.check(ms(2000), [['100', '5'], ...BIDS.slice(1)], [ASKS[0]!, ['102', '9'], ASKS[2]!]);
    await s.heartbeat(ms(2300));
    // 102 was right at 1000 ms, 100 at 1000 ms too: predictions from then to 2000 ms are suspect.
    expect(s.m.verifier.drain()[0]).toMatchObject({
      result: 'mismatch',
      cleanSinceUs: ms(1000),
      atUs: ms(2000),
    });
    await s.resync(ms(2400));
    await s.snapshot(ms(2500));
    // A periodic copy of the running book does not make it clean; the exchange's snapshot after a resync does.
    await s.snapshot(ms(2600));
    await s.check(ms(3000), BIDS, [ASKS[0]!, ['102', '9'], ASKS[2]!]);
    await s.heartbeat(ms(3300));
    expect(s.m.verifier.drain()[0]).toMatchObject({ result: 'mismatch', cleanSinceUs: ms(2500) });
  });

  it('does not judge a level against a book rebuilt after the REST book was taken, even one the rebuild removed', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    // The exchange removed bid 98 at 1.1 s; our feed lost data, resynced, and rebuilt the book at 1.2 s. The REST
    // book taken at 1 s (it still has 98) reaches the stream only after the rebuild (a slow answer).
    await s.resync(ms(1150));
    await s.snapshot(ms(1200), BIDS.slice(0, 2), ASKS);
    await s.check(ms(1000), BIDS, ASKS);
    await s.heartbeat(ms(1500));
    const [outcome] = s.m.verifier.drain();
    expect(outcome).toMatchObject({ result: 'match', inFlight: 1 });
  });

  it('refuses a check that arrives long after its time', async () => {
    const s = stage();
    await s.snapshot(ms(0));
    await s.heartbeat(ms(60_000));
    await s.check(ms(10_000), BIDS, ASKS);
    expect(s.m.verifier.state(P).reason).toMatch(/arrived 50\.0 s after its time/);
  });
});
