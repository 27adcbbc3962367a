/**
 * Bad input at the system's edges (issue 14), fuzzed with fast-check: the two feed mappers and the stream record
 * decoder. Whatever arrives — random text, random JSON, valid frames with one field broken, the simulator's hostile
 * frames — each either gives a result the next stage accepts or throws its own clear error class; never another
 * exception, never NaN or negative numbers passed on. (The API's fuzzing is in test/api.routes.test.ts.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QuoteWatchError } from '../src/errors.js';
import { FeedError, MalformedFrameError, mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import type { MarketEvent } from '../src/marketdata/events.js';
import { mapExchangeFrame } from '../src/marketdata/exchange.js';
import { HOSTILE_KINDS, hostileFrame } from '../src/simulator/hostile.js';
import {
  decodeRecord,
  encodeRecord,
  eventKey,
  RecordFormatError,
  type StreamEvent,
} from '../src/stream/record.js';

const TS = '2026-08-09T21:05:49.5Z';
const advancedFrames = [
  {
    channel: 'l2_data',
    timestamp: TS,
    sequence_num: 4,
    events: [
      {
        type: 'update',
        product_id: 'BTC-USD',
        updates: [{ side: 'bid', event_time: TS, price_level: '100.5', new_quantity: '2' }],
      },
    ],
  },
  {
    channel: 'market_trades',
    timestamp: TS,
    sequence_num: 5,
    events: [
      {
        type: 'update',
        trades: [
          { trade_id: '77', product_id: 'BTC-USD', price: '100.5', size: '0.1', side: 'BUY', time: TS },
        ],
      },
    ],
  },
  {
    channel: 'ticker',
    timestamp: TS,
    sequence_num: 6,
    events: [
      {
        type: 'update',
        tickers: [{ product_id: 'BTC-USD', price: '100.5', best_bid: '100.4', best_ask: '100.6' }],
      },
    ],
  },
];
const exchangeFrames = [
  {
    type: 'l2update',
    product_id: 'BTC-USD',
    time: TS,
    changes: [['buy', '100.5', '2']],
  },
  {
    type: 'match',
    trade_id: 77,
    product_id: 'BTC-USD',
    price: '100.5',
    size: '0.1',
    side: 'sell',
    time: TS,
    sequence: 9,
  },
  { type: 'ticker', product_id: 'BTC-USD', price: '100.5', best_bid: '100.4', best_ask: '100.6', time: TS },
];

/** A broken value for one field: what a bad exchange or a corrupted frame could hold. */
const badValue = fc.oneof(
  fc.constantFrom('NaN', '-1', '-0.5', 'Infinity', '1e400', '', ' ', '0x10', null, true, [], {}),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 20 }),
  fc.json({ maxDepth: 3 }).map((j) => JSON.parse(j) as unknown),
);

/** Replaces the value at one path of `frame` (chosen by `pick`) with `value`. */
function mutate(frame: unknown, pick: number, value: unknown): unknown {
  const copy = structuredClone(frame) as Record<string, unknown>;
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (v && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) walk(child, [...path, Array.isArray(v) ? Number(k) : k]);
    }
  };
  walk(copy, []);
  const path = paths[1 + (pick % (paths.length - 1))]!;
  let parent = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  parent[path[path.length - 1]!] = value;
  return copy;
}

/** The mapped events must pass the record decoder (the worker's zod schemas): no NaN, no negative price. */
function expectPublishable(events: readonly MarketEvent[]): void {
  const byProduct = new Map<string, StreamEvent[]>();
  for (const e of events) {
    byProduct.set(e.product, [...(byProduct.get(e.product) ?? []), { ...e, id: eventKey(e, 'fuzz') }]);
  }
  for (const [product, es] of byProduct)
    expect(decodeRecord(encodeRecord(product, es)).events).toHaveLength(es.length);
}

