/**
 * Target quote_change_500ms: for the tick at t, 1 if the best bid OR best ask PRICE as of t + Δ differs from
 * the one as of t, else 0. "As of x" means after all events with exchUs < x, the same rule as the feature
 * ticks, so a change at exactly t + Δ belongs to the next horizon. A label is emitted once the event-time
 * watermark reaches t + Δ; if the book is not valid then (e.g. resyncing), or the horizon lies in a data gap
 * (no event for longer than the gap limit before it), the truth is unknown and the label is dropped rather
 * than guessed.
 */
import type { LabelRow } from '../features/types.js';

export const QUOTE_CHANGE_TARGET = 'quote_change_500ms' as const;

interface Pending {
  tsUs: number;
  bid: number;
  ask: number;
  seq: number;
}

export class QuoteChangeLabeler {
  private readonly deltaUs: number;
  private readonly pending: Pending[] = [];
  private head = 0;
  /** Labels that could not be decided (book invalid at the horizon). */
  dropped = 0;

  constructor(
    readonly product: string,
    deltaMs: number,
  ) {
    this.deltaUs = deltaMs * 1000;
  }

  /** Registers the tick at tsUs with its best bid/ask prices (exact units). Ticks must come in time order. */
  addTick(tsUs: number, bid: number, ask: number, seq = -1): void {
    this.pending.push({ tsUs, bid, ask, seq });
  }

  /**
   * Emits the labels of every pending tick whose horizon tsUs + Δ <= watermarkUs, given the current state
   * (which must be the state as of all events before watermarkUs). Horizons after knownUntilUs (the last
   * event + the gap limit) are in a data gap: dropped.
   */
  resolve(
    watermarkUs: number,
    bid: number,
    ask: number,
    valid: boolean,
    out: LabelRow[],
    knownUntilUs = Number.POSITIVE_INFINITY,
  ): void {
    while (this.head < this.pending.length) {
      const p = this.pending[this.head]!;
      if (p.tsUs + this.deltaUs > watermarkUs) break;
      this.head++;
      if (!valid || p.tsUs + this.deltaUs > knownUntilUs) {
        this.dropped++;
        continue;
      }
      const changed = p.bid !== bid || p.ask !== ask;
      out.push({
        product: this.product,
        tsUs: p.tsUs,
        target: QUOTE_CHANGE_TARGET,
        value: changed ? 1 : 0,
        seq: p.seq,
      });
    }
    // Compact now and then so the queue does not grow with the stream.
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
  }

  get pendingCount(): number {
    return this.pending.length - this.head;
  }
}
