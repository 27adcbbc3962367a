/**
 * Full-depth L2 order book of one product, exact: prices and sizes are integer 1e-8 units (toUnits), so
 * levels are matched by integer equality, never float equality.
 *
 * Each side is a pair of parallel sorted arrays with the BEST price at the END: most updates land near the
 * best, so a splice there moves few elements. Asks are stored under their negated price so both sides sort
 * ascending and share one binary search.
 */
import { fromUnits, toUnits, UNITS_PER_ONE } from '../marketdata/decimal.js';
import type { Level, Side } from '../marketdata/events.js';

export class BookError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BookError';
  }
}

/** Largest whole value exact in 1e-8 units within a double (about 90 million). */
const MAX_WHOLE = Math.floor(Number.MAX_SAFE_INTEGER / UNITS_PER_ONE);

/**
 * Exact units, or undefined for a well-formed value too large to hold exactly. Real books carry such prices
 * (a BTC-USD ask at 123,816,365 USD): far from any quote that matters, so the book skips those levels
 * (adds and removals alike) and counts them. Malformed values still throw.
 */
function unitsOrSkip(value: string): number | undefined {
  try {
    return toUnits(value);
  } catch (err) {
    const m = /^(\d+)(?:\.\d{0,8}0*)?$/.exec(value);
    if (m && Number(m[1]) >= MAX_WHOLE) return undefined;
    throw err;
  }
}

class BookSide {
  /** Ascending sort keys: price for bids, -price for asks; best = last. */
  readonly keys: number[] = [];
  readonly sizes: number[] = [];

  constructor(private readonly sign: 1 | -1) {}

  /** Index of `key`, or -(insertion point) - 1 when absent. */
  private find(key: number): number {
    let lo = 0;
    let hi = this.keys.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const k = this.keys[mid]!;
      if (k < key) lo = mid + 1;
      else if (k > key) hi = mid - 1;
      else return mid;
    }
    return -lo - 1;
  }

  set(price: number, size: number): void {
    const key = this.sign * price;
    const i = this.find(key);
    if (i >= 0) {
      if (size === 0) {
        this.keys.splice(i, 1);
        this.sizes.splice(i, 1);
      } else {
        this.sizes[i] = size;
      }
    } else if (size !== 0) {
      const at = -i - 1;
      this.keys.splice(at, 0, key);
      this.sizes.splice(at, 0, size);
    }
  }

  get depth(): number {
    return this.keys.length;
  }

  /** Price of the i-th level from the best (0 = best), or NaN past the end. */
  price(i: number): number {
    const k = this.keys[this.keys.length - 1 - i];
    return k === undefined ? Number.NaN : this.sign * k;
  }

  size(i: number): number {
    return this.sizes[this.sizes.length - 1 - i] ?? Number.NaN;
  }

  clear(): void {
    this.keys.length = 0;
    this.sizes.length = 0;
  }
}

export class OrderBook {
  private readonly bids = new BookSide(1);
  private readonly asks = new BookSide(-1);
  /** Level updates skipped or clamped because a price or size is beyond the exact range (see unitsOrSkip). */
  skippedLevels = 0;

  constructor(readonly product: string) {}

  private side(side: Side): BookSide {
    return side === 'bid' ? this.bids : this.asks;
  }

  /** Replaces the whole book. Throws BookError (book left empty) on a malformed level. */
  applySnapshot(bids: readonly Level[], asks: readonly Level[]): void {
    this.clear();
    try {
      for (const [p, s] of bids) this.setChecked(this.bids, p, s);
      for (const [p, s] of asks) this.setChecked(this.asks, p, s);
    } catch (cause) {
      this.clear();
      throw new BookError(`bad level in snapshot of ${this.product}`, { cause });
    }
  }

  private setChecked(side: BookSide, price: string, size: string): void {
    const p = unitsOrSkip(price);
    const s = unitsOrSkip(size);
    if (p === undefined || s === undefined) this.skippedLevels++;
    // A size beyond ~90 million (possible for tiny-priced coins) is clamped so the level stays in the book.
    if (p !== undefined) side.set(p, s ?? Number.MAX_SAFE_INTEGER);
  }

  /** Sets the absolute size at a level; size "0" removes it. */
  applyChange(side: Side, price: string, size: string): void {
    try {
      this.setChecked(this.side(side), price, size);
    } catch (cause) {
      throw new BookError(`bad ${side} level ${price} x ${size} for ${this.product}`, { cause });
    }
  }

  /** Same as applyChange in units (for callers that already hold exact integers). */
  setUnits(side: Side, price: number, size: number): void {
    if (!Number.isSafeInteger(price) || !Number.isSafeInteger(size) || price < 0 || size < 0) {
      throw new BookError(`bad ${side} level ${price} x ${size} units for ${this.product}`);
    }
    this.side(side).set(price, size);
  }

  /** Best bid price in units, NaN when the side is empty. */
  bestBid(): number {
    return this.bids.price(0);
  }

  bestAsk(): number {
    return this.asks.price(0);
  }

  depth(side: Side): number {
    return this.side(side).depth;
  }

  /** Price (units) of level i from the best, NaN past the end. Allocation-free. */
  priceAt(side: Side, i: number): number {
    return this.side(side).price(i);
  }

  /** Size (units) of level i from the best, NaN past the end. Allocation-free. */
  sizeAt(side: Side, i: number): number {
    return this.side(side).size(i);
  }

  /** Level i from the best as [price, size] units, or undefined past the end. */
  level(side: Side, i: number): readonly [price: number, size: number] | undefined {
    const s = this.side(side);
    return i < s.depth ? [s.price(i), s.size(i)] : undefined;
  }

  /** Top n levels of a side as normalized decimal strings, best first. */
  top(side: Side, n: number): [string, string][] {
    const s = this.side(side);
    const out: [string, string][] = [];
    for (let i = 0; i < Math.min(n, s.depth); i++) out.push([fromUnits(s.price(i)), fromUnits(s.size(i))]);
    return out;
  }

  /** Both sides non-empty and best bid below best ask: the state features can be computed from. */
  isValid(): boolean {
    return this.bids.depth > 0 && this.asks.depth > 0 && !this.isCrossed();
  }

  /** Best bid >= best ask (a locked book counts as crossed: it cannot rest on an exchange). */
  isCrossed(): boolean {
    return this.bids.depth > 0 && this.asks.depth > 0 && this.bids.price(0) >= this.asks.price(0);
  }

  clear(): void {
    this.bids.clear();
    this.asks.clear();
  }
}