/** Runs a mapper: a result the decoder accepts, or one of the feed's error classes with a message. */
function outcome(map: () => { events: MarketEvent[] }): 'mapped' | 'refused' {
  try {
    expectPublishable(map().events);
    return 'mapped';
  } catch (err) {
    if (!(err instanceof MalformedFrameError || err instanceof FeedError)) throw err;
    expect((err as Error).message.length).toBeGreaterThan(10);
    return 'refused';
  }
}

describe('the feed mappers under fuzzed frames', () => {
  for (const [name, map, frames] of [
    ['Advanced Trade', mapAdvancedTradeFrame, advancedFrames],
    ['Exchange', mapExchangeFrame, exchangeFrames],
  ] as const) {
    it(`${name}: a valid frame with one field broken maps to publishable events or a clear error`, () => {
      const seen = { mapped: 0, refused: 0 };
      fc.assert(
        fc.property(fc.constantFrom(...frames), fc.nat(), badValue, (frame, pick, value) => {
          seen[outcome(() => map(JSON.stringify(mutate(frame, pick, value)), 1))]++;
        }),
        { numRuns: 400 },
      );
      // Both outcomes happen: the generator reaches fields that matter and fields that do not.
      expect(seen.mapped).toBeGreaterThan(20);
      expect(seen.refused).toBeGreaterThan(20);
    });

    it(`${name}: random text and random JSON never throw anything else`, () => {
      fc.assert(
        fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 4 })), (raw) => {
          outcome(() => map(raw, 1));
        }),
        { numRuns: 400 },
      );
    });
  }

  it("Advanced Trade: every hostile frame of the simulator's hostile mode is refused or harmless", () => {
    for (const kind of HOSTILE_KINDS) {
      const raw = hostileFrame(kind, 12, Date.UTC(2026, 0, 1) * 1000, 'BTC-USD');
      const result = outcome(() => mapAdvancedTradeFrame(raw, 1));
      // Prices that are not prices never get through; channels nobody subscribed to give no events.
      if (kind === 'nan' || kind === 'negative' || kind === 'nested' || kind === 'wrong-types')
        expect(result, kind).toBe('refused');
      else expect(mapAdvancedTradeFrame(raw, 1).events, kind).toEqual([]);
    }
  });
});

describe('the record decoder under fuzzed bytes', () => {
  const valid = { v: 1, product: 'BTC-USD', line: 'a', events: [] as unknown[] };
  const trade = {
    type: 'trade',
    id: 't:BTC-USD:1',
    product: 'BTC-USD',
    exchUs: 1,
    recvUs: 2,
    seq: 3,
    tradeId: '1',
    price: '100.5',
    size: '0.1',
    aggressor: 'buy',
  };

  it('random bytes, random JSON and broken records are RecordFormatErrors, nothing else', () => {
    const refused = { n: 0 };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.json({ maxDepth: 4 }).map((j) => new TextEncoder().encode(j)),
          fc
            .tuple(fc.nat(), badValue)
            .map(([pick, value]) =>
              new TextEncoder().encode(JSON.stringify(mutate({ ...valid, events: [trade] }, pick, value))),
            ),
        ),
        (bytes) => {
          try {
            const r = decodeRecord(bytes);
            // Accepted: then it is a record of the documented shape.
            expect(r.v).toBe(1);
            expect(Array.isArray(r.events)).toBe(true);
          } catch (err) {
            expect(err).toBeInstanceOf(RecordFormatError);
            expect(err).toBeInstanceOf(QuoteWatchError);
            refused.n++;
          }
        },
      ),
      { numRuns: 500 },
    );
    expect(refused.n).toBeGreaterThan(200);
  });

  it('a NaN or negative price inside an otherwise valid record is refused, naming the field', () => {
    for (const price of ['NaN', '-1']) {
      const bytes = new TextEncoder().encode(JSON.stringify({ ...valid, events: [{ ...trade, price }] }));
      expect(() => decodeRecord(bytes)).toThrow(RecordFormatError);
      expect(() => decodeRecord(bytes)).toThrow(/price/);
    }
    expect(
      decodeRecord(new TextEncoder().encode(JSON.stringify({ ...valid, events: [trade] }))).events,
    ).toHaveLength(1);
  });
});
