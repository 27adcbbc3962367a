/**
 * Per-second aggregates of one product on the event-time clock, kept in a ring: the source of the windowed
 * (30 s / 60 s / 300 s) features and of the forward-volatility label.
 *
 * Second k is the interval [k s, k+1 s). It is closed when the watermark reaches the boundary k+1, with the
 * quote sampled there (the state as of all events before k+1, the same rule as the ticks). Its 1 s return is
 * ln(mid at k+1 / mid at k); a boundary whose quote is unknown (invalid book, or no event of the product for
 * longer than the gap limit) makes the returns on both sides unknown (NaN), so a gap breaks every window
 * across it instead of being bridged by a return over the gap.
 *
 * Window sums are recomputed from the ring when a second closes (at most once per second, ≤ 300 entries),
 * never kept as running sums: a value then depends only on the window's own seconds, so a replay started
 * anywhere gives bit-identical features once its windows are full.
 */

export const WINDOWS_S = [30, 60, 300] as const;
const MAX_WINDOW_S = 300;
/** Ring length: the longest window plus slack for the forward label (60 s) and catch-up. */
export const SECOND_RING = 512;

/** Aggregates over the last W closed seconds. */
export interface WindowAggregates {
  /** Sum of the known 1 s log returns (a log return over the window that skips gaps). */
  logReturn: number;
  /** Root mean square of the known 1 s log returns (0 when none). */
  rv: number;
  /** Mean |Δmid| / mid over the seconds with a known return (0 when none). */
  meanAbsDmid: number;
  /** Mean spread / mid and mean L1 imbalance at the known second boundaries (0 when none). */
  meanSpread: number;
  meanImbalance: number;
  /** Trades and traded base volume (1e-8 units) in the window. */
  trades: number;
  volumeUnits: number;
  /** Best bid/ask price changes in the window. */
  quoteChanges: number;
  /** Level changes (any depth) in the window: the order book's activity. */
  bookUpdates: number;
  /** Known 1 s returns in the window (W when complete). */
  knownReturns: number;
}

function emptyAggregates(): WindowAggregates {
  return {
    logReturn: 0,
    rv: 0,
    meanAbsDmid: 0,
    meanSpread: 0,
    meanImbalance: 0,
    trades: 0,
    volumeUnits: 0,
    quoteChanges: 0,
    bookUpdates: 0,
    knownReturns: 0,
  };
}

export class SecondSeries {
  /** Second number held by each slot (NaN = empty), so a stale slot is never mistaken for data. */
  private readonly secondNo = new Float64Array(SECOND_RING).fill(Number.NaN);
  private readonly ret = new Float64Array(SECOND_RING);
  private readonly absDmid = new Float64Array(SECOND_RING);
  private readonly spread = new Float64Array(SECOND_RING);
  private readonly imbalance = new Float64Array(SECOND_RING);
  private readonly trades = new Float64Array(SECOND_RING);
  private readonly volume = new Float64Array(SECOND_RING);
  private readonly quoteChanges = new Float64Array(SECOND_RING);
  private readonly bookUpdates = new Float64Array(SECOND_RING);
  /** The next second to close; seconds before it are closed. NaN until the first event. */
  next = Number.NaN;
  private prevMid = Number.NaN;
  private openTrades = 0;
  private openVolume = 0;
  private openQuoteChanges = 0;
  private openBookUpdates = 0;
  private dirty = true;
  readonly windows: WindowAggregates[] = WINDOWS_S.map(emptyAggregates);

  /** Starts the clock: the second containing the first event is the open one. */
  start(second: number): void {
    if (Number.isNaN(this.next)) this.next = second;
  }

  addTrade(units: number): void {
    this.openTrades++;
    this.openVolume += units;
  }

  addQuoteChange(): void {
    this.openQuoteChanges++;
  }

  addBookUpdates(n: number): void {
    this.openBookUpdates += n;
  }

