import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OrderBook } from '../src/book/book.js';
import { formatUnits, parseUnits } from '../src/book/units.js';
import { compareBooks, ExchangeBookError } from '../src/book/verify.js';
import type { Level } from '../src/marketdata/events.js';

const none = () => false;

function book(bids: Level[], asks: Level[]): OrderBook {
  const b = new OrderBook('BTC-USD');
  b.applySnapshot(bids, asks);
  return b;
}

const BIDS: Level[] = [
  ['100', '1'],
  ['99.5', '2'],
  ['99', '3'],
  ['98', '4'],
];
const ASKS: Level[] = [
  ['101', '1.5'],
  ['101.5', '2.5'],
  ['102', '3.5'],
];

describe('compareBooks', () => {
  it('finds nothing when the exchange holds our book (prices normalized)', () => {
    const cmp = compareBooks(book(BIDS, ASKS), { bids: BIDS, asks: ASKS }, 50, none);
    expect(cmp).toMatchObject({ compared: 7, inFlight: 0, differences: [], through: {} });
    expect(cmp.equal).toHaveLength(7);
  });

  it('compares only within the depth the exchange returned', () => {
    // depth 2: the exchange's worst returned bid is 99.5 and ask 101.5; our deeper levels are not compared,
    // even where they differ from what the exchange would have said.
    const ours = book([...BIDS.slice(0, 2), ['99', '7']], [...ASKS.slice(0, 2), ['102', '9']]);
    const cmp = compareBooks(ours, { bids: BIDS.slice(0, 2), asks: ASKS.slice(0, 2) }, 2, none);
    expect(cmp.differences).toEqual([]);
    expect(cmp.compared).toBe(4);
    expect(cmp.through).toEqual({ bid: '99.5', ask: '101.5' });
  });

  it('treats a side shorter than the depth as the whole side', () => {
    const ours = book([...BIDS, ['50', '1']], ASKS);
    const cmp = compareBooks(ours, { bids: BIDS, asks: ASKS }, 10, none);
    expect(cmp.differences).toEqual([{ side: 'bid', price: '50', ours: '1', exchange: '0' }]);
  });

  it('reports a differing size, a level only we have and one only the exchange has', () => {
    const ours = book(
      [
        ['100', '1'],
        ['99.5', '5'],
        ['98', '4'],
      ],
      [...ASKS, ['101.25', '1']],
    );
    const cmp = compareBooks(ours, { bids: BIDS, asks: ASKS }, 50, none);
    expect(cmp.differences).toEqual(
      expect.arrayContaining([
        { side: 'bid', price: '99.5', ours: '5', exchange: '2' },
        { side: 'bid', price: '99', ours: '0', exchange: '3' },
        { side: 'ask', price: '101.25', ours: '1', exchange: '0' },
      ]),
    );
    expect(cmp.differences).toHaveLength(3);
  });

  it('leaves out a differing level that changed inside the skew window', () => {
    const ours = book([['100', '9'], ...BIDS.slice(1)], ASKS);
    const inFlight = (side: string, price: number) => side === 'bid' && price === parseUnits('100');
    const cmp = compareBooks(ours, { bids: BIDS, asks: ASKS }, 50, inFlight);
    expect(cmp.differences).toEqual([]);
    expect(cmp.inFlight).toBe(1);
  });

  it('refuses an exchange book it cannot read rather than calling it a mismatch', () => {
    const ours = book(BIDS, ASKS);
    expect(() => compareBooks(ours, { bids: [['100', 'x']], asks: ASKS }, 50, none)).toThrow(
      ExchangeBookError,
    );
    expect(() =>
      compareBooks(
        ours,
        {
          bids: [
            ['99', '1'],
            ['100', '1'],
          ],
          asks: ASKS,
        },
        50,
        none,
      ),
    ).toThrow(/not sorted/);
  });

  it('property: one corrupted level is found exactly, unless it is in flight or beyond the depth', () => {
    const levels = fc.uniqueArray(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 40 });
    fc.assert(
      fc.property(
        levels,
        levels,
        fc.nat(),
        fc.integer({ min: 1, max: 60 }),
        fc.boolean(),
        (b, a, pick, depth, fly) => {
          // Bids below 500, asks above: an uncrossed book of whole-number prices with sizes 1..n.
          const bids: Level[] = [...b].sort((x, y) => y - x).map((p, i) => [String(p), String(i + 1)]);
          const asks: Level[] = [...a].sort((x, y) => x - y).map((p, i) => [String(p + 500), String(i + 1)]);
          const exchange = { bids: bids.slice(0, depth), asks: asks.slice(0, depth) };
          const all = [...bids.map((l) => ['bid', l] as const), ...asks.map((l) => ['ask', l] as const)];
          const [side, [price, size]] = all[pick % all.length]!;
          const ours = book(bids, asks);
          ours.applyChange(side, price, formatUnits(parseUnits(size) + 1e8));
          const inDepth = (side === 'bid' ? bids : asks).findIndex((l) => l[0] === price) < depth;
          const cmp = compareBooks(
            ours,
            exchange,
            depth,
            (s, p) => fly && s === side && p === parseUnits(price),
          );
          if (!inDepth || fly) expect(cmp.differences).toEqual([]);
          else expect(cmp.differences.map((d) => [d.side, d.price])).toEqual([[side, price]]);
        },
      ),
    );
  });
});
