/**
 * The ingestor's clock is EXCHANGE time, not the wall clock: the newest exchange time the frames have told, and
 * the periodic snapshots' buckets (snapshotIntervalMs, aligned to the epoch). A snapshot is due before the first
 * frame whose exchange time enters a new bucket, so the same frames give the same snapshots at the same places of
 * the stream whether they arrive live, from the fast simulator or from `quotewatch replay` at any speed.
 */
import type { MappedFrame } from '../marketdata/advancedTrade.js';

/**
 * The newest exchange time among a frame's market events, -Infinity when it has none. Book snapshots are left out:
 * the Exchange feed's carry no time (the mapper stamps the receive time, which in a replay is today). Neither do
 * frames without events (subscriptions) move it.
 */
export function latestMarketTime(mapped: MappedFrame): number {
  let exchUs = Number.NEGATIVE_INFINITY;
  for (const e of mapped.events) if (e.type !== 'book_snapshot' && e.exchUs > exchUs) exchUs = e.exchUs;
  return exchUs;
}

export class ExchangeClock {
  private newestUs = 0;
  private bucket: number | undefined;

  /** `snapshotIntervalMs` 0: no periodic snapshots. */
  constructor(private readonly snapshotIntervalMs: number) {}

  /** The newest exchange time seen (µs), undefined before any. */
  get nowUs(): number | undefined {
    return this.newestUs > 0 ? this.newestUs : undefined;
  }

  /** Advances the clock with a frame; true when it entered a new snapshot bucket (a snapshot is due first). */
  advance(mapped: MappedFrame): boolean {
    const exchUs = latestMarketTime(mapped);
    if (exchUs > this.newestUs) this.newestUs = exchUs;
    if (this.snapshotIntervalMs <= 0 || exchUs === Number.NEGATIVE_INFINITY) return false;
    const bucket = Math.floor(exchUs / (this.snapshotIntervalMs * 1000));
    const previous = this.bucket;
    if (previous !== undefined && bucket <= previous) return false;
    this.bucket = bucket;
    // The first frame only starts the clock: there is no book yet to copy.
    return previous !== undefined;
  }
}
