/**
 * Book verification stage (#17): each `book_check` record (the exchange's REST book, put into the stream by the
 * ingestor) is compared with the worker's own book (src/book/verify.ts) — not where it arrived, but once the
 * product's event time has passed the REST book's time T by the skew window, so every change the exchange made
 * before T has reached our book whichever way the two clocks and the feed's batching lean. Levels our book saw
 * change at or after T − skew are in flight and left out of that check.
 *
 * The skew window (BOOK_CHECK_SKEW_MS, default 1 s) must cover how far a level change's exchange time and the REST
 * book's time can disagree about the same state: the feed's batching (level2_batch: 50 ms), the spread of
 * exchange → ingest latency between the WebSocket and the REST path, and how stale the exchange's REST cache may
 * be. Too short gives false mismatches on busy levels; too long only delays detection on busy levels (a quiet
 * level is compared at the next check). 1 s is ten times the first two on the captures and the simulator.
 *
 * Everything here is driven by the stream alone (event time, stream order), so a replay gives the same verdicts.
 * Per product it keeps when each level last changed (pruned to `retainMs` of event time), the checks waiting for
 * their time, and the last verdict: what /latest, /health and the lineage read.
 */
import type { OrderBook } from '../book/book.js';
import { parseUnits } from '../book/units.js';
import {
  type BookComparison,
  compareBooks,
  ExchangeBookError,
  type LevelDifference,
} from '../book/verify.js';
import type { MarketEvent, Side } from '../marketdata/events.js';
import type { Verification } from '../storage/latest.js';
import type { BookCheckEvent } from '../stream/record.js';

export type { Verification };
export type VerificationResult = Verification['result'];

/** One judged check. */
export interface CheckOutcome extends Verification {
  product: string;
  atUs: number;
  /** The book_check event's id (the verdict channel's key). */
  checkId: string;
  compared: number;
  inFlight: number;
  /** The differing levels (at most MAX_DIFFERENCES kept). */
  differences: LevelDifference[];
  /** Per side, the worst price compared (absent: the whole side). */
  through: BookComparison['through'];
  /**
   * Since when the book may have been wrong unseen: for a mismatch, the earliest of its differing levels' last
   * check found equal, or the snapshot that started this book where a level never was (null: unknown, no book
   * start seen). A mismatch's suspect span starts here.
   */
  cleanSinceUs: number | null;
  /**
   * The product's event time when it was judged: T + skew, or later when the REST book reached the stream later
   * (a slow answer); every change up to then is in our book, and the ones from T − skew on are in flight.
   */
  judgedUs: number;
}

/** A mismatch repaired: the span [fromUs, toUs) from its verdict to the book's rebuild, of its product. */
export interface Repair {
  product: string;
  /** The mismatch's check. */
  checkId: string;
  fromUs: number;
  toUs: number;
}

export interface VerificationOptions {
  /** The in-flight window around the REST book's time (BOOK_CHECK_SKEW_MS). */
  skewMs: number;
  /** How long level change times are kept; a check older than this when it arrives is unavailable. Default 30 s. */
  retainMs?: number;
}

export const DEFAULT_SKEW_MS = 1000;
const MAX_DIFFERENCES = 10;
/** A product's verification before any check came (states are replaced, never changed in place: shared). */
const NO_CHECK: Verification = Object.freeze({
  result: 'pending',
  atUs: null,
  reason: 'no check received yet',
});
/** Levels per side whose last equal check is remembered before those older than an hour are forgotten. */
const MAX_VERIFIED_LEVELS = 20_000;

interface Pending {
  check: BookCheckEvent & { id: string };
  dueUs: number;
}

