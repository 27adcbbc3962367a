import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mapLimited } from '../src/concurrency.js';

/** Lets pending promise callbacks run (the calls below settle on microtasks and zero timers only). */
const tick = () => new Promise((done) => setTimeout(done, 0));

describe('mapLimited', () => {
  it('returns results in input order with never more than `limit` calls in flight (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat({ max: 3 }), { maxLength: 40 }),
        fc.integer({ min: 1, max: 10 }),
        async (delays, limit) => {
          let inFlight = 0;
          let peak = 0;
          const out = await mapLimited(delays, limit, async (waits, i) => {
            inFlight++;
            peak = Math.max(peak, inFlight);
            for (let k = 0; k <= waits; k++) await tick(); // uneven durations: later items may finish first
            inFlight--;
            return i * 10;
          });
          expect(out).toEqual(delays.map((_, i) => i * 10));
          expect(peak).toBeLessThanOrEqual(limit);
          if (delays.length > 0) expect(peak).toBe(Math.min(limit, delays.length));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('rejects with the first failure and starts no call after it', async () => {
    const started: number[] = [];
    const run = mapLimited([0, 1, 2, 3, 4, 5], 2, async (i) => {
      started.push(i);
      await tick();
      if (i === 1) throw new Error(`item ${i} failed`);
      return i;
    });
    await expect(run).rejects.toThrow('item 1 failed');
    await tick();
    await tick();
    // 0 and 1 start together; 0 finishing lets 2 start before 1 fails; nothing after that.
    expect(started).toEqual([0, 1, 2]);
  });

  it('needs a limit of at least 1', async () => {
    await expect(mapLimited([1], 0, async (x) => x)).rejects.toThrow(RangeError);
    await expect(mapLimited([1], 1.5, async (x) => x)).rejects.toThrow(/integer >= 1/);
    expect(await mapLimited([], 4, async (x) => x)).toEqual([]);
  });
});
