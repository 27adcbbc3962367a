import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BookError, OrderBook } from '../src/book/book.js';
import { fromUnits } from '../src/marketdata/decimal.js';
import type { Level, Side } from '../src/marketdata/events.js';

/** The obvious implementation the book must agree with: a Map per side, sorted on every read. */
class ReferenceBook {
  bids = new Map<number, number>();
  asks = new Map<number, number>();
  snapshot(bids: [number, number][], asks: [number, number][]) {
    this.bids = new Map(bids.filter(([, s]) => s > 0));
    this.asks = new Map(asks.filter(([, s]) => s > 0));
  }
  change(side: Side, price: number, size: number) {
    const m = side === 'bid' ? this.bids : this.asks;
    if (size === 0) m.delete(price);
    else m.set(price, size);
  }
  levels(side: Side): [number, number][] {
    const entries = [...(side === 'bid' ? this.bids : this.asks).entries()];
    return entries.sort((a, b) => (side === 'bid' ? b[0] - a[0] : a[0] - b[0]));
  }
}

function levels(book: OrderBook, side: Side): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < book.depth(side); i++) out.push([book.priceAt(side, i), book.sizeAt(side, i)]);
  return out;
}

const CENT = 1_000_000; // 0.01 in 1e-8 units: one price tick
const MID_CENTS = 5_000_000; // 50,000.00

// Mostly near the best, sometimes 800k..1.5M ticks away: deep levels must sort and splice exactly too.
const tickOffset = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 30 }) },
  { weight: 2, arbitrary: fc.integer({ min: 800_000, max: 1_500_000 }) },
);
const sizeUnits = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 7, arbitrary: fc.integer({ min: 1, max: 5_000_000_000 }) },
);
const level = (side: Side) =>
  fc.record({
    side: fc.constant(side),
    price: tickOffset.map((o) => (side === 'bid' ? MID_CENTS - 1 - o : MID_CENTS + 1 + o) * CENT),
    size: sizeUnits,
    // Exchanges send "50000.10000000": the book must treat it as "50000.1".
    padded: fc.boolean(),
  });
const anySide = fc.oneof(level('bid'), level('ask'));
type GenLevel = { side: Side; price: number; size: number; padded: boolean };

const str = (units: number, padded: boolean) => {
  const s = fromUnits(units);
  return padded ? (s.includes('.') ? `${s}000` : `${s}.00000000`) : s;
};
const toLevel = (l: GenLevel): Level => [str(l.price, l.padded), str(l.size, l.padded)];

const op = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('snapshot' as const),
      levels: fc.array(anySide, { maxLength: 60 }),
    }),
  },
  { weight: 20, arbitrary: fc.record({ kind: fc.constant('change' as const), level: anySide }) },
);

describe('OrderBook against a Map + sort reference', () => {
  it('agrees on every level after every snapshot and update', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 200 }), (ops) => {
        const book = new OrderBook('BTC-USD');
        const ref = new ReferenceBook();
        for (const o of ops) {
          if (o.kind === 'snapshot') {
            // A snapshot lists each price once; keep the last of any duplicates as the reference does.
            const dedup = (side: Side) => [
              ...new Map(o.levels.filter((l) => l.side === side).map((l) => [l.price, l] as const)).values(),
            ];
            const bids = dedup('bid').filter((l) => l.size > 0);
            const asks = dedup('ask').filter((l) => l.size > 0);
            book.applySnapshot(bids.map(toLevel), asks.map(toLevel));
            ref.snapshot(
              bids.map((l) => [l.price, l.size]),
              asks.map((l) => [l.price, l.size]),
            );
          } else {
            const [p, s] = toLevel(o.level);
            book.applyChange(o.level.side, p, s);
            ref.change(o.level.side, o.level.price, o.level.size);
          }
          const rb = ref.levels('bid');
          const ra = ref.levels('ask');
          expect(levels(book, 'bid')).toEqual(rb);
          expect(levels(book, 'ask')).toEqual(ra);
          expect(book.bestBid()).toBe(rb[0]?.[0] ?? Number.NaN);
          expect(book.bestAsk()).toBe(ra[0]?.[0] ?? Number.NaN);
          const crossed = rb.length > 0 && ra.length > 0 && rb[0]![0] >= ra[0]![0];
          expect(book.isCrossed()).toBe(crossed);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('OrderBook', () => {
  it('reads the top levels best first as normalized strings', () => {
    const book = new OrderBook('ETH-USD');
    book.applySnapshot(
      [
        ['100.10', '1.5'],
        ['100.30', '2'],
        ['100.20', '0.25'],
      ],
      [
        ['100.50', '3'],
        ['100.40', '1.000'],
      ],
    );
    expect(book.top('bid', 2)).toEqual([
      ['100.3', '2'],
      ['100.2', '0.25'],
    ]);
    expect(book.top('ask', 5)).toEqual([
      ['100.4', '1'],
      ['100.5', '3'],
    ]);
    expect(book.level('bid', 2)).toEqual([10_010_000_000, 150_000_000]);
    expect(book.level('bid', 3)).toBeUndefined();
    expect(book.isValid()).toBe(true);
    book.applyChange('bid', '100.45', '1');
    expect(book.isCrossed()).toBe(true);
    expect(book.isValid()).toBe(false);
  });

  it('rejects a malformed level with BookError naming the product, leaving the book unchanged', () => {
    const book = new OrderBook('ETH-USD');
    book.applySnapshot([['100', '1']], [['101', '1']]);
    expect(() => book.applyChange('bid', '100.5e3', '1')).toThrow(BookError);
    expect(() => book.applyChange('bid', '100.5e3', '1')).toThrow(/ETH-USD/);
    expect(book.depth('bid')).toBe(1);
    expect(() => book.applySnapshot([['abc', '1']], [])).toThrow(BookError);
    expect(book.depth('bid') + book.depth('ask')).toBe(0);
  });

  it('skips levels priced beyond the exact range and clamps huge sizes, counting both', () => {
    const book = new OrderBook('BTC-USD');
    book.applySnapshot(
      [['65000', '1']],
      [
        ['65001', '1'],
        ['123816365', '0.5'],
      ],
    );
    expect(book.depth('ask')).toBe(1);
    expect(book.skippedLevels).toBe(1);
    book.applyChange('ask', '123816365', '0'); // its removal is skipped the same way
    book.applyChange('bid', '64999', '500000000'); // 5e8 coins: beyond 2^53 units
    expect(book.sizeAt('bid', 1)).toBe(Number.MAX_SAFE_INTEGER);
    book.applyChange('bid', '64999', '0');
    expect(book.depth('bid')).toBe(1);
    expect(book.skippedLevels).toBe(3);
  });
});
