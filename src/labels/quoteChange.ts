/**
 * Target quote_change_500ms, "quote stability over Δ": for the tick at t, 1 if the best bid OR best ask PRICE
 * changes at any moment in (t, t + Δ], else 0 — a quote that moves and comes back is not stable. The tick's
 * state is "as of t" (after all events with exchUs < t, the rule of the feature ticks), so a change made by an
 * event at e counts for the ticks with t <= e < t + Δ (quoteChangedWithin, the one definition the simulator's
 * statistics and the tests use too); a change at exactly t + Δ belongs to the next horizon. A label is emitted
 * once the event-time watermark reaches t + Δ; if the book is not valid then (e.g. resyncing), or the horizon
 * lies in a data gap (no event for longer than the gap limit before it), the truth is unknown and the label is
 * dropped rather than guessed.
 */
import type { LabelRow } from '../features/types.js';

export const QUOTE_CHANGE_TARGET = 'quote_change_500ms' as const;

/** Whether a quote change made by an event at `changeUs` falls in the horizon of the tick at `tickUs`. */
export function quoteChangedWithin(tickUs: number, changeUs: number, deltaUs: number): boolean {
  return tickUs <= changeUs && changeUs < tickUs + deltaUs;
}

interface Pending {
  tsUs: number;
  changed: boolean;
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

  /** Registers the tick at tsUs. Ticks must come in time order. */
  addTick(tsUs: number, seq = -1): void {
    this.pending.push({ tsUs, changed: false, seq });
  }

  /**
   * The best bid or ask price changed by an event at `atUs` (events come in time order): every pending tick
   * whose horizon holds it is a 1. Newest first; ticks before an already marked one are marked too.
   */
  markChange(atUs: number): void {
    for (let i = this.pending.length - 1; i >= this.head; i--) {
      const p = this.pending[i]!;
      if (p.changed || !quoteChangedWithin(p.tsUs, atUs, this.deltaUs)) {
        if (p.changed || p.tsUs + this.deltaUs <= atUs) break;
        continue; // a tick after the change (a late event counted at the watermark): not its horizon
      }
      p.changed = true;
    }
  }

  /**
   * Emits the labels of every pending tick whose horizon tsUs + Δ <= watermarkUs, given whether the quote is
   * valid now (the state as of all events before watermarkUs). Horizons after knownUntilUs (the last event +
   * the gap limit) are in a data gap: dropped.
   */
  resolve(
    watermarkUs: number,
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
      out.push({
        product: this.product,
        tsUs: p.tsUs,
        target: QUOTE_CHANGE_TARGET,
        value: p.changed ? 1 : 0,
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
