import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BookError, OrderBook } from '../src/book/book.js';
import { NOT_EXACT, parseUnits } from '../src/book/units.js';
import { toUnits } from '../src/marketdata/decimal.js';
import type { Level, Side } from '../src/marketdata/events.js';

/**
 * The obvious implementation the book must agree with: a Map per side keyed by exact BigInt units, sorted on
 * every read. BigInt, so prices beyond 2^53 units are compared exactly, not as doubles.
 */
class ReferenceBook {
  bids = new Map<bigint, bigint>();
  asks = new Map<bigint, bigint>();
  snapshot(bids: [bigint, bigint][], asks: [bigint, bigint][]) {
    this.bids = new Map(bids.filter(([, s]) => s > 0n));
    this.asks = new Map(asks.filter(([, s]) => s > 0n));
  }
  change(side: Side, price: bigint, size: bigint) {
    const m = side === 'bid' ? this.bids : this.asks;
    if (size === 0n) m.delete(price);
    else m.set(price, size);
  }
  levels(side: Side): [bigint, bigint][] {
    const entries = [...(side === 'bid' ? this.bids : this.asks).entries()];
    const up = (x: bigint, y: bigint) => (x < y ? -1 : x > y ? 1 : 0);
    return entries.sort((a, b) => (side === 'bid' ? up(b[0], a[0]) : up(a[0], b[0])));
  }
}

/** Every level of a side through priceAt/sizeAt, as exact BigInts (a double converts to BigInt exactly). */
function levels(book: OrderBook, side: Side): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (let i = 0; i < book.depth(side); i++)
    out.push([BigInt(book.priceAt(side, i)), BigInt(book.sizeAt(side, i))]);
  return out;
}

const ONE = 100_000_000n;
/** Exact decimal string of BigInt units, optionally padded as exchanges send it ("50000.10000000"). */
function str(units: bigint, padded = false): string {
  const frac = String(units % ONE).padStart(8, '0');
  const trimmed = frac.replace(/0+$/, '');
  if (padded) return `${units / ONE}.${frac}000`;
  return trimmed ? `${units / ONE}.${trimmed}` : String(units / ONE);
}

const CENT = 1_000_000n; // 0.01 in 1e-8 units: one price tick
const MID_CENTS = 5_000_000; // 50,000.00

// Mostly near the best, sometimes 800k..1.5M ticks away, and sometimes asks beyond 2^53 units (90 million
// and up, like the capture's ask at 123,816,365): deep levels must sort, splice and print exactly too.
const tickOffset = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 30 }) },
  { weight: 2, arbitrary: fc.integer({ min: 800_000, max: 1_500_000 }) },
);
const farAskCents = fc.integer({ min: 9_000_000_000, max: 20_000_000_000 }); // 90M..200M USD
const sizeUnits = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0n) },
  { weight: 7, arbitrary: fc.bigInt({ min: 1n, max: 5_000_000_000n }) },
  // Whole-coin sizes past 2^53 units (tiny-priced coins): exact as doubles.
  { weight: 1, arbitrary: fc.bigInt({ min: 100_000_000n, max: 10_000_000_000n }).map((c) => c * ONE) },
);
const level = (side: Side) =>
  fc.record({
    side: fc.constant(side),
    price: (side === 'bid'
      ? tickOffset.map((o) => MID_CENTS - 1 - o)
      : fc.oneof(
          { weight: 10, arbitrary: tickOffset.map((o) => MID_CENTS + 1 + o) },
          { weight: 1, arbitrary: farAskCents },
        )
    ).map((cents) => BigInt(cents) * CENT),
    size: sizeUnits,
    // Exchanges send "50000.10000000": the book must treat it as "50000.1".
    padded: fc.boolean(),
  });
const anySide = fc.oneof(level('bid'), level('ask'));
type GenLevel = { side: Side; price: bigint; size: bigint; padded: boolean };

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
  // The same level again, so updates and removals of existing levels are common.
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('repeat' as const), size: sizeUnits, back: fc.nat() }),
  },
);