/** One product's level change times, pending checks and last verdict. */
class ProductChecks {
  /** Last change time (µs) per price (units), per side. */
  readonly changed = { bid: new Map<number, number>(), ask: new Map<number, number>() };
  /** Event time of the next sweep of `changed` (prune). */
  private sweepAtUs = Number.NEGATIVE_INFINITY;
  pending: Pending[] = [];
  /**
   * The time of the exchange snapshot that (re)started the book (null: not seen). It is a change time of every
   * level too (the snapshot may differ from the book before anywhere, in levels it left out as well): a check
   * whose window holds it cannot judge any level.
   */
  bookStartUs: number | null = null;
  /** Per side and price (units): the book time of the last check that compared the level and found it equal. */
  readonly verifiedAt = { bid: new Map<number, number>(), ask: new Map<number, number>() };
  last: Verification = NO_CHECK;
  /** The product's event time from which `last` holds, and what held before it (a tick before it sees that). */
  sinceUs = Number.NEGATIVE_INFINITY;
  private previous: Verification = NO_CHECK;
  /** The mismatch in force, until the book is rebuilt: its check and when it was judged. */
  mismatch: { checkId: string; judgedUs: number } | undefined;

  /** A new verdict, in force for the product's ticks from `fromUs` on. */
  set(v: Verification, fromUs: number): void {
    if (fromUs !== this.sinceUs) this.previous = this.last;
    this.sinceUs = fromUs;
    this.last = v;
  }

  /** The verdict a tick at `tsUs` was made under (the newest without a time: /latest and /health). */
  at(tsUs?: number): Verification {
    return tsUs !== undefined && tsUs < this.sinceUs ? this.previous : this.last;
  }

  mark(side: Side, price: number, us: number): void {
    // A late event (below the product's clock) must not make a newer change look older.
    if ((this.changed[side].get(price) ?? Number.NEGATIVE_INFINITY) > us) return;
    this.changed[side].set(price, us);
  }

  /**
   * Forgets change times older than `beforeUs`, in one sweep every `everyUs` of event time rather than per change:
   * a change then costs one map write and no allocation (this runs on every level change of the feed). A time
   * kept past `beforeUs` is older than any check's window, so it judges exactly as a forgotten one.
   */
  prune(beforeUs: number, everyUs: number): void {
    // (A clock far behind the planned sweep: an event far in the future planned it; do not wait for that time.)
    if (beforeUs < this.sweepAtUs && beforeUs > this.sweepAtUs - 2 * everyUs) return;
    this.sweepAtUs = beforeUs + everyUs;
    for (const side of [this.changed.bid, this.changed.ask])
      for (const [price, us] of side) if (us < beforeUs) side.delete(price);
  }
}

export class BookVerifier {
  private readonly skewUs: number;
  private readonly retainUs: number;
  private readonly products = new Map<string, ProductChecks>();
  /** The product's event time when the checks being settled are judged (absent: judged on arrival). */
  private judgingUs: number | undefined;
  /** Judged checks not yet taken by the caller (metrics, logs, the verdict channel). */
  private outcomes: CheckOutcome[] = [];
  private repairs: Repair[] = [];
  readonly counts: Record<Exclude<VerificationResult, 'pending'>, number> = {
    match: 0,
    mismatch: 0,
    unavailable: 0,
  };

  constructor(opts: VerificationOptions) {
    if (!(opts.skewMs >= 0)) throw new RangeError(`bad skewMs ${opts.skewMs}`);
    this.skewUs = opts.skewMs * 1000;
    // Change times must outlive every check's window: at least twice the skew and a REST answer's lateness.
    this.retainUs = Math.max(opts.retainMs ?? 30_000, 2 * opts.skewMs + 10_000) * 1000;
  }

  private of(product: string): ProductChecks {
    let p = this.products.get(product);
    if (!p) {
      p = new ProductChecks();
      this.products.set(product, p);
    }
    return p;
  }

