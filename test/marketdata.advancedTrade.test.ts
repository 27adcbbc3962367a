import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FeedError,
  MalformedFrameError,
  type MappedFrame,
  mapAdvancedTradeFrame,
  mapAdvancedTradeFrameAsync,
} from '../src/marketdata/advancedTrade.js';
import type { MarketEvent } from '../src/marketdata/events.js';

// The conformance tests over the real capture are in conformance.advancedTrade.test.ts.

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
    ['missing event_time', ok(update({ event_time: undefined })), 'updates[0].event_time'],
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

describe('Advanced Trade mapper: async (sliced) path', () => {
  const decimal = fc
    .tuple(fc.nat({ max: 99_999 }), fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 9 }))
    .map(([i, f]) => (f ? `${i}.${f}` : String(i)));
  // Mostly valid fields, sometimes a bad one, so both the results and the errors are compared.
  const field = (valid: fc.Arbitrary<unknown>) =>
    fc.oneof(
      { weight: 20, arbitrary: valid },
      { weight: 1, arbitrary: fc.constantFrom('x', 5, null, '1e3') },
    );
  const level = fc.record({
    side: field(fc.constantFrom('bid', 'offer')),
    event_time: field(
      fc
        .integer({ min: 0, max: 5 })
        .map((s) => `2026-08-09T21:05:4${s}.${String(s * 137).padStart(9, '0')}Z`),
    ),
    price_level: field(decimal),
    new_quantity: field(decimal),
  });
  const frame = fc.record({
    channel: fc.constant('l2_data'),
    timestamp: fc.constant('2026-08-09T21:05:49.5Z'),
    sequence_num: fc.nat({ max: 1000 }),
    events: fc.array(
      fc.record({
        type: field(fc.constantFrom('snapshot', 'update')),
        product_id: fc.constantFrom('BTC-USD', 'ETH-USD'),
        updates: fc.array(level, { maxLength: 40 }),
      }),
      { maxLength: 3 },
    ),
  });

  type Outcome = { ok: MappedFrame } | { error: string; name: string };
  const syncOutcome = (raw: string): Outcome => {
    try {
      return { ok: mapAdvancedTradeFrame(raw, 42) };
    } catch (err) {
      return { error: (err as Error).message, name: (err as Error).name };
    }
  };
  const asyncOutcome = async (raw: string, levelsPerSlice: number): Promise<Outcome> => {
    try {
      return { ok: await mapAdvancedTradeFrameAsync(raw, 42, { largeFrameChars: 0, levelsPerSlice }) };
    } catch (err) {
      return { error: (err as Error).message, name: (err as Error).name };
    }
  };

  it('gives exactly the sync result or error, whatever the slice size', async () => {
    let mappedOk = 0;
    let failed = 0;
    await fc.assert(
      fc.asyncProperty(frame, fc.integer({ min: 1, max: 8 }), async (f, levelsPerSlice) => {
        const raw = JSON.stringify(f);
        const want = syncOutcome(raw);
        if ('ok' in want) mappedOk++;
        else failed++;
        expect(await asyncOutcome(raw, levelsPerSlice)).toEqual(want);
      }),
      { numRuns: 200 },
    );
    // The generator exercises both outcomes (otherwise the comparison above would prove little).
    expect(mappedOk).toBeGreaterThan(20);
    expect(failed).toBeGreaterThan(20);
  });

  it('maps a small frame without waiting for a turn of the event loop', async () => {
    const raw = JSON.stringify({
      channel: 'heartbeats',
      timestamp: '2026-08-09T21:05:48Z',
      sequence_num: 3,
      events: [{ current_time: 'x', heartbeat_counter: 9 }],
    });
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    const m = await mapAdvancedTradeFrameAsync(raw, 1);
    expect(turned).toBe(false);
    expect(m).toEqual(mapAdvancedTradeFrame(raw, 1));
  });

  it('waits turns of the event loop between slices of a large frame', async () => {
    const updates = Array.from({ length: 100 }, (_, i) => ({
      side: i % 2 ? 'bid' : 'offer',
      event_time: '2026-08-09T21:05:48Z',
      price_level: String(1000 + i),
      new_quantity: '1',
    }));
    const raw = JSON.stringify({
      channel: 'l2_data',
      timestamp: '2026-08-09T21:05:48Z',
      sequence_num: 1,
      events: [{ type: 'snapshot', product_id: 'BTC-USD', updates }],
    });
    let turns = 0;
    let running = true;
    const tick = () => {
      if (running) {
        turns++;
        setImmediate(tick);
      }
    };
    setImmediate(tick);
    const m = await mapAdvancedTradeFrameAsync(raw, 1, { largeFrameChars: 0, levelsPerSlice: 10 });
    running = false;
    // 10 slices -> 9 pauses; the ticker runs once per turn.
    expect(turns).toBeGreaterThanOrEqual(9);
    expect(m).toEqual(mapAdvancedTradeFrame(raw, 1));
  });
});