describe('OrderBook against a Map + sort reference', () => {
  it('agrees on every level, the top-N reads and the skip count after every snapshot and update', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 200 }), (ops) => {
        const book = new OrderBook('BTC-USD');
        const ref = new ReferenceBook();
        const seen: GenLevel[] = [];
        for (const o of ops) {
          if (o.kind === 'snapshot') {
            // A snapshot lists each price once; keep the last of any duplicates as the reference does.
            const dedup = (side: Side) => [
              ...new Map(o.levels.filter((l) => l.side === side).map((l) => [l.price, l] as const)).values(),
            ];
            const bids = dedup('bid').filter((l) => l.size > 0n);
            const asks = dedup('ask').filter((l) => l.size > 0n);
            book.applySnapshot(bids.map(toLevel), asks.map(toLevel));
            ref.snapshot(
              bids.map((l) => [l.price, l.size]),
              asks.map((l) => [l.price, l.size]),
            );
            seen.push(...bids, ...asks);
          } else {
            const l: GenLevel | undefined =
              o.kind === 'change'
                ? o.level
                : seen.length
                  ? { ...seen[o.back % seen.length]!, size: o.size }
                  : undefined;
            if (!l) continue;
            const [p, s] = toLevel(l);
            book.applyChange(l.side, p, s);
            ref.change(l.side, l.price, l.size);
            seen.push(l);
          }
          const rb = ref.levels('bid');
          const ra = ref.levels('ask');
          expect(levels(book, 'bid')).toEqual(rb);
          expect(levels(book, 'ask')).toEqual(ra);
          expect(book.bestBid()).toBe(rb[0] ? Number(rb[0][0]) : Number.NaN);
          expect(book.bestAsk()).toBe(ra[0] ? Number(ra[0][0]) : Number.NaN);
          for (const side of ['bid', 'ask'] as const) {
            const r = side === 'bid' ? rb : ra;
            expect(book.top(side, 3)).toEqual(r.slice(0, 3).map(([p, s]) => [str(p), str(s)]));
            expect(book.level(side, 2)).toEqual(r[2] ? [Number(r[2][0]), Number(r[2][1])] : undefined);
          }
          const crossed = rb.length > 0 && ra.length > 0 && rb[0]![0] >= ra[0]![0];
          expect(book.isCrossed()).toBe(crossed);
          expect(book.skippedLevels).toBe(0); // every generated value is exact as a double
        }
      }),
      { numRuns: 150 },
    );
  });

  it('finds a level on every page, the pages next to the best and the far ones alike', () => {
    // Sequential levels fill many pages; then every level is resized, every third removed, a gap refilled.
    // set() walks down from the best page for a few pages and binary-searches beyond: both paths are hit.
    const book = new OrderBook('BTC-USD');
    const ref = new ReferenceBook();
    const apply = (side: Side, price: bigint, size: bigint) => {
      book.applyChange(side, str(price), str(size));
      ref.change(side, price, size);
    };
    for (let t = 0n; t < 3_000n; t++) {
      apply('bid', (100_000n - t) * CENT, ONE);
      apply('ask', (100_001n + t) * CENT, ONE);
    }
    for (let t = 0n; t < 3_000n; t++) {
      const size = t % 3n === 0n ? 0n : t + 2n;
      apply('bid', (100_000n - t) * CENT, size);
      apply('ask', (100_001n + t) * CENT, size);
    }
    for (let t = 0n; t < 3_000n; t += 7n) apply('bid', (100_000n - t) * CENT, 5n);
    expect(levels(book, 'bid')).toEqual(ref.levels('bid'));
    expect(levels(book, 'ask')).toEqual(ref.levels('ask'));
  });

  it('stays exact on large books whose pages split, drain and merge', () => {
    const change = (zeroWeight: number) =>
      fc.tuple(
        fc.boolean(),
        fc.integer({ min: 0, max: 3_000 }),
        fc.oneof(
          { weight: zeroWeight, arbitrary: fc.constant(0) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
        ),
      );
    // Fill (pages split), drain most levels (pages merge and drop), refill.
    const phases = fc.tuple(
      fc.array(change(0), { minLength: 3_000, maxLength: 5_000 }),
      fc.array(change(20), { minLength: 6_000, maxLength: 8_000 }),
      fc.array(change(1), { minLength: 1_000, maxLength: 3_000 }),
    );
    fc.assert(
      fc.property(phases, (ps) => {
        const book = new OrderBook('ETH-USD');
        const ref = new ReferenceBook();
        for (const phase of ps) {
          for (const [bid, tick, size] of phase) {
            const side = bid ? 'bid' : 'ask';
            const price = BigInt(bid ? 300_000 - tick : 300_001 + tick) * CENT;
            book.applyChange(side, str(price), String(size));
            ref.change(side, price, BigInt(size) * ONE);
          }
          expect(levels(book, 'bid')).toEqual(ref.levels('bid'));
          expect(levels(book, 'ask')).toEqual(ref.levels('ask'));
        }
      }),
      // Shrinking 10k-change runs would take minutes; the seed and path in the failure reproduce it.
      { numRuns: 10, endOnFailure: true },
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
    expect(() => book.applyChange('ask', '101', '-1')).toThrow(BookError);
    expect(book.depth('bid')).toBe(1);
    expect(() => book.applySnapshot([['abc', '1']], [])).toThrow(BookError);
    expect(book.depth('bid') + book.depth('ask')).toBe(0);
  });

  it('keeps levels beyond 2^53 units exactly, as the real capture has them', () => {
    const book = new OrderBook('BTC-USD');
    book.applySnapshot(
      [['65000', '1']],
      [
        ['65001', '1'],
        ['123816365', '0.5'],
        ['123816365.37', '2'],
      ],
    );
    expect(book.depth('ask')).toBe(3);
    expect(book.top('ask', 3)).toEqual([
      ['65001', '1'],
      ['123816365', '0.5'],
      ['123816365.37', '2'],
    ]);
    expect(book.priceAt('ask', 1)).toBe(12_381_636_500_000_000);
    book.applyChange('ask', '123816365.00000000', '0'); // its removal matches it exactly
    expect(book.top('ask', 3)).toEqual([
      ['65001', '1'],
      ['123816365.37', '2'],
    ]);
    book.applyChange('bid', '64999', '500000000'); // 5e8 coins: 5e16 units, exact as a double
    expect(book.top('bid', 2)).toEqual([
      ['65000', '1'],
      ['64999', '500000000'],
    ]);
    expect(book.skippedLevels).toBe(0);
  });

  it('skips a price it cannot hold exactly and rounds such a size, counting both', () => {
    const book = new OrderBook('BTC-USD');
    book.applySnapshot([['65000', '1']], [['65001', '1']]);
    book.applyChange('ask', '123816365.00000001', '1'); // odd unit count above 2^53: no double holds it
    expect(book.depth('ask')).toBe(1);
    book.applyChange('bid', '64999', '90071992.54740993');
    expect(book.sizeAt('bid', 1)).toBe(9_007_199_254_740_992); // the nearest double
    expect(book.skippedLevels).toBe(2);
  });

  it('accepts units beyond 2^53 through setUnits and rejects non-integers', () => {
    const book = new OrderBook('BTC-USD');
    book.setUnits('ask', 12_381_636_500_000_000, 50_000_000);
    expect(book.top('ask', 1)).toEqual([['123816365', '0.5']]);
    expect(() => book.setUnits('bid', 1.5, 1)).toThrow(BookError);
    expect(() => book.setUnits('bid', 1, -1)).toThrow(BookError);
  });
});

