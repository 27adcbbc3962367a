/** The producer's rate limit (src/ingest/producer.ts): sliding 1 s windows of records and bytes. */

/**
 * Units (records or bytes) sent in the last second: "never more than `limit` in any 1 s window". A token bucket
 * holding 1 s of budget would let up to twice the limit through in some 1 s window (a full bucket plus a second
 * of refill); a log of the sends in the window cannot.
 */
export class SlidingWindow {
  private readonly sends: { at: number; n: number }[] = [];
  private sum = 0;

  constructor(
    readonly limit: number,
    private readonly windowMs = 1000,
  ) {}

  free(now: number): number {
    this.expire(now);
    return this.limit - this.sum;
  }

  add(now: number, n: number): void {
    this.expire(now);
    this.sends.push({ at: now, n });
    this.sum += n;
  }

  /** Milliseconds until `n` more units fit (0: now). */
  waitFor(now: number, n: number): number {
    this.expire(now);
    let excess = this.sum + n - this.limit;
    if (excess <= 0) return 0;
    for (const s of this.sends) {
      excess -= s.n;
      if (excess <= 0) return s.at + this.windowMs - now;
    }
    return Number.POSITIVE_INFINITY; // n > limit: the caller keeps records smaller than that
  }

  /** A send at time `at` counts in every window (now - windowMs, now] that contains it. */
  private expire(now: number): void {
    while (this.sends.length > 0 && this.sends[0]!.at <= now - this.windowMs)
      this.sum -= this.sends.shift()!.n;
  }
}

/** Records and bytes budgets of one partition key, or of the whole producer. */
export interface Budget {
  records: SlidingWindow;
  bytes: SlidingWindow;
}

/** The budgets of every partition key (one shard's worth each) and of the whole producer (`shards` of them). */
export class RateBudgets {
  readonly total: Budget;
  private readonly perKey = new Map<string, Budget>();

  constructor(
    private readonly maxRecordsPerS: number,
    private readonly maxBytesPerS: number,
    shards: number,
  ) {
    this.total = {
      records: new SlidingWindow(maxRecordsPerS * shards),
      bytes: new SlidingWindow(maxBytesPerS * shards),
    };
  }

  of(key: string): Budget {
    let budget = this.perKey.get(key);
    if (!budget) {
      budget = {
        records: new SlidingWindow(this.maxRecordsPerS),
        bytes: new SlidingWindow(this.maxBytesPerS),
      };
      this.perKey.set(key, budget);
    }
    return budget;
  }

  /** Milliseconds until `records` records of `bytes` bytes fit every one of `budgets` (0: now). */
  waitFor(budgets: Budget[], records: number, bytes: number, now: number): number {
    return Math.max(
      ...budgets.flatMap((b) => [b.records.waitFor(now, records), b.bytes.waitFor(now, bytes)]),
    );
  }
}