  /**
   * Closes second `next` with the quote sampled at its end boundary (NaN mid = unknown quote there).
   * spreadRel is (ask - bid) / mid; imbalance the L1 queue imbalance.
   */
  close(mid: number, spreadRel: number, imbalance: number): void {
    const k = this.next;
    const i = k % SECOND_RING;
    this.secondNo[i] = k;
    const r = Math.log(mid / this.prevMid); // NaN when either end is unknown
    this.ret[i] = r;
    this.absDmid[i] = Math.abs(mid - this.prevMid) / this.prevMid;
    this.spread[i] = Number.isNaN(mid) ? Number.NaN : spreadRel;
    this.imbalance[i] = Number.isNaN(mid) ? Number.NaN : imbalance;
    this.trades[i] = this.openTrades;
    this.volume[i] = this.openVolume;
    this.quoteChanges[i] = this.openQuoteChanges;
    this.bookUpdates[i] = this.openBookUpdates;
    this.openTrades = 0;
    this.openVolume = 0;
    this.openQuoteChanges = 0;
    this.openBookUpdates = 0;
    this.prevMid = mid;
    this.next = k + 1;
    this.dirty = true;
  }

  /**
   * Skips `n` seconds without data (a jump longer than the ring): they hold nothing, so every window over
   * them is incomplete. The open second's trades, quote changes and book updates would be in the first skipped second: dropped.
   */
  skip(n: number): void {
    this.next += n;
    this.prevMid = Number.NaN;
    this.openTrades = 0;
    this.openVolume = 0;
    this.openQuoteChanges = 0;
    this.openBookUpdates = 0;
    this.dirty = true;
  }

  /** The 1 s log return of second k, NaN when unknown or no longer held. */
  returnOf(k: number): number {
    const i = k % SECOND_RING;
    return this.secondNo[i] === k ? this.ret[i]! : Number.NaN;
  }

  /** Window aggregates over the last W closed seconds, recomputed only after a second closed. */
  aggregates(): readonly WindowAggregates[] {
    if (this.dirty) this.recompute();
    return this.windows;
  }

  private recompute(): void {
    this.dirty = false;
    let sumR = 0;
    let sumR2 = 0;
    let sumAbs = 0;
    let nR = 0;
    let sumS = 0;
    let sumI = 0;
    let nQ = 0;
    let trades = 0;
    let volume = 0;
    let quoteChanges = 0;
    let bookUpdates = 0;
    let w = 0;
    // One pass from the newest second back, finishing each window (30, 60, 300) on the way.
    for (let back = 1; back <= MAX_WINDOW_S; back++) {
      const k = this.next - back;
      const i = k % SECOND_RING;
      if (k >= 0 && this.secondNo[i] === k) {
        const r = this.ret[i]!;
        if (!Number.isNaN(r)) {
          sumR += r;
          sumR2 += r * r;
          sumAbs += this.absDmid[i]!;
          nR++;
        }
        const s = this.spread[i]!;
        if (!Number.isNaN(s)) {
          sumS += s;
          sumI += this.imbalance[i]!;
          nQ++;
        }
        trades += this.trades[i]!;
        volume += this.volume[i]!;
        quoteChanges += this.quoteChanges[i]!;
        bookUpdates += this.bookUpdates[i]!;
      }
      if (back === WINDOWS_S[w]) {
        const a = this.windows[w]!;
        a.logReturn = sumR;
        a.rv = nR > 0 ? Math.sqrt(sumR2 / nR) : 0;
        a.meanAbsDmid = nR > 0 ? sumAbs / nR : 0;
        a.meanSpread = nQ > 0 ? sumS / nQ : 0;
        a.meanImbalance = nQ > 0 ? sumI / nQ : 0;
        a.trades = trades;
        a.volumeUnits = volume;
        a.quoteChanges = quoteChanges;
        a.bookUpdates = bookUpdates;
        a.knownReturns = nR;
        w++;
      }
    }
  }
}