describe('parseUnits', () => {
  const digits = (min: number, max: number) =>
    fc.array(fc.constantFrom(...'0123456789'), { minLength: min, maxLength: max }).map((d) => d.join(''));

  it('equals exact BigInt arithmetic on well-formed decimals, huge ones included', () => {
    fc.assert(
      fc.property(digits(1, 20), fc.option(digits(0, 12)), (int, frac) => {
        const s = frac === null ? int : `${int}.${frac}`;
        const significant = (frac ?? '').replace(/0+$/, '');
        const got = parseUnits(s);
        if (significant.length > 8) {
          expect(got).toBeNaN();
          return;
        }
        const exact = BigInt(int) * ONE + BigInt(significant.padEnd(8, '0'));
        if (BigInt(Number(exact)) === exact) expect(got).toBe(Number(exact));
        else expect(got).toBe(NOT_EXACT);
        if (exact <= BigInt(Number.MAX_SAFE_INTEGER)) expect(got).toBe(toUnits(s));
      }),
      { numRuns: 2_000 },
    );
  });

  it('rejects what toUnits rejects', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789.e-+ x'), maxLength: 12 }), (s) => {
        let valid = true;
        try {
          toUnits(s);
        } catch {
          valid = /^\d+(\.\d*)?$/.test(s); // well-formed but too large for toUnits
        }
        expect(Number.isNaN(parseUnits(s))).toBe(!valid);
      }),
      { numRuns: 2_000 },
    );
  });
});
