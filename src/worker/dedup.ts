/**
 * De-duplication over a window of EXCHANGE time. The stream is at-least-once (producer retries, a reconnect's
 * snapshot of recent trades, a worker replaying after a restart) and, with several ingestors on the feed, every
 * exchange event comes once per ingestor under the same id (src/stream/record.ts eventKey). Each product remembers
 * the ids it passed for `windowMs` of its exchange time; a repeat within the window is dropped, and a trade or book
 * change older than the window (whose id may already be forgotten) is dropped as stale.
 *
 * Why exchange time and how long: a repeat's distance from its first copy is set by the feed, not by the worker's
 * pace — a standby ingestor lags by milliseconds, a reconnect's trade snapshot reaches back one batch of recent
 * trades (seconds), a restarted ingestor's first frames follow a few seconds of backoff — while a wall-clock or
 * count-bounded set would forget sooner when the worker catches up on a backlog and later when the market is quiet.
 * The default (DEDUP_WINDOW_MS, 120 s) covers an ingestor that is down for up to two minutes and costs about
 * 120 s x the product's events per second of ids (BTC-USD: ~2,000).
 */

/** Keys with the exchange time they were seen at, forgotten once older than the window. */
export class WindowedKeys {
  /** Insertion order is (nearly) time order, so the oldest entries are at the front. */
  private readonly map = new Map<string, number>();
  private newestUs = Number.NEGATIVE_INFINITY;

  /** `maxKeys`: a memory bound whatever the times (keys that never age: a partition without timed events). */
  constructor(
    readonly windowUs: number,
    private readonly maxKeys = 1_000_000,
  ) {}

  has(key: string): boolean {
    return this.map.has(key);
  }

  /**
   * Remembers `key` as seen at `us`, then forgets what fell out of the window. `advance` false: the time does not
   * move the window (it is not the exchange's time for what happened, e.g. a resync's or a stats event's).
   */
  add(key: string, us: number, advance = true): void {
    this.map.set(key, us);
    if (advance && us > this.newestUs) this.newestUs = us;
    if (this.map.size > this.maxKeys) this.map.delete(this.map.keys().next().value!);
    const horizon = this.newestUs - this.windowUs;
    // Entries come in stream order, which is time order up to the feed's lateness: stop at the first one inside
    // the window (a slightly older one behind it stays a little longer, which only errs on the safe side).
    for (const [k, at] of this.map) {
      if (at >= horizon) break;
      this.map.delete(k);
    }
  }

  /** The newest exchange time seen (−∞ before any). */
  get newest(): number {
    return this.newestUs;
  }

  get size(): number {
    return this.map.size;
  }
}

export type Verdict = 'new' | 'duplicate' | 'stale';

/** One product's ids (of one namespace): repeats within the window and stale events are refused. */
export class Deduplicator {
  private readonly ids: WindowedKeys;

  constructor(windowMs: number) {
    this.ids = new WindowedKeys(windowMs * 1000);
  }

  /**
   * `timed`: the event carries the exchange's own time for what happened (a trade, a book change), so it can be
   * stale; the others (snapshots, resyncs, stats) are only checked for repeats.
   */
  check(id: string, exchUs: number, timed: boolean): Verdict {
    if (this.ids.has(id)) return 'duplicate';
    if (timed && exchUs < this.ids.newest - this.ids.windowUs) return 'stale';
    return 'new';
  }

  /** Records an id as passed; only a timed event's time moves the window (see check). */
  pass(id: string, exchUs: number, timed: boolean): void {
    this.ids.add(id, exchUs, timed);
  }

  /** The newest exchange time passed. */
  get newestUs(): number {
    return this.ids.newest;
  }

  get size(): number {
    return this.ids.size;
  }
}
