/**
 * Waiting out transient AWS failures (src/aws/retry.ts): which failures are retried, the capped backoff on
 * virtual time, giving up after the bound, and the AWS error found behind our own wrappers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTransient, retryTransient, TRANSIENT_RETRY, transientDelayMs } from '../src/aws/retry.js';
import { LakeWriteError } from '../src/storage/lake.js';
import { FakeClock } from './support/clock.js';

/** Errors shaped as the SDK throws them (name, $metadata.httpStatusCode). */
const awsError = (name: string, status?: number) =>
  Object.assign(new Error(name), { name, $metadata: status === undefined ? {} : { httpStatusCode: status } });
const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4569'), {
    code: 'ECONNREFUSED',
    $metadata: { attempts: 3 }, // as the SDK throws it after its own attempts
  });

describe('retryTransient', () => {
  it('tells transient failures from the others, behind our wrappers too', () => {
    expect(isTransient(awsError('InternalError', 500))).toBe(true);
    expect(isTransient(awsError('SlowDown', 503))).toBe(true);
    expect(isTransient(awsError('ThrottlingException', 400))).toBe(true);
    expect(isTransient(refused())).toBe(true);
    expect(isTransient(awsError('AccessDenied', 403))).toBe(false);
    expect(isTransient(awsError('NoSuchBucket', 404))).toBe(false);
    expect(isTransient(new LakeWriteError('put failed', { cause: awsError('AccessDenied', 403) }))).toBe(
      false,
    );
    expect(isTransient(new LakeWriteError('put failed', { cause: refused() }))).toBe(true);
    // Not an SDK call's failure (a corrupt object, a bug): never waited out.
    expect(
      isTransient(new LakeWriteError('bad object', { cause: new SyntaxError('Unexpected token') })),
    ).toBe(false);
    expect(isTransient(new TypeError('x is undefined'))).toBe(false);
  });

  it('backs off 100 ms doubling to 5 s while the failure lasts, then resolves with the answer', async () => {
    const clock = new FakeClock();
    const delays: number[] = [];
    let calls = 0;
    const done = retryTransient(
      async () => {
        if (++calls <= 8) throw new LakeWriteError('put failed', { cause: refused() });
        return 'stored';
      },
      { clock, onRetry: (_err, _n, ms) => delays.push(ms) },
    );
    await clock.advance(60_000);
    await expect(done).resolves.toBe('stored');
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(calls).toBe(9);
  });

  it('throws a client error at once, and a transient one after the bound (~1 minute)', async () => {
    const clock = new FakeClock();
    let calls = 0;
    await expect(
      retryTransient(
        async () => {
          calls++;
          throw awsError('AccessDenied', 403);
        },
        { clock },
      ),
    ).rejects.toThrow('AccessDenied');
    expect(calls).toBe(1);

    calls = 0;
    const forever = retryTransient(
      async () => {
        calls++;
        throw awsError('ServiceUnavailable', 503);
      },
      { clock },
    );
    const settled = forever.catch((err: unknown) => err);
    await clock.advance(120_000);
    expect(await settled).toMatchObject({ name: 'ServiceUnavailable' });
    expect(calls).toBe(TRANSIENT_RETRY.maxFailures + 1);
    const waited = Array.from({ length: TRANSIENT_RETRY.maxFailures }, (_, i) => transientDelayMs(i));
    expect(waited.reduce((a, b) => a + b, 0)).toBeGreaterThan(45_000);
    expect(waited.reduce((a, b) => a + b, 0)).toBeLessThan(90_000);
  });

  it('an abort ends the waiting with the last error', async () => {
    const clock = new FakeClock();
    const abort = new AbortController();
    const done = retryTransient(
      async () => {
        throw awsError('InternalError', 500);
      },
      { clock, signal: abort.signal },
    ).catch((err: unknown) => err);
    await clock.advance(150);
    abort.abort();
    await clock.advance(1);
    expect(await done).toMatchObject({ name: 'InternalError' });
  });

  it('property: every delay is within [100 ms, 5 s] and never shrinks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), (n) => {
        const d = transientDelayMs(n);
        return d >= 100 && d <= 5000 && transientDelayMs(n + 1) >= d;
      }),
    );
  });
});