  /**
   * Before `e` is applied to `book` (stream order): judges the checks whose time `e` passes, on the book as of
   * every event before it, then notes what `e` changes. `clockUs` is the product's event time before `e` (the
   * pipeline's watermark): a verdict `e` forces without passing a check's time (a resync) holds from there.
   */
  beforeApply(e: MarketEvent, book: OrderBook | undefined, ready: boolean, clockUs?: number): void {
    const p = this.of(e.product);
    // A resync's time is the ingestor's newest sighting across the feed, not this product's clock: it never
    // makes a check due (its pending checks become unavailable below).
    if (e.type !== 'resync') this.settle(e.product, p, e.exchUs, book, ready);
    switch (e.type) {
      case 'book_changes':
        for (const c of e.changes) p.mark(c.side, parseUnits(c.price), e.exchUs);
        break;
      case 'book_snapshot':
        // A periodic copy of a running book changes only the levels where it differs from it. A book rebuilt
        // from the exchange's snapshot starts clean, every level changed at once, and a mismatch found on the
        // book it replaces is repaired: the next check will say.
        if (ready && book) markSnapshotChanges(p, book, e);
        else {
          p.bookStartUs = e.exchUs;
          p.verifiedAt.bid.clear();
          p.verifiedAt.ask.clear();
          if (p.mismatch) {
            // The predictions from the verdict to this rebuild abstained; marked too, for training.
            this.repairs.push({
              product: e.product,
              checkId: p.mismatch.checkId,
              fromUs: p.mismatch.judgedUs,
              toUs: e.exchUs,
            });
            p.mismatch = undefined;
          }
          if (p.last.result === 'mismatch')
            p.set(
              {
                result: 'pending',
                atUs: p.last.atUs,
                reason: 'book rebuilt after a mismatch; awaiting the next check',
              },
              e.exchUs,
            );
        }
        break;
      case 'resync':
        this.judgingUs = clockUs;
        for (const { check } of p.pending)
          this.judge(p, check, {
            result: 'unavailable',
            reason: `our book resynced (${e.reason}) before the check was due`,
          });
        this.judgingUs = undefined;
        p.pending = [];
        break;
    }
    p.prune(e.exchUs - this.retainUs, this.retainUs / 2);
  }

  /** A book_check from the stream: judged once the product's event time passes its time by the skew window. */
  check(e: BookCheckEvent & { id: string }, watermarkUs: number | undefined): void {
    const p = this.of(e.product);
    if (e.unavailable !== undefined) {
      // Judged where it arrived: from the product's clock on (the REST time may be ahead of a quiet product's).
      this.judgingUs = watermarkUs;
      this.judge(p, e, { result: 'unavailable', reason: `exchange book unavailable: ${e.unavailable}` });
      this.judgingUs = undefined;
      return;
    }
    if (watermarkUs !== undefined && e.exchUs < watermarkUs - this.retainUs + this.skewUs) {
      const lateS = ((watermarkUs - e.exchUs) / 1e6).toFixed(1);
      this.judge(p, e, {
        result: 'unavailable',
        reason: `the exchange book arrived ${lateS} s after its time`,
      });
      return;
    }
    p.pending.push({ check: e, dueUs: e.exchUs + this.skewUs });
  }

  /**
   * The product's last verdict (result 'pending' until a check is judged); with `tsUs`, the one a tick at that time
   * was made under: a verdict reached at an event's time holds for the ticks after it, though the ticks before it
   * are emitted once that event has arrived (stream order: the check is judged, then the ticks it passes are due).
   */
  state(product: string, tsUs?: number): Verification {
    return this.products.get(product)?.at(tsUs) ?? NO_CHECK;
  }

  /** The checks judged since the last call, in order. */
  drain(): CheckOutcome[] {
    const out = this.outcomes;
    this.outcomes = [];
    return out;
  }

  /** The mismatches repaired (the book rebuilt) since the last call: the spans their predictions abstained. */
  drainRepairs(): Repair[] {
    const out = this.repairs;
    this.repairs = [];
    return out;
  }

