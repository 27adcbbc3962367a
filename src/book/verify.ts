/**
 * Our book against the exchange's own (#17): the levels of a REST book compared with an OrderBook, within the
 * depth the exchange returned, leaving out the levels that changed too close to the REST book's time to tell.
 *
 * Depth: the exchange returns the best `depth` levels of a side. Only prices from its best to its worst returned
 * level are compared (a level of ours beyond that is not in its answer, not missing from it); a side with fewer
 * than `depth` levels is the exchange's whole side, so all of ours is compared.
 *
 * In-flight tolerance: the REST book is the exchange's state at its time T, our book is at some other point of the
 * stream, and the two clocks agree only to within the feed's batching and latency. A level whose last change (as
 * our book saw it) lies at or after T − skew is "in flight" and not compared at this check; the caller knows when
 * each level last changed (src/worker/verification.ts) and passes it as `inFlight`. Every other level holds the
 * same value at T in both books, or one of them is wrong.
 */
import { QuoteWatchError } from '../errors.js';
import type { Level, Side } from '../marketdata/events.js';
import type { OrderBook } from './book.js';
import { formatUnits, parseUnits } from './units.js';

export interface LevelDifference {
  side: Side;
  price: string;
  /** Our size ("0": we have no such level). */
  ours: string;
  /** The exchange's size ("0": it has no such level). */
  exchange: string;
}

export interface BookComparison {
  /** Levels (prices on either side) compared. */
  compared: number;
  /** Levels that differ but changed inside the skew window: not judged at this check. */
  inFlight: number;
  differences: LevelDifference[];
  /** Per side, the worst price compared: the exchange's last returned level (absent: the whole side was). */
  through: { bid?: string; ask?: string };
  /** The levels (side, price in units) compared and found equal. */
  equal: [Side, number][];
}

/** A REST book that cannot be compared (unparsable or unsorted levels): the check is unavailable, not a mismatch. */
export class ExchangeBookError extends QuoteWatchError {}

/**
 * Compares `book` with the exchange's `bids`/`asks` (best first, `depth` asked per side). `inFlight(side, price)`
 * says whether a level (price in units) changed inside the skew window.
 */
export function compareBooks(
  book: OrderBook,
  exchange: { bids: readonly Level[]; asks: readonly Level[] },
  depth: number,
  inFlight: (side: Side, priceUnits: number) => boolean,
): BookComparison {
  const out: BookComparison = { compared: 0, inFlight: 0, differences: [], through: {}, equal: [] };
  compareSide(book, 'bid', exchange.bids, depth, inFlight, out);
  compareSide(book, 'ask', exchange.asks, depth, inFlight, out);
  return out;
}

function compareSide(
  book: OrderBook,
  side: Side,
  levels: readonly Level[],
  depth: number,
  inFlight: (side: Side, priceUnits: number) => boolean,
  out: BookComparison,
): void {
  // Bids best first are descending prices, asks ascending: `better(a, b)` says a comes before b.
  const better = side === 'bid' ? (a: number, b: number) => a > b : (a: number, b: number) => a < b;
  const theirs = new Map<number, number>();
  let worst = Number.NaN;
  for (const [p, s] of levels) {
    const price = parseUnits(p);
    const size = parseUnits(s);
    if (!(price >= 0 && size >= 0))
      throw new ExchangeBookError(`exchange ${side} level ${p} x ${s} is not a decimal`);
    if (!Number.isNaN(worst) && !better(worst, price))
      throw new ExchangeBookError(`exchange ${side}s are not sorted best first at ${p}`);
    theirs.set(price, size);
    worst = price;
  }
  const whole = levels.length < depth;
  if (!whole) out.through[side] = formatUnits(worst);
  const ours = new Map<number, number>();
  for (let i = 0; i < book.depth(side); i++) {
    const price = book.priceAt(side, i);
    if (!whole && better(worst, price)) break;
    ours.set(price, book.sizeAt(side, i));
  }
  for (const price of new Set([...theirs.keys(), ...ours.keys()])) {
    const a = ours.get(price) ?? 0;
    const b = theirs.get(price) ?? 0;
    if (a === b) {
      out.compared++;
      out.equal.push([side, price]);
      continue;
    }
    if (inFlight(side, price)) {
      out.inFlight++;
      continue;
    }
    out.compared++;
    out.differences.push({ side, price: formatUnits(price), ours: formatUnits(a), exchange: formatUnits(b) });
  }
}
