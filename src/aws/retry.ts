/**
 * Waiting out a transient AWS failure (an emulator or a service restarting, throttling, no answer), in one place:
 * the worker's batch path (lake objects, latest items, history, recovery state, claim-checked snapshots), the
 * shard reader's GetShardIterator and GetRecords, and the ingestor's snapshot puts back off the same way, give up
 * after the same time and log each retry alike. Giving up (a client error at once, a transient one after ~1
 * minute) is the caller's error to raise: the process then exits and is restarted from its checkpoint.
 */
import { type Clock, systemClock } from '../clock.js';
import { describeError, type Logger } from '../log.js';
import { isRetryable } from './errors.js';

/** Backoff from 100 ms doubling to 5 s; 16 failures in a row is about a minute. */
export const TRANSIENT_RETRY = { baseMs: 100, capMs: 5000, maxFailures: 16 } as const;

/** The pause after the `failures`-th failure in a row (0-based). */
export function transientDelayMs(failures: number): number {
  return Math.min(TRANSIENT_RETRY.capMs, TRANSIENT_RETRY.baseMs * 2 ** failures);
}

/**
 * The SDK's error behind our wrappers (`XxxError` keeps it as `cause`): the SDK marks every error of a call,
 * refused connections included, with `$metadata`. Anything else (a corrupt object that does not parse) is ours.
 */
function sdkCause(err: unknown): unknown {
  for (let e = err; e instanceof Error; e = e.cause) if ('$metadata' in e) return e;
  return undefined;
}

/** Worth another attempt: an SDK call failed transiently (src/aws/errors.ts isRetryable). */
export function isTransient(err: unknown): boolean {
  const sdk = sdkCause(err);
  return sdk !== undefined && isRetryable(sdk);
}

export interface RetryOptions {
  /** Aborting ends the waiting: the last error is thrown. */
  signal?: AbortSignal;
  clock?: Clock;
  /** Told of each failure that will be retried (to log it once in a while). */
  onRetry?: (err: unknown, failures: number, delayMs: number) => void;
}

/** An onRetry that logs each retry as a warning: `message` with `fields`, the count, the pause and the error. */
export function logRetries(
  log: Logger,
  message: string,
  fields: Record<string, unknown> = {},
): NonNullable<RetryOptions['onRetry']> {
  return (err, failures, delayMs) =>
    log('warn', message, { ...fields, failures, delayMs, error: describeError(err) });
}

/** Runs `fn` until it resolves, retrying transient failures with capped backoff; throws the last error. */
export async function retryTransient<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const clock = opts.clock ?? systemClock;
  for (let failures = 0; ; failures++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || failures >= TRANSIENT_RETRY.maxFailures || opts.signal?.aborted) throw err;
      const delayMs = transientDelayMs(failures);
      opts.onRetry?.(err, failures + 1, delayMs);
      await clock.sleep(delayMs, opts.signal);
    }
  }
}