  private settle(
    product: string,
    p: ProductChecks,
    nowUs: number,
    book: OrderBook | undefined,
    ready: boolean,
  ) {
    this.judgingUs = nowUs;
    while (p.pending.length > 0 && p.pending[0]!.dueUs <= nowUs) {
      const { check } = p.pending.shift()!;
      if (!book || !ready) {
        this.judge(p, check, { result: 'unavailable', reason: `our book of ${product} is not synced` });
        continue;
      }
      const from = check.exchUs - this.skewUs;
      let cmp: BookComparison;
      try {
        cmp = compareBooks(
          book,
          check,
          check.depth,
          (side, price) =>
            Math.max(
              p.changed[side].get(price) ?? Number.NEGATIVE_INFINITY,
              p.bookStartUs ?? Number.NEGATIVE_INFINITY,
            ) >= from,
        );
      } catch (err) {
        if (!(err instanceof ExchangeBookError)) throw err;
        this.judge(p, check, { result: 'unavailable', reason: `exchange book unusable: ${err.message}` });
        continue;
      }
      if (cmp.differences.length > 0) {
        const shown = cmp.differences
          .slice(0, 3)
          .map((d) => `${d.side} ${d.price}: ours ${d.ours}, exchange ${d.exchange}`)
          .join('; ');
        this.judge(
          p,
          check,
          {
            result: 'mismatch',
            reason: `${cmp.differences.length} of ${cmp.compared} levels differ: ${shown}`,
          },
          cmp,
        );
      } else if (cmp.compared === 0) {
        this.judge(
          p,
          check,
          { result: 'unavailable', reason: `no level to compare (${cmp.inFlight} in flight)` },
          cmp,
        );
      } else {
        this.judge(p, check, { result: 'match' }, cmp);
      }
    }
    this.judgingUs = undefined;
  }

  private judge(
    p: ProductChecks,
    check: BookCheckEvent & { id: string },
    v: { result: Exclude<VerificationResult, 'pending'>; reason?: string },
    cmp?: BookComparison,
  ): void {
    this.counts[v.result]++;
    const judgedUs = this.judgingUs ?? check.exchUs;
    const verdict = { result: v.result, atUs: check.exchUs, ...(v.reason ? { reason: v.reason } : {}) };
    // A mismatch stands until the book is rebuilt (the ingestor resyncs it at once): a later check that could not
    // judge says nothing of it, and a later match may have left the differing level out (in flight) — the verdict
    // is reported all the same, but the product's state stays the mismatch.
    if (!p.mismatch) p.set(verdict, judgedUs);
    if (v.result === 'mismatch' && !p.mismatch) p.mismatch = { checkId: check.id, judgedUs };
    this.outcomes.push({
      ...verdict,
      atUs: check.exchUs,
      product: check.product,
      checkId: check.id,
      compared: cmp?.compared ?? 0,
      inFlight: cmp?.inFlight ?? 0,
      differences: cmp?.differences.slice(0, MAX_DIFFERENCES) ?? [],
      through: cmp?.through ?? {},
      cleanSinceUs: cmp ? cleanSince(p, cmp) : null,
      judgedUs,
    });
    for (const [side, price] of cmp?.equal ?? []) p.verifiedAt[side].set(price, check.exchUs);
    // Prices the market left long ago: forgetting them only widens a later suspect span to the book's start.
    for (const side of ['bid', 'ask'] as const) {
      const m = p.verifiedAt[side];
      if (m.size > MAX_VERIFIED_LEVELS)
        for (const [price, at] of m) if (at < check.exchUs - 3_600_000_000) m.delete(price);
    }
  }
}

/** The earliest moment a differing level was last known right (its last equal check, else the book's start). */
function cleanSince(p: ProductChecks, cmp: BookComparison): number | null {
  let since: number | null = null;
  for (const d of cmp.differences) {
    const at = p.verifiedAt[d.side].get(parseUnits(d.price)) ?? p.bookStartUs;
    if (at === null) return null;
    since = since === null ? at : Math.min(since, at);
  }
  return since;
}

/** A periodic snapshot replacing a running book: the levels where it differs from the book are marked changed. */
function markSnapshotChanges(
  p: ProductChecks,
  book: OrderBook,
  e: Extract<MarketEvent, { type: 'book_snapshot' }>,
): void {
  for (const side of ['bid', 'ask'] as const) {
    const next = new Map<number, number>();
    for (const [price, size] of side === 'bid' ? e.bids : e.asks)
      next.set(parseUnits(price), parseUnits(size));
    for (let i = 0; i < book.depth(side); i++) {
      const price = book.priceAt(side, i);
      if (next.get(price) !== book.sizeAt(side, i)) p.mark(side, price, e.exchUs);
      next.delete(price);
    }
    for (const price of next.keys()) p.mark(side, price, e.exchUs);
  }
}
