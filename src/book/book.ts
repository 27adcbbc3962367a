/**
 * Full-depth L2 order book of one product, exact: prices and sizes are integer 1e-8 units, so levels are
 * matched by integer equality, never float equality.
 *
 * Each side is a PagedSide (sorted pages of Float64Arrays, best at the end). Asks are stored under their
 * negated price so both sides sort ascending and share one implementation. Decimal strings are converted
 * by parseUnits, a one-pass parser: it is on every update's path.
 */

import { QuoteWatchError } from '../errors.js';
import { DecimalError } from '../marketdata/decimal.js';
import type { Level, Side } from '../marketdata/events.js';
import { PagedSide } from './side.js';
import { formatUnits, NOT_EXACT, nearestUnits, parseUnits } from './units.js';

export class BookError extends QuoteWatchError {}

export class OrderBook {
  /** Keys are prices. */
  private readonly bids = new PagedSide();
  /** Keys are negated prices, so the best ask is the largest key too. */
  private readonly asks = new PagedSide();
  /**
   * Level updates that could not be held exactly: a price whose unit count is not a double (a value above
   * ~90 million with sub-grid decimals, see units.ts) is skipped, adds and removals alike; a size in that
   * case is kept rounded to the nearest double. No Coinbase product has needed either so far; the count
   * makes it visible if one does.
   */
  skippedLevels = 0;

  constructor(readonly product: string) {}

  private side(side: Side): PagedSide {
    return side === 'bid' ? this.bids : this.asks;
  }

  /** Replaces the whole book. Throws BookError (book left empty) on a malformed level. */
  applySnapshot(bids: readonly Level[], asks: readonly Level[]): void {
    this.clear();
    try {
      for (const [p, s] of bids) this.setChecked(this.bids, 1, p, s);
      for (const [p, s] of asks) this.setChecked(this.asks, -1, p, s);
    } catch (cause) {
      this.clear();
      throw new BookError(`bad level in snapshot of ${this.product}`, { cause });
    }
  }

  private setChecked(side: PagedSide, sign: 1 | -1, price: string, size: string): void {
    const p = parseUnits(price);
    // A quarter of real updates are removals, sent as the normalized "0": skip parsing those (any other
    // spelling of zero still parses to 0).
    let s = size === '0' ? 0 : parseUnits(size);
    // One branch covers the common case; malformed (NaN) and inexact (< 0) values are sorted out after it.
    if (!(p >= 0 && s >= 0)) {
      if (Number.isNaN(p)) throw new DecimalError(price);
      if (Number.isNaN(s)) throw new DecimalError(size);
      this.skippedLevels++;
      if (p === NOT_EXACT) return;
      s = nearestUnits(size);
    }
    side.set(sign * p, s);
  }

  /** Sets the absolute size at a level; size "0" removes it. */
  applyChange(side: Side, price: string, size: string): void {
    try {
      if (side === 'bid') this.setChecked(this.bids, 1, price, size);
      else this.setChecked(this.asks, -1, price, size);
    } catch (cause) {
      throw new BookError(`bad ${side} level ${price} x ${size} for ${this.product}`, { cause });
    }
  }

  /** Same as applyChange in units (for callers that already hold exact integers). */
  setUnits(side: Side, price: number, size: number): void {
    if (!Number.isInteger(price) || !Number.isInteger(size) || price < 0 || size < 0) {
      throw new BookError(`bad ${side} level ${price} x ${size} units for ${this.product}`);
    }
    if (side === 'bid') this.bids.set(price, size);
    else this.asks.set(-price, size);
  }

  /** Best bid price in units, NaN when the side is empty. */
  bestBid(): number {
    return this.bids.keyAt(0);
  }

  bestAsk(): number {
    return -this.asks.keyAt(0);
  }

  depth(side: Side): number {
    return this.side(side).depth;
  }

  /** Price (units) of level i from the best, NaN past the end. Allocation-free; O(i / 128) deep down. */
  priceAt(side: Side, i: number): number {
    return side === 'bid' ? this.bids.keyAt(i) : -this.asks.keyAt(i);
  }

  /** Size (units) of level i from the best, NaN past the end. Allocation-free. */
  sizeAt(side: Side, i: number): number {
    return this.side(side).sizeAt(i);
  }

  /** Level i from the best as [price, size] units, or undefined past the end. */
  level(side: Side, i: number): readonly [price: number, size: number] | undefined {
    return i < this.depth(side) ? [this.priceAt(side, i), this.sizeAt(side, i)] : undefined;
  }

  /** Top n levels of a side as normalized decimal strings, best first. */
  top(side: Side, n: number): [string, string][] {
    const out: [string, string][] = [];
    const m = Math.min(n, this.depth(side));
    for (let i = 0; i < m; i++)
      out.push([formatUnits(this.priceAt(side, i)), formatUnits(this.sizeAt(side, i))]);
    return out;
  }

  /** Both sides non-empty and best bid below best ask: the state features can be computed from. */
  isValid(): boolean {
    return this.bids.depth > 0 && this.asks.depth > 0 && !this.isCrossed();
  }

  /** Best bid >= best ask (a locked book counts as crossed: it cannot rest on an exchange). */
  isCrossed(): boolean {
    return this.bids.depth > 0 && this.asks.depth > 0 && this.bestBid() >= this.bestAsk();
  }

  clear(): void {
    this.bids.clear();
    this.asks.clear();
  }
}
