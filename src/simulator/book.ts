/**
 * The simulator's own order book: integer price ticks -> integer quantity units (1e-8), so it never compares
 * floats. Each side is a sorted array of ticks kept "worst first" (bids ascending, asks descending) so the
 * best price is the last element: most activity is near the best, so inserts and deletes splice near the end.
 */

export type BookSide = 'bid' | 'ask';

export interface BookLevel {
  priceTicks: number;
  qtyUnits: number;
}

class SideBook {
  /** Ticks ordered worst-first; the best is at the end. */
  private readonly ticks: number[] = [];
  private readonly qty = new Map<number, number>();

  constructor(private readonly side: BookSide) {}

  /** True when tick `a` is strictly better than `b` for this side. */
  private better(a: number, b: number): boolean {
    return this.side === 'bid' ? a > b : a < b;
  }

  /** Index of the first element that is not worse than `tick` (lower bound in worst-first order). */
  private lowerBound(tick: number): number {
    let lo = 0;
    let hi = this.ticks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.better(tick, this.ticks[mid]!)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  get size(): number {
    return this.ticks.length;
  }

  get(tick: number): number {
    return this.qty.get(tick) ?? 0;
  }

  /** Sets the absolute quantity; 0 removes the level. */
  set(tick: number, qtyUnits: number): void {
    const exists = this.qty.has(tick);
    if (qtyUnits <= 0) {
      if (!exists) return;
      this.qty.delete(tick);
      this.ticks.splice(this.lowerBound(tick), 1);
      return;
    }
    if (!exists) this.ticks.splice(this.lowerBound(tick), 0, tick);
    this.qty.set(tick, qtyUnits);
  }

  best(): BookLevel | undefined {
    const tick = this.ticks[this.ticks.length - 1];
    return tick === undefined ? undefined : { priceTicks: tick, qtyUnits: this.qty.get(tick)! };
  }

  /** The n-th level from the best (0 = best). */
  nth(n: number): BookLevel | undefined {
    const tick = this.ticks[this.ticks.length - 1 - n];
    return tick === undefined ? undefined : { priceTicks: tick, qtyUnits: this.qty.get(tick)! };
  }

  /** The existing level nearest to `tick` that is at `tick` or worse, else the worst level. */
  atOrWorse(tick: number): BookLevel | undefined {
    if (this.ticks.length === 0) return undefined;
    // In worst-first order, "at or worse" is the last index whose element is not better than tick.
    let lo = 0;
    let hi = this.ticks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.better(this.ticks[mid]!, tick)) hi = mid;
      else lo = mid + 1;
    }
    const i = Math.max(lo - 1, 0);
    const found = this.ticks[i]!;
    return { priceTicks: found, qtyUnits: this.qty.get(found)! };
  }

  levels(): BookLevel[] {
    const out: BookLevel[] = [];
    for (let i = this.ticks.length - 1; i >= 0; i--) {
      const t = this.ticks[i]!;
      out.push({ priceTicks: t, qtyUnits: this.qty.get(t)! });
    }
    return out;
  }
}

export class Book {
  private readonly sides = { bid: new SideBook('bid'), ask: new SideBook('ask') };

  side(side: BookSide): SideBook {
    return this.sides[side];
  }

  get(side: BookSide, tick: number): number {
    return this.sides[side].get(tick);
  }

  set(side: BookSide, tick: number, qtyUnits: number): void {
    this.sides[side].set(tick, qtyUnits);
  }

  bestBid(): BookLevel | undefined {
    return this.sides.bid.best();
  }

  bestAsk(): BookLevel | undefined {
    return this.sides.ask.best();
  }

  /** All levels of one side, best first. */
  levels(side: BookSide): BookLevel[] {
    return this.sides[side].levels();
  }
}
