/**
 * Time, in one place: the `sleep` every component uses, and the `Clock` that code with deadlines (the producer's
 * linger and rate limit, the feed watchdog and backoff, the replay pacing) takes as an option, so tests can run
 * it on virtual time (test/support/clock.ts) and nothing they assert depends on how loaded the machine is.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Waits `ms`; an abort ends the wait early (resolves, never rejects: the caller checks its signal). */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return;
  try {
    await delay(Math.max(0, ms), undefined, signal ? { signal } : undefined);
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
}

/** A monotonic time source in milliseconds, with a sleep on the same time. */
export interface Clock {
  now(): number;
  /** Resolves after `ms` of this clock's time, or as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep,
};
